//! The apply history: one JSON line per change that an apply attempted (and per redeploy),
//! appended to a file next to the state, so "when did this key reach the platform, from which
//! commit, and did it land?" has an answer after the run's output is gone.
//!
//! A line holds the time, the source commit, the platform, the agent, the key, the action,
//! the result and, for a failure, its class and a stable error kind. It must never hold a
//! value, a fingerprint or an error message (a platform's `detail` text is outside input).
//!
//! Writing: only the holder of the state lock appends (every apply holds it), with
//! `O_APPEND`, one `write` per line and one `fsync` per agent batch; the file is created 0600.
//! A line torn by a crash is closed with a newline before the next append, so it never spoils
//! the line after it. Growth is bounded by rotation: an append that finds the file at
//! [`MAX_FILE`] or more first renames it to `FILE.1` (replacing the previous `FILE.1`), so at
//! most two files of about [`MAX_FILE`] each are kept.
//!
//! Reading is bounded too: at most [`MAX_FILE`] plus [`READ_SLACK`] bytes from the end of each
//! file, and a line that does not parse (a torn last line, a hand edit) is counted and
//! skipped, never fatal.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fsread;

/// The `castsync history -o json` and `GET /history` format version; bump on incompatible
/// changes (schemas/history.schema.json).
pub const FORMAT_VERSION: u32 = 1;

/// A history file this large is rotated before the next append: about 35,000 entries of
/// 250 bytes.
pub const MAX_FILE: u64 = 8 * 1024 * 1024;

/// Read beyond [`MAX_FILE`]: the last batch may push a file past the cap before it rotates.
pub const READ_SLACK: u64 = 1024 * 1024;

/// How many entries `GET /history` returns.
pub const DAEMON_ENTRIES: usize = 100;

/// Bytes read from the end of each file for the daemon's last entries: a line is at most
/// about 1.5 KiB (a 256-byte key, a long platform URL), so this holds well over 100.
const DAEMON_TAIL: u64 = 256 * 1024;

/// The history file of the state `state`: its path with `.history.jsonl` in place of `.db`
/// or `.json` (`.castsync/state.db` and `.castsync/state.json` → `.castsync/state.history.jsonl`).
pub fn path_for_state(state: &Path) -> PathBuf {
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".to_owned());
    let stem = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".db"))
        .unwrap_or(&name);
    state.with_file_name(format!("{stem}.history.jsonl"))
}

/// The rotated generation of `path`: `FILE.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// One line of the history. Fields are plain strings so a line written by a newer castsync
/// (a new action or result) still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When the agent's batch finished (RFC 3339, UTC).
    pub time: String,
    /// The source revision: a commit id, or `worktree`.
    #[serde(default)]
    pub commit: Option<String>,
    /// The platform id (base URL or `local://PATH`).
    pub platform: String,
    pub agent: String,
    /// The key; absent for a redeploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `create`, `update`, `replace`, `delete` or `redeploy`.
    pub action: String,
    /// Why an update was planned (`value-changed`, `drifted`, `unverified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `applied`, `failed`, `unverified` (sent, but the verifying list failed),
    /// `not-attempted` or, for a redeploy, `postponed`.
    pub result: String,
    /// `transient` or `terminal` for a failure, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// A stable name for what went wrong (`rate-limited`, `not-listed`, …), never a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What every entry of one apply shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub commit: Option<String>,
    pub platform: String,
}

/// Now, as history entries write it.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The history file could not be written or read.
#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("cannot {action} history file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A FIFO, a device or a directory where the history file should be.
    #[error("history file {} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    /// The history could not be read (`fsread`: not a regular file, I/O).
    #[error("cannot read the history: {0}")]
    Read(#[source] fsread::ReadError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError {
    let path = path.to_owned();
    move |source| HistoryError::Io {
        action,
        path,
        source,
    }
}

/// Appends `entries` to the history at `path` (one agent's batch), then fsyncs. The caller
/// holds the state lock, so no other castsync appends or rotates meanwhile.
pub fn append(path: &Path, entries: &[Entry]) -> Result<(), HistoryError> {
    if entries.is_empty() {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(HistoryError::NotRegular {
                path: path.to_owned(),
            });
        }
        Ok(meta) if meta.len() >= MAX_FILE => {
            std::fs::rename(path, rotated(path)).map_err(io("rotate", path))?;
        }
        _ => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io("open", path))?;
    // A file created by an older tool or by hand keeps no wider permissions than the state.
    let meta = file.metadata().map_err(io("inspect", path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("restrict the permissions of", path))?;
    }
    // A crash mid-line left it without its newline: close it, so this batch's first line
    // starts on a line of its own.
    let mut torn = false;
    if meta.len() > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, meta.len() - 1)
            .map_err(io("read", path))?;
        torn = last[0] != b'\n';
    }
    let mut file = file;
    for (i, entry) in entries.iter().enumerate() {
        let mut line = if torn && i == 0 {
            b"\n".to_vec()
        } else {
            Vec::new()
        };
        serde_json::to_writer(&mut line, entry).expect("an entry serializes: plain strings");
        line.push(b'\n');
        // One write per line: with O_APPEND each lands whole at the end. (write_all only
        // loops on a short write, which a regular file gives on a full disk; the next append
        // then closes the torn line.)
        file.write_all(&line).map_err(io("append to", path))?;
    }
    file.sync_data().map_err(io("sync", path))
}

