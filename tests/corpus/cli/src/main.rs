use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::process::ExitCode;

/// Tiny corpus CLI.
#[derive(Parser)]
#[command(name = "corpus-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add integers.
    Sum {
        /// Integers to add.
        #[arg(required = true, allow_negative_numbers = true)]
        numbers: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct SumOutput {
    sum: i64,
}

fn sum(numbers: &[String]) -> Result<i64> {
    let mut total: i64 = 0;
    for n in numbers {
        let v: i64 = n
            .parse()
            .with_context(|| format!("not an integer: {n:?}"))?;
        total = match total.checked_add(v) {
            Some(t) => t,
            None => bail!("sum overflows i64"),
        };
    }
    Ok(total)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sum { numbers, json } => {
            let total = sum(&numbers)?;
            if json {
                println!("{}", serde_json::to_string(&SumOutput { sum: total })?);
            } else {
                println!("{total}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, whatever RUST_BACKTRACE says.
            eprintln!("corpus-cli: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
