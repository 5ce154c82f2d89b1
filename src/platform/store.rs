//! The secrets store shared by the embedded `local://` platform and `castsync emulator`:
//! agents → keys → value and timestamps, in one SQLite database (WAL mode).
//!
//! Why SQLite and not a JSON file or `redb`: every call touches only the rows it needs (an
//! index lookup, not a parse of the whole store), a batch of writes is one transaction, and
//! several castsync processes may use one store at once (two reconciles, a reconcile and an
//! emulator, a person and the daemon): SQLite's file locks queue writers behind a busy timeout
//! while readers carry on. `redb` locks the whole file to one process.
//!
//! This is the only place besides the platform request body where a value is written out:
//! the store *is* the platform in these modes. The database and its `-wal`/`-shm` files are
//! mode 0600 and deleted values are overwritten (`secure_delete`). Errors name the file,
//! never its content, and `Debug` output masks values through [`SecretValue`].

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::platform::RemoteKey;
use crate::secret::SecretValue;
use crate::sqlite::{self, FileKind, Layout, LayoutError};

/// Largest value the platform accepts, in bytes (the manifest's limit too).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Layout version (`PRAGMA user_version`). It starts at 2: 1 was an unreleased JSON layout.
#[cfg(test)]
const SCHEMA_VERSION: i64 = LAYOUT.version;

/// The store's tables, marked as a castsync store (`PRAGMA application_id`, "CSYN").
const LAYOUT: Layout = Layout {
    application_id: 0x4353_594e,
    version: 2,
    schema: SCHEMA,
};

const SCHEMA: &str = "
    CREATE TABLE agents (slug TEXT PRIMARY KEY NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE secrets (
        agent TEXT NOT NULL REFERENCES agents(slug),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (agent, key)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
";

/// A failed store operation. Messages name the file, never its content.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The agent named in a call does not exist in the store.
    #[error("agent {agent:?} not found in the store")]
    NoSuchAgent { agent: String },
    /// The file exists but could not be read.
    #[error("cannot read the store {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a store this version understands.
    #[error("the store {path} is not valid: {detail}")]
    Parse { path: PathBuf, detail: String },
    /// Creating the file or its directory failed.
    #[error("cannot write the store {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database refused an operation (busy past the timeout, disk full, corruption).
    #[error("store {path}: database error")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl crate::hint::Hinted for StoreError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            StoreError::Parse { .. } => Some(
                "it is written by castsync only; move it aside to start from an empty store".into(),
            ),
            _ => None,
        }
    }
}

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: SecretValue,
    pub created_at: String,
    pub updated_at: String,
}

/// An open store: one connection to the database (or to an in-memory one).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// For messages: the file, or `:memory:`.
    path: PathBuf,
}

