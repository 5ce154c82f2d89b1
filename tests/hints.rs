//! Hints as data: an error's fix is printed once, as a `hint:` line of its own under the
//! message, by whichever printer shows the error (a command's error, `validate`'s findings, a
//! plan's skipped agent), and JSON outputs carry it as a `hint` field beside a message that
//! holds no `hint:` of its own.

use crate::support::*;

/// How many lines of `text` are hint lines.
fn hint_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.trim_start().starts_with("hint: "))
        .count()
}

#[test]
fn a_commands_error_ends_with_one_hint_line() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    let run = repo
        .test()
        .args(["validate", "nope"])
        .run()
        .failure()
        .stderr_is(
            "error: agent \"nope\" is not declared: there is no directory agents/nope\n  \
             hint: declared agents: alpha; create one with `castsync new nope`\n",
        );
    assert_eq!(hint_lines(run.stderr()), 1);
}

#[test]
fn a_finding_prints_its_hint_under_it_and_carries_it_in_json() {
    let repo = SecretsRepo::new("");
    repo.schema("empty", "A=x\n");
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has(
            "error: agents/empty/secrets.yaml.age: missing: the agent directory has no secrets.yaml.age\n  \
             hint: create it with `castsync new empty`, or remove the directory\n",
        );

    let run = repo.test().args(["validate", "-o", "json"]).run().failure();
    let doc = crate::cli::assert_matches_schema("validate.schema.json", run.stdout());
    let finding = &doc["findings"][0];
    assert_eq!(
        finding["message"],
        "missing: the agent directory has no secrets.yaml.age"
    );
    assert_eq!(
        finding["hint"],
        "create it with `castsync new empty`, or remove the directory"
    );

    // A finding without a known fix: `hint` is null, and no hint line is printed.
    repo.agent("alpha", &[("A", "a")]);
    repo.raw_manifest("alpha", "agent: alpha\nsecrets:\n  A: 1.10\n");
    let run = repo.test().args(["validate", "alpha"]).run().failure();
    assert_eq!(hint_lines(run.stdout()), 0, "{}", run.stdout());
    let run = repo
        .test()
        .args(["validate", "alpha", "-o", "json"])
        .run()
        .failure();
    assert_eq!(run.json()["findings"][0]["hint"], serde_json::Value::Null);
}

#[test]
fn a_skipped_agent_shows_its_hint_once_in_text_and_as_a_field_in_json() {
    let emu = Emulator::start(&["--agents", "alpha,empty"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.schema("empty", "A=x\n");
    let plan = |output: &str| {
        repo.test()
            .env("CASTARI_API_KEY", "cast_test")
            .args([
                "reconcile",
                "--dry-run",
                "--api-url",
                &emu.url,
                "-o",
                output,
            ])
            .run()
            .failure()
    };

    let text = plan("text").stdout_has(
        "! empty: skipped, nothing changed: manifest not loaded: agents/empty/secrets.yaml.age: missing: the agent directory has no secrets.yaml.age\n      \
         hint: create it with `castsync new empty`, or remove the directory\n",
    );
    assert_eq!(hint_lines(text.stdout()), 1, "{}", text.stdout());

    let json = plan("json");
    let doc = json.json();
    assert_plan_schema(&doc);
    let skipped = &doc["agents"][1]["skipped"];
    assert_eq!(skipped["kind"], "load-failed");
    assert_eq!(
        skipped["hint"],
        "create it with `castsync new empty`, or remove the directory"
    );
    assert!(
        !skipped["message"].as_str().unwrap().contains("hint"),
        "{skipped:#}"
    );

    let md = plan("markdown");
    md.stdout_has(
        "- **empty** skipped, nothing changed: manifest not loaded: agents/empty/secrets.yaml.age: missing: the agent directory has no secrets.yaml.age\n  \
         - hint: create it with \\`castsync new empty\\`, or remove the directory\n",
    );
}

#[test]
fn a_refused_mass_delete_keeps_the_override_in_its_hint() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a"), ("B", "b")]);
    let reconcile = || {
        repo.test()
            .env("CASTARI_API_KEY", "cast_test")
            .args(["reconcile", "--api-url", &emu.url])
    };
    reconcile().run().success();
    repo.agent("alpha", &[]);
    reconcile()
        .run()
        .failure()
        .stdout_has("alpha: skipped, nothing changed: refusing to delete all 2 managed keys of this agent\n      hint: rerun with --allow-mass-delete if that is intended\n");
    let run = reconcile()
        .args(["--dry-run", "-o", "json"])
        .run()
        .failure();
    let doc = run.json();
    assert_plan_schema(&doc);
    assert_eq!(
        doc["agents"][0]["skipped"]["hint"],
        "rerun with --allow-mass-delete if that is intended"
    );
}
