//! Golden snapshots of `--help` for `castsync` and every subcommand, so a change to the
//! command line shows up in review as a diff of what users read.
//!
//! The commands come from walking clap's command tree, so a new subcommand gets a snapshot
//! without touching this file: its first run fails with a new `.snap.new` file to review.
//! After changing a flag or a help text, update the snapshots with
//!
//! ```text
//! INSTA_UPDATE=always cargo test --test tests help::
//! ```
//!
//! (or `cargo insta test --review` when cargo-insta is installed), then review the diff of
//! `tests/snapshots/tests__help__*.snap` before committing it. A snapshot left behind by a
//! removed subcommand fails [`no_snapshot_is_left_for_a_command_that_is_gone`].

use clap::CommandFactory as _;

use crate::support::*;

/// Every command line `castsync … --help` can be asked for: `["castsync"]`,
/// `["castsync", "reconcile"]`, … (nested subcommands included; clap's own `help` left out).
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        out.push(path.to_vec());
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut sub_path = path.to_vec();
            sub_path.push(sub.get_name().to_owned());
            walk(sub, &sub_path, out);
        }
    }
    let mut out = Vec::new();
    walk(
        &castsync::cli::Cli::command(),
        &["castsync".to_owned()],
        &mut out,
    );
    out
}

/// The snapshot's name: `castsync`, `castsync-reconcile`, …
fn snapshot_name(path: &[String]) -> String {
    path.join("-")
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    let paths = command_paths();
    assert!(paths.len() > 15, "only {} commands found", paths.len());
    let mut mismatched = Vec::new();
    for path in &paths {
        // A fixed width: clap wraps help to the terminal (COLUMNS when it is set).
        let run = Test::new()
            .env("COLUMNS", "100")
            .args(&path[1..])
            .arg("--help")
            .run()
            .success();
        let name = snapshot_name(path);
        let help = run.stdout().to_owned();
        // Check every command before failing, so one run writes every `.snap.new`.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            insta::assert_snapshot!(name.clone(), help)
        }));
        if checked.is_err() {
            mismatched.push(name);
        }
    }
    assert!(
        mismatched.is_empty(),
        "--help changed (or has no snapshot yet) for {mismatched:?}; if that is intended, update the snapshots with \
         `INSTA_UPDATE=always cargo test --test tests help::` and review their diff"
    );
}

#[test]
fn no_snapshot_is_left_for_a_command_that_is_gone() {
    let known: Vec<String> = command_paths()
        .iter()
        .map(|p| format!("tests__help__{}.snap", snapshot_name(p)))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/snapshots")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with("tests__help__") && n.ends_with(".snap"))
        .filter(|n| !known.contains(n))
        .collect();
    assert!(
        stale.is_empty(),
        "snapshots of commands that no longer exist (delete them): {stale:?}"
    );
}
