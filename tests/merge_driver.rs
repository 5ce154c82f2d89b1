//! The git merge driver (`castsync merge-driver`) and `castsync git-setup`, through the real
//! `git` binary: branches that change one agent's manifest merge key by key; a conflict stops
//! the merge naming keys, never values, and leaves our version as it was.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::support::*;

const MANIFEST: &str = "agents/bot/secrets.yaml.age";

/// Every value these tests write: none may appear in any output.
const CANARIES: &[&str] = &[
    "canary-merge-base-a",
    "canary-merge-base-b",
    "canary-merge-base-c",
    "canary-merge-ours-a",
    "canary-merge-theirs-a",
    "canary-merge-ours-b",
    "canary-merge-theirs-c",
];

/// A committed repository on `main` with agent `bot` (A, B and C, declared in its schema),
/// whose git config runs this build's merge driver with the test identity.
fn repo_on_main() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    std::fs::write(
        repo.path(".gitattributes"),
        castsync::git_setup::GITATTRIBUTES,
    )
    .unwrap();
    repo.agent(
        "bot",
        &[("A", CANARIES[0]), ("B", CANARIES[1]), ("C", CANARIES[2])],
    );
    repo.commit_all("base");
    let driver = format!(
        "{} -i {} merge-driver %O %A %B %P",
        bin().display(),
        repo.key_file.display()
    );
    repo.git(&["config", "merge.castsync.driver", &driver]);
    let textconv = format!(
        "{} -i {} textconv",
        bin().display(),
        repo.key_file.display()
    );
    repo.git(&["config", "diff.castsync.textconv", &textconv]);
    repo
}

/// Everything a test printed, for the canary check.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    fn run(&mut self, test: Test) -> Run {
        let run = test.run();
        self.0.push_str(&run.output());
        run
    }

    /// `castsync set bot KEY` with `value` on stdin.
    fn set(&mut self, repo: &SecretsRepo, key: &str, value: &str) {
        self.run(repo.test().args(["set", "bot", key]).stdin(value))
            .success();
    }

    /// `git ARGS` in the repository, whatever its exit code.
    fn git(&mut self, repo: &SecretsRepo, args: &[&str]) -> (i32, String, String) {
        let out = StdCommand::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&repo.root)
            .output()
            .expect("git");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        self.0.push_str(&stdout);
        self.0.push_str(&stderr);
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn assert_clean(&self) {
        assert_no_canary("the test's output", &self.0, CANARIES);
    }
}

/// The agent's keys and values, as `show --reveal --format json` prints them.
fn secrets(repo: &SecretsRepo) -> serde_json::Value {
    repo.test()
        .args(["show", "bot", "--reveal", "--format", "json"])
        .run()
        .success()
        .json()["secrets"]
        .clone()
}

/// Two branches off `main`: `theirs` runs `their_change`, then `main` runs `our_change`.
fn diverge(
    repo: &SecretsRepo,
    out: &mut Transcript,
    their_change: impl FnOnce(&mut Transcript),
    our_change: impl FnOnce(&mut Transcript),
) {
    repo.git(&["checkout", "-q", "-b", "theirs"]);
    their_change(out);
    repo.git(&["commit", "-q", "-am", "their change"]);
    repo.git(&["checkout", "-q", "main"]);
    our_change(out);
    repo.git(&["commit", "-q", "-am", "our change"]);
}

#[test]
fn branches_changing_different_keys_merge_with_git_and_keep_both_changes() {
    let repo = repo_on_main();
    let mut out = Transcript::default();
    diverge(
        &repo,
        &mut out,
        |out| out.set(&repo, "C", CANARIES[6]),
        |out| out.set(&repo, "A", CANARIES[3]),
    );

    let (code, stdout, stderr) = out.git(&repo, &["merge", "--no-edit", "theirs"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "castsync: merged agents/bot/secrets.yaml.age key by key; from ours: A; from theirs: C"
        ),
        "{stderr}"
    );
    assert_eq!(
        secrets(&repo),
        serde_json::json!({"A": CANARIES[3], "B": CANARIES[1], "C": CANARIES[6]})
    );
    // The merge is committed, the result is valid and encrypted to the configured recipients.
    assert_eq!(out.git(&repo, &["status", "--porcelain"]).1, "");
    out.run(repo.test().arg("validate")).success();
    out.run(repo.test().args(["rekey", "--check"])).success();
    out.assert_clean();
}

