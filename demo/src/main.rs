//! tally: the demo app of the release toolkit, a small local-first counter
//! that keeps its data in SQLite.
//!
//! Zero dependencies so it builds offline and for every target, including
//! the ones whose std is built from source; SQLite is the system library,
//! loaded at run time (see sqlite.rs).

mod sqlite;
mod store;

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
           add NAME [N]  Add N (default 1) to the counter NAME\n  \
           list          Print every counter\n  \
           migrate       Bring the database schema to this binary's version\n  \
           schema        Print the database's and this binary's schema versions\n  \
           doctor        Check binary, data file and schema; exit 0 when all is well\n\n\
         Options:\n  \
           -h, --help       Print this help\n  \
           -V, --version    Print the version\n"
    )
}

/// The database file: TALLY_DB, else tally.db in the data dir.
fn db_path() -> Option<PathBuf> {
    if let Some(path) = env::var_os("TALLY_DB") {
        return Some(PathBuf::from(path));
    }
    data_dir().map(|dir| dir.join("tally.db"))
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

fn check_database() -> Vec<Check> {
    let Some(path) = db_path() else {
        return vec![Check { name: "database", ok: false, detail: "no data location".into() }];
    };
    let library = sqlite::library();
    if !path.exists() {
        // No data yet: nothing to check but whether SQLite can be loaded.
        let detail = match &library {
            Ok(name) => format!("none yet at {}; SQLite: {name}", path.display()),
            Err(message) => format!("none yet at {}; {message} (needed once data exists)", path.display()),
        };
        return vec![Check { name: "database", ok: true, detail }];
    }
    let mut checks = vec![match &library {
        Ok(name) => Check { name: "sqlite", ok: true, detail: name.clone() },
        Err(message) => Check { name: "sqlite", ok: false, detail: message.clone() },
    }];
    if library.is_err() {
        return checks;
    }
    match store::open(&path) {
        Ok(db) => {
            let integrity = store::integrity(&db);
            checks.push(Check {
                name: "integrity",
                ok: integrity.as_deref() == Ok("ok"),
                detail: integrity.unwrap_or_else(|e| e),
            });
            let schema = store::version(&db);
            checks.push(Check {
                name: "schema",
                ok: schema == Ok(store::SCHEMA_LEVEL),
                detail: match schema {
                    Ok(version) => format!("version {version}, this binary expects {}", store::SCHEMA_LEVEL),
                    Err(message) => message,
                },
            });
        }
        Err(message) => checks.push(Check { name: "database", ok: false, detail: message }),
    }
    checks
}

fn with_db(run: impl FnOnce(&sqlite::Db) -> Result<(), String>) -> ExitCode {
    let Some(path) = db_path() else {
        eprintln!("error: no data location: set TALLY_HOME or HOME");
        return ExitCode::from(2);
    };
    if let Some(parent) = path.parent() {
        if let Err(err) = fs::create_dir_all(parent) {
            eprintln!("error: cannot create {}: {err}", parent.display());
            return ExitCode::from(2);
        }
    }
    match store::open(&path).and_then(|db| run(&db)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}

fn doctor() -> ExitCode {
    let mut checks = vec![check_executable(), check_data_dir(), check_temp_dir()];
    checks.extend(check_database());
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
        Some("migrate") => with_db(|db| {
            let version = store::migrate(db, &mut |line| println!("{line}"))?;
            println!("schema at version {version}");
            Ok(())
        }),
        Some("schema") => with_db(|db| {
            println!("database {} binary {}", store::version(db)?, store::SCHEMA_LEVEL);
            Ok(())
        }),
        Some("add") => {
            let Some(name) = args.get(1) else {
                eprintln!("error: usage: {NAME} add NAME [N]");
                return ExitCode::from(2);
            };
            let delta = match args.get(2).map(|n| n.parse::<i64>()) {
                None => 1,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    eprintln!("error: N must be a whole number");
                    return ExitCode::from(2);
                }
            };
            with_db(|db| {
                store::require_current(db)?;
                println!("{name} = {}", store::add(db, name, delta)?);
                Ok(())
            })
        }
        Some("list") => with_db(|db| {
            store::require_current(db)?;
            for (name, value) in store::list(db)? {
                println!("{name} = {value}");
            }
            Ok(())
        }),
        Some(other) => {
            eprintln!("error: unknown command '{other}'; run '{NAME} --help' for the list");
            ExitCode::from(2)
        }
    }
}
