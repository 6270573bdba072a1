//! The app's data: a SQLite file with a schema-version table and ordered
//! migrations, each applied in its own transaction.

use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The schema this binary expects. Built from the same source at different
/// levels (TALLY_SCHEMA_LEVEL at build time) to test updates between them.
pub const SCHEMA_LEVEL: i64 = parse_level(option_env!("TALLY_SCHEMA_LEVEL"));

const fn parse_level(value: Option<&str>) -> i64 {
    let bytes = match value {
        Some(text) => text.as_bytes(),
        None => return MIGRATIONS.len() as i64,
    };
    let mut level = 0i64;
    let mut index = 0;
    while index < bytes.len() {
        assert!(
            bytes[index].is_ascii_digit(),
            "TALLY_SCHEMA_LEVEL must be a number"
        );
        level = level * 10 + (bytes[index] - b'0') as i64;
        index += 1;
    }
    assert!(
        level >= 1 && level <= MIGRATIONS.len() as i64,
        "TALLY_SCHEMA_LEVEL out of range"
    );
    level
}

/// Migration N brings the schema from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    "ALTER TABLE counters ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
     UPDATE counters SET updated_at = 'before-v2';",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT NOT NULL, delta INTEGER NOT NULL);
     INSERT INTO events (name, delta) SELECT name, value FROM counters;",
];

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn text(error: rusqlite::Error) -> String {
    error.to_string()
}

/// The SQLite compiled into this binary (for `doctor`).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// Open without interpreting the name: the bundled SQLite is built with URI
/// file names on, so a relative path that starts with "file:" gets a "./".
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, String> {
    let plain = if path.is_relative() && path.to_string_lossy().starts_with("file:") {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    };
    let db = Connection::open_with_flags(&plain, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    db.busy_timeout(BUSY_TIMEOUT).map_err(text)?;
    Ok(db)
}

/// Open (creating the file if needed) and make sure the schema-version table
/// exists; a new file starts at version 0.
pub fn open(path: &Path) -> Result<Connection, String> {
    let db = connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version);",
    )
    .map_err(text)?;
    Ok(db)
}

pub fn version(db: &Connection) -> Result<i64, String> {
    let value = db
        .query_row("SELECT version FROM schema_version", [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .optional()
        .map_err(text)?;
    match value {
        Some(rusqlite::types::Value::Integer(version)) => Ok(version),
        Some(other) => Err(format!("expected a number, got {other:?}")),
        None => Err("no result for SELECT version FROM schema_version".into()),
    }
}

/// A database that was created but never migrated: at version 0 with no
/// table but schema_version (a first start, or `tally schema` before any).
pub fn is_blank(db: &Connection) -> Result<bool, String> {
    if version(db)? != 0 {
        return Ok(false);
    }
    let others: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name != 'schema_version'",
            [],
            |row| row.get(0),
        )
        .map_err(text)?;
    Ok(others == 0)
}

/// Apply the pending migrations. TALLY_FAIL_MIGRATION=N (for tests) makes
/// migration N fail after its statements changed data; its transaction is
/// rolled back, so the database stays at version N-1.
pub fn migrate(db: &mut Connection, report: &mut dyn FnMut(String)) -> Result<i64, String> {
    let mut current = version(db)?;
    if current > SCHEMA_LEVEL {
        return Err(format!(
            "database schema is at version {current}, newer than this binary's {SCHEMA_LEVEL}; update tally"
        ));
    }
    let fail_at: Option<i64> = std::env::var("TALLY_FAIL_MIGRATION")
        .ok()
        .and_then(|v| v.parse().ok());
    while current < SCHEMA_LEVEL {
        let tx = Transaction::new(db, TransactionBehavior::Immediate).map_err(text)?;
        // Another process may have migrated since the version was read.
        let now = version(&tx)?;
        if now != current {
            drop(tx);
            if now > SCHEMA_LEVEL {
                return Err(format!(
                    "database schema is at version {now}, newer than this binary's {SCHEMA_LEVEL}; update tally"
                ));
            }
            current = now;
            continue;
        }
        let next = current + 1;
        tx.execute_batch(MIGRATIONS[(next - 1) as usize])
            .map_err(text)?;
        if fail_at == Some(next) {
            // Dropping the transaction rolls the changed data back.
            return Err(format!(
                "migration {next} failed: injected failure after changing data"
            ));
        }
        tx.execute("UPDATE schema_version SET version = ?1", params![next])
            .map_err(text)?;
        tx.commit().map_err(text)?;
        report(format!("applied migration {next}"));
        current = next;
    }
    Ok(current)
}

/// Refuse to work on a schema this binary does not know.
pub fn require_current(db: &Connection) -> Result<(), String> {
    let current = version(db)?;
    if current < SCHEMA_LEVEL {
        return Err(format!(
            "database schema is at version {current} but this tally expects {SCHEMA_LEVEL}; run `tally migrate`"
        ));
    }
    if current > SCHEMA_LEVEL {
        return Err(format!(
            "database schema is at version {current}, newer than this tally's {SCHEMA_LEVEL}; update tally"
        ));
    }
    Ok(())
}

pub fn add(db: &mut Connection, name: &str, delta: i64) -> Result<i64, String> {
    let tx = Transaction::new(db, TransactionBehavior::Immediate).map_err(text)?;
    let updated = if SCHEMA_LEVEL >= 2 {
        ", updated_at = datetime('now')"
    } else {
        ""
    };
    tx.execute(
        &format!(
            "INSERT INTO counters (name, value) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET value = value + excluded.value{updated}"
        ),
        params![name, delta],
    )
    .map_err(text)?;
    if SCHEMA_LEVEL >= 3 {
        tx.execute(
            "INSERT INTO events (name, delta) VALUES (?1, ?2)",
            params![name, delta],
        )
        .map_err(text)?;
    }
    let value = tx
        .query_row(
            "SELECT value FROM counters WHERE name = ?1",
            params![name],
            |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Integer(value) => Some(value),
                    _ => None,
                })
            },
        )
        .optional()
        .map_err(text)?;
    match value {
        // SQLite turns an integer sum that overflows into a float: refuse it
        // (dropping the transaction rolls back) instead of storing it.
        Some(None) => Err(format!("counter {name} would overflow")),
        None => Err("counter vanished".into()),
        Some(Some(value)) => {
            tx.commit().map_err(text)?;
            Ok(value)
        }
    }
}