#[test]
fn a_key_deleted_on_one_side_and_left_alone_on_the_other_is_deleted() {
    let repo = repo_on_main();
    let mut out = Transcript::default();
    // The schema stops requiring B on both sides; their side deletes B, ours changes A.
    repo.schema(
        "bot",
        "A=placeholder-a\nB=placeholder-b # optional\nC=placeholder-c\n",
    );
    repo.commit_all("B is optional");
    diverge(
        &repo,
        &mut out,
        |out| {
            out.run(repo.test().args(["unset", "bot", "B"])).success();
        },
        |out| out.set(&repo, "A", CANARIES[3]),
    );

    let (code, stdout, stderr) = out.git(&repo, &["merge", "--no-edit", "theirs"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        secrets(&repo),
        serde_json::json!({"A": CANARIES[3], "C": CANARIES[2]})
    );
    out.assert_clean();
}

#[test]
fn the_same_key_changed_differently_stops_the_merge_naming_it_and_edit_settles_it() {
    let repo = repo_on_main();
    let mut out = Transcript::default();
    diverge(
        &repo,
        &mut out,
        |out| {
            out.set(&repo, "A", CANARIES[4]);
            out.set(&repo, "C", CANARIES[6]);
        },
        |out| {
            out.set(&repo, "A", CANARIES[3]);
            out.set(&repo, "B", CANARIES[5]);
        },
    );
    let ours = std::fs::read(repo.path(MANIFEST)).unwrap();

    let (code, stdout, stderr) = out.git(&repo, &["merge", "--no-edit", "theirs"]);
    assert_ne!(code, 0, "the merge must stop:\n{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    for expected in [
        "agents/bot/secrets.yaml.age: cannot merge agent bot key by key: key A changed on both sides to different values",
        "without their changes to C either",
        "castsync edit bot",
        "CONFLICT (content): Merge conflict in agents/bot/secrets.yaml.age",
    ] {
        assert!(
            said.contains(expected),
            "{expected:?} missing from:\n{said}"
        );
    }
    // Our version stays as it was, byte for byte, and the path is unmerged.
    assert_eq!(std::fs::read(repo.path(MANIFEST)).unwrap(), ours);
    let (_, status, _) = out.git(&repo, &["status", "--porcelain"]);
    assert!(
        status.contains("UU agents/bot/secrets.yaml.age"),
        "{status}"
    );
    // How the sides differ, as docs/git.md suggests looking: key names, no value.
    let (_, diff, _) = out.git(&repo, &["diff", "HEAD", "MERGE_HEAD", "--", MANIFEST]);
    for key in ["A", "B", "C"] {
        assert!(diff.contains(&format!("\n-{key} ")), "{diff}");
        assert!(diff.contains(&format!("\n+{key} ")), "{diff}");
    }

    // Settled with `castsync edit`: A as decided, C brought over from their side.
    let editor = repo.home.join("settle.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i -e 's/^  A: .*/  A: \"settled-a\"/' -e 's/^  C: .*/  C: \"settled-c\"/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    out.run(repo.test().env("EDITOR", &editor).args(["edit", "bot"]))
        .success();
    out.git(&repo, &["add", MANIFEST]);
    let (code, _, stderr) = out.git(&repo, &["commit", "--no-edit"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        secrets(&repo),
        serde_json::json!({"A": "settled-a", "B": CANARIES[5], "C": "settled-c"})
    );
    out.assert_clean();
}

/// `castsync merge-driver` run by hand, as git would (from `dir`, on `merged`).
fn driver(repo: &SecretsRepo, dir: &Path, versions: [&Path; 3], merged: &str) -> Test {
    Test::at_home(&repo.home)
        .current_dir(dir)
        .arg("-i")
        .arg(&repo.key_file)
        .arg("merge-driver")
        .args(versions)
        .arg(merged)
}

/// The driver run on the manifest from the top of the work tree; it prints nothing on stdout.
fn drive(repo: &SecretsRepo, versions: [&Path; 3]) -> Run {
    driver(repo, &repo.root, versions, MANIFEST)
        .run()
        .stdout_is("")
}

/// The current manifest's ciphertext, saved to `dir/name`.
fn save(repo: &SecretsRepo, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(repo.path(MANIFEST), &path).unwrap();
    path
}

#[test]
fn a_change_against_a_deletion_or_an_unreadable_side_leaves_ours_as_it_was() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("A", CANARIES[0]), ("B", CANARIES[1])]);
    repo.schema(
        "bot",
        "A=placeholder-a # optional\nB=placeholder-b # optional\n",
    );
    let versions = tempfile::tempdir().unwrap();
    let dir = versions.path();
    let mut out = Transcript::default();
    let base = save(&repo, dir, "base");
    out.set(&repo, "A", CANARIES[3]);
    let ours = save(&repo, dir, "ours");
    std::fs::copy(&base, repo.path(MANIFEST)).unwrap();
    out.run(repo.test().args(["unset", "bot", "A"])).success();
    let theirs = save(&repo, dir, "theirs");
    let before = std::fs::read(&ours).unwrap();

    let run = drive(&repo, [&base, &ours, &theirs])
        .failure()
        .stderr_has("key A changed on our side, deleted on theirs");
    out.0.push_str(run.stderr());
    assert_eq!(std::fs::read(&ours).unwrap(), before);

    // Their version encrypted to someone else: a clear error, ours untouched.
    let stranger = SecretsRepo::new("");
    stranger.agent("bot", &[("A", CANARIES[4])]);
    let foreign = dir.join("foreign");
    std::fs::copy(stranger.path(MANIFEST), &foreign).unwrap();
    let run = drive(&repo, [&base, &ours, &foreign])
        .failure()
        .stderr_has(
            "cannot merge agents/bot/secrets.yaml.age (agent bot): their version does not decrypt",
        )
        .stderr_has("secrets.yaml.age (theirs)");
    out.0.push_str(run.stderr());
    assert_eq!(std::fs::read(&ours).unwrap(), before);

    // A secrets repository in a folder below the top of the work tree, where git runs the
    // driver: found from the merged path. Their version deletes A, ours leaves it alone.
    let top = repo.root.parent().unwrap();
    out.run(driver(
        &repo,
        top,
        [&base, &base, &theirs],
        &format!("repo/{MANIFEST}"),
    ))
    .success()
    .stderr_has("from theirs: A");
    let merged = std::fs::read(&base).unwrap();
    assert_eq!(
        merged,
        std::fs::read(&theirs).unwrap(),
        "their version is the result"
    );
    std::fs::write(repo.path(MANIFEST), &merged).unwrap();
    assert_eq!(secrets(&repo), serde_json::json!({"B": CANARIES[1]}));

    // The same with a path that is not a manifest.
    out.run(driver(
        &repo,
        &repo.root,
        [&base, &ours, &theirs],
        "notes/other.yaml.age",
    ))
    .failure()
    .stderr_has("not a manifest")
    .stderr_has("\n  hint: route only those files to it in .gitattributes");
    assert_eq!(std::fs::read(&ours).unwrap(), before);
    out.assert_clean();
}

