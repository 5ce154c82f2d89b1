//! `reconcile --dry-run --save-plan FILE` and `reconcile --plan FILE`: a plan saved on a
//! branch applies after the merge with exactly its changes, and is refused, naming what
//! moved, when a manifest, the config, the target or an agent's key list changed.

use std::path::PathBuf;

use crate::cli::assert_matches_schema;
use crate::support::*;

const CANARY: &str = "canary-plan-2d4e-never-print";
const CANARY_NEW: &str = "canary-plan-new-9a13-never-print";
const CANARIES: [&str; 2] = [CANARY, CANARY_NEW];

/// main: alpha (A1 holds the canary, A2, A3) and beta (B1, B2), applied to the emulator;
/// then a branch `feature` that rotates A1, drops A3 and adds A4.
fn repo_with_feature(emu: &Emulator) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n*.plan.json\n").unwrap();
    repo.agent(
        "alpha",
        &[("A1", CANARY), ("A2", "a-two"), ("A3", "a-three")],
    );
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.commit_all("main");
    reconcile(&repo, &emu.url, &["--yes"]).success();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.agent(
        "alpha",
        &[("A1", CANARY_NEW), ("A2", "a-two"), ("A4", "a-four")],
    );
    repo.commit_all("rotate A1, replace A3 by A4");
    repo
}

fn plan_path(repo: &SecretsRepo) -> PathBuf {
    repo.path("pr.plan.json")
}

/// `reconcile ARGS…` against the emulator; no canary in either stream.
fn reconcile(repo: &SecretsRepo, emu_url: &str, args: &[&str]) -> Run {
    repo.test_reconcile(emu_url)
        .args(args)
        .run()
        .no_canary(&CANARIES)
}

/// The pull-request plan of `feature` against main, saved.
fn save_plan(repo: &SecretsRepo, emu: &Emulator) -> String {
    let file = plan_path(repo);
    reconcile(
        repo,
        &emu.url,
        &[
            "--dry-run",
            "--base",
            "main",
            "--save-plan",
            file.to_str().unwrap(),
        ],
    )
    .success()
    .stderr_has("Saved the plan to");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_no_canary("the plan file", &text, &CANARIES);
    text
}

fn apply_plan(repo: &SecretsRepo, emu_url: &str, extra: &[&str]) -> Run {
    let file = plan_path(repo);
    let mut args = vec!["--yes", "--plan", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    reconcile(repo, emu_url, &args)
}

fn writes(emu: &Emulator) -> u64 {
    emu.requests("POST") + emu.requests("DELETE")
}

fn a_plan_saved_on_a_branch_applies_after_a_fast_forward_merge_with_exactly_its_changes(
    wire: Wire,
) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    let text = save_plan(&repo, &emu);
    let doc = assert_matches_schema("saved-plan.schema.json", &text);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["platform"], emu.url.as_str());
    let alpha = &doc["agents"][0];
    assert_eq!(alpha["agent"], "alpha");
    assert_eq!(
        alpha["changes"],
        serde_json::json!([
            {"key": "A1", "action": "update", "reason": "value-changed"},
            {"key": "A4", "action": "create"},
            {"key": "A3", "action": "delete"},
        ])
    );
    assert_eq!(alpha["files"][0]["path"], "agents/alpha/secrets.yaml.age");
    let blob = repo.git(&["rev-parse", "HEAD:agents/alpha/secrets.yaml.age"]);
    assert_eq!(alpha["files"][0]["blob"], blob.as_str());
    assert_eq!(
        doc["config"]["blob"],
        repo.git(&["rev-parse", "HEAD:castsync.yaml"]).as_str()
    );
    assert_eq!(doc["agents"][1]["changes"], serde_json::json!([]));

    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--ff-only", "feature"]);
    emu.reset_stats();
    apply_plan(&repo, &emu.url, &[])
        .success()
        .stderr_has("matched the tree and the platform: exactly its changes were applied");
    // Exactly the plan: two sets and one delete for alpha; one list to check its key list and
    // one to verify; beta is not even listed.
    assert_eq!(emu.requests("POST"), 2);
    assert_eq!(emu.requests("DELETE"), 1);
    assert_eq!(emu.requests("GET"), 2);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY_NEW));
    assert_eq!(emu.value("alpha", "A4").as_deref(), Some("a-four"));
    assert_eq!(emu.value("alpha", "A3"), None);

    // The history has them, last.
    let history = repo
        .test()
        .args(["history", "-o", "json"])
        .run()
        .success()
        .json();
    let entries = history["entries"].as_array().unwrap();
    let last: Vec<(String, String)> = entries[entries.len() - 3..]
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [
            ("A1".to_owned(), "update".to_owned()),
            ("A4".to_owned(), "create".to_owned()),
            ("A3".to_owned(), "delete".to_owned()),
        ]
    );

    // Applied: the platform's key list moved, so the same plan is refused now.
    emu.reset_stats();
    apply_plan(&repo, &emu.url, &[])
        .failure()
        .stderr_has("the platform's key list for agent alpha changed since the plan");
    assert_eq!(writes(&emu), 0);
    // A fresh plan agrees that nothing is left to do.
    reconcile(&repo, &emu.url, &["--dry-run", "--exit-code"]).success();
}

