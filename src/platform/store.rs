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

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::platform::RemoteKey;
use crate::secret::SecretValue;

/// Largest value the platform accepts, in bytes (the manifest's limit too).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Marks the database as a castsync store (`PRAGMA application_id`, "CSYN").
const APPLICATION_ID: i64 = 0x4353_594e;
/// Layout version (`PRAGMA user_version`). It starts at 2: 1 was an unreleased JSON layout.
const SCHEMA_VERSION: i64 = 2;
/// How long a write waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

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
        if file_kind(path)? == FileKind::Other {
            return Err(StoreError::Parse {
                path: path.to_owned(),
                detail: "not an SQLite database".to_owned(),
            });
        }
        create_private(path)?;
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

    /// Connection settings, then the schema when the database is new.
    fn configure(&mut self) -> Result<(), StoreError> {
        let conn = &self.conn;
        let db = self.db();
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // WAL: readers never block the writer and a commit is one append (and one fsync).
        // An in-memory database answers "memory", which is fine.
        retry_busy(BUSY_TIMEOUT, || {
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        })
        .map_err(db)?;
        // Every commit is durable before the call returns: apply records a write as done only
        // after the platform (this store) said so.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        // Values are in clear: overwrite deleted and replaced ones instead of leaving them in
        // free pages.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        self.check_schema()
    }

    /// Creates the tables in a new database, accepts a castsync store of this layout, refuses
    /// anything else.
    fn check_schema(&mut self) -> Result<(), StoreError> {
        let (app, version) = self.header()?;
        if app == APPLICATION_ID && version == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path.clone();
        let db = db_error(&path);
        // Two processes may open a new store at once: decide under the write lock.
        let tx = begin_write(&mut self.conn, &path)?;
        let app: i64 = tx
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(db)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(db)?;
        let refuse = |detail: String| StoreError::Parse {
            path: path.clone(),
            detail,
        };
        match (app, version) {
            (0, 0) if tables == 0 => {
                tx.execute_batch(SCHEMA).map_err(db)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(db)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db)?;
            }
            (APPLICATION_ID, SCHEMA_VERSION) => {}
            (APPLICATION_ID, v) if v > SCHEMA_VERSION => {
                return Err(refuse(format!(
                    "it was written by a newer castsync (layout {v}, this one reads {SCHEMA_VERSION})"
                )));
            }
            (APPLICATION_ID, v) => {
                return Err(refuse(format!("unsupported layout version {v}")));
            }
            _ => return Err(refuse("an SQLite database of another program".to_owned())),
        }
        tx.commit().map_err(db)
    }

    fn header(&self) -> Result<(i64, i64), StoreError> {
        let app = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(self.db())?;
        let version = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.db())?;
        Ok((app, version))
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

/// Runs `op` again while SQLite answers "busy", for up to `limit`. Switching a database to
/// WAL needs a lock that SQLite does not wait for with the busy timeout: a second process
/// opening a store while the first one converts or creates it gets "database is locked" at
/// once. Every other statement here waits through the connection's busy timeout instead.
fn retry_busy<T>(
    limit: Duration,
    mut op: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && start.elapsed() < limit =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn as_sql(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Creates the store file empty with mode 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the database file's mode), and narrows an existing file that
/// others could read.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let write_err = |source| StoreError::Write {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    let mode = file.metadata().map_err(write_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            if let Err(e) =
                std::fs::set_permissions(&companion, std::fs::Permissions::from_mode(0o600))
                && e.kind() != ErrorKind::NotFound
            {
                return Err(write_err(e));
            }
        }
    }
    Ok(())
}

/// What kind of file sits at a store path.
#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    /// Missing or empty: a new store.
    Empty,
    Sqlite,
    Other,
}

fn file_kind(path: &Path) -> Result<FileKind, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(FileKind::Empty),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    (&mut file)
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| StoreError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(if head.is_empty() {
        FileKind::Empty
    } else if head == SQLITE_MAGIC {
        FileKind::Sqlite
    } else {
        FileKind::Other
    })
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
