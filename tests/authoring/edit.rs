//! `castsync edit` with scripted editors: small shell scripts that change the file the way a
//! person would, or fail, or signal. TMPDIR points at a test directory so that the scratch
//! directory can be seen to disappear on every path.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{assert_only_manifest_and_schema, empty_dir, manifest_bytes, revealed};
use crate::support::*;

/// A repository with agent `bot` (TOKEN=old-token, declared in its schema), a TMPDIR to watch,
/// and a folder for editor scripts.
struct Fixture {
    repo: SecretsRepo,
    tmpdir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let repo = SecretsRepo::new("");
        repo.agent("bot", &[("TOKEN", "old-token")]);
        // Written by castsync, so it carries its recipient record like any authored file.
        repo.cmd().arg("rekey").assert().success();
        let tmpdir = repo.home.join("tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        Fixture { repo, tmpdir }
    }

    /// An executable `#!/bin/sh` script with `body`.
    fn editor(&self, name: &str, body: &str) -> PathBuf {
        let path = self.repo.home.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `castsync edit bot` with EDITOR set to `editor`.
    fn edit(&self, editor: &Path) -> (i32, String, String) {
        outcome(
            self.repo
                .cmd()
                .env("TMPDIR", &self.tmpdir)
                .env("EDITOR", editor)
                .args(["edit", "bot"]),
        )
    }

    /// The same as a plain process in a process group of its own (for signals).
    fn edit_in_own_group(&self, editor: &Path) -> std::process::Output {
        castsync_std(&self.repo.home)
            .arg("-C")
            .arg(&self.repo.root)
            .arg("-i")
            .arg(&self.repo.key_file)
            .args(["edit", "bot"])
            .env("TMPDIR", &self.tmpdir)
            .env("EDITOR", editor)
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .output()
            .inspect(|out| assert_no_panic("castsync edit", &out.stderr))
            .unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        manifest_bytes(&self.repo, "bot")
    }

    fn mtime(&self) -> SystemTime {
        std::fs::metadata(self.repo.path("agents/bot/secrets.yaml.age"))
            .unwrap()
            .modified()
            .unwrap()
    }

    fn token(&self) -> String {
        revealed(&self.repo, "bot")["secrets"]["TOKEN"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs the edit (in a process group of its own with `own_group`) and asserts it aborted:
    /// exit 1, each of `expect` on stderr, the manifest byte for byte as it was, nothing left.
    fn assert_aborts(&self, editor: &Path, own_group: bool, expect: &[&str]) {
        let before = self.bytes();
        let (code, stderr) = if own_group {
            let out = self.edit_in_own_group(editor);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), stderr)
        } else {
            let (code, _, stderr) = self.edit(editor);
            (Some(code), stderr)
        };
        assert_eq!(code, Some(1), "{stderr}");
        for e in expect {
            assert!(stderr.contains(e), "{e:?} not in:\n{stderr}");
        }
        assert_eq!(self.bytes(), before, "the manifest changed");
        self.assert_clean();
    }

    /// Runs an editor script that changes no key or value: exit 0 with `says` on stderr, and
    /// the manifest neither rewritten (same bytes, same mtime) nor anything left behind.
    fn assert_not_rewritten(&self, editor_body: &str, says: &str) {
        let (before, mtime) = (self.bytes(), self.mtime());
        let (code, _, stderr) = self.edit(&self.editor("ed", editor_body));
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(self.bytes(), before);
        assert_eq!(self.mtime(), mtime);
        self.assert_clean();
    }

    /// Nothing left behind: no scratch directory, no temporary file next to the manifest.
    fn assert_clean(&self) {
        assert!(empty_dir(&self.tmpdir), "scratch files left in TMPDIR");
        assert_only_manifest_and_schema(&self.repo, "bot");
    }
}

#[test]
fn a_valid_edit_lands_and_leaves_nothing_behind() {
    let f = Fixture::new();
    let editor = f.editor("ed", "sed -i 's/old-token/new-token/' \"$1\"");
    let (code, _, stderr) = f.edit(&editor);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("saved agents/bot/secrets.yaml.age: changed TOKEN"),
        "{stderr}"
    );
    assert_eq!(f.token(), "new-token");
    f.assert_clean();
    let (code, stdout, _) = outcome(f.repo.cmd().args(["rekey", "--check"]));
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "the rewrite records its recipients"
    );
}