pub fn list(db: &Connection) -> Result<Vec<(String, i64)>, String> {
    let mut statement = db
        .prepare("SELECT name, value FROM counters ORDER BY name")
        .map_err(text)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(text)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(text)
}

pub fn integrity(db: &Connection) -> Result<String, String> {
    db.query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
        .map_err(text)
}

/// Copy the database at `source` into `dest` with SQLite's online backup
/// API: one consistent snapshot, taken while other processes go on writing
/// (in WAL mode they are not blocked). The copy is written beside `dest`
/// and renamed over it, so `dest` is either the old copy or the whole new one.
pub fn backup(source: &Path, dest: &Path) -> Result<(), String> {
    let from = connect(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = copy_into(&from, &partial).and_then(|()| replace(&partial, dest));
    if result.is_err() {
        for leftover in companions(&partial) {
            let _ = std::fs::remove_file(leftover);
        }
    }
    result
}

fn copy_into(from: &Connection, partial: &Path) -> Result<(), String> {
    // Create the file first for a plain error when the directory is not writable.
    let _ = std::fs::remove_file(partial);
    let dir = partial.parent().unwrap_or(Path::new("."));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
    let mut to = connect(partial, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    {
        let backup = Backup::new(from, &mut to).map_err(text)?;
        // All pages in one step: a single read transaction, so the copy is
        // one consistent state even while another process commits.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match backup.step(-1).map_err(text)? {
                StepResult::Done => break,
                StepResult::More => continue,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => return Err("database is locked; try again".into()),
            }
        }
    }
    // A rollback-journal copy is one self-contained file (no -wal beside it).
    to.execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(text)?;
    let check = integrity(&to)?;
    if check != "ok" {
        return Err(format!("the copy failed its integrity check: {check}"));
    }
    to.close().map_err(|(_, e)| text(e))
}

/// The SQLite files that belong to a database file.
fn companions(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

fn replace(partial: &Path, dest: &Path) -> Result<(), String> {
    // A stale journal or WAL beside the old copy would be replayed into the
    // new one when it is opened.
    for stale in companions(dest).into_iter().skip(1) {
        match std::fs::remove_file(&stale) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {err}", stale.display()))
            }
            _ => {}
        }
    }
    std::fs::rename(partial, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    #[cfg(unix)]
    if let Some(dir) = dest.parent() {
        // Make the rename itself durable.
        let _ = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .and_then(|d| d.sync_all());
    }
    Ok(())
}
