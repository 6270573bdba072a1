//! tally: the demo app of the release toolkit.
//!
//! Zero dependencies so it builds offline and for every target, including
//! the ones whose std is built from source.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn usage() -> String {
    format!(
        "{NAME} {VERSION}\n\
         A small local-first demo app.\n\n\
         Usage: {NAME} [OPTIONS] [COMMAND]\n\n\
         Commands:\n  \
           doctor    Check this app's environment; exit 0 when all is well\n\n\
         Options:\n  \
           -h, --help       Print this help\n  \
           -V, --version    Print the version\n"
    )
}

/// Where the app keeps its data: TALLY_HOME, else the platform's data dir.
fn data_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("TALLY_HOME") {
        return Some(PathBuf::from(dir));
    }
    if cfg!(windows) {
        env::var_os("LOCALAPPDATA").map(|d| PathBuf::from(d).join(NAME))
    } else if cfg!(target_os = "macos") {
        env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Application Support").join(NAME))
    } else {
        env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .map(|d| d.join(NAME))
    }
}

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check_executable() -> Check {
    match env::current_exe().and_then(fs::metadata) {
        Ok(meta) => Check { name: "executable", ok: meta.is_file(), detail: format!("{} bytes", meta.len()) },
        Err(err) => Check { name: "executable", ok: false, detail: err.to_string() },
    }
}

fn check_data_dir() -> Check {
    let Some(dir) = data_dir() else {
        return Check { name: "data dir", ok: false, detail: "no HOME, XDG_DATA_HOME or TALLY_HOME set".into() };
    };
    // Prove the directory is usable by writing and removing a probe file.
    let probe = dir.join(".doctor-probe");
    let result = fs::create_dir_all(&dir)
        .and_then(|_| fs::write(&probe, b"ok"))
        .and_then(|_| fs::remove_file(&probe));
    match result {
        Ok(()) => Check { name: "data dir", ok: true, detail: format!("{} is writable", dir.display()) },
        Err(err) => Check { name: "data dir", ok: false, detail: format!("{}: {err}", dir.display()) },
    }
}

fn check_temp_dir() -> Check {
    let probe = env::temp_dir().join(format!("{NAME}-doctor-{}", std::process::id()));
    let result = fs::write(&probe, b"ok").and_then(|_| fs::remove_file(&probe));
    match result {
        Ok(()) => Check { name: "temp dir", ok: true, detail: format!("{} is writable", env::temp_dir().display()) },
        Err(err) => Check { name: "temp dir", ok: false, detail: err.to_string() },
    }
}

fn doctor() -> ExitCode {
    let checks = [check_executable(), check_data_dir(), check_temp_dir()];
    for check in &checks {
        let verdict = if check.ok { "ok" } else { "FAIL" };
        println!("{verdict:<4} {:<10} {}", check.name, check.detail);
    }
    if checks.iter().all(|c| c.ok) {
        println!("{NAME} {VERSION}: all checks passed");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Some("-V") | Some("--version") => {
            println!("{NAME} {VERSION}");
            ExitCode::SUCCESS
        }
        Some("doctor") => doctor(),
        Some(other) => {
            eprintln!("error: unknown command '{other}'; run '{NAME} --help' for the list");
            ExitCode::from(2)
        }
    }
}
