//! tally: the demo app of the release toolkit, a small local-first counter
//! that keeps its data in SQLite.
//!
//! SQLite is compiled in (rusqlite's `bundled` feature), so every build is
//! one self-contained binary that loads no library at run time.

mod store;

use rusqlite::Connection;
use std::env;
use std::fs;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn usage() -> String {
    format!(
        "{NAME} {VERSION}\n\
         A small local-first demo app.\n\n\
         Usage: {NAME} [OPTIONS] [COMMAND]\n\n\
         Commands:\n  \
           add NAME [N]      Add N (default 1) to the counter NAME\n  \
           list              Print every counter\n  \
           migrate           Bring the database schema to this binary's version\n  \
           migrate --status  Print 'schema N binary M' (N is 'none' when there is no database)\n  \
           schema            Print the database's and this binary's schema versions\n  \
           backup --to DIR   Write a consistent copy of the database to DIR/{NAME}.db\n  \
           doctor            Check binary, data file and schema; exit 0 when all is well\n\n\
         Options:\n  \
           -h, --help       Print this help\n  \
           -V, --version    Print the version\n"
    )
}

/// Why a command stopped before the end.
enum Stop {
    /// Wrong arguments, or no place for the data: exit 2.
    Usage(String),
    /// The command failed: exit 3.
    Failed(String),
    /// The reader of standard output went away (`tally list | head -1`):
    /// nothing is left to tell it, so exit 0 without a word.
    Closed,
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Stop {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Stop::Closed
        } else {
            Stop::Failed(format!("cannot write to standard output: {err}"))
        }
    }
}

type Out = BufWriter<StdoutLock<'static>>;

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
        env::var_os("HOME").map(|h| {
            PathBuf::from(h)
                .join("Library/Application Support")
                .join(NAME)
        })
    } else {
        // The XDG spec: a relative (or empty) XDG_DATA_HOME is invalid and ignored, as the
        // installers ignore it; else the data would follow the current folder.
        env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
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
        Ok(meta) => Check {
            name: "executable",
            ok: meta.is_file(),
            detail: format!("{} bytes", meta.len()),
        },
        Err(err) => Check {
            name: "executable",
            ok: false,
            detail: err.to_string(),
        },
    }
}

fn check_data_dir() -> Check {
    let Some(dir) = data_dir() else {
        return Check {
            name: "data dir",
            ok: false,
            detail: "no HOME, XDG_DATA_HOME or TALLY_HOME set".into(),
        };
    };
    // Prove the directory is usable by writing and removing a probe file.
    let probe = dir.join(".doctor-probe");
    let result = fs::create_dir_all(&dir)
        .and_then(|_| fs::write(&probe, b"ok"))
        .and_then(|_| fs::remove_file(&probe));
    match result {
        Ok(()) => Check {
            name: "data dir",
            ok: true,
            detail: format!("{} is writable", dir.display()),
        },
        Err(err) => Check {
            name: "data dir",
            ok: false,
            detail: format!("{}: {err}", dir.display()),
        },
    }
}

fn check_temp_dir() -> Check {
    let probe = env::temp_dir().join(format!("{NAME}-doctor-{}", std::process::id()));
    let result = fs::write(&probe, b"ok").and_then(|_| fs::remove_file(&probe));
    match result {
        Ok(()) => Check {
            name: "temp dir",
            ok: true,
            detail: format!("{} is writable", env::temp_dir().display()),
        },
        Err(err) => Check {
            name: "temp dir",
            ok: false,
            detail: err.to_string(),
        },
    }
}

fn check_database() -> Vec<Check> {
    let Some(path) = db_path() else {
        return vec![Check {
            name: "database",
            ok: false,
            detail: "no data location".into(),
        }];
    };
    let sqlite = store::sqlite_version();
    if !path.exists() {
        let detail = format!("none yet at {}; SQLite {sqlite} built in", path.display());
        return vec![Check {
            name: "database",
            ok: true,
            detail,
        }];
    }
    let mut checks = vec![Check {
        name: "sqlite",
        ok: true,
        detail: format!("{sqlite}, built in"),
    }];
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
                    Ok(version) => format!(
                        "version {version}, this binary expects {}",
                        store::SCHEMA_LEVEL
                    ),
                    Err(message) => message,
                },
            });
        }
        Err(message) => checks.push(Check {
            name: "database",
            ok: false,
            detail: message,
        }),
    }
    checks
}

fn doctor(out: &mut Out) -> Result<ExitCode, Stop> {
    let mut checks = vec![check_executable(), check_data_dir(), check_temp_dir()];
    checks.extend(check_database());
    for check in &checks {
        let verdict = if check.ok { "ok" } else { "FAIL" };
        writeln!(out, "{verdict:<4} {:<10} {}", check.name, check.detail)?;
    }
    if checks.iter().all(|c| c.ok) {
        writeln!(out, "{NAME} {VERSION}: all checks passed")?;
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn db_location() -> Result<PathBuf, Stop> {
    db_path().ok_or_else(|| Stop::Usage("no data location: set TALLY_HOME or HOME".into()))
}

/// Open the database, creating its file (at schema version 0) if needed.
fn open_db() -> Result<Connection, Stop> {
    let path = db_location()?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| Stop::Usage(format!("cannot create {}: {err}", parent.display())))?;
    }
    store::open(&path).map_err(Stop::Failed)
}

