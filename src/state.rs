//! The last-applied store: what castsync wrote, per platform, agent and key.
//!
//! The platform never returns values, so "did the value change since we wrote it?" is
//! answered here, by a keyed HMAC-SHA256 fingerprint. The HMAC key is random per state, so a
//! fingerprint is useless to anyone who has the state but not a guess at the value *and* the
//! key — and the database is 0600 anyway. No value, and no unkeyed hash of a value, is ever
//! written. An exclusive lock keeps a second reconciler away.
//!
//! It also remembers, per platform and agent, what that agent was last reconciled *from*
//! ([`AppliedFrom`]: digests of its manifest's ciphertext, its `.env.example` and the settings
//! that bear on it, and the commit), so a reconcile can refresh only the agents whose inputs
//! changed. A missing record means "unknown": that agent is refreshed.
//!
//! The state lives in an SQLite database (`db`): one row per key written, one per agent's
//! converged inputs, and each agent's save is one transaction of the rows it changed, so a
//! save costs what the agent changed however large the state grows, and a process killed at
//! any moment leaves every save before it, whole. Nothing is held in memory between reads.
//! Before, the state was one JSON file rewritten on every save; `open` migrates such a file
//! on first use and leaves a stub in its place that older castsync versions refuse (`json`);
//! `castsync state export` prints the same JSON document.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::atomic_write;
use crate::plan::{self, Applied, DesiredSecrets, LastApplied, NotLoaded, Plan, Policy};
use crate::platform::types::{Listing, PlatformError};
use crate::secret::SecretValue;

mod db;
mod json;
mod lock;
mod open;

pub use json::{STATE_VERSION, STUB_VERSION};

#[derive(Debug, Error)]
pub enum StateError {
    /// The state file or its directory cannot be read or written.
    #[error("cannot {action} state file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state castsync can read.
    #[error("state file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// The file was written by a newer castsync.
    #[error(
        "state file {path} has version {found}, but this castsync understands versions up to {STUB_VERSION}"
    )]
    TooNew { path: PathBuf, found: u32 },
    /// The database was written by a newer castsync.
    #[error("state file {path} cannot be read: {detail}")]
    NewerLayout { path: PathBuf, detail: String },
    /// The database refused an operation (disk full, busy past the timeout, an I/O error).
    #[error("state file {path}: database error")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Another reconcile holds the lock.
    #[error("state file {path} is locked by another castsync process{holder}")]
    Locked { path: PathBuf, holder: String },
}

impl crate::hint::Hinted for StateError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            StateError::Io { .. } | StateError::Database { .. } => return None,
            StateError::Corrupt { .. } => "move it aside; the next reconcile re-sets every key once (as `unverified`) and records fresh state".into(),
            StateError::TooNew { .. } | StateError::NewerLayout { .. } => {
                "upgrade castsync, or use another --state file".into()
            }
            StateError::Locked { .. } => {
                "wait for it to finish; two reconcilers must never write one state file".into()
            }
        })
    }
}

/// What castsync recorded about one key after writing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `hmac-sha256:` + hex of HMAC(key, agent ‖ 0 ‖ key ‖ 0 ‖ value).
    pub fingerprint: String,
    /// The platform's timestamp for the key, seen when verifying the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// The source revision the value came from (a commit id, or `worktree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When castsync wrote it (RFC 3339, UTC).
    pub applied_at: String,
}

/// key → record.
pub type Records = BTreeMap<String, KeyRecord>;

/// What one agent was last reconciled from: the platform was listed, the plan applied and
/// verified (or found nothing to do) for exactly these inputs. The digests identify bytes
/// that are public in the repository anyway (the age ciphertext, the `.env.example`, the
/// settings), never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedFrom {
    /// `git-blob:` + git's blob id of the manifest file (its ciphertext).
    pub manifest: String,
    /// `git-blob:` + git's blob id of the `.env.example`, or `absent`.
    pub schema: String,
    /// `sha256:` + hex of the settings that bear on this agent (see `source::inputs`).
    pub settings: String,
    /// shared group → `git-blob:` + git's blob id of its manifest file, for each shared group
    /// the agent used (`uses:`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, String>,
    /// The source revision: a commit id, or `worktree`.
    pub revision: String,
    /// When the agent was last refreshed (RFC 3339, UTC).
    pub at: String,
}

