//! The shell steps of the GitHub Actions examples (`examples/github-actions/scripts/`), run
//! here as GitHub would run them, against the real emulator: the environment GitHub sets
//! (`GITHUB_STEP_SUMMARY`, the secrets as variables), a fake comment poster
//! (`CASTSYNC_COMMENT_CMD`) or a fake `gh`, and a directory standing in for the Actions cache.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::support::*;

const CANARY: &str = "canary-workflow-51c7-never-print";
const CANARY_NEW: &str = "canary-workflow-new-8e02-never-print";
const MARKER: &str = "<!-- castsync-plan -->";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/github-actions/scripts")
        .join(name)
}

/// What a job leaves behind: exit code, job log (stdout, stderr), the step summary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    summary: String,
}

impl Run {
    fn assert_no_canary(&self, extra: &[&str]) {
        let all = format!(
            "{}{}{}{}",
            self.stdout,
            self.stderr,
            self.summary,
            extra.concat()
        );
        assert_no_canary("the job's output", &all, &[CANARY, CANARY_NEW]);
    }
}

/// A runner: a temp dir for the summary, the comment poster's output and the cache.
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        let runner = Runner {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        // The fake poster keeps each body it is given as poster.N.md, as gh would post it.
        write_executable(
            &runner.poster(),
            "#!/bin/sh\nset -e\nn=$(( $(cat \"$0.count\" 2>/dev/null || echo 0) + 1 ))\n\
             echo \"$n\" >\"$0.count\"\ncp \"$1\" \"$0.$n.md\"\n",
        );
        runner
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn poster(&self) -> PathBuf {
        self.path("poster")
    }

    /// The bodies the poster was given, in order.
    fn comments(&self) -> Vec<String> {
        (1..)
            .map(|n| self.path(&format!("poster.{n}.md")))
            .take_while(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).expect("read a comment"))
            .collect()
    }

    /// Runs `script` in the secrets repository with a clean environment holding only what
    /// the workflow's `env:` gives it.
    fn run(&self, script: &Path, repo: &SecretsRepo, env: &[(&str, &str)]) -> Run {
        let summary = self.path("step-summary.md");
        let _ = std::fs::remove_file(&summary);
        let mut cmd = StdCommand::new(script);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &repo.home)
            .env("NO_COLOR", "1")
            .env("CASTSYNC", bin())
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("CASTSYNC_COMMENT_CMD", self.poster())
            .env("CASTSYNC_STATE_DIR", self.path("cache"))
            .current_dir(&repo.root);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the workflow script");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        }
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write a script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The repository secrets, as the workflow passes them: the identity's text, the API key.
fn secrets<'a>(identity: &'a str, emu: &'a Emulator) -> Vec<(&'static str, &'a str)> {
    vec![
        ("CASTSYNC_AGE_KEY", identity),
        ("CASTARI_API_KEY", "cast_test"),
        ("CASTARI_API_URL", emu.url.as_str()),
    ]
}

/// alpha (whose A2 is the canary) and beta, committed once after `before_commit` had its say,
/// an emulator serving both, a runner and the identity; `None` without age, with which
/// apply.sh seals the cached state.
fn two_agents(
    before_commit: impl FnOnce(&SecretsRepo),
) -> Option<(Emulator, SecretsRepo, Runner, String)> {
    tools(&["age", "age-keygen"])?;
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    before_commit(&repo);
    repo.commit_all("main");
    let key = identity(&repo);
    Some((emu, repo, Runner::new(), key))
}

fn identity(repo: &SecretsRepo) -> String {
    std::fs::read_to_string(&repo.key_file).expect("read the identity")
}

