//! `castsync guard` against real repositories: as the pre-commit hook `git-setup --hooks`
//! installs, through real `git commit`s; over the working tree; over every reachable commit;
//! and as the pre-commit framework runs it from `.pre-commit-hooks.yaml`. Every value is a
//! canary that no output (text, JSON, Markdown, git's) may hold.

use std::path::{Path, PathBuf};

use crate::support::*;

const API_KEY: &str = "canary-guard-api-key-0001";
const DB_URL: &str = "postgres://canary-guard:pw@db/app";
const GROUP_KEY: &str = "canary-guard-shared-openai";
const SHORT: &str = "abc123";
/// Equal to its placeholder in .env.example: written down on purpose, not searched.
const DEFAULT_HOST: &str = "db.internal.example";
const CANARIES: &[&str] = &[API_KEY, DB_URL, GROUP_KEY];

/// alpha declares a key, a URL, a short value and one equal to its placeholder; it also
/// takes a key from shared group openai. Everything committed once.
fn guarded_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\nignored.txt\n").unwrap();
    repo.group("openai", &[("OPENAI_API_KEY", GROUP_KEY)]);
    repo.agent_using(
        "alpha",
        "[openai]",
        &[
            ("API_KEY", API_KEY),
            ("DATABASE_URL", DB_URL),
            ("PIN", SHORT),
            ("DB_HOST", DEFAULT_HOST),
        ],
        &["API_KEY", "DATABASE_URL", "PIN", "DB_HOST"],
    );
    repo.schema(
        "alpha",
        &format!(
            "API_KEY=your-key-here\nDATABASE_URL=postgres://user:password@localhost/app\nPIN=0000\nDB_HOST={DEFAULT_HOST}\nOPENAI_API_KEY=sk-...\n"
        ),
    );
    repo.commit_all("manifests");
    repo
}

/// git (and castsync, which its hook runs) as a user has them: castsync on PATH, the
/// identity in the environment, no `-i`.
fn user(repo: &SecretsRepo, program: &str) -> Command {
    repo.as_user(program, &repo.root)
}

/// `git commit -m MESSAGE` as the user: (exit code, everything git and the hook printed).
fn commit(repo: &SecretsRepo, message: &str) -> (i32, String) {
    let (code, stdout, stderr) =
        outcome(user(repo, "git").args(["-c", "commit.gpgsign=false", "commit", "-m", message]));
    let all = format!("{stdout}{stderr}");
    assert_no_canary("git commit's output", &all, CANARIES);
    (code, all)
}

fn write(repo: &SecretsRepo, rel: &str, text: &str) {
    let path = repo.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Validates a `guard -o json` document against `schemas/guard.schema.json`.
fn assert_guard_schema(doc: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/guard.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// The report in every format: each free of canaries, the JSON valid; returns the JSON.
fn every_format(repo: &SecretsRepo, args: &[&str], code: i32) -> serde_json::Value {
    for format in ["text", "markdown"] {
        repo.test()
            .arg("guard")
            .args(args)
            .args(["-o", format])
            .run()
            .code(code)
            .no_canary(CANARIES);
    }
    let run = repo
        .test()
        .args(["--log", "debug", "guard"])
        .args(args)
        .args(["-o", "json"])
        .run()
        .code(code)
        .no_canary(CANARIES);
    let doc = run.json();
    assert_guard_schema(&doc);
    doc
}

fn locations(doc: &serde_json::Value) -> Vec<(String, String, Option<u64>, Vec<String>)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let owners = f["declared_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["name"].as_str().unwrap(),
                        o["key"].as_str().unwrap()
                    )
                })
                .collect();
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap().to_owned(),
                f["line"].as_u64(),
                owners,
            )
        })
        .collect()
}