impl AppliedFrom {
    /// The same inputs at the same revision (the time aside).
    pub fn same_inputs(&self, other: &AppliedFrom) -> bool {
        self.manifest == other.manifest
            && self.schema == other.schema
            && self.settings == other.settings
            && self.groups == other.groups
            && self.revision == other.revision
    }
}

/// Where a state lives, all from the one path a run names (`--state FILE`, or the default
/// `.castsync/state.db`): the database, and the file the state was kept in before.
///
/// `--state DIR/NAME.db` names the database itself, and `DIR/NAME.json` is the file it is
/// migrated from; any other name (`--state DIR/NAME.json`, as scripts wrote it before) names
/// that file, and the database is `DIR/NAME.db` beside it. Either way the history is
/// `DIR/NAME.history.jsonl` (`history::path_for_state`) and the lock `DIR/NAME.json.lock`, the
/// lock file an older castsync takes too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePaths {
    pub db: PathBuf,
    /// The JSON file of castsync before 0.2, then the stub that stands in for it.
    pub legacy: PathBuf,
}

impl StorePaths {
    pub fn of(state: &Path) -> StorePaths {
        let extension = state.extension().and_then(|e| e.to_str());
        match extension {
            Some("db") => StorePaths {
                db: state.to_owned(),
                legacy: state.with_extension("json"),
            },
            Some("json") => StorePaths {
                db: state.with_extension("db"),
                legacy: state.to_owned(),
            },
            _ => StorePaths {
                db: suffixed(state, ".db"),
                legacy: state.to_owned(),
            },
        }
    }

    /// Where a migrated file is kept: `NAME.json.migrated`.
    pub fn backup(&self) -> PathBuf {
        suffixed(&self.legacy, ".migrated")
    }

    fn lock(&self) -> PathBuf {
        lock::lock_path(&self.legacy)
    }
}

/// `path` with `suffix` appended to its file name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where an open state came from, for [`State::change_tracking_gap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Nothing was recorded before: this open created it (or, read only, found nothing).
    Created,
    /// A JSON state file of this version, migrated now (or read as it is, read only).
    File(u32),
    /// The database, as an earlier run left it.
    Database,
}

