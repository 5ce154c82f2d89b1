//! Repository discovery: commands find `castsync.yaml` from the current directory upwards,
//! `-C DIR` wins, and outside any repository every command that needs one fails.

use std::path::Path;

use crate::support::*;

/// The error outside any repository, and its hint on the next line.
const OUTSIDE: &str = "error: no castsync.yaml in this directory or any parent\n  hint: run `castsync init`, or pass -C DIR\n";

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

    Test::at_home(&home)
        .current_dir(demo.join("agents/support-bot"))
        .arg("-i")
        .arg(&identity)
        .arg("validate")
        .run()
        .success()
        .stdout_is("ok: 3 agents valid, 0 warning(s)\n");
}

#[test]
fn validate_in_an_empty_directory_exits_1_naming_castsync_yaml() {
    Test::new()
        .arg("validate")
        .run()
        .failure()
        .stdout_is("")
        .stderr_has(OUTSIDE);
}

#[test]
fn outside_a_repository_every_command_but_the_standalone_ones_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // castsync with this directory as HOME and as the working directory.
    let outside = || Test::at_home(dir).current_dir(dir);
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
        outside()
            .args(*args)
            .stdin("value")
            .run()
            .failure()
            .stderr_has(OUTSIDE);
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
        outside().args(*args).run().success();
    }
    Test::at_home(dir)
        .current_dir("agents")
        .arg("validate")
        .run()
        .success()
        .stdout_is("ok: 0 agents valid, 0 warning(s)\n");
}

#[test]
fn dash_c_wins_over_the_current_directory_and_must_name_a_repository() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    let elsewhere = repo.home.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();

    // From an unrelated directory, -C names the repository.
    repo.test()
        .current_dir(&elsewhere)
        .arg("validate")
        .run()
        .success()
        .stdout_is("ok: 1 agent valid, 0 warning(s)\n");

    // From inside the repository, -C still wins: a folder without castsync.yaml is refused.
    Test::at_home(&repo.home)
        .current_dir(&repo.root)
        .arg("-C")
        .arg(&elsewhere)
        .arg("validate")
        .run()
        .failure()
        .stderr_line_with(&["no castsync.yaml in ", "elsewhere"]);
}