/// Saves the feature plan, merges it, and lets `change` move something; the plan must then be
/// refused with `named` in the message and nothing written.
fn refused_after(change: impl FnOnce(&SecretsRepo, &Emulator), named: &str) {
    refused_after_on(Wire::Sdk, change, named)
}

fn refused_after_on(wire: Wire, change: impl FnOnce(&SecretsRepo, &Emulator), named: &str) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    save_plan(&repo, &emu);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--ff-only", "feature"]);
    change(&repo, &emu);
    emu.reset_stats();
    apply_plan(&repo, &emu.url, &[])
        .failure()
        .stderr_has("does not match, so nothing was applied")
        .stderr_has(named)
        .stderr_has("\n  hint: plan afresh");
    assert_eq!(writes(&emu), 0, "a refused plan writes nothing");
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY));
    // A dry run of the plan says the same, with the same exit status.
    apply_plan(&repo, &emu.url, &["--dry-run"])
        .failure()
        .stderr_has(named);
}

#[test]
fn the_plan_is_refused_after_a_manifest_changed() {
    refused_after(
        |repo, _| {
            repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);
            repo.commit_all("rotate B2 after the review");
        },
        "agents/beta/secrets.yaml.age (agent beta) changed since the plan",
    );
}

#[test]
fn the_plan_is_refused_after_the_config_changed() {
    refused_after(
        |repo, _| {
            repo.config("max_delete_fraction: 0.9");
            repo.commit_all("loosen the guard");
        },
        "castsync.yaml changed since the plan",
    );
}

#[test]
fn the_plan_is_refused_after_an_agent_was_added() {
    refused_after(
        |repo, _| repo.agent("gamma", &[("G1", "g")]),
        "agent gamma was added since the plan",
    );
}

fn the_plan_is_refused_after_the_platforms_key_list_changed(wire: Wire) {
    refused_after_on(
        wire,
        |_, emu| {
            let reply = emu.request(
                "POST",
                "/api/v1/agents/alpha/secrets",
                Some("cast_test"),
                Some(serde_json::json!({"key": "ADDED_BY_HAND", "value": "x"})),
            );
            assert!(reply.status < 300, "{reply:?}");
        },
        "the platform's key list for agent alpha changed since the plan (3 key(s) then, 4 now)",
    );
}

#[test]
fn the_plan_is_refused_for_another_target() {
    let other = Emulator::start(&["--agents", "alpha,beta"]);
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    save_plan(&repo, &emu);
    apply_plan(&repo, &other.url, &[])
        .failure()
        .stderr_has(format!(
            "the target differs: the plan is for platform {}, this run targets {}",
            emu.url, other.url
        ));
    assert_eq!(other.requests("GET") + writes(&other), 0);
}