/// Two agents committed on main, pushed to a bare `origin` (so `origin/main` exists as
/// after `actions/checkout` with fetch-depth 0), and applied to the emulator.
fn merged_repo(emu: &Emulator) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n").unwrap();
    repo.agent(
        "alpha",
        &[("A1", "a-one"), ("A2", CANARY), ("A3", "a-three")],
    );
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.commit_all("main");
    let origin = repo.home.join("origin.git");
    repo.git(&["init", "-q", "--bare", origin.to_str().unwrap()]);
    repo.git(&["remote", "add", "origin", origin.to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    repo.reconcile(&emu.url).assert().success();
    repo
}

#[test]
fn pull_request_plan_lands_in_the_summary_and_one_marked_comment_without_writing() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = merged_repo(&emu);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.agent(
        "alpha",
        &[("A1", "a-one-v2"), ("A2", CANARY), ("A4", CANARY_NEW)],
    );
    repo.commit_all("rotate A1, add A4, drop A3");

    let runner = Runner::new();
    emu.reset_stats();
    let key = identity(&repo);
    let run = runner.run(&script("pr-plan.sh"), &repo, &secrets(&key, &emu));

    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in ["+ A4", "! A1 (value changed)", "- A3"] {
        assert!(
            run.summary.contains(line),
            "{line} missing:\n{}",
            run.summary
        );
    }
    assert!(
        run.summary.contains("base `origin/main`"),
        "{}",
        run.summary
    );
    assert!(
        !run.summary.contains("A2"),
        "A2 did not change:\n{}",
        run.summary
    );
    assert!(run.summary.contains("1 agent in sync"), "{}", run.summary);

    let comments = runner.comments();
    assert_eq!(comments.len(), 1, "one comment per run");
    assert!(
        comments[0].starts_with(&format!("{MARKER}\n")),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains(run.summary.trim()), "{}", comments[0]);

    assert_eq!(emu.requests("POST"), 0, "a plan never writes");
    assert_eq!(emu.requests("DELETE"), 0, "a plan never deletes");
    assert!(
        emu.requests("GET") > 0,
        "the plan lists the platform's keys"
    );
    assert_eq!(emu.value("alpha", "A3").as_deref(), Some("a-three"));
    run.assert_no_canary(&[&comments[0]]);
}

#[test]
fn an_invalid_manifest_fails_the_plan_and_the_comment_says_why() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = merged_repo(&emu);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    // A3 is in alpha's .env.example and therefore required.
    repo.raw_manifest(
        "alpha",
        &format!("agent: alpha\nsecrets:\n  A1: a-one\n  A2: {CANARY}\n"),
    );
    repo.commit_all("forget A3");

    let runner = Runner::new();
    emu.reset_stats();
    let key = identity(&repo);
    let run = runner.run(&script("pr-plan.sh"), &repo, &secrets(&key, &emu));

    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.summary.contains("validation failed"), "{}", run.summary);
    assert!(run.summary.contains("alpha"), "{}", run.summary);
    assert!(run.summary.contains("A3"), "{}", run.summary);
    let comments = runner.comments();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].starts_with(MARKER));
    assert!(comments[0].contains("validation failed"));
    // Validation is offline, and no plan follows a failed validation.
    assert_eq!(emu.requests("GET") + emu.requests("POST"), 0);
    run.assert_no_canary(&[&comments[0]]);
}

/// A fake `gh` that keeps a pull request's comments as files (`N.md`, `N.author`) and
/// answers the three calls sticky-comment.sh makes. Its list call applies what the script's
/// --jq filter asks for (comments by the bot whose body starts with the marker) and checks
/// that the filter does ask for both.
const FAKE_GH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
store=$FAKE_GH_STORE
echo "$*" >>"$store/calls.log"
[ "$1" = api ] || { echo "fake gh: only api" >&2; exit 2; }
shift
method=GET body=
while [ $# -gt 0 ]; do
  case $1 in
    --method) method=$2; shift 2 ;;
    --paginate) shift ;;
    --jq) jq=$2; shift 2 ;;
    -F) body=${2#body=@}; shift 2 ;;
    *) path=$1; shift ;;
  esac
