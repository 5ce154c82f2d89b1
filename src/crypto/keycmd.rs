//! `CASTSYNC_AGE_KEY_CMD`: a command whose stdout is an identity (as sops'
//! `SOPS_AGE_KEY_CMD`), so the key can live in a password manager (`op read …`,
//! `pass show …`, `bw get notes …`) instead of a file.
//!
//! The command runs through `sh -c` with stdin closed (a value meant for `castsync set` on
//! stdin must never reach it; a password manager that prompts uses the terminal), its stderr
//! passed through so its prompts and errors are seen, its stdout read into a zeroize-on-drop
//! buffer of at most [`MAX_OUTPUT`] bytes, and a time limit. The output is never logged and
//! never quoted in an error; neither is the command (it may carry a session token).
//!
//! The time limit covers the output too: once the command has exited, what it printed is read
//! for at most [`GRACE`] more. A command that leaves a process running in the background with
//! its stdout (a password manager starting its agent) has given its answer when it exits; the
//! background process keeps the pipe, castsync does not wait for it.
//!
//! Without a terminal (CI, the daemon) the command gets a process group of its own, so that a
//! timeout stops everything it started. With one it stays in castsync's group: a password
//! manager asking on the terminal must be in the foreground group to read it; a timeout then
//! stops the command itself, and castsync does not wait for anything it left behind.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt as _;
use zeroize::Zeroizing;

use super::CryptoError;

/// The most a key command may print: an identity file is a few hundred bytes, an OpenSSH
/// RSA key a few KiB.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How long the command may take unless `CASTSYNC_AGE_KEY_CMD_TIMEOUT` says otherwise: long
/// enough to unlock a password manager by hand.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the output is read after the command exits, for what is still in the pipe.
const GRACE: Duration = Duration::from_millis(200);

/// What the reading thread sends: a piece of the output, or how the reading ended.
enum Piece {
    Bytes(Zeroizing<Vec<u8>>),
    End(std::io::Result<()>),
}

/// Runs `command` and returns what it printed on stdout.
pub fn run(command: &str, timeout: Duration) -> Result<Zeroizing<String>, CryptoError> {
    let fail = |reason: String| CryptoError::KeyCommand { reason };
    let own_group = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err();
    let mut command = shell(command);
    #[cfg(unix)]
    if own_group {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("could not be started ({})", e.kind())))?;
    let Some(mut stdout) = child.stdout.take() else {
        return Err(fail("could not be started (no stdout)".to_owned()));
    };
    // Read on a thread so that the time limit holds even while the command writes nothing.
    let (tx, pieces) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut chunk = Zeroizing::new([0u8; 4096]);
        let mut total = 0;
        let end = loop {
            match stdout.read(&mut chunk[..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    total += n;
                    if tx
                        .send(Piece::Bytes(Zeroizing::new(chunk[..n].to_vec())))
                        .is_err()
                    {
                        return;
                    }
                    // Closing our end makes a command that prints more stop on a broken pipe.
                    if total > MAX_OUTPUT {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(Piece::End(end));
    });
    let started = Instant::now();
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            #[cfg(unix)]
            if own_group {
                use rustix::process::{Pid, Signal, kill_process_group};
                let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "did not finish within {}s and was stopped (CASTSYNC_AGE_KEY_CMD_TIMEOUT sets the limit in seconds)",
                timeout.as_secs_f64()
            )));
        }
        Err(e) => {
            let _ = child.kill();
            return Err(fail(format!("could not be waited for ({})", e.kind())));
        }
    };
    let left = timeout.saturating_sub(started.elapsed());
    let bytes = collect(&pieces, GRACE.min(left))
        .map_err(|e| fail(format!("output could not be read ({})", e.kind())))?;
    if bytes.len() > MAX_OUTPUT {
        return Err(fail(format!(
            "printed more than {} KiB on stdout, too much for an identity",
            MAX_OUTPUT / 1024
        )));
    }
    if !status.success() {
        return Err(fail(match status.code() {
            Some(code) => format!("failed (exit status {code}; its own message, if any, is above)"),
            None => "was killed by a signal".to_owned(),
        }));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(fail("printed nothing on stdout".to_owned()));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(fail("printed something that is not UTF-8 text".to_owned())),
    }
}

/// The output of a command that has exited: the pieces read so far, and those that come
/// within `patience` (what was still in the pipe). At most [`MAX_OUTPUT`] + 1 bytes.
fn collect(pieces: &Receiver<Piece>, patience: Duration) -> std::io::Result<Zeroizing<Vec<u8>>> {
    // Reserved up front: the buffer never reallocates and leaves no copy of the key.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_OUTPUT + 1));
    let until = Instant::now() + patience;
    loop {
        match pieces.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Piece::Bytes(piece)) => {
                let room = MAX_OUTPUT + 1 - bytes.len();
                bytes.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            Ok(Piece::End(end)) => return end.map(|()| bytes),
            // Something it left running holds the pipe: the answer is what it printed.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Ok(bytes),
        }
    }
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn err(command: &str, timeout: Duration) -> String {
        run(command, timeout).unwrap_err().to_string()
    }

    #[test]
    fn the_output_of_a_command_is_returned() {
        let out = run("printf '%s\\n' AGE-SECRET-KEY-1X", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(out.as_str(), "AGE-SECRET-KEY-1X\n");
    }

    #[test]
    fn a_failing_command_says_so_without_quoting_itself_or_its_output() {
        let msg = err("echo canary-keycmd-out; exit 3", DEFAULT_TIMEOUT);
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
    }

    #[test]
    fn a_command_that_hangs_is_stopped_at_the_time_limit() {
        let msg = err("sleep 30", Duration::from_millis(200));
        assert!(msg.contains("did not finish within 0.2s"), "{msg}");
    }

    #[test]
    fn too_much_output_and_no_output_are_refused() {
        let msg = err("yes AGE-SECRET-KEY | head -c 200000", DEFAULT_TIMEOUT);
        assert!(msg.contains("more than 64 KiB"), "{msg}");
        assert!(err("true", DEFAULT_TIMEOUT).contains("printed nothing"));
    }

    #[test]
    fn a_background_child_holding_stdout_does_not_hold_up_the_answer() {
        let started = Instant::now();
        let out = run(
            "printf '%s\\n' AGE-SECRET-KEY-1X; (sleep 10) 2>/dev/null &",
            Duration::from_secs(3),
        )
        .unwrap();
        assert_eq!(out.as_str(), "AGE-SECRET-KEY-1X\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_command_gets_no_stdin() {
        // `cat` ends at once on a closed stdin: nothing is read, nothing is printed.
        assert!(err("cat", DEFAULT_TIMEOUT).contains("printed nothing"));
    }
}