#[test]
fn a_plan_that_checks_out_with_dry_run_writes_nothing() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    save_plan(&repo, &emu);
    emu.reset_stats();
    let file = plan_path(&repo);
    reconcile(
        &repo,
        &emu.url,
        &["--dry-run", "--exit-code", "--plan", file.to_str().unwrap()],
    )
    .code(2)
    .stdout_has("A4")
    .stderr_has("would apply it");
    assert_eq!(writes(&emu), 0);
    assert_eq!(emu.requests("GET"), 1, "only alpha, which the plan changes");
}

#[test]
fn a_plan_with_a_skipped_agent_is_not_saved() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    repo.raw_manifest("beta", "not: [valid");
    let file = plan_path(&repo);
    reconcile(
        &repo,
        &emu.url,
        &["--dry-run", "--save-plan", file.to_str().unwrap()],
    )
    .failure()
    .stderr_has("skips agent(s) beta")
    .stderr_has("\n  hint: fix what the plan says about them, or leave them out with --agent");
    assert!(!file.exists());
}

#[test]
fn a_tampered_plan_cannot_make_a_change_a_fresh_plan_would_not() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = repo_with_feature(&emu);
    let text = save_plan(&repo, &emu);
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Delete a declared key of beta, and set a key alpha does not declare.
    doc["agents"][1]["changes"] = serde_json::json!([{"key": "B1", "action": "delete"}]);
    doc["agents"][0]["changes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"key": "NOT_DECLARED", "action": "create"}));
    std::fs::write(plan_path(&repo), doc.to_string()).unwrap();
    emu.reset_stats();
    apply_plan(&repo, &emu.url, &[])
        .failure()
        .stderr_has("the plan deletes B1 of agent beta, which its manifest declares")
        .stderr_has("the plan sets NOT_DECLARED of agent alpha");
    assert_eq!(writes(&emu), 0);

    // Not a plan at all, and a plan from the future.
    std::fs::write(plan_path(&repo), "{\"format_version\": 1}").unwrap();
    apply_plan(&repo, &emu.url, &[])
        .failure()
        .stderr_has("is not a castsync plan file")
        .stderr_has("\n  hint: save one with `castsync reconcile --dry-run --save-plan FILE`");
    doc["format_version"] = 9.into();
    std::fs::write(plan_path(&repo), doc.to_string()).unwrap();
    apply_plan(&repo, &emu.url, &[])
        .failure()
        .stderr_has("plan format version 9");
    assert_eq!(writes(&emu), 0);
}

