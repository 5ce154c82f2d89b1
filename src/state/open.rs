//! Opening a state: the database if there is one, else the state file of an earlier castsync
//! migrated into a new database, else a new, empty database. The stub (`json`) is kept in
//! the file's place whenever a database exists.
//!
//! The migration never loses the file: it is linked to `NAME.json.migrated` first, the
//! database is built whole under a temporary name and renamed into place, and only then is
//! the file replaced by the stub. Killed at any step, the next open finds either no database
//! (and migrates again) or the finished one (and only writes the stub).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::db::{self, Access, Db};
use super::json::{self, Legacy};
use super::{Origin, StateError, StorePaths, db_error, suffixed};
use crate::sqlite::{self, FileKind, LayoutError};

/// An open database, its HMAC key, and where it came from.
pub struct Opened {
    pub db: Db,
    pub hmac_key: Zeroizing<Vec<u8>>,
    pub origin: Origin,
}

/// Opens the state at `paths` for writing, migrating or creating it (under the caller's lock).
pub fn for_writing(paths: &StorePaths) -> Result<Opened, StateError> {
    let legacy = json::look(&paths.legacy)?;
    match database_kind(&paths.db)? {
        FileKind::Sqlite => {
            let opened = open(&paths.db, Access::Write, Origin::Database)?;
            settle_legacy(paths, legacy)?;
            Ok(opened)
        }
        FileKind::Missing | FileKind::Empty => {
            remove_database(&paths.db)?;
            match legacy {
                Legacy::State { version } => {
                    migrate(paths)?;
                    open(&paths.db, Access::Write, Origin::File(version))
                }
                Legacy::Stub | Legacy::Missing => {
                    if legacy == Legacy::Stub {
                        warn_lost(paths);
                    }
                    create_private(&paths.db)?;
                    let opened = open(&paths.db, Access::Write, Origin::Created)?;
                    json::write_stub(&paths.legacy, &paths.db)?;
                    Ok(opened)
                }
            }
        }
        FileKind::Other => Err(not_a_database(&paths.db)),
    }
}

/// Opens the state at `paths` without writing anything: the database read only, or the state
/// file read into memory, or an empty state in memory.
pub fn read_only(paths: &StorePaths) -> Result<Opened, StateError> {
    match database_kind(&paths.db)? {
        FileKind::Sqlite => open(&paths.db, Access::Read, Origin::Database),
        FileKind::Other => Err(not_a_database(&paths.db)),
        FileKind::Missing | FileKind::Empty => {
            let legacy = json::look(&paths.legacy)?;
            let db = Db::in_memory().map_err(|e| db_error(&paths.db, e))?;
            let origin = match legacy {
                Legacy::State { version } => {
                    import(&db, &paths.legacy)?;
                    Origin::File(version)
                }
                Legacy::Stub => {
                    warn_lost(paths);
                    Origin::Created
                }
                Legacy::Missing => Origin::Created,
            };
            with_key(db, &paths.db, Access::Write, origin)
        }
    }
}