#[test]
fn the_pre_commit_hook_blocks_a_commit_that_adds_a_value_and_lets_placeholders_through() {
    let repo = guarded_repo();
    Test::with(user(&repo, "castsync"), &repo.root, &repo.home)
        .args(["git-setup", "--hooks"])
        .run()
        .success()
        .stderr_has("wrote the pre-commit hook")
        .no_canary(CANARIES);
    let head = repo.git(&["rev-parse", "HEAD"]);

    // A config file with the real database URL, pasted on line 3.
    write(
        &repo,
        "app/settings.py",
        &format!("DEBUG = False\n\nDATABASE = \"{DB_URL}\"\n"),
    );
    repo.git(&["add", "app/settings.py"]);
    let (code, out) = commit(&repo, "settings");
    assert_ne!(code, 0, "the commit went through:\n{out}");
    assert!(out.contains("app/settings.py:3"), "{out}");
    assert!(out.contains("agent alpha's DATABASE_URL"), "{out}");
    assert_eq!(
        repo.git(&["rev-parse", "HEAD"]),
        head,
        "nothing was committed"
    );

    // Only placeholders, a short value and a value equal to its placeholder: it goes through,
    // and the hook says what it did not search.
    write(
        &repo,
        "app/settings.py",
        &format!(
            "DATABASE = \"postgres://user:password@localhost/app\"\nPIN = \"{SHORT}\"\nHOST = \"{DEFAULT_HOST}\"\n"
        ),
    );
    repo.git(&["add", "app/settings.py"]);
    let (code, out) = commit(&repo, "settings from the environment");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 key(s) whose value is shorter than 8 bytes"),
        "{out}"
    );
    assert!(
        out.contains("1 key(s) whose value is its .env.example placeholder"),
        "{out}"
    );

    // The real value pasted over its own placeholder in the .env.example: the last commit's
    // placeholder is what counts, so the hook stops it.
    let schema = std::fs::read_to_string(repo.path("agents/alpha/.env.example")).unwrap();
    write(
        &repo,
        "agents/alpha/.env.example",
        &schema.replace(
            "DATABASE_URL=postgres://user:password@localhost/app",
            &format!("DATABASE_URL={DB_URL}"),
        ),
    );
    repo.git(&["add", "-A"]);
    let (code, out) = commit(&repo, "example");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("agents/alpha/.env.example:2"), "{out}");
    write(&repo, "agents/alpha/.env.example", &schema);
    repo.git(&["add", "-A"]);

    // A shared group's value in a test fixture, and a .env: both stop the commit.
    write(
        &repo,
        "tests/fixtures/request.json",
        &format!("{{\"auth\": \"Bearer {GROUP_KEY}\"}}"),
    );
    write(&repo, ".env", "LOG_LEVEL=debug\n");
    repo.git(&["add", "-A"]);
    let (code, out) = commit(&repo, "fixtures");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("tests/fixtures/request.json:1"), "{out}");
    assert!(
        out.contains("shared group openai's OPENAI_API_KEY"),
        "{out}"
    );
    assert!(
        out.contains(".env: a dotenv file with values is tracked by git"),
        "{out}"
    );

    let doc = every_format(&repo, &["--staged"], 1);
    assert_eq!(doc["mode"], "staged");
    assert_eq!(
        locations(&doc),
        vec![
            ("dotenv".to_owned(), ".env".to_owned(), None, vec![]),
            (
                "value".to_owned(),
                "tests/fixtures/request.json".to_owned(),
                Some(1),
                vec!["openai/OPENAI_API_KEY".to_owned()]
            ),
        ]
    );
    assert_eq!(doc["summary"]["keys_too_short"], 1);
    assert_eq!(doc["summary"]["keys_placeholder"], 1);
    assert_eq!(doc["summary"]["keys_searched"], 3);
}

