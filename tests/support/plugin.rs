//! `age-plugin-castsynctest` (tests/plugin), built on first use and put on a PATH of its own.
//!
//! Why it is built here and not by `cargo test` itself: a plugin must be a program named
//! `age-plugin-NAME` on PATH, and a `[[bin]]` of castsync would make every `cargo build` of
//! castsync build the plugin's dependencies too. As a non-default member of the workspace it
//! costs nothing until a plugin test runs; then one `cargo build -p castsync-test-plugin`
//! (about half a minute the first time, mostly age-plugin and chrono, well under a second when
//! it is current) builds it into the same target directory, reusing what castsync's build
//! already compiled. Its dependencies are pinned in the one Cargo.lock, so this works offline
//! after `cargo fetch`. Tests run in parallel processes: cargo's own lock on the target
//! directory makes them wait for one build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's program name.
pub const PLUGIN_BINARY: &str = "age-plugin-castsynctest";

/// Builds the test plugin (when not current) and returns its path.
pub fn test_plugin() -> PathBuf {
    let castsync = super::bin();
    // target/<profile>/castsync
    let profile_dir = castsync.parent().expect("the binary's directory");
    let target_dir = profile_dir.parent().expect("the target directory");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "castsync-test-plugin"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        build.arg("--release");
    }
    if std::env::var_os("CI").is_some() {
        build.arg("--locked");
    }
    let out = build.output().expect("run cargo to build the test plugin");
    assert!(
        out.status.success(),
        "building {PLUGIN_BINARY} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = profile_dir.join(PLUGIN_BINARY);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A directory holding only the test plugin (a symlink to it), for PATH.
pub fn plugin_path_dir(under: &Path) -> PathBuf {
    let dir = under.join("plugin-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(PLUGIN_BINARY);
    if !link.exists() {
        std::os::unix::fs::symlink(test_plugin(), &link).unwrap();
    }
    dir
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// A new identity of the test plugin: (identity line, recipient).
pub fn new_plugin_identity() -> (String, String) {
    let out = Command::new(test_plugin())
        .output()
        .expect("run the test plugin");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("a recipient line")
        .to_owned();
    let identity = text
        .lines()
        .find(|l| l.starts_with("AGE-PLUGIN-CASTSYNCTEST-1"))
        .expect("an identity line")
        .to_owned();
    (identity, recipient)
}
