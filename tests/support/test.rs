//! `Test`: one run of the binary, built fluently and asserted on fluently, in the manner of
//! casey/just's test builder:
//!
//! ```ignore
//! Test::new()
//!     .write("castsync.yaml", "version: 1\n")
//!     .args(["validate"])
//!     .run()
//!     .code(1)
//!     .stdout_has("error: castsync.yaml");
//! ```
//!
//! A test states the files, the arguments and what must come out, and nothing else. Every run
//! goes through [`super::Command`], so its stderr is checked for a panic whatever the test
//! expects; every failed assertion prints the command line and both streams.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{Command, SecretsRepo, assert_no_canary, castsync};

/// A command line to run, with the files it needs.
#[must_use = "a Test does nothing until .run()"]
pub struct Test {
    /// The temporary directory this test owns (`Test::new`), kept until its [`Run`] is dropped.
    tmp: Option<TempDir>,
    /// Where [`Test::write`] puts files: the test's own directory, or a repository's root.
    root: PathBuf,
    home: PathBuf,
    cmd: Command,
    /// The arguments as given, for failure messages.
    shown: Vec<OsString>,
}

impl Test {
    /// A fresh temporary directory as the working directory, its `home/` as HOME, and the
    /// hermetic environment of [`castsync`] (no inherited castsync or Castari variables).
    pub fn new() -> Test {
        let tmp = TempDir::new().expect("tempdir");
        let root = tmp.path().to_owned();
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create HOME");
        let mut cmd = castsync(&home);
        cmd.current_dir(&root);
        Test {
            tmp: Some(tmp),
            root,
            home,
            cmd,
            shown: Vec::new(),
        }
    }

    /// `castsync -C ROOT -i KEY` on a secrets repository, in its hermetic HOME; `write` puts
    /// files under the repository's root.
    pub fn in_repo(repo: &SecretsRepo) -> Test {
        Test::with(repo.cmd(), &repo.root, &repo.home).shown(["-C", "REPO", "-i", "KEY"])
    }

    /// The bare binary with `home` as HOME (no `-C`, no `-i`); `write` puts files under `home`.
    pub fn at_home(home: &Path) -> Test {
        Test::with(castsync(home), home, home)
    }

    /// An already prepared command (e.g. [`SecretsRepo::reconcile`]); `write` puts files under
    /// `root`.
    pub fn with(cmd: Command, root: &Path, home: &Path) -> Test {
        Test {
            tmp: None,
            root: root.to_owned(),
            home: home.to_owned(),
            cmd,
            shown: Vec::new(),
        }
    }

    fn shown<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Test {
        self.shown
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The directory `write` writes into (and, for `Test::new`, the working directory).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// HOME for the run.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Writes `text` to `path` under [`Test::dir`] (an absolute path as it is), creating its
    /// directories.
    pub fn write(self, path: impl AsRef<Path>, text: impl AsRef<[u8]>) -> Test {
        let path = self.root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the file's directory");
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Test {
        self.cmd.arg(arg.as_ref());
        self.shown.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(self, args: I) -> Test {
        args.into_iter().fold(self, Test::arg)
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Test {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Test {
        self.cmd.env_remove(key);
        self
    }

    /// Runs in `dir` (relative to [`Test::dir`], or absolute).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Test {
        self.cmd.current_dir(self.root.join(dir));
        self
    }

    /// Kills the run after `timeout` (a hung command fails the test instead of the suite).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Test {
        self.cmd.timeout(timeout);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Test {
        self.cmd.write_stdin(input);
        self
    }

    /// Runs the command (its stderr checked for a panic) and keeps what it printed.
    pub fn run(mut self) -> Run {
        let out = self.cmd.output().expect("run castsync");
        let line = self
            .shown
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        Run {
            command: format!("castsync {line}"),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            root: self.root,
            home: self.home,
            _tmp: self.tmp,
        }
    }
}

/// What one run printed and how it exited. The assertions take and return the run, so they
/// chain; each failure shows the command line and both streams.
#[derive(Debug)]
pub struct Run {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
    root: PathBuf,
    home: PathBuf,
    _tmp: Option<TempDir>,
}

impl Run {
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}\n--- exit code: {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Exit code 0.
    #[track_caller]
    pub fn success(self) -> Run {
        self.code(0)
    }

    /// Exit code 1 (an error; also every usage error).
    #[track_caller]
    pub fn failure(self) -> Run {
        self.code(1)
    }

    /// Exactly this exit code (-1: killed by a signal).
    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        if self.code != expected {
            self.fail(&format!("expected exit code {expected}"));
        }
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: impl AsRef<str>) -> Run {
        let needle = needle.as_ref();
        if !self.stdout.contains(needle) {
            self.fail(&format!("stdout lacks {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stdout_lacks(self, needle: impl AsRef<str>) -> Run {
        let needle = needle.as_ref();
        if self.stdout.contains(needle) {
            self.fail(&format!("stdout has {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: impl AsRef<str>) -> Run {
        let needle = needle.as_ref();
        if !self.stderr.contains(needle) {
            self.fail(&format!("stderr lacks {needle:?}"));
        }
        self
    }

    #[track_caller]
    pub fn stderr_lacks(self, needle: impl AsRef<str>) -> Run {
        let needle = needle.as_ref();
        if self.stderr.contains(needle) {
            self.fail(&format!("stderr has {needle:?}"));
        }
        self
    }

    /// Some line of stdout holds every one of `parts`.
    #[track_caller]
    pub fn stdout_line_with(self, parts: &[&str]) -> Run {
        if !self
            .stdout
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
        {
            self.fail(&format!("no line of stdout holds all of {parts:?}"));
        }
        self
    }

    /// Some line of stderr holds every one of `parts`.
    #[track_caller]
    pub fn stderr_line_with(self, parts: &[&str]) -> Run {
        if !self
            .stderr
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
        {
            self.fail(&format!("no line of stderr holds all of {parts:?}"));
        }
        self
    }

    /// Stdout is exactly `expected`.
    #[track_caller]
    pub fn stdout_is(self, expected: impl AsRef<str>) -> Run {
        if self.stdout != expected.as_ref() {
            self.fail(&format!("stdout is not {:?}", expected.as_ref()));
        }
        self
    }

    /// Stderr is exactly `expected`.
    #[track_caller]
    pub fn stderr_is(self, expected: impl AsRef<str>) -> Run {
        if self.stderr != expected.as_ref() {
            self.fail(&format!("stderr is not {:?}", expected.as_ref()));
        }
        self
    }

    /// Either stream has `needle` (for messages whose stream does not matter to the test).
    #[track_caller]
    pub fn output_has(self, needle: impl AsRef<str>) -> Run {
        let needle = needle.as_ref();
        if !self.stdout.contains(needle) && !self.stderr.contains(needle) {
            self.fail(&format!("neither stream has {needle:?}"));
        }
        self
    }

    /// None of `canaries` appears on stdout or stderr.
    #[track_caller]
    pub fn no_canary(self, canaries: &[&str]) -> Run {
        assert_no_canary(&format!("{} stdout", self.command), &self.stdout, canaries);
        assert_no_canary(&format!("{} stderr", self.command), &self.stderr, canaries);
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")))
    }

    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Both streams, stdout first.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn exit_code(&self) -> i32 {
        self.code
    }

    /// A path under the test's directory (files the run wrote).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }
}
