//! Repository discovery: commands find `castsync.yaml` from the current directory upwards,
//! `-C DIR` wins, and outside any repository every command that needs one fails.

use std::path::Path;

use crate::support::*;

const OUTSIDE: &str =
    "no castsync.yaml in this directory or any parent (run castsync init, or pass -C DIR)";

/// Copies `from` into `to`, files and directories only.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn validate_from_an_agent_directory_of_the_demo_finds_the_root_and_checks_three_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let demo = tmp.path().join("demo");
    std::fs::create_dir_all(&home).unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo"),
        &demo,
    );
    let _ = std::fs::remove_dir_all(demo.join(".castsync"));
    let identity = demo.join("DEMO-ONLY-identity.txt");
    set_private(&identity);

    let (code, stdout, stderr) = outcome(
        castsync(&home)
            .current_dir(demo.join("agents/support-bot"))
            .arg("-i")
            .arg(&identity)
            .arg("validate"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "ok: 3 agents valid, 0 warning(s)\n");
}

#[test]
fn validate_in_an_empty_directory_exits_1_naming_castsync_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        outcome(castsync(tmp.path()).current_dir(tmp.path()).arg("validate"));
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(stdout, "");
    assert!(stderr.contains(OUTSIDE), "{stderr}");
}

#[test]
fn outside_a_repository_every_command_but_the_standalone_ones_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("old.env"), "A=b\n").unwrap();
    let needs_a_repository: &[&[&str]] = &[
        &["new", "bot"],
        &["edit", "bot"],
        &["set", "bot", "KEY"],
        &["unset", "bot", "KEY"],
        &["show", "bot"],
        &["import", "bot", "--from-dotenv", "old.env"],
        &["rekey"],
        &["rekey", "--check"],
        &["validate"],
        &["reconcile", "--dry-run", "--api-url", "local://x.json"],
        &["diff"],
        &["watch", "--listen", "127.0.0.1:0"],
    ];
    for args in needs_a_repository {
        let (code, _, stderr) = outcome(
            castsync(dir)
                .current_dir(dir)
                .args(*args)
                .write_stdin("value"),
        );
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(OUTSIDE), "{args:?}: {stderr}");
    }
    assert!(!dir.join("agents").exists() && !dir.join(".castsync").exists());

    // keygen, completions and man need no repository; init makes one, after which the
    // commands above find it.
    let standalone: &[&[&str]] = &[
        &["keygen", "-o", "key.txt"],
        &["completions", "bash"],
        &["man"],
        &["init"],
    ];
    for args in standalone {
        let (code, _, stderr) = outcome(castsync(dir).current_dir(dir).args(*args));
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
    let (code, stdout, stderr) = outcome(
        castsync(dir)
            .current_dir(dir.join("agents"))
            .arg("validate"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "ok: 0 agents valid, 0 warning(s)\n");
}

#[test]
fn dash_c_wins_over_the_current_directory_and_must_name_a_repository() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    let elsewhere = repo.home.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();

    // From an unrelated directory, -C names the repository.
    let (code, stdout, _) = outcome(repo.cmd().current_dir(&elsewhere).arg("validate"));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout, "ok: 1 agent valid, 0 warning(s)\n");

    // From inside the repository, -C still wins: a folder without castsync.yaml is refused.
    let (code, _, stderr) = outcome(
        castsync(&repo.home)
            .current_dir(&repo.root)
            .arg("-C")
            .arg(&elsewhere)
            .arg("validate"),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no castsync.yaml in ") && stderr.contains("elsewhere"),
        "{stderr}"
    );
}