done
case "$method $path" in
  "GET repos/acme/secrets/issues/7/comments")
    case $jq in *'github-actions[bot]'*startswith*) ;; *) echo "fake gh: filter $jq" >&2; exit 2 ;; esac
    for f in "$store"/*.md; do
      [ -e "$f" ] || continue
      id=$(basename "$f" .md)
      if [ "$(cat "$store/$id.author")" = "github-actions[bot]" ] \
        && [ "$(head -n 1 "$f")" = "<!-- castsync-plan -->" ]; then
        echo "$id"
      fi
    done ;;
  "POST repos/acme/secrets/issues/7/comments")
    id=$(( $(ls "$store" | grep -c '\.md$' || true) + 1 ))
    cp "$body" "$store/$id.md"; echo "github-actions[bot]" >"$store/$id.author" ;;
  PATCH\ repos/acme/secrets/issues/comments/*)
    id=${path##*/}
    [ -e "$store/$id.md" ] || { echo "fake gh: 404" >&2; exit 1; }
    cp "$body" "$store/$id.md" ;;
  *) echo "fake gh: unexpected $method $path" >&2; exit 2 ;;
esac
"#;

#[test]
fn the_sticky_comment_is_created_once_then_edited_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = dir.path().join("bin");
    let store = dir.path().join("comments");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    write_executable(&bin_dir.join("gh"), FAKE_GH);
    // Someone quoted the marker in a review comment: it is not ours to edit.
    std::fs::write(store.join("1.md"), format!("{MARKER}\nquoted by a human\n")).unwrap();
    std::fs::write(store.join("1.author"), "octocat\n").unwrap();

    let post = |body: &str| {
        let file = dir.path().join("body.md");
        std::fs::write(&file, format!("{MARKER}\n{body}\n")).unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = StdCommand::new(script("sticky-comment.sh"))
            .arg(&file)
            .env("PATH", path)
            .env("FAKE_GH_STORE", &store)
            .env("GITHUB_REPOSITORY", "acme/secrets")
            .env("PR_NUMBER", "7")
            .output()
            .expect("run sticky-comment.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    post("first plan");
    post("second plan");
    post("third plan");

    let read = |id: u32| std::fs::read_to_string(store.join(format!("{id}.md"))).unwrap();
    assert_eq!(read(1), format!("{MARKER}\nquoted by a human\n"));
    assert_eq!(read(2), format!("{MARKER}\nthird plan\n"));
    assert!(!store.join("3.md").exists(), "a second comment was created");
    let calls = std::fs::read_to_string(store.join("calls.log")).unwrap();
    assert_eq!(calls.matches("--method POST").count(), 1, "{calls}");
    assert_eq!(
        calls
            .matches("--method PATCH repos/acme/secrets/issues/comments/2")
            .count(),
        2,
        "{calls}"
    );
}

#[test]
fn apply_on_merge_applies_and_the_next_run_reuses_the_cached_state() {
    // apply.sh seals the cached state with age.
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.commit_all("main");
    let runner = Runner::new();
    let key = identity(&repo);

    let first = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(first.summary.contains("+ A2"), "{}", first.summary);
    assert_eq!(emu.value("alpha", "A2").as_deref(), Some(CANARY));
    assert_eq!(emu.requests("POST"), 4);

    // The cache holds the state encrypted with age, and nothing in plaintext.
    let cache = runner.path("cache");
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["state.db.age".to_owned()]);
    let sealed = std::fs::read_to_string(cache.join("state.db.age")).unwrap();
    assert!(
        sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{sealed}"
    );
    assert!(
        !repo.path(".castsync").exists(),
        "state written into the checkout"
    );

    // Without the restored state every key would be set again as "unverified".
    emu.reset_stats();
    let second = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.summary.contains("No changes"), "{}", second.summary);
    assert_eq!(emu.requests("POST"), 0);

    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);
    repo.commit_all("rotate B2");
    emu.reset_stats();
    let third = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    // A push refreshes only what it changed: beta's list, write and verify.
    assert_eq!(emu.requests("GET"), 2, "{}", third.summary);
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.value("beta", "B2").as_deref(), Some("b-two-rotated"));
    assert!(
        third.summary.contains(&format!(
            "1 agent unchanged since {}, not refreshed.",
            &before[..7]
        )),
        "{}",
        third.summary
    );

    for run in [&first, &second, &third] {
        run.assert_no_canary(&[&sealed]);
    }
}

