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

/// Runs `cmd` at -vvv and asserts no canary in its output; returns (code, stdout).
fn quiet_about_secrets(what: &str, cmd: &mut Command) -> (i32, String) {
    let (code, stdout, stderr) = outcome(cmd.arg("-vvv"));
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_no_canary(&format!("stdout of {what}"), &stdout, &ALL);
    assert_no_canary(&format!("stderr of {what}"), &stderr, &ALL);
    (code, stdout)
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
    let mut init = castsync(&repo.home);
    init.arg("-C")
        .arg(&fresh)
        .arg("-i")
        .arg(&repo.key_file)
        .arg("init");
    assert_eq!(quiet_about_secrets("init", &mut init).0, 0);

    assert_eq!(
        quiet_about_secrets("new", repo.cmd().args(["new", "bot"])).0,
        0
    );
    repo.schema(
        "bot",
        "TOKEN=your-token\nIMPORTED=x\nOLD=y # optional\nREFUSED_KEY=z # optional\n",
    );
    let (code, _) = quiet_about_secrets(
        "set",
        repo.cmd()
            .args(["set", "bot", "TOKEN"])
            .write_stdin(format!("{SET}\n")),
    );
    assert_eq!(code, 0);
    let (code, _) = quiet_about_secrets(
        "set of an undeclared key",
        repo.cmd()
            .args(["set", "bot", "UNDECLARED"])
            .write_stdin(REFUSED),
    );
    assert_eq!(code, 1);

    let env_file = repo.home.join("import.env");
    std::fs::write(
        &env_file,
        format!("IMPORTED={IMPORTED}\nOLD='{OPTIONAL}'\n"),
    )
    .unwrap();
    let mut import = repo.cmd();
    import
        .args(["import", "bot", "--from-dotenv"])
        .arg(&env_file);
    assert_eq!(quiet_about_secrets("import", &mut import).0, 0);
    let (code, _) = quiet_about_secrets(
        "import of a conflicting value",
        repo.cmd()
            .args(["import", "bot", "--from-dotenv", "-"])
            .write_stdin(format!("IMPORTED={REFUSED}\n")),
    );
    assert_eq!(code, 1);
    let (code, _) = quiet_about_secrets(
        "import of a malformed file",
        repo.cmd()
            .args(["import", "bot", "--from-dotenv", "-"])
            .write_stdin(format!("{REFUSED}\n")),
    );
    assert_eq!(code, 1);

    for format in ["yaml", "dotenv", "json"] {
        let (code, stdout) = quiet_about_secrets(
            &format!("show --format {format}"),
            repo.cmd().args(["show", "bot", "--format", format]),
        );
        assert_eq!(code, 0);
        assert!(stdout.contains("TOKEN"), "{stdout}");
        // With --reveal the values are on stdout, and only there.
        let (code, stdout, stderr) = outcome(
            repo.cmd()
                .args(["show", "bot", "--reveal", "--format", format, "-vvv"]),
        );
        assert_eq!(code, 0);
        assert!(
            stdout.contains(SET) && stdout.contains(IMPORTED),
            "{format}: {stdout}"
        );
        assert_no_canary(
            &format!("stderr of show --reveal --format {format}"),
            &stderr,
            &ALL,
        );
    }

    let edit = |what: &str, body: &str| {
        let editor = repo.home.join("editor.sh");
        script(&editor, body);
        quiet_about_secrets(
            what,
            repo.cmd()
                .env("TMPDIR", &tmpdir)
                .env("EDITOR", &editor)
                .args(["edit", "bot"]),
        )
        .0
    };
    assert_eq!(
        edit("edit", &format!("sed -i 's/{SET}/{EDITED}/' \"$1\"")),
        0
    );
    assert_eq!(
        edit(
            "an invalid edit",
            &format!("printf '  REFUSED_KEY: \"{BROKEN}\\n' >> \"$1\""),
        ),
        1
    );
    assert_eq!(
        edit(
            "an edit with a typed value",
            &format!("printf '  REFUSED_KEY: !!binary {BROKEN}\\n' >> \"$1\"")
        ),
        1
    );
    assert_eq!(edit("an edit that changes nothing", "true"), 0);

    assert_eq!(
        quiet_about_secrets("unset", repo.cmd().args(["unset", "bot", "OLD"])).0,
        0
    );
    repo.config(&format!(
        "access:\n  - agents: \"bot\"\n    recipients: [{}, {}]",
        repo.recipient,
        castsync::crypto::generate_identity().1
    ));
    assert_eq!(
        quiet_about_secrets("rekey --check", repo.cmd().args(["rekey", "--check"])).0,
        1
    );
    assert_eq!(quiet_about_secrets("rekey", repo.cmd().arg("rekey")).0, 0);
    assert_eq!(
        quiet_about_secrets("validate", repo.cmd().arg("validate")).0,
        0
    );

    // A manifest broken around a value: validate names the problem, never the value.
    repo.raw_manifest(
        "broken",
        &format!("agent: broken\nsecrets:\n  A: \"{BROKEN}\n  B: {BROKEN}: x\n"),
    );
    assert_eq!(
        quiet_about_secrets("validate of a broken manifest", repo.cmd().arg("validate")).0,
        1
    );
    repo.raw_manifest("copied", &format!("agent: bot\nsecrets:\n  A: {BROKEN}\n"));
    assert_eq!(
        quiet_about_secrets(
            "validate of a copied manifest",
            repo.cmd().args(["validate", "copied"])
        )
        .0,
        1
    );

    let (code, stdout, _) = outcome(
        repo.cmd()
            .args(["show", "bot", "--reveal", "--format", "json"]),
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains(EDITED) && !stdout.contains(SET),
        "the edit landed: {stdout}"
    );
    assert!(empty_dir(&tmpdir), "edit left scratch files");
    assert_no_canary_in_files(&repo.root);
}
