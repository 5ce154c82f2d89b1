//! Every authoring command at `-vvv` with unmistakable values: none of them may appear on
//! stdout or stderr, whether the command succeeds or refuses, except on the stdout of
//! `show --reveal`. Nor may any of them reach a file other than the encrypted manifests.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::empty_dir;
use crate::support::*;

const SET: &str = "canary-7f3a91-do-not-print";
const IMPORTED: &str = "canary-2b8c44-do-not-print";
const OPTIONAL: &str = "canary-91d0e7-do-not-print";
const EDITED: &str = "canary-5e6f12-do-not-print";
const REFUSED: &str = "canary-c0ffee-do-not-print";
const BROKEN: &str = "canary-deadbe-do-not-print";
const ALL: [&str; 6] = [SET, IMPORTED, OPTIONAL, EDITED, REFUSED, BROKEN];

/// Runs `test` at -vvv; no canary may appear on stdout or stderr.
fn quiet_about_secrets(test: Test) -> Run {
    test.arg("-vvv").run().no_canary(&ALL)
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file under `dir` (recursively), except the encrypted manifests.
fn assert_no_canary_in_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_canary_in_files(&path);
        } else if path.file_name().is_some_and(|n| n != "secrets.yaml.age") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert_no_canary(&path.display().to_string(), &text, &ALL);
        }
    }
}

#[test]
fn no_command_ever_prints_a_value_except_show_reveal_on_stdout() {
    let repo = SecretsRepo::new("");
    let tmpdir = repo.home.join("tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();

    let fresh = repo.home.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    quiet_about_secrets(
        Test::at_home(&repo.home)
            .arg("-C")
            .arg(&fresh)
            .arg("-i")
            .arg(&repo.key_file)
            .arg("init"),
    )
    .success();

    quiet_about_secrets(repo.test().args(["new", "bot"])).success();
    repo.schema(
        "bot",
        "TOKEN=your-token\nIMPORTED=x\nOLD=y # optional\nREFUSED_KEY=z # optional\n",
    );
    quiet_about_secrets(
        repo.test()
            .args(["set", "bot", "TOKEN"])
            .stdin(format!("{SET}\n")),
    )
    .success();
    // A set of an undeclared key.
    quiet_about_secrets(
        repo.test()
            .args(["set", "bot", "UNDECLARED"])
            .stdin(REFUSED),
    )
    .failure();

    let env_file = repo.home.join("import.env");
    std::fs::write(
        &env_file,
        format!("IMPORTED={IMPORTED}\nOLD='{OPTIONAL}'\n"),
    )
    .unwrap();
    quiet_about_secrets(
        repo.test()
            .args(["import", "bot", "--from-dotenv"])
            .arg(&env_file),
    )
    .success();
    // An import of a conflicting value, then of a malformed file.
    quiet_about_secrets(
        repo.test()
            .args(["import", "bot", "--from-dotenv", "-"])
            .stdin(format!("IMPORTED={REFUSED}\n")),
    )
    .failure();
    quiet_about_secrets(
        repo.test()
            .args(["import", "bot", "--from-dotenv", "-"])
            .stdin(format!("{REFUSED}\n")),
    )
    .failure();

    for format in ["yaml", "dotenv", "json"] {
        quiet_about_secrets(repo.test().args(["show", "bot", "--format", format]))
            .success()
            .stdout_has("TOKEN");
        // With --reveal the values are on stdout, and only there.
        let run = repo
            .test()
            .args(["show", "bot", "--reveal", "--format", format, "-vvv"])
            .run()
            .success()
            .stdout_has(SET)
            .stdout_has(IMPORTED);
        assert_no_canary(
            &format!("stderr of show --reveal --format {format}"),
            run.stderr(),
            &ALL,
        );
    }

    let edit = |body: &str| {
        let editor = repo.home.join("editor.sh");
        script(&editor, body);
        quiet_about_secrets(
            repo.test()
                .env("TMPDIR", &tmpdir)
                .env("EDITOR", &editor)
                .args(["edit", "bot"]),
        )
    };
    edit(&format!("sed -i 's/{SET}/{EDITED}/' \"$1\"")).success();
    // An invalid edit, an edit with a typed value, an edit that changes nothing.
    edit(&format!("printf '  REFUSED_KEY: \"{BROKEN}\\n' >> \"$1\"")).failure();
    edit(&format!(
        "printf '  REFUSED_KEY: !!binary {BROKEN}\\n' >> \"$1\""
    ))
    .failure();
    edit("true").success();

    quiet_about_secrets(repo.test().args(["unset", "bot", "OLD"])).success();
    repo.config(&format!(
        "access:\n  - agents: \"bot\"\n    recipients: [{}, {}]",
        repo.recipient,
        castsync::crypto::generate_identity().1
    ));
    quiet_about_secrets(repo.test().args(["rekey", "--check"])).failure();
    quiet_about_secrets(repo.test().arg("rekey")).success();
    quiet_about_secrets(repo.test().arg("validate")).success();

    // A manifest broken around a value: validate names the problem, never the value.
    repo.raw_manifest(
        "broken",
        &format!("agent: broken\nsecrets:\n  A: \"{BROKEN}\n  B: {BROKEN}: x\n"),
    );
    quiet_about_secrets(repo.test().arg("validate")).failure();
    // A copied manifest.
    repo.raw_manifest("copied", &format!("agent: bot\nsecrets:\n  A: {BROKEN}\n"));
    quiet_about_secrets(repo.test().args(["validate", "copied"])).failure();

    // The edit landed.
    repo.test()
        .args(["show", "bot", "--reveal", "--format", "json"])
        .run()
        .success()
        .stdout_has(EDITED)
        .stdout_lacks(SET);
    assert!(empty_dir(&tmpdir), "edit left scratch files");
    assert_no_canary_in_files(&repo.root);
}