fn database_kind(path: &Path) -> Result<FileKind, StateError> {
    sqlite::file_kind(path).map_err(|source| StateError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

fn not_a_database(path: &Path) -> StateError {
    StateError::Corrupt {
        path: path.to_owned(),
        detail: "not an SQLite database".into(),
    }
}

fn warn_lost(paths: &StorePaths) {
    tracing::warn!(
        stub = %paths.legacy.display(),
        state = %paths.db.display(),
        "the state moved into a database that is missing; starting from an empty state (every key present is set once more, as unverified)"
    );
}

/// Opens the database file at `path`, with its key.
fn open(path: &Path, access: Access, origin: Origin) -> Result<Opened, StateError> {
    let (db, created) = Db::open(path, access).map_err(|e| layout_error(path, e))?;
    let origin = if created { Origin::Created } else { origin };
    with_key(db, path, access, origin)
}

/// The database's HMAC key; a new one in a database that has none yet (just created; stored
/// unless the database is open read only).
fn with_key(mut db: Db, path: &Path, access: Access, origin: Origin) -> Result<Opened, StateError> {
    let stored = db.hmac_key().map_err(|e| db_error(path, e))?;
    let hmac_key = match stored {
        Some(key) if key.len() >= 32 => Zeroizing::new(key),
        Some(_) => {
            return Err(StateError::Corrupt {
                path: path.to_owned(),
                detail: "its HMAC key is shorter than 32 bytes".into(),
            });
        }
        None => {
            let mut key = Zeroizing::new(vec![0u8; 32]);
            rand::fill(&mut key[..]);
            if access == Access::Write {
                db.write(|c| db::put_hmac_key(c, &key));
                db.commit().map_err(|e| db_error(path, e))?;
            }
            key
        }
    };
    Ok(Opened {
        db,
        hmac_key,
        origin,
    })
}

fn layout_error(path: &Path, e: LayoutError) -> StateError {
    let path = path.to_owned();
    match e {
        LayoutError::Database(source) => StateError::Database { path, source },
        LayoutError::Newer { .. } => StateError::NewerLayout {
            path,
            detail: e.to_string(),
        },
        LayoutError::Unsupported { .. } | LayoutError::Foreign => StateError::Corrupt {
            path,
            detail: e.to_string(),
        },
    }
}

/// Reads the state file at `legacy` into `db`, in one transaction.
fn import(db: &Db, legacy: &Path) -> Result<(), StateError> {
    let tx = db
        .conn()
        .unchecked_transaction()
        .map_err(|e| db_error(legacy, e))?;
    json::import(legacy, &tx)?;
    tx.commit().map_err(|e| db_error(legacy, e))
}

/// Moves the state file into a new database (see the module doc).
fn migrate(paths: &StorePaths) -> Result<(), StateError> {
    let building = suffixed(&paths.db, ".migrating");
    remove_database(&building)?;
    create_private(&building)?;
    let (db, _) = Db::open(&building, Access::Write).map_err(|e| layout_error(&building, e))?;
    import(&db, &paths.legacy)?;
    // Closing the last connection checkpoints the WAL into the file and removes it, so the
    // file renamed into place is the whole database.
    db.close().map_err(|e| db_error(&building, e))?;
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::File::open(&building)
        .and_then(|f| f.sync_all())
        .map_err(io("write", &building))?;
    keep_backup(paths).map_err(io("keep a copy of", &paths.legacy))?;
    std::fs::rename(&building, &paths.db).map_err(io("replace", &paths.db))?;
    sync_dir(&paths.db).map_err(io("replace", &paths.db))?;
    // Once per state, and worth seeing: an older castsync refuses the state from now on.
    tracing::warn!(
        "the state file {} moved into the database {}; the file is kept as {} (castsync versions that kept the state in the file refuse it now: see docs/reconcile.md)",
        paths.legacy.display(),
        paths.db.display(),
        paths.backup().display(),
    );
    json::write_stub(&paths.legacy, &paths.db)
}

/// Links the state file to `NAME.json.migrated` (replacing an older copy), or copies it where
/// the filesystem has no hard links.
fn keep_backup(paths: &StorePaths) -> std::io::Result<()> {
    let backup = paths.backup();
    remove_if_present(&backup)?;
    std::fs::hard_link(&paths.legacy, &backup)
        .or_else(|_| std::fs::copy(&paths.legacy, &backup).map(drop))
}

/// With the database in place, what sits at the file's path: nothing (or the stub) is made
/// the stub. A full state file is what a migration killed before its last step left (the same
/// bytes as its copy: replaced by the stub), or what an older castsync wrote since (set aside
/// as `NAME.json.ignored`, with a warning: the database is the state).
fn settle_legacy(paths: &StorePaths, legacy: Legacy) -> Result<(), StateError> {
    match legacy {
        Legacy::Stub => return Ok(()),
        Legacy::Missing => {}
        Legacy::State { .. } => {
            let same = |a: &Path, b: &Path| match (std::fs::read(a), std::fs::read(b)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if !same(&paths.legacy, &paths.backup()) {
                let aside = suffixed(&paths.legacy, ".ignored");
                tracing::warn!(
                    file = %paths.legacy.display(),
                    state = %paths.db.display(),
                    aside = %aside.display(),
                    "a state file was written beside the state database (by an older castsync?); it is set aside and the database kept"
                );
                std::fs::rename(&paths.legacy, &aside).map_err(|source| StateError::Io {
                    action: "set aside",
                    path: paths.legacy.clone(),
                    source,
                })?;
            }
        }
    }
    json::write_stub(&paths.legacy, &paths.db)
}

fn create_private(path: &Path) -> Result<(), StateError> {
    sqlite::create_private(path).map_err(|source| StateError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })
}

/// Removes a database file and its companions (an empty file, a WAL left without its
/// database), so a new database never meets a stale WAL.
fn remove_database(path: &Path) -> Result<(), StateError> {
    let files: [PathBuf; 4] = [
        path.to_owned(),
        sqlite::companion(path, "-wal"),
        sqlite::companion(path, "-shm"),
        sqlite::companion(path, "-journal"),
    ];
    for file in &files {
        remove_if_present(file).map_err(|source| StateError::Io {
            action: "remove",
            path: file.clone(),
            source,
        })?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename into `path`'s directory durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    crate::atomic_write::sync_dir(dir.unwrap_or(Path::new(".")))
}