#[test]
fn an_apply_with_a_broken_agent_exits_1_and_still_keeps_what_landed() {
    let Some((emu, repo, runner, key)) =
        two_agents(|repo| repo.raw_manifest("alpha", "not: [valid"))
    else {
        return;
    };

    let first = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(first.code, 1, "{}\n{}", first.stdout, first.stderr);
    assert!(first.summary.contains("alpha"), "{}", first.summary);
    assert_eq!(
        emu.value("alpha", "A1"),
        None,
        "a broken agent is never touched"
    );
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
    assert!(runner.path("cache/state.db.age").exists());

    // beta's write was recorded: the next run has nothing to do for it.
    emu.reset_stats();
    let second = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(second.code, 1);
    assert_eq!(emu.requests("POST"), 0, "{}", second.summary);
    first.assert_no_canary(&[]);
    second.assert_no_canary(&[]);
}

#[test]
fn a_cached_state_file_of_an_earlier_castsync_is_migrated_and_cached_as_the_database() {
    let Some((emu, repo, runner, key)) = two_agents(|_| {}) else {
        return;
    };
    let first = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);

    // The cache as an earlier castsync left it: the JSON state file, sealed.
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("state.db");
    let age = |args: &[&std::ffi::OsStr]| {
        let out = StdCommand::new("age").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let sealed_db = runner.path("cache/state.db.age");
    age(&[
        "-d".as_ref(),
        "-i".as_ref(),
        repo.key_file.as_os_str(),
        "-o".as_ref(),
        db.as_os_str(),
        sealed_db.as_os_str(),
    ]);
    let file = work.path().join("state.json");
    let export = Test::at_home(&repo.home)
        .args(["state", "export", "--state"])
        .arg(&db)
        .run()
        .success();
    std::fs::write(&file, export.stdout()).unwrap();
    let recipient = work.path().join("recipient");
    let out = StdCommand::new("age-keygen")
        .arg("-y")
        .arg(&repo.key_file)
        .output()
        .unwrap();
    std::fs::write(&recipient, &out.stdout).unwrap();
    let sealed_file = runner.path("cache/state.json.age");
    age(&[
        "-e".as_ref(),
        "-R".as_ref(),
        recipient.as_os_str(),
        "-o".as_ref(),
        sealed_file.as_os_str(),
        file.as_os_str(),
    ]);
    std::fs::remove_file(&sealed_db).unwrap();

    emu.reset_stats();
    let second = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.summary.contains("No changes"), "{}", second.summary);
    assert_eq!(emu.requests("POST"), 0, "every fingerprint was migrated");
    let names: Vec<String> = std::fs::read_dir(runner.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["state.db.age".to_owned()]);
    second.assert_no_canary(&[]);
}

#[test]
fn an_apply_without_the_identity_secret_fails_before_any_request() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    repo.commit_all("main");
    let runner = Runner::new();

    let run = runner.run(
        &script("apply.sh"),
        &repo,
        &[
            ("CASTARI_API_KEY", "cast_test"),
            ("CASTARI_API_URL", emu.url.as_str()),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("CASTSYNC_AGE_KEY"), "{}", run.stderr);
    assert_eq!(emu.requests("GET") + emu.requests("POST"), 0);
}

#[test]
fn the_scheduled_full_run_heals_drift_that_pushes_leave_alone() {
    let Some((emu, repo, runner, key)) = two_agents(|_| {}) else {
        return;
    };
    let first = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);

    // Deleted on the platform, outside git.
    emu.delete_out_of_band("alpha", "A1");
    repo.agent("beta", &[("B1", "b-one-rotated")]);
    repo.commit_all("rotate B1");
    let push = runner.run(&script("apply.sh"), &repo, &secrets(&key, &emu));
    assert_eq!(push.code, 0, "{}\n{}", push.stdout, push.stderr);
    assert_eq!(emu.value("alpha", "A1"), None, "a push leaves alpha alone");

    let mut env = secrets(&key, &emu);
    env.push(("CASTSYNC_SCOPE", "full"));
    emu.reset_stats();
    let nightly = runner.run(&script("apply.sh"), &repo, &env);
    assert_eq!(nightly.code, 0, "{}\n{}", nightly.stdout, nightly.stderr);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
    assert!(
        !nightly.summary.contains("not refreshed"),
        "{}",
        nightly.summary
    );
    assert!(emu.requests("GET") >= 2);

    env.pop();
    env.push(("CASTSYNC_SCOPE", "everything"));
    let wrong = runner.run(&script("apply.sh"), &repo, &env);
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("CASTSYNC_SCOPE"), "{}", wrong.stderr);
    for run in [&first, &push, &nightly, &wrong] {
        run.assert_no_canary(&[]);
    }
}