#[test]
fn guard_searches_tracked_and_untracked_files_but_not_ignored_ones() {
    let repo = guarded_repo();
    // Tracked and committed: the value pasted into the .env.example, as another key's
    // example.
    let schema = std::fs::read_to_string(repo.path("agents/alpha/.env.example")).unwrap();
    write(
        &repo,
        "agents/alpha/.env.example",
        &format!("BACKUP_API_KEY={API_KEY}\n{schema}"),
    );
    repo.commit_all("oops");
    // Untracked, not ignored: found. Ignored: not searched.
    write(
        &repo,
        "notes/todo.md",
        &format!("- [ ] rotate\n- {API_KEY}\n"),
    );
    write(&repo, "ignored.txt", API_KEY);
    // A plaintext manifest lying around (a `show --reveal > …` kept by mistake).
    write(
        &repo,
        "alpha.yaml",
        "agent: alpha\nsecrets:\n  API_KEY: \"redacted\"\n",
    );
    let doc = every_format(&repo, &[], 1);
    let api = vec!["alpha/API_KEY".to_owned()];
    assert_eq!(
        locations(&doc),
        vec![
            (
                "value".to_owned(),
                "agents/alpha/.env.example".to_owned(),
                Some(1),
                api.clone()
            ),
            (
                "plaintext-manifest".to_owned(),
                "alpha.yaml".to_owned(),
                None,
                vec![]
            ),
            ("value".to_owned(), "notes/todo.md".to_owned(), Some(2), api),
        ]
    );
    repo.test()
        .arg("guard")
        .run()
        .code(1)
        .stdout_line_with(&["error:", "notes/todo.md:2", "agent alpha's API_KEY"])
        .stdout_has("hint: remove it from the file")
        .stdout_has("castsync set alpha API_KEY")
        .no_canary(CANARIES);

    std::fs::remove_file(repo.path("notes/todo.md")).unwrap();
    std::fs::remove_file(repo.path("alpha.yaml")).unwrap();
    write(&repo, "agents/alpha/.env.example", &schema);
    repo.test()
        .arg("guard")
        .run()
        .success()
        .stdout_has("guard: 0 finding(s)")
        .no_canary(CANARIES);
}

#[test]
fn guard_history_finds_a_value_committed_then_removed_and_names_the_commit() {
    let repo = guarded_repo();
    write(&repo, "deploy/run.sh", "#!/bin/sh\nexec app\n");
    repo.commit_all("deploy script");
    write(
        &repo,
        "deploy/run.sh",
        &format!("#!/bin/sh\nexport API_KEY={API_KEY}\nexec app\n"),
    );
    let leaked = repo.commit_all("deploy with the key");
    write(&repo, "deploy/run.sh", "#!/bin/sh\nexec app\n");
    repo.commit_all("key out of the script");
    // On another branch only: a committed .env.
    repo.git(&["checkout", "-q", "-b", "experiment"]);
    write(&repo, "config/.env.local", "DEBUG=1\n");
    let on_branch = repo.commit_all("local config");
    repo.git(&["checkout", "-q", "-"]);

    // The working tree and HEAD are clean now.
    repo.test().arg("guard").run().success().no_canary(CANARIES);
    let doc = every_format(&repo, &["--history"], 1);
    assert_eq!(doc["mode"], "history");
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{doc:#}");
    assert_eq!(findings[0]["kind"], "value");
    assert_eq!(findings[0]["path"], "deploy/run.sh");
    assert_eq!(findings[0]["line"], 2);
    assert_eq!(findings[0]["commit"]["commit"], leaked.as_str());
    assert_eq!(findings[0]["declared_by"][0]["key"], "API_KEY");
    assert_eq!(findings[1]["kind"], "dotenv");
    assert_eq!(findings[1]["path"], "config/.env.local");
    assert_eq!(findings[1]["commit"]["commit"], on_branch.as_str());
    assert_eq!(doc["summary"]["commits"], 5);
    repo.test()
        .args(["guard", "--history"])
        .run()
        .code(1)
        .stdout_line_with(&[
            &format!("commit {}", &leaked[..12]),
            "deploy/run.sh:2",
            "API_KEY",
        ])
        .stdout_has("rotate it")
        .no_canary(CANARIES);
}

#[test]
fn git_setup_hooks_keeps_another_pre_commit_hook_unless_forced() {
    let repo = guarded_repo();
    let hook = PathBuf::from(repo.git(&["rev-parse", "--git-path", "hooks/pre-commit"]));
    let hook = if hook.is_absolute() {
        hook
    } else {
        repo.root.join(hook)
    };
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let setup = |args: &[&str]| {
        Test::with(user(&repo, "castsync"), &repo.root, &repo.home)
            .arg("git-setup")
            .args(args)
            .run()
    };
    setup(&["--hooks"])
        .success()
        .stderr_has("warning: kept the pre-commit hook");
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    setup(&["--hooks", "--force"])
        .success()
        .stderr_has("before-castsync");
    assert!(
        std::fs::read_to_string(&hook)
            .unwrap()
            .contains("castsync guard --staged")
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&hook).unwrap().permissions());
    assert_eq!(mode & 0o111, 0o111, "the hook is executable");
    setup(&["--hooks"])
        .success()
        .stderr_has("already installed");
}

