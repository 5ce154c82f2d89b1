//! The last-applied store: what castsync wrote, per platform, agent and key.
//!
//! The platform never returns values, so "did the value change since we wrote it?" is
//! answered here, by a keyed HMAC-SHA256 fingerprint. The HMAC key is random per state file,
//! so a fingerprint is useless to anyone who has the state file but not a guess at the value
//! *and* the key — and the file is 0600 anyway. No value, and no unkeyed hash of a value, is
//! ever written. Writes are atomic (temp file, fsync, rename); an exclusive lock keeps a
//! second reconciler away.
//!
//! It also remembers, per platform and agent, what that agent was last reconciled *from*
//! ([`AppliedFrom`]: digests of its manifest's ciphertext, its `.env.example` and the settings
//! that bear on it, and the commit), so a reconcile can refresh only the agents whose inputs
//! changed. A missing record means "unknown": that agent is refreshed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::atomic_write::{self, Mode, Replace};
use crate::plan::{Applied, LastApplied};
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
    #[error(
        "state file {path} is corrupt: {detail}\n  hint: move it aside; the next reconcile re-sets every key once (as `unverified`) and records fresh state"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// The file was written by a newer castsync.
    #[error(
        "state file {path} has version {found}, but this castsync understands version {STATE_VERSION}\n  hint: upgrade castsync, or use another --state file"
    )]
    TooNew { path: PathBuf, found: u32 },
    /// Another reconcile holds the lock.
    #[error(
        "state file {path} is locked by another castsync process{holder}\n  hint: wait for it to finish; two reconcilers must never write one state file"
    )]
    Locked { path: PathBuf, holder: String },
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