/// An open state. With [`State::open`] it holds the exclusive lock until dropped.
pub struct State {
    paths: StorePaths,
    db: db::Db,
    hmac_key: Zeroizing<Vec<u8>>,
    origin: Origin,
    _lock: Option<lock::Lock>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("paths", &self.paths)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Opens (or starts) the state at `path` (see [`StorePaths`]) for writing: creates the
    /// directory (0700), takes the exclusive lock at once or fails naming the holder's pid,
    /// and migrates a state file of an earlier castsync into the database.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let paths = StorePaths::of(path);
        if let Some(dir) = paths.db.parent().filter(|d| !d.as_os_str().is_empty()) {
            atomic_write::create_private_dir(dir).map_err(|source| StateError::Io {
                action: "create the directory of",
                path: paths.db.clone(),
                source,
            })?;
        }
        let lock = lock::acquire(&paths.lock(), &paths.db)?;
        let opened = open::for_writing(&paths)?;
        Ok(State::with(paths, opened, Some(lock)))
    }

    /// Reads the state without locking, creating or migrating anything (for dry runs and
    /// `state export`). A missing state is an empty one; a state file not migrated yet is
    /// read as it is.
    pub fn open_read_only(path: &Path) -> Result<State, StateError> {
        let paths = StorePaths::of(path);
        let opened = open::read_only(&paths)?;
        Ok(State::with(paths, opened, None))
    }

    fn with(paths: StorePaths, opened: open::Opened, lock: Option<lock::Lock>) -> State {
        State {
            paths,
            db: opened.db,
            hmac_key: opened.hmac_key,
            origin: opened.origin,
            _lock: lock,
        }
    }

    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.paths.db
    }

    /// The keyed fingerprint of `value` for `agent`/`key`.
    pub fn fingerprint(&self, agent: &str, key: &str, value: &SecretValue) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(agent.as_bytes());
        mac.update(&[0]);
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(value.expose().as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// A read that failed, said once, and read as "nothing recorded": the safe direction
    /// (a key without a record is set again as `unverified`; an agent without one is
    /// refreshed).
    fn read<T>(&self, what: &str, read: rusqlite::Result<T>) -> Option<T> {
        read.map_err(|error| {
            tracing::warn!(state = %self.paths.db.display(), %error, "cannot read {what}");
        })
        .ok()
    }

    /// The records of one agent on one platform.
    pub fn records(&self, platform: &str, agent: &str) -> Option<Records> {
        self.read("key records", self.db.records(platform, agent))
            .filter(|r| !r.is_empty())
    }

    /// Plans `desired` against `observed` with this state's records for `platform` as what
    /// was last applied (each agent's records read once, see [`StateView`]).
    pub fn plan(
        &self,
        platform: &str,
        desired: &BTreeMap<String, Result<DesiredSecrets, NotLoaded>>,
        observed: &BTreeMap<String, Result<Listing, PlatformError>>,
        policy: &Policy,
    ) -> Plan {
        plan::plan(desired, observed, &self.view(platform), policy)
    }

    /// The plan's view of this state for one platform.
    pub fn view<'a>(&'a self, platform: &'a str) -> StateView<'a> {
        StateView {
            state: self,
            platform,
            last: RefCell::new(None),
        }
    }

    /// Records a write that landed and was verified.
    pub fn record_set(
        &mut self,
        platform: &str,
        agent: &str,
        key: &str,
        value: &SecretValue,
        observed_at: Option<String>,
        revision: Option<&str>,
    ) {
        let record = KeyRecord {
            fingerprint: self.fingerprint(agent, key, value),
            observed_at,
            revision: revision.map(str::to_owned),
            applied_at: now_rfc3339(),
        };
        self.db
            .write(|c| db::put_record(c, platform, agent, key, &record));
    }

    /// Forgets a key (deleted, verified gone).
    pub fn record_delete(&mut self, platform: &str, agent: &str, key: &str) {
        self.db
            .write(|c| db::delete_record(c, platform, agent, key));
    }

    /// Remembers that `agent` needs a redeploy that has not succeeded yet.
    pub fn mark_redeploy_pending(&mut self, platform: &str, agent: &str) {
        self.db
            .write(|c| db::put_redeploy_pending(c, platform, agent));
    }

    /// Forgets a pending redeploy (it succeeded).
    pub fn clear_redeploy_pending(&mut self, platform: &str, agent: &str) {
        self.db
            .write(|c| db::delete_redeploy_pending(c, platform, agent));
    }

    /// Whether a redeploy of `agent` is still owed. Unreadable, it is owed: one redeploy
    /// too many is the safe direction.
    pub fn redeploy_pending(&self, platform: &str, agent: &str) -> bool {
        self.read("owed redeploys", self.db.redeploy_pending(platform, agent))
            .unwrap_or(true)
    }

    /// What `agent` was last reconciled from on `platform`, if known.
    pub fn applied_from(&self, platform: &str, agent: &str) -> Option<AppliedFrom> {
        self.read(
            "what an agent converged from",
            self.db.applied_from(platform, agent),
        )
        .flatten()
    }

    /// Every [`AppliedFrom`] record of one platform.
    pub fn applied_from_all(&self, platform: &str) -> Option<BTreeMap<String, AppliedFrom>> {
        self.read(
            "what the agents converged from",
            self.db.applied_from_all(platform),
        )
        .filter(|m| !m.is_empty())
    }

    /// Remembers that `agent` converged on `platform` from these inputs.
    pub fn record_applied_from(&mut self, platform: &str, agent: &str, from: AppliedFrom) {
        self.db
            .write(|c| db::put_applied_from(c, platform, agent, &from));
    }

    /// Forgets what `agent` was reconciled from (its last run failed): the next reconcile
    /// refreshes it whatever changed.
    pub fn forget_applied_from(&mut self, platform: &str, agent: &str) {
        self.db
            .write(|c| db::delete_applied_from(c, platform, agent));
    }

    /// Why this state cannot say which agents of `platform` changed, when it cannot: the
    /// reason a `--changed` reconcile refreshes every agent instead.
    pub fn change_tracking_gap(&self, platform: &str) -> Option<String> {
        let tracked = self.db.has_applied_from(platform);
        if self.read("what the agents converged from", tracked) == Some(true) {
            return None;
        }
        let this_platform = self
            .read("the recorded platforms", self.db.has_keys(platform))
            .unwrap_or(false);
        let other_platforms = self
            .read(
                "the recorded platforms",
                self.db.has_other_platforms(platform),
            )
            .unwrap_or(false);
        Some(match self.origin {
            Origin::Created => format!("no state file yet ({})", self.paths.db.display()),
            Origin::File(v) if v < 2 => format!(
                "the state was written by a castsync that did not record what each agent was applied from (state version {v})"
            ),
            _ if !this_platform && other_platforms => {
                format!(
                    "the state holds no record for {platform} (it was written for another platform)"
                )
            }
            _ => format!("the state records no agent applied to {platform} yet"),
        })
    }

    /// Gives back the memory the database holds for speed (its page cache), for a process
    /// that keeps the state open while it idles; the next reads fill it again.
    pub fn release_memory(&self) {
        self.db.release_memory();
    }

    /// Makes every change since the last save durable, in one transaction: the key records
    /// of the agent just applied, its converged inputs, its owed redeploy. Costs what
    /// changed, not what the state holds.
    pub fn save(&mut self) -> Result<(), StateError> {
        self.db
            .commit()
            .map_err(|source| db_error(&self.paths.db, source))
    }

    /// Writes the state as the JSON document the state file held before it moved into the
    /// database (`castsync state export`), HMAC key included.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<(), StateError> {
        json::export(&self.db, &self.hmac_key, out).map_err(|source| StateError::Io {
            action: "export",
            path: self.paths.db.clone(),
            source,
        })
    }
}

/// [`LastApplied`] over one platform's records. The plan asks for each key of an agent in
/// turn, so the records of the agent asked for last are kept (one query per agent).
pub struct StateView<'a> {
    state: &'a State,
    platform: &'a str,
    last: RefCell<Option<(String, Records)>>,
}

impl LastApplied for StateView<'_> {
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied> {
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(a, _)| a != agent) {
            let records = self.state.records(self.platform, agent).unwrap_or_default();
            *last = Some((agent.to_owned(), records));
        }
        let record = last.as_ref()?.1.get(key)?;
        Some(Applied {
            same_value: record.fingerprint == self.state.fingerprint(agent, key, value),
            observed_at: record.observed_at.clone(),
        })
    }

    fn redeploy_pending(&self, agent: &str) -> bool {
        self.state.redeploy_pending(self.platform, agent)
    }
}

fn read_error(path: &Path, e: crate::fsread::ReadError) -> StateError {
    StateError::Io {
        action: "read",
        path: path.to_owned(),
        source: match e {
            crate::fsread::ReadError::Io { source, .. } => source,
            refused => std::io::Error::other(refused.to_string()),
        },
    }
}

fn db_error(path: &Path, source: rusqlite::Error) -> StateError {
    StateError::Database {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