/// Open the database for `add` and `list`. A fresh install needs no
/// `tally migrate`: a database that does not exist yet (or that was only
/// created, never migrated) is brought to this binary's schema. One that
/// holds data must already be at that schema: the updater migrates it.
fn open_current_db() -> Result<Connection, Stop> {
    let mut db = open_db()?;
    if store::is_blank(&db).map_err(Stop::Failed)? {
        store::migrate(&mut db, &mut |_| {}).map_err(Stop::Failed)?;
    }
    store::require_current(&db).map_err(Stop::Failed)?;
    Ok(db)
}

fn migrate(args: &[String], out: &mut Out) -> Result<ExitCode, Stop> {
    match args {
        [] => {
            let mut db = open_db()?;
            let mut applied = Vec::new();
            let result = store::migrate(&mut db, &mut |line| applied.push(line));
            // Report what was applied even when a later migration failed.
            let printed = applied.iter().try_for_each(|line| writeln!(out, "{line}"));
            let version = result.map_err(Stop::Failed)?;
            printed?;
            writeln!(out, "schema at version {version}")?;
        }
        [flag] if flag == "--status" => {
            let path = db_location()?;
            let schema = if path.exists() {
                let db = store::open(&path).map_err(Stop::Failed)?;
                store::version(&db).map_err(Stop::Failed)?.to_string()
            } else {
                "none".to_string()
            };
            writeln!(out, "schema {schema} binary {}", store::SCHEMA_LEVEL)?;
        }
        _ => return Err(Stop::Usage(format!("usage: {NAME} migrate [--status]"))),
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(args: &[String], out: &mut Out) -> Result<ExitCode, Stop> {
    let dir = match args {
        [flag, dir] if flag == "--to" && !dir.is_empty() => PathBuf::from(dir),
        [flag] if flag.starts_with("--to=") && flag.len() > "--to=".len() => {
            PathBuf::from(&flag["--to=".len()..])
        }
        _ => return Err(Stop::Usage(format!("usage: {NAME} backup --to DIR"))),
    };
    let source = db_location()?;
    if !source.is_file() {
        return Err(Stop::Failed(format!(
            "no database at {} yet: nothing to back up",
            source.display()
        )));
    }
    fs::create_dir_all(&dir)
        .map_err(|err| Stop::Failed(format!("cannot create {}: {err}", dir.display())))?;
    let dest = dir.join(format!("{NAME}.db"));
    if same_file(&source, &dest) {
        return Err(Stop::Failed(format!(
            "{} is the database itself; back up to another directory",
            dest.display()
        )));
    }
    store::backup(&source, &dest).map_err(Stop::Failed)?;
    writeln!(out, "{}", dest.display())?;
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn add(args: &[String], out: &mut Out) -> Result<ExitCode, Stop> {
    let Some(name) = args.first() else {
        return Err(Stop::Usage(format!("usage: {NAME} add NAME [N]")));
    };
    let delta = match args.get(1).map(|n| n.parse::<i64>()) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(Stop::Usage("N must be a whole number".into())),
    };
    let mut db = open_current_db()?;
    let value = store::add(&mut db, name, delta).map_err(Stop::Failed)?;
    writeln!(out, "{name} = {value}")?;
    Ok(ExitCode::SUCCESS)
}

fn run(args: &[String], out: &mut Out) -> Result<ExitCode, Stop> {
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => write!(out, "{}", usage())?,
        Some("-V") | Some("--version") => writeln!(out, "{NAME} {VERSION}")?,
        Some("doctor") => return doctor(out),
        Some("migrate") => return migrate(rest, out),
        Some("schema") => {
            let db = open_db()?;
            let version = store::version(&db).map_err(Stop::Failed)?;
            writeln!(out, "database {version} binary {}", store::SCHEMA_LEVEL)?;
        }
        Some("backup") => return backup(rest, out),
        Some("add") => return add(rest, out),
        Some("list") => {
            let db = open_current_db()?;
            for (name, value) in store::list(&db).map_err(Stop::Failed)? {
                writeln!(out, "{name} = {value}")?;
            }
        }
        Some(other) => {
            return Err(Stop::Usage(format!(
                "unknown command '{other}'; run '{NAME} --help' for the list"
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let mut out = BufWriter::new(io::stdout().lock());
    let result = run(&args, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    let (code, message) = match result {
        Ok(code) => return code,
        Err(Stop::Closed) => return ExitCode::SUCCESS,
        Err(Stop::Usage(message)) => (2, message),
        Err(Stop::Failed(message)) => (3, message),
    };
    // What the command printed before it failed comes first.
    let _ = out.flush();
    let _ = writeln!(io::stderr(), "error: {message}");
    ExitCode::from(code)
}