#[test]
fn the_editor_sees_a_private_file_without_the_metadata_block() {
    let f = Fixture::new();
    let copy = f.repo.home.join("seen.txt");
    let editor = f.editor(
        "ed",
        &format!(
            "stat -c '%a' \"$1\" > {0}; stat -c '%a' \"$(dirname \"$1\")\" >> {0}; cat \"$1\" >> {0}",
            copy.display()
        ),
    );
    let (code, _, stderr) = f.edit(&editor);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "600\n700\nagent: bot\nsecrets:\n  TOKEN: \"old-token\"\n"
    );
}

#[test]
fn an_invalid_edit_without_a_terminal_aborts_leaving_the_file_byte_for_byte() {
    let f = Fixture::new();
    let editor = f.editor("ed", "printf ' MISALIGNED: x\\n' >> \"$1\"");
    f.assert_aborts(
        &editor,
        false,
        &[
            "agents/bot/secrets.yaml.age (decrypted)",
            "invalid YAML",
            "aborted: agents/bot/secrets.yaml.age was not changed",
        ],
    );
}

#[test]
fn an_edit_that_breaks_the_schema_is_refused_like_validate_would() {
    let f = Fixture::new();
    let editor = f.editor("ed", "printf '  UNDECLARED: \"x\"\\n' >> \"$1\"");
    f.assert_aborts(
        &editor,
        false,
        &["key UNDECLARED: the manifest declares it but .env.example does not list it"],
    );
}

#[test]
fn an_edit_that_changes_nothing_does_not_rewrite_the_file() {
    Fixture::new().assert_not_rewritten("touch \"$1\"", "no changes");
}

#[test]
fn an_edit_that_only_adds_a_comment_does_not_rewrite_the_file() {
    Fixture::new().assert_not_rewritten(
        "printf '# rotated next week\\n' >> \"$1\"",
        "no change to any key or value",
    );
}

#[test]
fn an_editor_that_exits_non_zero_aborts_even_after_writing() {
    let f = Fixture::new();
    let editor = f.editor("ed", "sed -i 's/old-token/new-token/' \"$1\"; exit 3");
    f.assert_aborts(&editor, false, &["the editor failed (exit status: 3)"]);
}

#[test]
fn visual_wins_over_editor_and_an_editor_with_arguments_runs_like_git() {
    let f = Fixture::new();
    let editor = f.editor(
        "ed",
        "[ \"$1\" = --wait ] || exit 9\nsed -i 's/old-token/from-visual/' \"$2\"",
    );
    let (code, _, stderr) = outcome(
        f.repo
            .cmd()
            .env("TMPDIR", &f.tmpdir)
            .env("EDITOR", "false")
            .env("VISUAL", format!("{} --wait", editor.display()))
            .args(["edit", "bot"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(f.token(), "from-visual");
    f.assert_clean();
}

#[test]
fn a_manifest_that_breaks_its_own_rules_opens_so_it_can_be_repaired() {
    let f = Fixture::new();
    f.repo
        .raw_manifest("bot", "agent: bot\nsecrets:\n  TOKEN: 1.10\n");
    let editor = f.editor("ed", "sed -i 's/1.10/\"1.10\"/' \"$1\"");
    let (code, _, stderr) = f.edit(&editor);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("opening the file as it is"), "{stderr}");
    assert_eq!(f.token(), "1.10");
    f.repo.cmd().arg("validate").assert().success();
}

#[test]
fn ctrl_c_at_the_terminal_aborts_the_edit_and_removes_the_scratch_file() {
    let f = Fixture::new();
    // Ctrl-C signals the whole foreground process group: castsync and the editor. Here the
    // editor sends it to its group (castsync's own group, not the test's) and dies of it.
    let editor = f.editor(
        "ed",
        "sed -i 's/old-token/new-token/' \"$1\"\nkill -INT 0\nexec sleep 5",
    );
    f.assert_aborts(&editor, true, &["the editor failed", "was not changed"]);
}

#[test]
fn a_sigint_for_castsync_alone_leaves_the_editor_in_charge_and_the_edit_lands() {
    let f = Fixture::new();
    // An editor such as vim ignores Ctrl-C and goes on: castsync must go on waiting too.
    let editor = f.editor(
        "ed",
        "kill -INT $PPID\nsed -i 's/old-token/after-sigint/' \"$1\"",
    );
    let out = f.edit_in_own_group(&editor);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(f.token(), "after-sigint");
    f.assert_clean();
}

#[test]
fn sigterm_stops_the_editor_aborts_and_removes_the_scratch_file() {
    let f = Fixture::new();
    let editor = f.editor(
        "ed",
        "sed -i 's/old-token/new-token/' \"$1\"\nkill -TERM $PPID\nexec sleep 30",
    );
    f.assert_aborts(&editor, true, &["interrupted by SIGTERM"]);
}
