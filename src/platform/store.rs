//! The secrets store model shared by the embedded `local://` platform and `castsync
//! emulator`: agents → keys → value and timestamps, persisted as one JSON file.
//!
//! This is the only place besides the platform request body where a value is written out:
//! the store *is* the platform in these modes. Errors never quote the file's content (a
//! JSON parse error reports a line and column, not the text it choked on), and `Debug`
//! output masks values through [`SecretValue`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::atomic_write::{self, Mode, Replace};
use crate::platform::RemoteKey;
use crate::secret::SecretValue;

/// Version of the JSON file layout.
const FORMAT_VERSION: u32 = 1;

/// Largest value the platform accepts, in bytes (the manifest's limit too).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// A failed read or write of a store file. Messages name the file, never its content.
#[derive(Debug, Error)]
pub enum StoreError {
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
    /// Writing the new content (temp file, fsync, rename) failed.
    #[error("cannot write the store {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Opening or taking the lock file failed.
    #[error("cannot lock the store {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(serialize_with = "expose_value", deserialize_with = "read_value")]
    pub value: SecretValue,
    pub created_at: String,
    pub updated_at: String,
}

/// All keys of one agent, sorted by name (pagination walks this order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Agent {
    pub secrets: BTreeMap<String, Entry>,
}

/// The whole store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    version: u32,
    agents: BTreeMap<String, Agent>,
    /// The last timestamp handed out: every write gets a strictly later one, even within one
    /// clock tick, so "the timestamp moved" always means "someone wrote".
    #[serde(skip)]
    clock: Option<OffsetDateTime>,
}

/// The agent named in a call does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchAgent;

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            version: FORMAT_VERSION,
            agents: BTreeMap::new(),
            clock: None,
        }
    }

    pub fn has_agent(&self, agent: &str) -> bool {
        self.agents.contains_key(agent)
    }

    /// Creates the agent if it does not exist yet. Returns true when it was created.
    pub fn ensure_agent(&mut self, agent: &str) -> bool {
        if self.agents.contains_key(agent) {
            return false;
        }
        self.agents.insert(agent.to_owned(), Agent::default());
        true
    }

    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// Every key of an agent, sorted by name.
    pub fn list(&self, agent: &str) -> Result<Vec<RemoteKey>, NoSuchAgent> {
        self.page(agent, 0, usize::MAX)
    }

    /// One page of an agent's keys, sorted by name.
    pub fn page(
        &self,
        agent: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RemoteKey>, NoSuchAgent> {
        let agent = self.agents.get(agent).ok_or(NoSuchAgent)?;
        Ok(agent
            .secrets
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(key, e)| RemoteKey {
                key: key.clone(),
                created_at: Some(e.created_at.clone()),
                updated_at: Some(e.updated_at.clone()),
            })
            .collect())
    }

    pub fn get(&self, agent: &str, key: &str) -> Option<&Entry> {
        self.agents.get(agent)?.secrets.get(key)
    }

    /// Creates or overwrites a key: `created_at` is set on the first write, `updated_at` on
    /// every write.
    pub fn set(
        &mut self,
        agent: &str,
        key: &str,
        value: SecretValue,
    ) -> Result<&Entry, NoSuchAgent> {
        if !self.agents.contains_key(agent) {
            return Err(NoSuchAgent);
        }
        let stamp = self.tick();
        let agent = self.agents.get_mut(agent).ok_or(NoSuchAgent)?;
        let entry = agent
            .secrets
            .entry(key.to_owned())
            .and_modify(|e| {
                e.value = value.clone();
                e.updated_at = stamp.clone();
            })
            .or_insert_with(|| Entry {
                value,
                created_at: stamp.clone(),
                updated_at: stamp,
            });
        Ok(entry)
    }

    /// Deletes a key. Returns whether it existed.
    pub fn delete(&mut self, agent: &str, key: &str) -> Result<bool, NoSuchAgent> {
        let agent = self.agents.get_mut(agent).ok_or(NoSuchAgent)?;
        Ok(agent.secrets.remove(key).is_some())
    }

    /// A new RFC 3339 UTC timestamp with microseconds, strictly later than the last one.
    fn tick(&mut self) -> String {
        let now = OffsetDateTime::now_utc();
        let last = self.clock.get_or_insert_with(|| latest_stamp(&self.agents));
        let next = if now > *last {
            now
        } else {
            *last + time::Duration::microseconds(1)
        };
        *last = next;
        format_stamp(next)
    }

    /// Reads a store file; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Store, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Store::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let store: Store = serde_json::from_slice(&bytes).map_err(|err| StoreError::Parse {
            path: path.to_owned(),
            detail: describe_json_error(&err),
        })?;
        if store.version != FORMAT_VERSION {
            return Err(StoreError::Parse {
                path: path.to_owned(),
                detail: format!(
                    "unsupported format version {} (expected {FORMAT_VERSION})",
                    store.version
                ),
            });
        }
        Ok(store)
    }

    /// Writes the store atomically: a 0600 temp file in the same directory, fsync, rename,
    /// fsync of the directory. A reader sees the old file or the new one, never a mix.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let write_err = |source| StoreError::Write {
            path: path.to_owned(),
            source,
        };
        let bytes =
            Zeroizing::new(serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?);
        atomic_write::write(path, &bytes, Replace::Existing, Mode::Private).map_err(write_err)
    }
}

/// An exclusive lock on `PATH.lock`, held until dropped. Blocks while another process (or
/// another task of this one) holds it.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
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
        Ok(StoreLock { _file: file })
    }
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

fn latest_stamp(agents: &BTreeMap<String, Agent>) -> OffsetDateTime {
    agents
        .values()
        .flat_map(|a| a.secrets.values())
        .filter_map(|e| OffsetDateTime::parse(&e.updated_at, &Rfc3339).ok())
        .max()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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

fn expose_value<S: Serializer>(value: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.expose())
}

fn read_value<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
    String::deserialize(d).map(SecretValue::new)
}

#[cfg(test)]
mod tests;
