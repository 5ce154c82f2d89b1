//! Running the user's editor on a private scratch file, and staying alive through the
//! signals that arrive meanwhile so that the scratch file is always removed.
//!
//! Ctrl-C reaches the whole foreground process group: the editor decides what it means (vim
//! ignores it, nano cancels a prompt) and castsync keeps waiting for it; if the editor dies of
//! it, that is an abort. SIGTERM and SIGHUP, sent to castsync alone, stop the editor and
//! abort. In every case `Scratch`'s destructor removes the directory. The handlers are tokio's
//! (installing them replaces the default "terminate" action); the editor starts with the
//! default actions again, since handlers do not survive `exec`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use thiserror::Error;
use tokio::signal::unix::{Signal, SignalKind, signal};
use zeroize::Zeroizing;

/// Why an editor session could not run.
#[derive(Debug, Error)]
pub enum EditorError {
    #[error("cannot create a private temporary directory for the editor")]
    ScratchDir(#[source] std::io::Error),
    #[error("cannot write the temporary file for the editor")]
    ScratchWrite(#[source] std::io::Error),
    #[error("cannot read the edited file {} (did the editor move it?)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::fsread::ReadError,
    },
    #[error("cannot install a signal handler")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the editor {program:?}")]
    Start {
        program: OsString,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for the editor")]
    Wait(#[source] std::io::Error),
}

impl crate::hint::Hinted for EditorError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            EditorError::Start { .. } => Some(
                "set VISUAL or EDITOR to an editor that waits until you close the file (e.g. `code --wait`)".into(),
            ),
            _ => None,
        }
    }
}

/// A private temporary directory holding the one file the editor opens; removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Scratch {
    /// `$TMPDIR/castsync-edit-XXXX/` (mode 0700) with `SLUG.secrets.yaml` (mode 0600).
    pub fn create(slug: &str, text: &str) -> Result<Scratch, EditorError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let dir = tempfile::Builder::new()
            .prefix("castsync-edit-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(EditorError::ScratchDir)?;
        let file = dir.path().join(format!("{slug}.secrets.yaml"));
        let scratch = Scratch { dir, file };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&scratch.file)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(EditorError::ScratchWrite)?;
        Ok(scratch)
    }

    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The edited text, or `None` when it is not UTF-8.
    pub fn read(&self) -> Result<Option<Zeroizing<String>>, EditorError> {
        // Capped like a manifest file: the editor may have replaced it with anything.
        let bytes = crate::fsread::read_secret_file(&self.file, crate::fsread::MAX_REPO_FILE)
            .map_err(|source| EditorError::Read {
                path: self.file.clone(),
                source,
            })?;
        Ok(std::str::from_utf8(&bytes)
            .ok()
            .map(|t| Zeroizing::new(t.to_owned())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // TempDir removes the directory and everything the editor left in it; said here so
        // that a failure to remove it is at least visible.
        if let Err(e) = std::fs::remove_dir_all(self.dir.path())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            crate::say!(
                "warning: could not remove the temporary directory {}: {e}; delete it by hand",
                self.dir.path().display()
            );
        }
    }
}

/// The signals castsync handles while the editor runs (and while it asks to reopen it).
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

/// How an editor session ended.
pub enum Ended {
    /// The editor exited with status 0.
    Saved,
    /// The editor failed: a non-zero status, or death by a signal.
    Failed(ExitStatus),
    /// castsync was told to stop (SIGTERM, SIGHUP; SIGINT while asking to reopen).
    Signalled(&'static str),
}

impl Signals {
    pub fn install() -> Result<Signals, EditorError> {
        let handler = |kind| signal(kind).map_err(EditorError::Signals);
        Ok(Signals {
            interrupt: handler(SignalKind::interrupt())?,
            terminate: handler(SignalKind::terminate())?,
            hangup: handler(SignalKind::hangup())?,
        })
    }

    /// One line from stdin, or `None` at end of input or on any of the signals (Ctrl-C at a
    /// prompt means "no").
    pub async fn read_line(&mut self) -> std::io::Result<Option<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread, not the blocking pool: if a signal wins, the process exits without
        // waiting for this read to return.
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::stdin()
                .read_line(&mut line)
                .map(|n| (n > 0).then_some(line));
            let _ = tx.send(read);
        });
        tokio::select! {
            answer = rx => answer.unwrap_or(Ok(None)),
            _ = self.interrupt.recv() => Ok(None),
            _ = self.terminate.recv() => Ok(None),
            _ = self.hangup.recv() => Ok(None),
        }
    }
}

/// Runs the editor on `file` and waits for it, through the signals above.
pub async fn run(file: &Path, signals: &mut Signals) -> Result<Ended, EditorError> {
    let (program, args) = editor_command();
    let mut child = tokio::process::Command::new(&program)
        .args(&args)
        .arg(file)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EditorError::Start { program, source })?;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(EditorError::Wait)?;
                return Ok(if status.success() { Ended::Saved } else { Ended::Failed(status) });
            }
            // The editor received it too; what it does decides.
            _ = signals.interrupt.recv() => {
                tracing::debug!("SIGINT while the editor runs: left to the editor");
            }
            _ = signals.terminate.recv() => return Ok(stop(child, "SIGTERM").await),
            _ = signals.hangup.recv() => return Ok(stop(child, "SIGHUP").await),
        }
    }
}

async fn stop(mut child: tokio::process::Child, signal: &'static str) -> Ended {
    let _ = child.kill().await;
    Ended::Signalled(signal)
}

/// `$VISUAL`, else `$EDITOR`, else `vi`. Like git, a value with spaces or shell syntax
/// (`code --wait`, a quoted path) runs through `sh -c '… "$@"'`; a plain one runs directly.
fn editor_command() -> (OsString, Vec<OsString>) {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("vi"));
    let plain = editor.to_str().is_some_and(|e| {
        !e.contains(|c: char| c.is_whitespace() || "|&;<>()$`\\\"'*?[#~=%".contains(c))
    });
    if plain {
        (editor, Vec::new())
    } else {
        let mut script = editor.clone();
        script.push(" \"$@\"");
        (OsString::from("sh"), vec!["-c".into(), script, editor])
    }
}
