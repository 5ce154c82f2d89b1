//! The git diff driver (`castsync textconv`) and `castsync diff`: key names and keyed
//! fingerprints, never values.

use std::collections::BTreeSet;

use crate::support::*;

const CANARIES: &[&str] = &[
    "canary-diff-1f0e-aaa",
    "canary-diff-1f0e-bbb",
    "canary-diff-1f0e-ccc",
];

/// A repo with two commits: B changed, C removed, D added, A unchanged.
fn two_commits() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitattributes"), "*.yaml.age diff=castsync\n").unwrap();
    repo.agent(
        "bot",
        &[("A", "same-value"), ("B", CANARIES[0]), ("C", CANARIES[1])],
    );
    repo.commit_all("first");
    repo.agent(
        "bot",
        &[("A", "same-value"), ("B", CANARIES[2]), ("D", "new-value")],
    );
    repo.commit_all("second");
    let driver = format!(
        "{} -i {} textconv",
        bin().display(),
        repo.key_file.display()
    );
    repo.git(&["config", "diff.castsync.textconv", &driver]);
    repo
}

/// Key names on `+`/`-` lines of a diff of the manifest only.
fn changed_keys(diff: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut added = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut in_manifest = false;
    for line in diff.lines() {
        if line.starts_with("diff --git") || line.starts_with("--- ") {
            in_manifest = line.contains("secrets.yaml.age");
            continue;
        }
        if !in_manifest || line.starts_with("+++") {
            continue;
        }
        let key = |l: &str| {
            l[1..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        if line.starts_with('+') {
            added.insert(key(line));
        } else if line.starts_with('-') {
            removed.insert(key(line));
        }
    }
    (added, removed)
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn git_diff_through_the_driver_shows_exactly_the_added_removed_and_changed_keys() {
    let repo = two_commits();
    let diff = repo.git(&["diff", "HEAD~1", "--", "agents/bot/secrets.yaml.age"]);
    let (added, removed) = changed_keys(&diff);
    assert_eq!(added, set(&["B", "D"]), "{diff}");
    assert_eq!(removed, set(&["B", "C"]), "{diff}");
    assert!(
        diff.contains(" A "),
        "unchanged key shown as context:\n{diff}"
    );
    assert_no_canary("git diff", &diff, CANARIES);

    let log = repo.git(&["log", "-p"]);
    assert_no_canary("git log -p", &log, CANARIES);
    assert!(log.contains("+C "), "{log}");
}

#[test]
fn the_driver_prints_a_notice_instead_of_failing_when_it_cannot_decrypt() {
    let repo = two_commits();
    let stranger = SecretsRepo::new("");
    let driver = format!(
        "{} -i {} textconv",
        bin().display(),
        stranger.key_file.display()
    );
    repo.git(&["config", "diff.castsync.textconv", &driver]);
    let diff = repo.git(&["diff", "HEAD~1"]);
    assert!(diff.contains("cannot decrypt"), "{diff}");
    assert_no_canary("git diff", &diff, CANARIES);
}

#[test]
fn castsync_diff_compares_two_revisions_and_the_worktree() {
    let repo = two_commits();
    let run = repo
        .test()
        .args(["diff", "HEAD~1", "HEAD"])
        .run()
        .success()
        // Schema changes are shown too.
        .stdout_has("agents/bot/.env.example")
        .stdout_has("+D=placeholder-for-d")
        .no_canary(CANARIES);
    let (added, removed) = changed_keys(run.stdout());
    assert_eq!(added, set(&["B", "D"]), "{}", run.stdout());
    assert_eq!(removed, set(&["B", "C"]), "{}", run.stdout());

    // Default: HEAD against the worktree.
    repo.agent(
        "bot",
        &[("A", "same-value"), ("B", CANARIES[2]), ("D", "rotated")],
    );
    let run = repo
        .test()
        .args(["-vvv", "diff"])
        .run()
        .success()
        .no_canary(CANARIES);
    let (added, removed) = changed_keys(run.stdout());
    assert_eq!(
        (added, removed),
        (set(&["D"]), set(&["D"])),
        "{}",
        run.stdout()
    );
}
