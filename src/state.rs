//! The last-applied store: what castsync wrote, per platform, agent and key.
//!
//! The platform never returns values, so "did the value change since we wrote it?" is
//! answered here, by a keyed HMAC-SHA256 fingerprint. The HMAC key is random per state file,
//! so a fingerprint is useless to anyone who has the state file but not a guess at the value
//! *and* the key — and the file is 0600 anyway. No value, and no unkeyed hash of a value, is
//! ever written. Writes are atomic (temp file, fsync, rename); an exclusive lock keeps a
//! second reconciler away.
//!
//! Between runs the key records are held as compact text and parsed per agent when needed
//! (`keys`), so a daemon's memory and each save stay small as agents add up.
//!
//! It also remembers, per platform and agent, what that agent was last reconciled *from*
//! ([`AppliedFrom`]: digests of its manifest's ciphertext, its `.env.example` and the settings
//! that bear on it, and the commit), so a reconcile can refresh only the agents whose inputs
//! changed. A missing record means "unknown": that agent is refreshed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::atomic_write::{self, Mode, Replace};
use crate::plan::{self, Applied, DesiredSecrets, LastApplied, NotLoaded, Plan, Policy};
use crate::platform::types::{Listing, PlatformError};
use crate::secret::SecretValue;

/// The state format this build writes. It reads this one and every older one: version 1
/// (before [`AppliedFrom`] records) reads as a state that knows no agent's inputs, so the
/// next reconcile refreshes every agent once. Builds that know only version 1 refuse a
/// version 2 file as too new rather than misreading it.
pub const STATE_VERSION: u32 = 2;

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
    /// The file is not valid state JSON.
    #[error("state file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// The file was written by a newer castsync.
    #[error(
        "state file {path} has version {found}, but this castsync understands version {STATE_VERSION}"
    )]
    TooNew { path: PathBuf, found: u32 },
    /// Another reconcile holds the lock.
    #[error("state file {path} is locked by another castsync process{holder}")]
    Locked { path: PathBuf, holder: String },
}

impl crate::hint::Hinted for StateError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            StateError::Io { .. } => return None,
            StateError::Corrupt { .. } => "move it aside; the next reconcile re-sets every key once (as `unverified`) and records fresh state".into(),
            StateError::TooNew { .. } => "upgrade castsync, or use another --state file".into(),
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

mod keys;

use keys::{AgentKeys, Records};

mod lock;

/// agent → its key records.
type AgentRecords = BTreeMap<String, AgentKeys>;

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

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    /// Base64 of the 32-byte HMAC key.
    hmac_key: String,
    /// platform id → agent → key → record.
    #[serde(default)]
    platforms: BTreeMap<String, AgentRecords>,
    /// platform id → agents whose secrets changed but whose redeploy has not succeeded yet:
    /// the next run redeploys them even when it changes nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    redeploy_pending: BTreeMap<String, BTreeSet<String>>,
    /// platform id → agent → what it was last reconciled from (version 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    applied_from: BTreeMap<String, BTreeMap<String, AppliedFrom>>,
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

/// An open state file. With [`State::open`] it holds the exclusive lock until dropped.
pub struct State {
    path: PathBuf,
    hmac_key: Zeroizing<Vec<u8>>,
    platforms: BTreeMap<String, AgentRecords>,
    redeploy_pending: BTreeMap<String, BTreeSet<String>>,
    applied_from: BTreeMap<String, BTreeMap<String, AppliedFrom>>,
    /// The format version of the file as read (`None`: there was no file).
    read_version: Option<u32>,
    _lock: Option<lock::Lock>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("path", &self.path)
            .field("platforms", &self.platforms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl State {
    /// Opens (or starts) the state at `path` for writing: creates the directory (0700),
    /// takes the exclusive lock at once or fails naming the holder's pid.
    pub fn open(path: &Path) -> Result<State, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            atomic_write::create_private_dir(dir).map_err(|source| StateError::Io {
                action: "create the directory of",
                path: path.to_owned(),
                source,
            })?;
        }
        let lock = lock::acquire(path)?;
        let mut state = State::read(path)?;
        state._lock = Some(lock);
        Ok(state)
    }

    /// Reads the state without locking or creating anything (for dry runs). A missing file
    /// is an empty state.
    pub fn open_read_only(path: &Path) -> Result<State, StateError> {
        State::read(path)
    }

