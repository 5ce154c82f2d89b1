//! The JSON store written by castsync 0.1 (`{"version": 1, "agents": {…}}`), imported once
//! into the SQLite store at the same path.
//!
//! The import holds the old store's lock file (`PATH.lock`, which castsync 0.1 took around
//! every read and write), builds the new database in a 0600 temp file beside the old one and
//! writes it over the old file atomically: a process sees the JSON store or the finished database,
//! never half of either, and no copy of the values is left behind. It never quotes the file's
//! content in an error: a JSON parse error reports a line and column only.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rusqlite::{Connection, params};
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::atomic_write::{self, Mode, Replace};
use crate::secret::SecretValue;

use super::{APPLICATION_ID, FileKind, SCHEMA, SCHEMA_VERSION, StoreError, file_kind, parent_dir};

/// The only JSON layout castsync ever wrote.
const JSON_VERSION: u32 = 1;
/// A JSON store larger than this is refused unread (1,000 agents × 20 keys of 64 KiB
/// values stay below it).
const MAX_JSON_STORE: u64 = 2 << 30;

#[derive(Deserialize)]
struct JsonStore {
    version: u32,
    agents: BTreeMap<String, BTreeMap<String, JsonEntry>>,
}

#[derive(Deserialize)]
struct JsonEntry {
    #[serde(deserialize_with = "secret")]
    value: SecretValue,
    created_at: String,
    updated_at: String,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
    String::deserialize(d).map(SecretValue::new)
}

/// What an import moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub agents: usize,
    pub keys: usize,
}

/// Imports the store at `path` if it is a JSON store; does nothing otherwise.
pub(super) fn import_if_json(path: &Path) -> Result<Option<Imported>, StoreError> {
    if file_kind(path)? != FileKind::Json {
        return Ok(None);
    }
    let _lock = lock(path)?;
    // Another process may have imported it while we waited for the lock.
    if file_kind(path)? != FileKind::Json {
        return Ok(None);
    }
    let old = read(path)?;
    let imported = Imported {
        agents: old.agents.len(),
        keys: old.agents.values().map(BTreeMap::len).sum(),
    };
    write_sqlite(path, &old)?;
    tracing::info!(
        path = %path.display(),
        agents = imported.agents,
        keys = imported.keys,
        "imported the JSON store of castsync 0.1 into the SQLite store"
    );
    Ok(Some(imported))
}

/// The lock castsync 0.1 took around every access: holding it means no 0.1 process is in
/// the middle of rewriting the file.
fn lock(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_err = |source| StoreError::Lock {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(lock_err)?;
    file.lock().map_err(lock_err)?;
    Ok(file)
}

fn read(path: &Path) -> Result<JsonStore, StoreError> {
    let read_err = |source| StoreError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_JSON_STORE {
        return Err(StoreError::Parse {
            path: path.to_owned(),
            detail: format!("a JSON store of {len} bytes is larger than castsync ever wrote"),
        });
    }
    // Sized up front so the buffer never reallocates (which would leave copies of values).
    let mut bytes = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    (&mut file)
        .take(MAX_JSON_STORE)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let store: JsonStore = serde_json::from_slice(&bytes).map_err(|err| StoreError::Parse {
        path: path.to_owned(),
        detail: describe_json_error(&err),
    })?;
    if store.version != JSON_VERSION {
        return Err(StoreError::Parse {
            path: path.to_owned(),
            detail: format!(
                "a JSON store of unsupported version {} (castsync 0.1 wrote version {JSON_VERSION})",
                store.version
            ),
        });
    }
    Ok(store)
}

/// Builds the database in a temp file beside `path`, then replaces `path` with it through
/// the one atomic-write helper.
fn write_sqlite(path: &Path, old: &JsonStore) -> Result<(), StoreError> {
    let write_err = |source| StoreError::Write {
        path: path.to_owned(),
        source,
    };
    let db = super::db_error(path);
    // Removed when dropped, on every way out.
    let tmp = tempfile::Builder::new()
        .prefix(".castsync-store.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(parent_dir(path))
        .map_err(write_err)?;
    {
        // The default rollback journal: the finished file stands alone, with no -wal beside
        // it.
        let mut conn = Connection::open(tmp.path()).map_err(db)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(db)?;
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(SCHEMA).map_err(db)?;
        {
            let mut agent = tx
                .prepare("INSERT INTO agents (slug) VALUES (?1)")
                .map_err(db)?;
            let mut secret = tx
                .prepare(
                    "INSERT INTO secrets (agent, key, value, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db)?;
            for (slug, keys) in &old.agents {
                agent.execute([slug]).map_err(db)?;
                for (key, e) in keys {
                    secret
                        .execute(params![
                            slug,
                            key,
                            e.value.expose(),
                            e.created_at,
                            e.updated_at
                        ])
                        .map_err(db)?;
                }
            }
        }
        // Later writes must get later timestamps than every imported one.
        if let Some(latest) = old
            .agents
            .values()
            .flat_map(BTreeMap::values)
            .map(|e| e.updated_at.as_str())
            .max()
        {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('clock', ?1)",
                [latest],
            )
            .map_err(db)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(db)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db)?;
        tx.commit().map_err(db)?;
        conn.close().map_err(|(_, e)| db(e))?;
    }
    let mut file = File::open(tmp.path()).map_err(write_err)?;
    let len = file.metadata().map_err(write_err)?.len();
    // Sized up front so the buffer never reallocates (which would leave copies of values).
    let mut bytes = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    file.read_to_end(&mut bytes).map_err(write_err)?;
    atomic_write::write(path, &bytes, Replace::Existing, Mode::Private).map_err(write_err)
}

/// Where and what kind of JSON error, without the offending text (which may be a value).
fn describe_json_error(err: &serde_json::Error) -> String {
    let what = match err.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "JSON syntax error",
        serde_json::error::Category::Data => "unexpected structure",
        serde_json::error::Category::Eof => "unexpected end of file",
    };
    format!("{what} at line {} column {}", err.line(), err.column())
}
