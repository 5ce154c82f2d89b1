//! The one way castsync opens an SQLite database of its own (the `local://` store, the
//! state): a private file (0600, and so its `-wal` and `-shm` companions, which SQLite
//! creates with the database's mode), WAL, a durable commit, a wait for other processes'
//! transactions, and a layout check that refuses another program's database and a newer
//! castsync's layout instead of misreading them.
//!
//! It knows nothing of what the tables hold: each caller passes its own [`Layout`].

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// The first bytes of every SQLite database file.
pub const MAGIC: &[u8] = b"SQLite format 3\0";

/// How long a statement waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What kind of file sits at a database path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Missing.
    Missing,
    /// Present but empty (created and never written, e.g. by a process killed at once).
    Empty,
    Sqlite,
    /// Something else: never opened as a database.
    Other,
}

/// Looks at the first bytes of `path`.
pub fn file_kind(path: &Path) -> std::io::Result<FileKind> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(e),
    };
    let mut head = Vec::with_capacity(MAGIC.len());
    file.take(MAGIC.len() as u64).read_to_end(&mut head)?;
    Ok(if head.is_empty() {
        FileKind::Empty
    } else if head == MAGIC {
        FileKind::Sqlite
    } else {
        FileKind::Other
    })
}

/// Creates the database file empty with mode 0600 before SQLite opens it, and narrows an
/// existing file (and its companions) that others could read.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    for suffix in ["-wal", "-shm"] {
        let private = std::fs::Permissions::from_mode(0o600);
        if let Err(e) = std::fs::set_permissions(companion(path, suffix), private)
            && e.kind() != ErrorKind::NotFound
        {
            return Err(e);
        }
    }
    Ok(())
}

/// `PATH-wal`, `PATH-shm`: the files SQLite keeps beside a WAL database.
pub fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The connection settings every castsync database uses: wait through other processes'
/// transactions, WAL (readers never block the writer and a commit is one append and one
/// fsync), every commit durable before it returns (a write is recorded as done only once it
/// is), foreign keys enforced. An in-memory database answers "memory" for WAL, which is fine.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    retry_busy(BUSY_TIMEOUT, || {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
    })?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")
}

/// What a database must hold to be one of ours: its `application_id`, the layout version in
/// `user_version`, and the statements that create that layout in an empty database.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub application_id: i64,
    pub version: i64,
    pub schema: &'static str,
}

/// Why a database is refused.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A newer castsync wrote it.
    #[error("it was written by a newer castsync (layout {found}, this one reads {known})")]
    Newer { found: i64, known: i64 },
    /// Ours, but a layout this build never wrote.
    #[error("unsupported layout version {found}")]
    Unsupported { found: i64 },
    /// Not ours at all.
    #[error("an SQLite database of another program")]
    Foreign,
    #[error(transparent)]
    Database(#[from] rusqlite::Error),
}

/// Creates `layout` in a new (empty) database and returns true, accepts a database of that
/// layout and returns false, refuses anything else. `init` runs in the same transaction as
/// the creation (to store what a new database starts with).
pub fn check_layout(
    conn: &mut Connection,
    layout: &Layout,
    init: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<bool, LayoutError> {
    let header = |c: &Connection| -> rusqlite::Result<(i64, i64)> {
        let app = c.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok((app, version))
    };
    if header(conn)? == (layout.application_id, layout.version) {
        return Ok(false);
    }
    // Two processes may open a new database at once: decide under the write lock.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    let created = match header(&tx)? {
        (0, 0) if tables == 0 => {
            tx.execute_batch(layout.schema)?;
            tx.pragma_update(None, "application_id", layout.application_id)?;
            tx.pragma_update(None, "user_version", layout.version)?;
            init(&tx)?;
            true
        }
        (app, v) if app == layout.application_id && v == layout.version => false,
        (app, v) if app == layout.application_id && v > layout.version => {
            return Err(LayoutError::Newer {
                found: v,
                known: layout.version,
            });
        }
        (app, v) if app == layout.application_id => {
            return Err(LayoutError::Unsupported { found: v });
        }
        _ => return Err(LayoutError::Foreign),
    };
    tx.commit()?;
    Ok(created)
}

/// Runs `op` again while SQLite answers "busy", for up to `limit`. Switching a database to
/// WAL needs a lock that SQLite does not wait for with the busy timeout: a second process
/// opening a database while the first one converts or creates it gets "database is locked"
/// at once. Every other statement waits through the connection's busy timeout instead.
pub fn retry_busy<T>(
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