#[test]
fn git_setup_configures_a_fresh_clone_so_manifests_merge() {
    // The origin predates the merge driver: its .gitattributes routes diffs only.
    let origin = SecretsRepo::new("");
    std::fs::write(origin.path(".gitattributes"), "*.yaml.age diff=castsync\n").unwrap();
    origin.agent("bot", &[("A", CANARIES[0]), ("B", CANARIES[1])]);
    origin.commit_all("base");
    let clone_dir = origin.home.join("clone");
    origin.git(&[
        "clone",
        "-q",
        origin.root.to_str().unwrap(),
        clone_dir.to_str().unwrap(),
    ]);

    // git and castsync as a user has them: castsync on PATH, the identity in the
    // environment, no -i anywhere.
    let user = |program: &str| origin.as_user(program, &clone_dir);
    let git = |args: &[&str]| {
        let (code, stdout, stderr) = outcome(user("git").args(args));
        assert_eq!(code, 0, "git {args:?}: {stdout}{stderr}");
        stdout
    };

    // castsync as found on PATH, in the user's environment.
    let castsync_on_path = || Test::with(user("castsync"), &clone_dir, &origin.home);
    castsync_on_path()
        .arg("git-setup")
        .run()
        .success()
        .stderr_has("set diff.castsync.textconv = castsync textconv")
        .stderr_has("set merge.castsync.driver = castsync merge-driver %O %A %B %P")
        .stderr_has("added to .gitattributes: *.yaml.age merge=castsync")
        .stderr_lacks("warning");
    assert_eq!(
        git(&["config", "merge.castsync.driver"]).trim(),
        "castsync merge-driver %O %A %B %P"
    );
    let attributes = std::fs::read(clone_dir.join(".gitattributes")).unwrap();

    // Idempotent: a second run changes nothing.
    castsync_on_path()
        .arg("git-setup")
        .run()
        .success()
        .stderr_has("already set: merge.castsync.driver")
        .stderr_has(".gitattributes already routes manifests to castsync");
    assert_eq!(
        std::fs::read(clone_dir.join(".gitattributes")).unwrap(),
        attributes
    );
    git(&["commit", "-q", "-am", "route manifests to the merge driver"]);

    // Two branches change different keys; git merges them through the driver.
    let set = |key: &str, value: &str| {
        castsync_on_path()
            .args(["set", "bot", key])
            .stdin(value)
            .run()
            .success();
    };
    git(&["checkout", "-q", "-b", "theirs"]);
    set("B", CANARIES[6]);
    git(&["commit", "-q", "-am", "theirs"]);
    git(&["checkout", "-q", "-"]);
    set("A", CANARIES[3]);
    git(&["commit", "-q", "-am", "ours"]);
    let (code, stdout, stderr) = outcome(user("git").args(["merge", "--no-edit", "theirs"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_no_canary("git merge", &format!("{stdout}{stderr}"), CANARIES);
    let shown = castsync_on_path()
        .args(["show", "bot", "--reveal", "--format", "json"])
        .run()
        .success()
        .json();
    assert_eq!(
        shown["secrets"],
        serde_json::json!({"A": CANARIES[3], "B": CANARIES[6]})
    );
}

#[test]
fn git_setup_keeps_a_driver_configured_differently_unless_forced_and_fails_when_overridden() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("A", CANARIES[0])]);
    repo.commit_all("base");
    repo.git(&["config", "merge.castsync.driver", "my-own-driver %A"]);

    repo.test()
        .arg("git-setup")
        .run()
        .success()
        .stderr_has("warning: kept merge.castsync.driver = \"my-own-driver %A\"");
    assert_eq!(
        repo.git(&["config", "merge.castsync.driver"]),
        "my-own-driver %A"
    );
    repo.test()
        .args(["git-setup", "--force"])
        .run()
        .success()
        .stderr_has("replaced merge.castsync.driver = castsync merge-driver %O %A %B %P (was \"my-own-driver %A\")");
    assert_eq!(
        repo.git(&["config", "merge.castsync.driver"]),
        "castsync merge-driver %O %A %B %P"
    );

    // An attributes file that outranks .gitattributes: not set up, said so, exit 1, and a
    // second run adds nothing more.
    std::fs::write(
        repo.path(".git/info/attributes"),
        "*.yaml.age merge=binary\n",
    )
    .unwrap();
    let attributes = std::fs::read(repo.path(".gitattributes")).unwrap();
    for _ in 0..2 {
        repo.test().arg("git-setup").run().failure().stderr_has(
            "warning: git still gives \"agents/bot/secrets.yaml.age\" merge=\"binary\"",
        );
    }
    assert_eq!(
        std::fs::read(repo.path(".gitattributes")).unwrap(),
        attributes
    );

    // Outside a git work tree: a clear error.
    let plain = SecretsRepo::new("");
    plain
        .test()
        .arg("git-setup")
        .run()
        .failure()
        .stderr_has("is not in a git work tree")
        .stderr_has("\n  hint: run castsync git-setup in a clone");
}