#[test]
fn plan_flags_that_contradict_each_other_are_usage_errors() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    for args in [
        &["--save-plan", "x.json"][..],
        &["--plan", "x.json", "--base", "main"],
        &["--plan", "x.json", "--agent", "alpha"],
        &["--plan", "x.json", "--dry-run", "--save-plan", "y.json"],
        &["--plan", "x.json", "--replace-all"],
    ] {
        let run = reconcile(&repo, &emu.url, args).failure();
        assert!(
            run.stderr().contains("Usage:") || run.stderr().contains("usage"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    reconcile(&repo, &emu.url, &["--plan", "/nonexistent/plan.json"])
        .failure()
        .stderr_has("/nonexistent/plan.json");
    assert_eq!(emu.requests("GET") + writes(&emu), 0);
}

/// A key rewritten on the platform keeps the key list's names; where the platform lists
/// timestamps (the docs' wire), the digest moves with them and the plan is refused.
#[test]
fn with_listed_timestamps_a_value_rewritten_on_the_platform_refuses_the_plan() {
    refused_after_on(
        Wire::Docs,
        |_, emu| {
            let reply = emu.request(
                "POST",
                "/api/v1/agents/alpha/secrets",
                Some("cast_test"),
                Some(serde_json::json!({"key": "A2", "value": "rewritten"})),
            );
            assert!(reply.status < 300, "{reply:?}");
        },
        "the platform's key list for agent alpha changed since the plan (3 key(s) then, 3 now)",
    );
}

crate::on_both_wires!(
    a_plan_saved_on_a_branch_applies_after_a_fast_forward_merge_with_exactly_its_changes,
    the_plan_is_refused_after_the_platforms_key_list_changed,
);

#[test]
fn an_agent_a_saved_plan_listed_without_work_is_not_refreshed_by_the_next_changed_run() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n*.plan.json\n").unwrap();
    repo.agent("alpha", &[("A1", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    reconcile(&repo, &emu.url, &["--yes"]).success();
    // alpha has work; beta only gains a comment in its `.env.example`: listed, no work.
    repo.agent("alpha", &[("A1", CANARY_NEW)]);
    let schema = repo.path("agents/beta/.env.example");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.insert_str(0, "# the bot's one key\n");
    std::fs::write(&schema, text).unwrap();
    let file = plan_path(&repo);
    reconcile(
        &repo,
        &emu.url,
        &["--dry-run", "--save-plan", file.to_str().unwrap()],
    )
    .success();
    apply_plan(&repo, &emu.url, &[]).success();
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY_NEW));

    emu.reset_stats();
    reconcile(&repo, &emu.url, &["--changed"]).success();
    assert_eq!(
        (emu.requests("GET"), writes(&emu)),
        (0, 0),
        "both agents converged through the saved plan: nothing to list"
    );
}

/// Issue 21: a plan file is reviewed, not authenticated. Everything in it that a fresh plan
/// of the same tree would decide differently is refused, whatever the edit.
mod forged {
    use super::*;

    /// main: alpha with six keys, applied; a branch keeping two of them. Its plan, saved with
    /// `--allow-mass-delete`, deletes four of six keys.
    fn mass_delete_plan(emu: &Emulator) -> (SecretsRepo, serde_json::Value) {
        let repo = SecretsRepo::new("");
        let six: Vec<(String, String)> = (1..=6)
            .map(|i| (format!("K{i}"), format!("value-{i}")))
            .collect();
        let six: Vec<(&str, &str)> = six.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        repo.agent("alpha", &six);
        repo.commit_all("six keys");
        reconcile(&repo, &emu.url, &["--yes"]).success();
        repo.agent("alpha", &six[..2]);
        repo.commit_all("keep two");
        let file = plan_path(&repo);
        reconcile(
            &repo,
            &emu.url,
            &[
                "--dry-run",
                "--allow-mass-delete",
                "--save-plan",
                file.to_str().unwrap(),
            ],
        )
        .success();
        let doc = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        (repo, doc)
    }

    fn write_plan(repo: &SecretsRepo, doc: &serde_json::Value) {
        std::fs::write(plan_path(repo), doc.to_string()).unwrap();
    }

    #[test]
    fn one_agent_listed_twice_cannot_split_a_mass_delete_into_allowed_halves() {
        let emu = Emulator::start(&["--agents", "alpha"]);
        let (repo, doc) = mass_delete_plan(&emu);
        emu.reset_stats();
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has("the plan deletes 4 of the 6 managed keys of agent alpha");
        // Two entries for alpha, each deleting two of the four.
        let mut forged = doc.clone();
        let entry = doc["agents"][0].clone();
        let deletes = entry["changes"].as_array().unwrap().clone();
        let mut first = entry.clone();
        first["changes"] = serde_json::Value::Array(deletes[..2].to_vec());
        let mut second = entry;
        second["changes"] = serde_json::Value::Array(deletes[2..].to_vec());
        forged["agents"] = serde_json::json!([first, second]);
        write_plan(&repo, &forged);
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has("the plan lists agent alpha 2 times");
        assert_eq!(writes(&emu), 0);
        assert_eq!(emu.value("alpha", "K6").as_deref(), Some("value-6"));
    }

    #[test]
    fn a_change_repeated_300_times_is_refused_not_sent_300_times() {
        let emu = Emulator::start(&["--agents", "alpha,beta"]);
        let repo = repo_with_feature(&emu);
        let text = save_plan(&repo, &emu);
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let a4 = serde_json::json!({"key": "A4", "action": "create"});
        doc["agents"][0]["changes"] = serde_json::Value::Array(vec![a4; 300]);
        write_plan(&repo, &doc);
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["merge", "-q", "--ff-only", "feature"]);
        emu.reset_stats();
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has("the plan changes A4 of agent alpha 300 times");
        assert_eq!(writes(&emu), 0);
    }

    #[test]
    fn a_redeploy_the_config_does_not_ask_for_is_refused() {
        let emu = Emulator::start(&["--agents", "alpha,beta"]);
        let repo = repo_with_feature(&emu);
        let text = save_plan(&repo, &emu);
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["merge", "-q", "--ff-only", "feature"]);
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        // `redeploy: never` (the default), and beta has no changes.
        doc["agents"][1]["redeploy"] = "pending".into();
        doc["agents"][0]["redeploy"] = "changes".into();
        write_plan(&repo, &doc);
        emu.reset_stats();
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has("the plan redeploys agent beta, which the config does not redeploy")
            .stderr_has("the plan redeploys agent alpha, which the config does not redeploy");
        assert_eq!(writes(&emu), 0);
        assert_eq!(emu.redeploys("beta"), 0);

        // With `redeploy: on-change`, a redeploy with no changes and none owed is refused too.
        let repo = SecretsRepo::new("redeploy: on-change");
        repo.agent("beta", &[("B1", "b-one")]);
        repo.commit_all("beta");
        reconcile(&repo, &emu.url, &["--yes"]).success();
        let file = plan_path(&repo);
        reconcile(
            &repo,
            &emu.url,
            &["--dry-run", "--save-plan", file.to_str().unwrap()],
        )
        .success();
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let redeploys = emu.redeploys("beta");
        doc["agents"][0]["redeploy"] = "pending".into();
        write_plan(&repo, &doc);
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has("the plan redeploys agent beta, which has no changes and no redeploy owed");
        assert_eq!(emu.redeploys("beta"), redeploys);
    }

    #[test]
    fn a_plan_whose_file_lists_were_emptied_does_not_apply_to_a_tree_that_moved_on() {
        let emu = Emulator::start(&["--agents", "alpha,beta"]);
        let repo = repo_with_feature(&emu);
        let text = save_plan(&repo, &emu);
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["agents"][0]["files"] = serde_json::json!([]);
        doc["agents"][1]["files"] = serde_json::json!([]);
        write_plan(&repo, &doc);
        repo.git(&["checkout", "-q", "main"]);
        repo.git(&["merge", "-q", "--ff-only", "feature"]);
        repo.agent(
            "alpha",
            &[("A1", "moved-on"), ("A2", "a-two"), ("A4", "a-four")],
        );
        repo.commit_all("moved on after the review");
        emu.reset_stats();
        apply_plan(&repo, &emu.url, &[])
            .failure()
            .stderr_has(
                "the plan does not record agents/alpha/secrets.yaml.age (agent alpha), which this tree has",
            );
        assert_eq!(writes(&emu), 0);
        assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY));
    }

    #[test]
    fn fifty_thousand_forged_agents_are_refused_in_a_few_lines() {
        let emu = Emulator::start(&["--agents", "alpha,beta"]);
        let repo = repo_with_feature(&emu);
        let text = save_plan(&repo, &emu);
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let template = doc["agents"][1].clone();
        let agents: Vec<serde_json::Value> = (0..50_000)
            .map(|i| {
                let mut a = template.clone();
                a["agent"] = format!("forged-{i:05}").into();
                a
            })
            .collect();
        doc["agents"] = serde_json::Value::Array(agents);
        doc["all_agents"] = false.into();
        write_plan(&repo, &doc);
        emu.reset_stats();
        let run = apply_plan(&repo, &emu.url, &[]).failure();
        assert!(
            run.stderr().len() < 4096,
            "{} bytes of stderr",
            run.stderr().len()
        );
        run.stderr_has("agent forged-00000 was removed since the plan")
            .stderr_has("and 49,980 more");
        assert_eq!(emu.requests("GET") + writes(&emu), 0);
    }
}
