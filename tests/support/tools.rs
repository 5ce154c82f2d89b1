//! Outside programs that some tests need (age, ssh-keygen, promtool, the example linters,
//! systemd-analyze, chromium). On a machine with only Rust and git the suite must still pass: a test
//! whose program is missing prints one visible line naming what to install and returns early.
//! With `CI` set a missing program fails the test instead, so a broken install in CI can never
//! pass as a skipped check (`.ci/run` installs them all).
//!
//! This file is also compiled into the library's unit tests (`#[path]` include), so it uses
//! std only.

use std::io::Write as _;
use std::path::PathBuf;

/// What to install for each program, as told to the person running the tests.
const INSTALL: &[(&str, &str)] = &[
    ("age", "apt-get install age"),
    ("age-keygen", "apt-get install age"),
    ("ssh-keygen", "apt-get install openssh-client"),
    ("promtool", "apt-get install prometheus"),
    ("systemd-analyze", "apt-get install systemd"),
    ("action-validator", "bash .ci/install-linters"),
    ("hadolint", "bash .ci/install-linters"),
    ("yamllint", "bash .ci/install-linters"),
    ("kubernetes-validate", "bash .ci/install-linters"),
    ("shellcheck", "bash .ci/install-linters"),
    ("zip", "apt-get install zip"),
    ("unzip", "apt-get install unzip"),
    ("setsid", "apt-get install util-linux"),
    ("openssl", "apt-get install openssl"),
    ("python3", "apt-get install python3"),
    ("curl", "apt-get install curl"),
    ("actionlint", "bash .ci/install-linters"),
    ("chromium", "apt-get install chromium"),
    ("pre-commit", "apt-get install pre-commit"),
];

/// The program `name` found on PATH, or None after one line on the real stderr saying
/// which test is skipped and what to install. Panics when `CI` is set and it is missing.
pub fn tool(name: &str) -> Option<PathBuf> {
    tools(&[name]).map(|mut found| found.remove(0))
}

/// Like [`tool`] for a test that needs several programs: all of them, or None after one line
/// naming every missing one.
pub fn tools(names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| on_path(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let mut install: Vec<&str> = missing.iter().map(|n| install_hint(n)).collect();
    install.dedup();
    skip(&format!(
        "{} (install: {})",
        missing.join(", "),
        install.join("; ")
    ));
    None
}

/// For a test that needs something other than a program (a built file, say): one line on
/// the real stderr saying which test is skipped and why; a panic instead when `CI` is set.
/// `needs` says what is missing and how to get it.
pub fn skip(needs: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    let needs = format!("{test} needs {needs}");
    assert!(
        std::env::var_os("CI").is_none(),
        "{needs}: with CI set a missing program fails the test (.ci/run installs them all)"
    );
    let line = format!("skipped: {needs}");
    // Straight to the process's stderr, past the test harness's capture of `eprintln!`, so
    // the skip shows in a plain `cargo test` run.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A Python that can `import module`: `CASTSYNC_TEST_PYTHON` when set (`.ci/run` points it at
/// a venv), else `python3` on PATH. None after one visible line when there is none; with `CI`
/// set, a panic (as for [`tool`]).
#[allow(dead_code)] // the library's unit tests include this file and do not use it
pub fn python_with(module: &str, install: &str) -> Option<PathBuf> {
    let python = match std::env::var_os("CASTSYNC_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => on_path("python3"),
    };
    let imports = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if imports {
        return python;
    }
    skip(&format!("Python with {module} (install: {install})"));
    None
}

fn install_hint(name: &str) -> &'static str {
    INSTALL
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("it from your distribution", |(_, how)| how)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