impl Store {
    /// A store that lives in memory only (the emulator without `--data`).
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(db_error(&path))?;
        let mut store = Store { conn, path };
        store.configure()?;
        Ok(store)
    }

    /// Opens the store at `path`, creating it (mode 0600, in a 0700 directory) when it is
    /// missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        ensure_parent(path)?;
        let read_err = |source| StoreError::Read {
            path: path.to_owned(),
            source,
        };
        if sqlite::file_kind(path).map_err(read_err)? == FileKind::Other {
            return Err(StoreError::Parse {
                path: path.to_owned(),
                detail: "not an SQLite database".to_owned(),
            });
        }
        sqlite::create_private(path).map_err(|source| StoreError::Write {
            path: path.to_owned(),
            source,
        })?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_error(path))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
        };
        store.configure()?;
        Ok(store)
    }

    /// Opens the store at `path` if the file exists; None when it does not (nothing created).
    pub fn open_existing(path: &Path) -> Result<Option<Store>, StoreError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Store::open(path).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        db_error(&self.path)
    }

    /// Connection settings (`sqlite::configure`), then the schema when the database is new.
    fn configure(&mut self) -> Result<(), StoreError> {
        let db = db_error(&self.path);
        sqlite::configure(&self.conn).map_err(db)?;
        // Values are in clear: overwrite deleted and replaced ones instead of leaving them in
        // free pages.
        self.conn
            .pragma_update(None, "secure_delete", "ON")
            .map_err(db)?;
        match sqlite::check_layout(&mut self.conn, &LAYOUT, |_| Ok(())) {
            Ok(_) => Ok(()),
            Err(LayoutError::Database(source)) => Err(db(source)),
            Err(refused) => Err(StoreError::Parse {
                path: self.path.clone(),
                detail: refused.to_string(),
            }),
        }
    }

    pub fn has_agent(&self, agent: &str) -> Result<bool, StoreError> {
        has_agent(&self.conn, agent).map_err(self.db())
    }

    /// Every agent, sorted.
    pub fn agents(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT slug FROM agents ORDER BY slug")
            .map_err(self.db())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// Every key of an agent, sorted by name.
    pub fn list(&self, agent: &str) -> Result<Vec<RemoteKey>, StoreError> {
        self.page(agent, 0, usize::MAX)
    }

    /// One page of an agent's keys, sorted by name (byte order).
    pub fn page(
        &self,
        agent: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RemoteKey>, StoreError> {
        // One read transaction, so the agent check and the page see the same snapshot.
        let tx = self.conn.unchecked_transaction().map_err(self.db())?;
        if !has_agent(&tx, agent).map_err(self.db())? {
            return Err(no_such_agent(agent));
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, created_at, updated_at FROM secrets WHERE agent = ?1
                 ORDER BY key LIMIT ?2 OFFSET ?3",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![agent, as_sql(limit), as_sql(offset)], |r| {
                Ok(RemoteKey {
                    key: r.get(0)?,
                    created_at: Some(r.get(1)?),
                    updated_at: Some(r.get(2)?),
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// One key with its value, if present.
    pub fn get(&self, agent: &str, key: &str) -> Result<Option<Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT value, created_at, updated_at FROM secrets WHERE agent = ?1 AND key = ?2",
            )
            .map_err(self.db())?;
        stmt.query_row(params![agent, key], |r| {
            Ok(Entry {
                value: SecretValue::new(r.get::<_, String>(0)?),
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
            })
        })
        .optional()
        .map_err(self.db())
    }

    /// Runs `f` in one write transaction: every write it makes lands, or none does.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let tx = begin_write(&mut self.conn, &path)?;
        let mut txn = Txn {
            tx,
            path: &path,
            clock: None,
        };
        let result = f(&mut txn)?;
        txn.commit()?;
        Ok(result)
    }

    /// Creates the agent if it does not exist yet. Returns true when it was created.
    pub fn ensure_agent(&mut self, agent: &str) -> Result<bool, StoreError> {
        self.write(|t| t.ensure_agent(agent))
    }

    /// Creates or overwrites a key (one transaction).
    pub fn set(
        &mut self,
        agent: &str,
        key: &str,
        value: &SecretValue,
    ) -> Result<Entry, StoreError> {
        self.write(|t| t.set(agent, key, value))
    }

    /// Deletes a key (one transaction). Returns whether it existed.
    pub fn delete(&mut self, agent: &str, key: &str) -> Result<bool, StoreError> {
        self.write(|t| t.delete(agent, key))
    }
}

/// A write transaction; see [`Store::write`].
pub struct Txn<'c> {
    tx: rusqlite::Transaction<'c>,
    path: &'c Path,
    /// The last timestamp handed out in this transaction.
    clock: Option<OffsetDateTime>,
}

impl Txn<'_> {
    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        db_error(self.path)
    }

    pub fn has_agent(&self, agent: &str) -> Result<bool, StoreError> {
        has_agent(&self.tx, agent).map_err(self.db())
    }

    /// Creates the agent if it does not exist yet. Returns true when it was created.
    pub fn ensure_agent(&mut self, agent: &str) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO agents (slug) VALUES (?1)")
            .and_then(|mut s| s.execute([agent]))
            .map_err(self.db())?;
        Ok(n == 1)
    }

    /// Creates or overwrites a key: `created_at` is set on the first write, `updated_at` on
    /// every write.
    pub fn set(
        &mut self,
        agent: &str,
        key: &str,
        value: &SecretValue,
    ) -> Result<Entry, StoreError> {
        if !self.has_agent(agent)? {
            return Err(no_such_agent(agent));
        }
        let stamp = self.tick()?;
        let (created_at, updated_at) = self
            .tx
            .prepare_cached(
                "INSERT INTO secrets (agent, key, value, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (agent, key) DO UPDATE
                 SET value = excluded.value, updated_at = excluded.updated_at
                 RETURNING created_at, updated_at",
            )
            .and_then(|mut s| {
                s.query_row(params![agent, key, value.expose(), stamp], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(self.db())?;
        Ok(Entry {
            value: value.clone(),
            created_at,
            updated_at,
        })
    }

    /// Deletes a key. Returns whether it existed.
    pub fn delete(&mut self, agent: &str, key: &str) -> Result<bool, StoreError> {
        if !self.has_agent(agent)? {
            return Err(no_such_agent(agent));
        }
        let n = self
            .tx
            .prepare_cached("DELETE FROM secrets WHERE agent = ?1 AND key = ?2")
            .and_then(|mut s| s.execute([agent, key]))
            .map_err(self.db())?;
        Ok(n > 0)
    }

    /// A new timestamp, strictly later than every one handed out before, by any process:
    /// the last one is kept in the database and read under the write lock, so "the timestamp
    /// moved" always means "someone wrote", even within one clock tick.
    fn tick(&mut self) -> Result<String, StoreError> {
        let last = match self.clock {
            Some(last) => last,
            None => {
                let stored: Option<String> = self
                    .tx
                    .query_row("SELECT value FROM meta WHERE name = 'clock'", [], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(self.db())?;
                stored
                    .and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        };
        let now = OffsetDateTime::now_utc();
        let next = if now > last {
            now
        } else {
            last + time::Duration::microseconds(1)
        };
        // Stamps carry microseconds; keep the clock at what was written.
        let next = next
            .replace_nanosecond(next.microsecond() * 1000)
            .unwrap_or(next);
        self.clock = Some(next);
        Ok(format_stamp(next))
    }

    fn commit(self) -> Result<(), StoreError> {
        let db = db_error(self.path);
        if let Some(clock) = self.clock {
            self.tx
                .execute(
                    "INSERT INTO meta (name, value) VALUES ('clock', ?1)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [format_stamp(clock)],
                )
                .map_err(db)?;
        }
        self.tx.commit().map_err(db)
    }
}

fn has_agent(conn: &Connection, agent: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM agents WHERE slug = ?1")?
        .exists([agent])
}

fn no_such_agent(agent: &str) -> StoreError {
    StoreError::NoSuchAgent {
        agent: agent.to_owned(),
    }
}

/// The error of a database call on the store at `path`.
pub(crate) fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Database {
        path: path.to_owned(),
        source,
    }
}

/// A write transaction that takes the write lock up front (IMMEDIATE): a deferred one that
/// later needs it could fail with "busy" instead of waiting.
fn begin_write<'c>(
    conn: &'c mut rusqlite::Connection,
    path: &Path,
) -> Result<rusqlite::Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error(path))
}

/// SQLite integers are i64; a count past that means "no limit".
fn as_sql(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Creates the directory a store file lives in (0700), if it is missing.
pub fn ensure_parent(path: &Path) -> Result<(), StoreError> {
    let dir = parent_dir(path);
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Write {
            path: path.to_owned(),
            source,
        })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `2026-11-29T15:44:43.123456Z`: fixed width, so timestamps also sort as text.
pub fn format_stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The current time as a store timestamp.
pub fn now_stamp() -> String {
    format_stamp(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests;
