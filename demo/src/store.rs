//! The app's data: a SQLite file with a schema-version table and ordered
//! migrations, each applied in its own transaction.

use crate::sqlite::{Db, Value};
use std::path::Path;

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
        assert!(bytes[index].is_ascii_digit(), "TALLY_SCHEMA_LEVEL must be a number");
        level = level * 10 + (bytes[index] - b'0') as i64;
        index += 1;
    }
    assert!(level >= 1 && level <= MIGRATIONS.len() as i64, "TALLY_SCHEMA_LEVEL out of range");
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

pub fn open(path: &Path) -> Result<Db, String> {
    let db = Db::open(path)?;
    db.exec("PRAGMA journal_mode = WAL;")?;
    db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    db.exec("INSERT INTO schema_version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version);")?;
    Ok(db)
}

pub fn version(db: &Db) -> Result<i64, String> {
    db.scalar("SELECT version FROM schema_version")
}

/// Apply the pending migrations. TALLY_FAIL_MIGRATION=N (for tests) makes
/// migration N fail after its statements changed data.
pub fn migrate(db: &Db, report: &mut dyn FnMut(String)) -> Result<i64, String> {
    let mut current = version(db)?;
    if current > SCHEMA_LEVEL {
        return Err(format!(
            "database schema is at version {current}, newer than this binary's {SCHEMA_LEVEL}; update tally"
        ));
    }
    let fail_at: Option<i64> = std::env::var("TALLY_FAIL_MIGRATION").ok().and_then(|v| v.parse().ok());
    while current < SCHEMA_LEVEL {
        let next = current + 1;
        db.exec("BEGIN IMMEDIATE;")?;
        let result = db.exec(MIGRATIONS[(next - 1) as usize]).and_then(|_| {
            if fail_at == Some(next) {
                return Err(format!("migration {next} failed: injected failure after changing data"));
            }
            db.query("UPDATE schema_version SET version = ?1", &[Value::Int(next)], 0).map(|_| ())
        });
        match result {
            Ok(()) => db.exec("COMMIT;")?,
            Err(message) => {
                let _ = db.exec("ROLLBACK;");
                return Err(message);
            }
        }
        report(format!("applied migration {next}"));
        current = next;
    }
    Ok(current)
}

/// Refuse to work on a schema this binary does not know.
pub fn require_current(db: &Db) -> Result<(), String> {
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

pub fn add(db: &Db, name: &str, delta: i64) -> Result<i64, String> {
    db.exec("BEGIN IMMEDIATE;")?;
    let result = (|| {
        let updated = if SCHEMA_LEVEL >= 2 { ", updated_at = datetime('now')" } else { "" };
        db.query(
            &format!(
                "INSERT INTO counters (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = value + excluded.value{updated}"
            ),
            &[Value::Text(name.to_string()), Value::Int(delta)],
            0,
        )?;
        if SCHEMA_LEVEL >= 3 {
            db.query(
                "INSERT INTO events (name, delta) VALUES (?1, ?2)",
                &[Value::Text(name.to_string()), Value::Int(delta)],
                0,
            )?;
        }
        db.query("SELECT value FROM counters WHERE name = ?1", &[Value::Text(name.to_string())], 1)
    })();
    match result {
        Ok(rows) => {
            db.exec("COMMIT;")?;
            match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
                Some(Value::Int(value)) => Ok(value),
                _ => Err("counter vanished".into()),
            }
        }
        Err(message) => {
            let _ = db.exec("ROLLBACK;");
            Err(message)
        }
    }
}

pub fn list(db: &Db) -> Result<Vec<(String, i64)>, String> {
    let rows = db.query("SELECT name, value FROM counters ORDER BY name", &[], 2)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            let name = match values.next() {
                Some(Value::Text(text)) => text,
                Some(Value::Int(number)) => number.to_string(),
                None => String::new(),
            };
            let value = match values.next() {
                Some(Value::Int(number)) => number,
                _ => 0,
            };
            (name, value)
        })
        .collect())
}

pub fn integrity(db: &Db) -> Result<String, String> {
    db.text("PRAGMA integrity_check")
}