/// What a read found.
#[derive(Debug, Default)]
pub struct Read {
    /// Entries, oldest first.
    pub entries: Vec<Entry>,
    /// Lines that did not parse (a torn last line, a hand edit).
    pub skipped: usize,
    /// Older lines were not read: a file was larger than the read bound.
    pub truncated: bool,
}

impl Read {
    /// The entries about `agent` (every agent's when `None`) stamped at or after `since`
    /// (all when `None`; an entry whose time does not parse is then left out).
    pub fn select(&self, agent: Option<&str>, since: Option<OffsetDateTime>) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| agent.is_none_or(|a| e.agent == a))
            .filter(|e| since.is_none_or(|since| entry_time(e).is_some_and(|t| t >= since)))
            .collect()
    }

    /// The agents the entries name, sorted, each once.
    pub fn agents(&self) -> Vec<&str> {
        let mut agents: Vec<&str> = self.entries.iter().map(|e| e.agent.as_str()).collect();
        agents.sort_unstable();
        agents.dedup();
        agents
    }
}

/// Reads both generations of the history at `path` (`FILE.1`, then `FILE`), each bounded to
/// its last [`MAX_FILE`] + [`READ_SLACK`] bytes. A missing file is empty.
pub fn read(path: &Path) -> Result<Read, HistoryError> {
    read_bounded(path, MAX_FILE + READ_SLACK, usize::MAX)
}

/// The last `n` entries (oldest first), reading at most a small tail of each file: for the
/// daemon's `GET /history`.
pub fn last(path: &Path, n: usize) -> Result<Read, HistoryError> {
    read_bounded(path, DAEMON_TAIL, n)
}

fn read_bounded(path: &Path, bound: u64, want: usize) -> Result<Read, HistoryError> {
    let mut out = read_tail(path, bound)?;
    if out.entries.len() < want {
        let older = read_tail(&rotated(path), bound)?;
        let mut entries = older.entries;
        entries.append(&mut out.entries);
        out = Read {
            entries,
            skipped: older.skipped + out.skipped,
            truncated: older.truncated || out.truncated,
        };
    }
    if out.entries.len() > want {
        out.entries.drain(..out.entries.len() - want);
    }
    Ok(out)
}

/// The complete lines among the last `bound` bytes of one file.
fn read_tail(path: &Path, bound: u64) -> Result<Read, HistoryError> {
    let (bytes, truncated) = match fsread::read_tail(path, bound) {
        Ok(read) => read,
        Err(e) if e.is_not_found() => return Ok(Read::default()),
        Err(e) => return Err(HistoryError::Read(e)),
    };
    let mut text: &[u8] = &bytes;
    if truncated {
        // Started mid-file: the first (partial) line is not ours to judge.
        text = match text.iter().position(|&b| b == b'\n') {
            Some(i) => &text[i + 1..],
            None => &[],
        };
    }
    let mut out = Read {
        truncated,
        ..Read::default()
    };
    for line in text.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            // The last line, still without its newline: a batch torn by a crash (or being
            // written right now).
            out.skipped += 1;
            continue;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(entry) => out.entries.push(entry),
            Err(_) => out.skipped += 1,
        }
    }
    Ok(out)
}

/// The versioned JSON document of `castsync history -o json` and `GET /history`
/// (schemas/history.schema.json). `file` is named for the command line only: the daemon does
/// not tell HTTP clients where its files are.
pub fn document(entries: &[&Entry], read: &Read, file: Option<&Path>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "format_version": FORMAT_VERSION,
        "entries": entries,
        "skipped_lines": read.skipped,
        "truncated": read.truncated,
    });
    if let Some(file) = file {
        doc["history_file"] = file.display().to_string().into();
    }
    doc
}

/// The time of an entry, when it parses.
pub fn entry_time(entry: &Entry) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(&entry.time, &Rfc3339).ok()
}

#[cfg(test)]
mod tests;