    fn read(path: &Path) -> Result<State, StateError> {
        // Streamed, twice (the version alone, then everything): the file grows with every
        // key of every agent, and is never held whole in memory.
        let open = || crate::fsread::open_file(path, crate::fsread::MAX_STATE_FILE);
        let first = match open() {
            Ok(reader) => reader,
            Err(e) if e.is_not_found() => {
                let mut key = Zeroizing::new(vec![0u8; 32]);
                rand::fill(&mut key[..]);
                return Ok(State {
                    path: path.to_owned(),
                    hmac_key: key,
                    platforms: BTreeMap::new(),
                    redeploy_pending: BTreeMap::new(),
                    applied_from: BTreeMap::new(),
                    read_version: None,
                    _lock: None,
                });
            }
            Err(e) => return Err(read_error(path, e)),
        };
        let corrupt = |detail: String| StateError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        // Look at the version before the full parse, so a newer format says "too new", not
        // "corrupt".
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<serde_json::Value>,
        }
        let version = serde_json::from_reader::<_, VersionOnly>(std::io::BufReader::new(first))
            .map_err(|e| corrupt(e.to_string()))?
            .version
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("no numeric `version` field".into()))?;
        if version > u64::from(STATE_VERSION) {
            return Err(StateError::TooNew {
                path: path.to_owned(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let second = open().map_err(|e| read_error(path, e))?;
        let file: StateFile = serde_json::from_reader(std::io::BufReader::new(second))
            .map_err(|e| corrupt(e.to_string()))?;
        let StateFile {
            version,
            hmac_key,
            platforms,
            redeploy_pending,
            applied_from,
        } = file;
        let hmac_key = Zeroizing::new(hmac_key);
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(hmac_key.as_bytes())
                .map_err(|e| corrupt(format!("hmac_key: {e}")))?,
        );
        if key.len() < 32 {
            return Err(corrupt("hmac_key is shorter than 32 bytes".into()));
        }
        Ok(State {
            path: path.to_owned(),
            hmac_key: key,
            platforms,
            redeploy_pending,
            applied_from,
            read_version: Some(version),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    /// The records of one agent on one platform.
    pub fn records(&self, platform: &str, agent: &str) -> Option<Cow<'_, Records>> {
        Some(self.platforms.get(platform)?.get(agent)?.get())
    }

    /// Makes the records of `agents` ready for a plan (held parsed until the next
    /// [`State::compact`] or save): the plan reads each agent's records once per key.
    pub fn prepare<'a>(&mut self, platform: &str, agents: impl IntoIterator<Item = &'a String>) {
        if let Some(records) = self.platforms.get_mut(platform) {
            for agent in agents {
                if let Some(keys) = records.get_mut(agent) {
                    keys.get_mut();
                }
            }
        }
    }

    /// Holds every agent's records as the compact text a save writes (see `state::keys`).
    pub fn compact(&mut self) {
        for keys in self.platforms.values_mut().flat_map(BTreeMap::values_mut) {
            keys.compact();
        }
    }

    /// Holds everything in its smallest form (every agent's records packed, see
    /// `state::keys`), in fresh allocations. The daemon calls it once a cycle is over: the
    /// records made during the cycle sit scattered among the memory the cycle freed, each
    /// pinning a page; copied now, they pack together, and the allocator can give the pages
    /// they leave back to the system (the daemon's idle RSS in BENCHMARKS.md). The next save
    /// turns them back into text once (see [`State::compact`]).
    pub fn repack(&mut self) {
        for keys in self.platforms.values_mut().flat_map(BTreeMap::values_mut) {
            keys.pack();
        }
        self.platforms = self.platforms.clone();
        self.applied_from = self.applied_from.clone();
        self.redeploy_pending = self.redeploy_pending.clone();
    }

    /// Plans `desired` against `observed` with this state's records for `platform` as what
    /// was last applied (the planned agents' records parsed once, see [`State::prepare`]).
    pub fn plan(
        &mut self,
        platform: &str,
        desired: &BTreeMap<String, Result<DesiredSecrets, NotLoaded>>,
        observed: &BTreeMap<String, Result<Listing, PlatformError>>,
        policy: &Policy,
    ) -> Plan {
        self.prepare(platform, desired.keys());
        plan::plan(desired, observed, &self.view(platform), policy)
    }

    /// The plan's view of this state for one platform.
    pub fn view<'a>(&'a self, platform: &'a str) -> StateView<'a> {
        StateView {
            state: self,
            platform,
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
        self.platforms
            .entry(platform.to_owned())
            .or_default()
            .entry(agent.to_owned())
            .or_default()
            .get_mut()
            .insert(key.to_owned(), record);
    }

    /// Forgets a key (deleted, verified gone).
    pub fn record_delete(&mut self, platform: &str, agent: &str, key: &str) {
        if let Some(agents) = self.platforms.get_mut(platform)
            && let Some(keys) = agents.get_mut(agent)
        {
            let keys = keys.get_mut();
            keys.remove(key);
            if keys.is_empty() {
                agents.remove(agent);
            }
        }
    }

    /// Remembers that `agent` needs a redeploy that has not succeeded yet.
    pub fn mark_redeploy_pending(&mut self, platform: &str, agent: &str) {
        self.redeploy_pending
            .entry(platform.to_owned())
            .or_default()
            .insert(agent.to_owned());
    }

    /// Forgets a pending redeploy (it succeeded).
    pub fn clear_redeploy_pending(&mut self, platform: &str, agent: &str) {
        if let Some(agents) = self.redeploy_pending.get_mut(platform) {
            agents.remove(agent);
            if agents.is_empty() {
                self.redeploy_pending.remove(platform);
            }
        }
    }

    /// Whether a redeploy of `agent` is still owed.
    pub fn redeploy_pending(&self, platform: &str, agent: &str) -> bool {
        self.redeploy_pending
            .get(platform)
            .is_some_and(|a| a.contains(agent))
    }

    /// What `agent` was last reconciled from on `platform`, if known.
    pub fn applied_from(&self, platform: &str, agent: &str) -> Option<&AppliedFrom> {
        self.applied_from.get(platform)?.get(agent)
    }

    /// Every [`AppliedFrom`] record of one platform.
    pub fn applied_from_all(&self, platform: &str) -> Option<&BTreeMap<String, AppliedFrom>> {
        self.applied_from.get(platform).filter(|m| !m.is_empty())
    }

    /// Remembers that `agent` converged on `platform` from these inputs.
    pub fn record_applied_from(&mut self, platform: &str, agent: &str, from: AppliedFrom) {
        self.applied_from
            .entry(platform.to_owned())
            .or_default()
            .insert(agent.to_owned(), from);
    }

    /// Forgets what `agent` was reconciled from (its last run failed): the next reconcile
    /// refreshes it whatever changed.
    pub fn forget_applied_from(&mut self, platform: &str, agent: &str) {
        if let Some(agents) = self.applied_from.get_mut(platform) {
            agents.remove(agent);
            if agents.is_empty() {
                self.applied_from.remove(platform);
            }
        }
    }

    /// Why this state cannot say which agents of `platform` changed, when it cannot: the
    /// reason a `--changed` reconcile refreshes every agent instead.
    pub fn change_tracking_gap(&self, platform: &str) -> Option<String> {
        if self.applied_from_all(platform).is_some() {
            return None;
        }
        let this_platform = self.platforms.get(platform).is_some_and(|a| !a.is_empty());
        let other_platforms = self
            .platforms
            .keys()
            .chain(self.applied_from.keys())
            .any(|p| p != platform);
        Some(match self.read_version {
            None => format!("no state file yet ({})", self.path.display()),
            Some(v) if v < 2 => format!(
                "the state was written by a castsync that did not record what each agent was applied from (state version {v})"
            ),
            Some(_) if !this_platform && other_platforms => {
                format!(
                    "the state holds no record for {platform} (it was written for another platform)"
                )
            }
            Some(_) => format!("the state records no agent applied to {platform} yet"),
        })
    }

    /// Writes the state atomically: a 0600 temp file in the same directory, fsync, rename,
    /// directory fsync (`atomic_write`). The JSON is streamed into the file through a small
    /// buffer that is wiped afterwards (it passes the HMAC key), so a large state is never
    /// copied whole in memory; it is compact (no indentation), since a run may save it a few
    /// times and it grows with every key of every agent.
    pub fn save(&mut self) -> Result<(), StateError> {
        // Records changed since the last save are serialized once, here, and kept as the
        // text that is written; the others are written as they are.
        self.compact();
        let hmac_key =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.hmac_key[..]));
        let file = StateFileOut {
            version: STATE_VERSION,
            hmac_key: &hmac_key,
            platforms: &self.platforms,
            redeploy_pending: &self.redeploy_pending,
            applied_from: &self.applied_from,
        };
        atomic_write::write_with(&self.path, Replace::Existing, Mode::Private, |out| {
            let mut buffered = WipingWriter::new(out);
            serde_json::to_writer(&mut buffered, &file).map_err(std::io::Error::other)?;
            buffered.write_all(b"\n")?;
            buffered.flush()
        })
        .map_err(|source| StateError::Io {
            action: "replace",
            path: self.path.clone(),
            source,
        })
    }
}

/// The state file as written: [`StateFile`]'s fields, borrowed.
#[derive(Serialize)]
struct StateFileOut<'a> {
    version: u32,
    hmac_key: &'a str,
    platforms: &'a BTreeMap<String, AgentRecords>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    redeploy_pending: &'a BTreeMap<String, BTreeSet<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    applied_from: &'a BTreeMap<String, BTreeMap<String, AppliedFrom>>,
}

/// A write buffer of fixed capacity (it never reallocates, so it leaves no stray copy of
/// what passed through it) that is zeroed when dropped.
struct WipingWriter<'a> {
    inner: &'a mut dyn Write,
    buf: Zeroizing<Vec<u8>>,
}

impl<'a> WipingWriter<'a> {
    const CAPACITY: usize = 64 * 1024;

    fn new(inner: &'a mut dyn Write) -> Self {
        WipingWriter {
            inner,
            buf: Zeroizing::new(Vec::with_capacity(Self::CAPACITY)),
        }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for WipingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > Self::CAPACITY {
            self.drain()?;
        }
        if data.len() >= Self::CAPACITY {
            self.inner.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

/// [`LastApplied`] over one platform's records.
pub struct StateView<'a> {
    state: &'a State,
    platform: &'a str,
}

impl LastApplied for StateView<'_> {
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied> {
        let records = self.state.records(self.platform, agent)?;
        let record = records.get(key)?;
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

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