type AgentRecords = BTreeMap<String, BTreeMap<String, KeyRecord>>;

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
    _lock: Option<File>,
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
            create_private_dir(dir).map_err(|source| StateError::Io {
                action: "create the directory of",
                path: path.to_owned(),
                source,
            })?;
        }
        let lock = acquire_lock(path)?;
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
        let read = crate::fsread::read_file(path, crate::fsread::MAX_STATE_FILE).and_then(|b| {
            crate::fsread::text(b).map_err(|_| crate::fsread::ReadError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
            })
        });
        let text = match read {
            Ok(t) => t,
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
            Err(e) => {
                return Err(StateError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source: match e {
                        crate::fsread::ReadError::Io { source, .. } => source,
                        refused => std::io::Error::other(refused.to_string()),
                    },
                });
            }
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
        let version = serde_json::from_str::<VersionOnly>(&text)
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
        let file: StateFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(file.hmac_key.as_bytes())
            .map_err(|e| corrupt(format!("hmac_key: {e}")))?;
        if key.len() < 32 {
            return Err(corrupt("hmac_key is shorter than 32 bytes".into()));
        }
        Ok(State {
            path: path.to_owned(),
            hmac_key: Zeroizing::new(key),
            platforms: file.platforms,
            redeploy_pending: file.redeploy_pending,
            applied_from: file.applied_from,
            read_version: Some(file.version),
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
    pub fn records(&self, platform: &str, agent: &str) -> Option<&BTreeMap<String, KeyRecord>> {
        self.platforms.get(platform)?.get(agent)
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
            .insert(key.to_owned(), record);
    }

    /// Forgets a key (deleted, verified gone).
    pub fn record_delete(&mut self, platform: &str, agent: &str, key: &str) {
        if let Some(agents) = self.platforms.get_mut(platform)
            && let Some(keys) = agents.get_mut(agent)
        {
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
    pub fn save(&self) -> Result<(), StateError> {
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
        let record = self.state.records(self.platform, agent)?.get(key)?;
        Some(Applied {
            same_value: record.fingerprint == self.state.fingerprint(agent, key, value),
            observed_at: record.observed_at.clone(),
        })
    }

    fn redeploy_pending(&self, agent: &str) -> bool {
        self.state.redeploy_pending(self.platform, agent)
    }
}

fn acquire_lock(path: &Path) -> Result<File, StateError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| StateError::Io {
            action: "open the lock of",
            path: path.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // The holder writes its pid right after taking the lock; when both started at
            // the same instant, give it a moment to do so.
            let mut holder = String::new();
            for _ in 0..10 {
                holder.clear();
                let _ = file.rewind().and_then(|_| file.read_to_string(&mut holder));
                if !holder.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let holder = holder.trim();
            return Err(StateError::Locked {
                path: path.to_owned(),
                holder: if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(StateError::Io {
                action: "lock",
                path: path.to_owned(),
                source,
            });
        }
    }
    // Holding the lock: record our pid for whoever finds it taken.
    let pid = std::process::id().to_string();
    let _ = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(pid.as_bytes()));
    Ok(file)
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-state-0b7c-never-print";

    #[test]
    fn a_saved_state_reads_back_with_the_same_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".castsync/state.json");
        let v = SecretValue::new(CANARY);
        {
            let mut s = State::open(&path).unwrap();
            s.record_set("local://x", "bot", "A", &v, Some("t1".into()), Some("abc"));
            s.save().unwrap();
        }
        let s = State::open(&path).unwrap();
        let applied = s.view("local://x").applied("bot", "A", &v).unwrap();
        assert_eq!(
            applied,
            Applied {
                same_value: true,
                observed_at: Some("t1".into())
            }
        );
        let other = SecretValue::new("other");
        assert!(
            !s.view("local://x")
                .applied("bot", "A", &other)
                .unwrap()
                .same_value
        );
        assert!(s.view("https://api").applied("bot", "A", &v).is_none());
    }

    #[test]
    fn the_state_file_is_private_and_never_holds_a_value() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = State::open(&path).unwrap();
        s.record_set("p", "bot", "A", &SecretValue::new(CANARY), None, None);
        s.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(CANARY));
        assert!(text.contains("hmac-sha256:"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn fingerprints_are_keyed_per_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = State::open(&dir.path().join("a.json")).unwrap();
        let b = State::open(&dir.path().join("b.json")).unwrap();
        let v = SecretValue::new("same");
        assert_ne!(a.fingerprint("x", "K", &v), b.fingerprint("x", "K", &v));
        assert_ne!(a.fingerprint("x", "K", &v), a.fingerprint("x", "L", &v));
    }

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let _held = State::open(&path).unwrap();
        let err = State::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StateError::Locked { .. }));
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // Readers are never blocked.
        assert!(State::open_read_only(&path).is_ok());
    }

    #[test]
    fn a_newer_state_version_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version": 9, "something": "new"}"#).unwrap();
        let msg = State::open_read_only(&path).unwrap_err().to_string();
        assert!(
            msg.contains("version 9") && msg.contains("upgrade castsync"),
            "{msg}"
        );
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        let msg = State::open_read_only(&path).unwrap_err().to_string();
        assert!(
            msg.contains("corrupt") && msg.contains("move it aside"),
            "{msg}"
        );
    }

    #[test]
    fn a_pending_redeploy_survives_a_save_until_it_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        {
            let mut s = State::open(&path).unwrap();
            s.mark_redeploy_pending("p", "bot");
            s.save().unwrap();
        }
        let mut s = State::open(&path).unwrap();
        assert!(s.redeploy_pending("p", "bot"));
        assert!(s.view("p").redeploy_pending("bot"));
        assert!(!s.redeploy_pending("other", "bot"));
        s.clear_redeploy_pending("p", "bot");
        s.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("redeploy_pending"), "{text}");
    }

    #[test]
    fn deleting_the_last_key_of_an_agent_forgets_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(&dir.path().join("s.json")).unwrap();
        s.record_set("p", "bot", "A", &SecretValue::new("1"), None, None);
        s.record_delete("p", "bot", "A");
        assert!(s.records("p", "bot").is_none());
    }

    fn from(revision: &str) -> AppliedFrom {
        AppliedFrom {
            manifest: format!("sha256:{}", "a".repeat(64)),
            schema: "absent".into(),
            settings: format!("sha256:{}", "b".repeat(64)),
            revision: revision.into(),
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn what_an_agent_was_applied_from_survives_a_save_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        {
            let mut s = State::open(&path).unwrap();
            assert!(
                s.change_tracking_gap("p")
                    .unwrap()
                    .starts_with("no state file yet")
            );
            s.record_applied_from("p", "bot", from("c1"));
            s.record_applied_from("p", "other", from("c1"));
            s.save().unwrap();
        }
        let mut s = State::open(&path).unwrap();
        assert_eq!(s.applied_from("p", "bot"), Some(&from("c1")));
        assert_eq!(s.change_tracking_gap("p"), None);
        assert!(
            s.change_tracking_gap("q")
                .unwrap()
                .contains("written for another platform")
        );
        s.forget_applied_from("p", "bot");
        assert_eq!(s.applied_from("p", "bot"), None);
        assert_eq!(s.applied_from_all("p").map(BTreeMap::len), Some(1));
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 2, "{text}");
    }

    #[test]
    fn a_version_1_state_reads_with_its_fingerprints_and_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        {
            let mut s = State::open(&path).unwrap();
            s.record_set("p", "bot", "A", &SecretValue::new(CANARY), None, None);
            s.save().unwrap();
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"version\":2", "\"version\":1");
        std::fs::write(&path, text).unwrap();
        let s = State::open(&path).unwrap();
        assert!(
            s.view("p")
                .applied("bot", "A", &SecretValue::new(CANARY))
                .unwrap()
                .same_value
        );
        let gap = s.change_tracking_gap("p").unwrap();
        assert!(gap.contains("state version 1"), "{gap}");
    }
}