#[test]
fn guard_without_an_identity_or_outside_git_says_what_to_do() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", API_KEY)]);
    repo.test()
        .arg("guard")
        .run()
        .failure()
        .stderr_has("is not in a git repository")
        .no_canary(CANARIES);
    repo.commit_all("first");
    Test::with(user(&repo, "castsync"), &repo.root, &repo.home)
        .env_remove("CASTSYNC_AGE_KEY_FILE")
        .args(["guard", "--staged"])
        .run()
        .failure()
        .stderr_has("no identity")
        .stderr_has("hint:");
}

/// The hooks file of this repository, as the pre-commit framework (pre-commit.com) reads it
/// from a hooks repository, with castsync on PATH (`language: system`).
#[test]
fn the_pre_commit_framework_runs_the_guard_from_pre_commit_hooks_yaml() {
    let Some(pre_commit) = tool("pre-commit") else {
        return;
    };
    let repo = guarded_repo();
    // A hooks repository holding this project's .pre-commit-hooks.yaml, committed.
    let hooks = repo.home.join("hooks-repo");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
        hooks.join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    let git_in = |dir: &Path, args: &[&str]| {
        let (code, out, err) = outcome(user(&repo, "git").current_dir(dir).args(args));
        assert_eq!(code, 0, "git {args:?}: {out}{err}");
        out.trim().to_owned()
    };
    git_in(&hooks, &["init", "-q"]);
    git_in(&hooks, &["add", "-A"]);
    git_in(
        &hooks,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", "hooks"],
    );
    let rev = git_in(&hooks, &["rev-parse", "HEAD"]);
    write(
        &repo,
        ".pre-commit-config.yaml",
        &format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: castsync-guard-system\n",
            hooks.display()
        ),
    );
    repo.commit_all("pre-commit config");
    let (code, out, err) = outcome(
        user(&repo, pre_commit.to_str().unwrap())
            .env("PRE_COMMIT_HOME", repo.home.join("pre-commit-cache"))
            .args(["install"]),
    );
    assert_eq!(code, 0, "pre-commit install: {out}{err}");

    write(&repo, "README.txt", &format!("token: {API_KEY}\n"));
    repo.git(&["add", "README.txt"]);
    let (code, out) = {
        let (code, stdout, stderr) = outcome(
            user(&repo, "git")
                .env("PRE_COMMIT_HOME", repo.home.join("pre-commit-cache"))
                .args(["-c", "commit.gpgsign=false", "commit", "-m", "readme"]),
        );
        (code, format!("{stdout}{stderr}"))
    };
    assert_no_canary("pre-commit's output", &out, CANARIES);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("README.txt:1"), "{out}");
    assert!(out.contains("agent alpha's API_KEY"), "{out}");
}