/// The pull request of `merged_repo`: on `feature`, alpha's A1 rotated, A3 dropped and A4
/// (holding the second canary) added; its plan saved by pr-plan.sh into the runner's dir.
fn reviewed_feature(emu: &Emulator, runner: &Runner) -> (SecretsRepo, PathBuf) {
    let repo = merged_repo(emu);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.agent(
        "alpha",
        &[("A1", "a-one-v2"), ("A2", CANARY), ("A4", CANARY_NEW)],
    );
    repo.commit_all("rotate A1, add A4, drop A3");
    let plan = runner.path("artifact/plan.json");
    let key = identity(&repo);
    let mut env = secrets(&key, emu);
    let plan_env = plan.to_str().unwrap().to_owned();
    env.push(("CASTSYNC_PLAN_FILE", &plan_env));
    let run = runner.run(&script("pr-plan.sh"), &repo, &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let saved = std::fs::read_to_string(&plan).expect("pr-plan.sh saved the plan");
    run.assert_no_canary(&[&saved, &runner.comments().concat()]);
    assert!(
        !runner.comments()[0].contains("Saved the plan"),
        "where the plan went is for the log only"
    );
    (repo, plan)
}

#[test]
fn the_reviewed_plan_is_applied_exactly_after_a_fast_forward_merge() {
    // apply.sh seals the cached state with age.
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let runner = Runner::new();
    let (repo, plan) = reviewed_feature(&emu, &runner);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--ff-only", "feature"]);

    emu.reset_stats();
    let key = identity(&repo);
    let mut env = secrets(&key, &emu);
    let plan_env = plan.to_str().unwrap().to_owned();
    env.push(("CASTSYNC_PLAN_FILE", &plan_env));
    let run = runner.run(&script("apply.sh"), &repo, &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.summary.contains("applying the reviewed plan"),
        "{}",
        run.summary
    );
    // Exactly the plan's three changes, although the job had no cached state (a fresh plan
    // would have set every key again as unverified). alpha is listed three times: by the
    // check, by the apply's own check and to verify; beta never.
    assert_eq!(emu.requests("POST"), 2, "{}", run.summary);
    assert_eq!(emu.requests("DELETE"), 1);
    assert_eq!(emu.requests("GET"), 3);
    assert_eq!(emu.value("alpha", "A4").as_deref(), Some(CANARY_NEW));
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one-v2"));
    assert_eq!(emu.value("alpha", "A3"), None);
    run.assert_no_canary(&[]);
}

#[test]
fn a_reviewed_plan_that_no_longer_matches_is_replaced_by_a_fresh_one_and_the_summary_says_why() {
    let Some(_) = tools(&["age", "age-keygen"]) else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let runner = Runner::new();
    let (repo, plan) = reviewed_feature(&emu, &runner);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--ff-only", "feature"]);
    // Pushed after the review: the merged tree is not the reviewed one.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-late")]);
    repo.commit_all("rotate B2 after the review");

    let key = identity(&repo);
    let mut env = secrets(&key, &emu);
    let plan_env = plan.to_str().unwrap().to_owned();
    env.push(("CASTSYNC_PLAN_FILE", &plan_env));
    let run = runner.run(&script("apply.sh"), &repo, &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.summary.contains("so this run planned afresh"),
        "{}",
        run.summary
    );
    assert!(
        run.summary
            .contains("agents/beta/secrets.yaml.age (agent beta) changed since the plan"),
        "{}",
        run.summary
    );
    // The fresh plan applied everything the merged tree holds.
    assert_eq!(emu.value("beta", "B2").as_deref(), Some("b-two-late"));
    assert_eq!(emu.value("alpha", "A4").as_deref(), Some(CANARY_NEW));
    run.assert_no_canary(&[]);

    // No plan found at all (a direct push): planned afresh, and said so.
    std::fs::remove_file(&plan).unwrap();
    let run = runner.run(&script("apply.sh"), &repo, &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.summary
            .contains("no reviewed plan for this commit, so this run planned afresh"),
        "{}",
        run.summary
    );
}

/// A fake `gh` for fetch-plan.sh: the merged pull request of a commit, the artifacts by name,
/// and the download. `FAKE_GH_HEAD` is the pull request's head ("" for none),
/// `FAKE_GH_ZIP` the artifact's archive ("" for no artifact).
const FAKE_GH_ARTIFACTS: &str = r#"#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$FAKE_GH_LOG"
[ "$1" = api ] || exit 2
case $2 in
  repos/acme/secrets/commits/*/pulls)
    case $4 in *merged_at*head.sha*) ;; *) echo "fake gh: filter $4" >&2; exit 2 ;; esac
    [ -n "$FAKE_GH_HEAD" ] && echo "$FAKE_GH_HEAD"
    exit 0 ;;
  "repos/acme/secrets/actions/artifacts?name=castsync-plan-$FAKE_GH_HEAD&per_page=100")
    case $4 in *expired*workflow_run.head_sha*"$FAKE_GH_HEAD"*) ;; *) echo "fake gh: filter $4" >&2; exit 2 ;; esac
    [ -n "$FAKE_GH_ZIP" ] && echo "https://api.github.com/repos/acme/secrets/actions/artifacts/9/zip"
    exit 0 ;;
  https://api.github.com/repos/acme/secrets/actions/artifacts/9/zip)
    cat "$FAKE_GH_ZIP" ;;
  *) echo "fake gh: unexpected $*" >&2; exit 2 ;;
esac
"#;

#[test]
fn fetch_plan_finds_the_merged_pull_requests_plan_or_leaves_none() {
    let Some(found) = tools(&["zip", "unzip"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    write_executable(&bin_dir.join("gh"), FAKE_GH_ARTIFACTS);
    // The artifact as upload-artifact stores it: a zip holding plan.json.
    std::fs::write(
        dir.path().join("plan.json"),
        "{\"kind\": \"castsync-plan\"}\n",
    )
    .unwrap();
    let zipped = StdCommand::new(&found[0])
        .args(["-q", "artifact.zip", "plan.json"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(zipped.success());

    let fetch = |head: &str, zip: &str, out: &Path| {
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        StdCommand::new(script("fetch-plan.sh"))
            .arg(out)
            .env("PATH", path)
            .env("FAKE_GH_LOG", dir.path().join("calls.log"))
            .env("FAKE_GH_HEAD", head)
            .env("FAKE_GH_ZIP", zip)
            .env("GITHUB_REPOSITORY", "acme/secrets")
            .env("GITHUB_SHA", "0123abcd")
            .output()
            .expect("run fetch-plan.sh")
    };
    let zip = dir.path().join("artifact.zip");
    let zip = zip.to_str().unwrap();

    let out = dir.path().join("found");
    let run = fetch("feed5eed", zip, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("plan.json")).unwrap(),
        "{\"kind\": \"castsync-plan\"}\n"
    );

    // No merged pull request, or no artifact: exit 0 and no plan (apply.sh plans afresh).
    for (head, zip, why) in [
        ("", zip, "belongs to no merged pull request"),
        ("feed5eed", "", "no artifact castsync-plan-feed5eed"),
    ] {
        let out = dir.path().join(format!("none-{}", head.len() + zip.len()));
        let run = fetch(head, zip, &out);
        assert!(run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(!out.join("plan.json").exists());
    }
}

/// A fake `gh` for audit-issue.sh: issues as files (`N.md`, and `N.open` while open), the
/// calls checked for the label and the repository.
const FAKE_GH_ISSUES: &str = r#"#!/usr/bin/env bash
set -euo pipefail
store=$FAKE_GH_STORE
echo "$*" >>"$store/calls.log"
case "$*" in *"--repo acme/secrets"*) ;; *) echo "fake gh: no --repo" >&2; exit 2 ;; esac
body=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = --body-file ] && body=${args[$((i + 1))]}
done
case "$1 $2" in
  "issue list")
    case "$*" in *"--state open --label castsync-audit"*) ;; *) echo "fake gh: list $*" >&2; exit 2 ;; esac
    for f in "$store"/*.open; do [ -e "$f" ] && basename "$f" .open; done; true ;;
  "label create") ;;
  "issue create")
    case "$*" in *"--label castsync-audit"*) ;; *) echo "fake gh: unlabelled" >&2; exit 2 ;; esac
    n=$(( $(find "$store" -name '*.md' | wc -l) + 1 ))
    cp "$body" "$store/$n.md"; touch "$store/$n.open"
    echo "https://github.com/acme/secrets/issues/$n" ;;
  "issue edit")
    [ -e "$store/$3.md" ] || { echo "fake gh: no issue $3" >&2; exit 1; }
    cp "$body" "$store/$3.md" ;;
  "issue close") rm "$store/$3.open" ;;
  *) echo "fake gh: unexpected $*" >&2; exit 2 ;;
esac
"#;

#[test]
fn the_audit_workflow_keeps_one_issue_open_while_something_needs_rotating() {
    let runner = Runner::new();
    let bin_dir = runner.path("bin");
    let store = runner.path("issues");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    write_executable(&bin_dir.join("gh"), FAKE_GH_ISSUES);
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let repo = SecretsRepo::new("rotate_after: 30d");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n").unwrap();
    repo.agent("alpha", &[("API_KEY", CANARY)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    repo.commit_all_at("alpha", now - 100 * 86_400);
    let identity = std::fs::read_to_string(&repo.key_file).unwrap();
    let env = [
        ("PATH", path.as_str()),
        ("FAKE_GH_STORE", store.to_str().unwrap()),
        ("GITHUB_REPOSITORY", "acme/secrets"),
        ("CASTSYNC_AGE_KEY", identity.as_str()),
    ];
    let issue = || std::fs::read_to_string(store.join("1.md")).unwrap_or_default();

    let first = runner.run(&script("audit-issue.sh"), &repo, &env);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("opened an issue"), "{}", first.stdout);
    // Markdown escapes the underscore.
    assert!(
        issue().contains("| agent alpha | API\\_KEY |"),
        "{}",
        issue()
    );
    assert!(issue().contains("1 overdue"), "{}", issue());
    assert!(first.summary.contains("API\\_KEY"), "{}", first.summary);
    assert!(store.join("1.open").exists());
    first.assert_no_canary(&[&issue()]);

    // The next week: the same issue, edited.
    let again = runner.run(&script("audit-issue.sh"), &repo, &env);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("updated issue #1"),
        "{}",
        again.stdout
    );
    assert!(!store.join("2.md").exists(), "a second issue was opened");

    // Rotated: the issue gets the clean report and is closed; then nothing happens.
    repo.test()
        .args(["set", "alpha", "API_KEY"])
        .stdin(CANARY_NEW)
        .run()
        .success();
    repo.commit_all("rotate API_KEY");
    let clean = runner.run(&script("audit-issue.sh"), &repo, &env);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("closed issue #1"), "{}", clean.stdout);
    assert!(!store.join("1.open").exists());
    assert!(issue().contains("0 overdue"), "{}", issue());
    clean.assert_no_canary(&[&issue()]);
    let quiet = runner.run(&script("audit-issue.sh"), &repo, &env);
    assert!(
        quiet.stdout.contains("nothing to rotate"),
        "{}",
        quiet.stdout
    );

    // An audit that cannot run fails the job (and touches no issue).
    let broken = runner.run(
        &script("audit-issue.sh"),
        &repo,
        &[
            ("PATH", path.as_str()),
            ("FAKE_GH_STORE", store.to_str().unwrap()),
            ("GITHUB_REPOSITORY", "acme/secrets"),
        ],
    );
    assert_eq!(broken.code, 1, "{}\n{}", broken.stdout, broken.stderr);
    assert!(
        broken.stderr.contains("castsync audit failed"),
        "{}",
        broken.stderr
    );
}
