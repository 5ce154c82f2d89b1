//! The state file's lock: one writer at a time, whoever it is (`castsync reconcile`, or a
//! `castsync watch` holding it for its whole life).
//!
//! The lock is an advisory `flock` on `STATE.lock`, which the kernel releases when its holder
//! dies, so a crashed holder never blocks the next one. The holder writes `pid=N host=H` into
//! the file, so whoever finds the lock taken can say who holds it — two daemons on one state
//! directory (a rolling update, a copied unit file) would apply different commits in turn —
//! and clears it on a clean exit, so text found under a free lock means the last holder died.
//!
//! On a filesystem without `flock` support (some network filesystems) the recorded holder is
//! all there is: a live pid on this host, or any pid on another host, holds the lock; a dead
//! pid on this host is a stale lock and is taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StateError;

/// Who holds a lock, as recorded in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The host name; empty in files written before it was recorded.
    pub host: String,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
        }
    }

    /// `pid=N host=H`, or the bare pid older versions wrote.
    fn parse(text: &str) -> Option<Holder> {
        let text = text.trim();
        if let Ok(pid) = text.parse() {
            return Some(Holder {
                pid,
                host: String::new(),
            });
        }
        let mut pid = None;
        let mut host = String::new();
        for field in text.split_ascii_whitespace() {
            match field.split_once('=') {
                Some(("pid", v)) => pid = v.parse().ok(),
                Some(("host", v)) => host = v.to_owned(),
                _ => {}
            }
        }
        Some(Holder { pid: pid?, host })
    }

    fn line(&self) -> String {
        format!("pid={} host={}\n", self.pid, self.host)
    }

    /// Whether the holder still runs, as far as this host can tell: `None` for another host.
    fn alive(&self) -> Option<bool> {
        if !self.host.is_empty() && self.host != host_name() {
            return None;
        }
        let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) else {
            return Some(false);
        };
        // Signal 0 checks for existence; EPERM means it exists under another user.
        Some(match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        })
    }

    /// ` (pid N on host H)` for messages.
    fn describe(&self) -> String {
        if self.host.is_empty() {
            format!(" (pid {})", self.pid)
        } else {
            format!(
                " (pid {} on host {})",
                self.pid,
                crate::escape::terminal(&self.host)
            )
        }
    }
}

/// This machine's name (in Kubernetes, the pod's), or `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A held lock; clears the holder line when dropped (the kernel releases the `flock`).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// `FILE.lock`: the lock of the state whose file is (or was) `FILE`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    PathBuf::from(lock_path)
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

/// Takes the lock file `lock` of the state at `path` (named in errors) at once, or fails
/// naming its holder.
pub fn acquire(lock: &Path, path: &Path) -> Result<Lock, StateError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(io("open the lock of"))?;
    let locked = |holder: Option<Holder>| StateError::Locked {
        path: path.to_owned(),
        holder: holder.map(|h| h.describe()).unwrap_or_default(),
    };
    match file.try_lock() {
        Ok(()) => {
            if let Some(stale) = read_holder(&mut file) {
                tracing::info!(
                    pid = stale.pid,
                    host = %stale.host,
                    "the last holder of the state lock did not exit cleanly; lock taken over"
                );
            }
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            // The holder writes its line right after taking the lock; when both started at
            // the same instant, give it a moment to do so.
            let mut holder = None;
            for _ in 0..10 {
                holder = read_holder(&mut file);
                if holder.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            return Err(locked(holder));
        }
        Err(std::fs::TryLockError::Error(source)) if unsupported(&source) => {
            match read_holder(&mut file) {
                Some(h) if h.pid != std::process::id() && h.alive() != Some(false) => {
                    return Err(locked(Some(h)));
                }
                Some(h) => tracing::warn!(
                    pid = h.pid,
                    "the filesystem does not support locks; the recorded holder is gone, lock taken over"
                ),
                None => tracing::warn!(
                    "the filesystem does not support locks; relying on the recorded holder"
                ),
            }
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io("lock")(source)),
    }
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(Holder::me().line().as_bytes()))
        .map_err(io("record the holder in the lock of"))?;
    Ok(Lock { file })
}

/// `flock` is not available on this filesystem (as opposed to held by someone).
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_host() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let first = acquire(&lock_path(&state), &state).unwrap();
        let err = acquire(&lock_path(&state), &state).unwrap_err().to_string();
        let me = Holder::me();
        assert!(
            err.contains(&format!("(pid {} on host {})", me.pid, me.host)),
            "{err}"
        );
        drop(first);
        // A clean exit clears the line: the next holder finds nothing stale.
        assert_eq!(std::fs::read_to_string(lock_path(&state)).unwrap(), "");
        let _again = acquire(&lock_path(&state), &state).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock_path(&state)).unwrap(),
            me.line()
        );
    }

    #[test]
    fn a_line_left_by_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = Holder {
            pid: dead,
            host: host_name(),
        };
        assert_eq!(stale.alive(), Some(false));
        std::fs::write(lock_path(&state), stale.line()).unwrap();
        let _lock = acquire(&lock_path(&state), &state).unwrap();
        assert_eq!(
            read_holder(&mut File::open(lock_path(&state)).unwrap()),
            Some(Holder::me())
        );
    }

    #[test]
    fn holders_parse_in_both_forms_and_another_hosts_pid_is_not_judged() {
        assert_eq!(
            Holder::parse("4242"),
            Some(Holder {
                pid: 4242,
                host: String::new()
            })
        );
        let other = Holder::parse("pid=7 host=elsewhere-7f3a\n").unwrap();
        assert_eq!(other.host, "elsewhere-7f3a");
        assert_eq!(other.alive(), None);
        assert_eq!(Holder::me().alive(), Some(true));
        assert_eq!(Holder::parse("garbage"), None);
        assert_eq!(Holder::parse(""), None);
    }
}
