//! `redeploy: on-change` through `castsync reconcile`: one redeploy per changed agent after
//! its changes land, none on a no-op, per-agent rules and flags, failures retried next run,
//! and redeploys paid from the same rate budget. Both wire profiles.

use crate::support::*;

const CANARY: &str = "canary-redeploy-83f0-never-print";

fn repo(extra_config: &str) -> SecretsRepo {
    let repo = SecretsRepo::new(extra_config);
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    repo
}

fn on_change_redeploys_each_changed_agent_once_and_a_no_op_run_none(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("redeploy: on-change");

    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("redeploy: after these changes land"),
        "{stdout}"
    );
    assert!(stdout.contains("alpha: redeployed"), "{stdout}");
    assert!(stdout.contains("2 agents redeployed"), "{stdout}");
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 1));

    let (code, stdout, _) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0);
    assert!(stdout.contains("No changes."), "{stdout}");
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 1));

    repo.agent("beta", &[("B1", "b-one-rotated")]);
    repo.reconcile(&emu.url).assert().success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 2));
    assert_no_canary("output", &format!("{stdout}{stderr}"), &[CANARY]);
}

fn the_plan_and_the_pull_request_markdown_name_the_agents_to_redeploy(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("redeploy: on-change");
    repo.reconcile(&emu.url).assert().success();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);

    let (_, md, _) = outcome(
        repo.reconcile(&emu.url)
            .args(["--dry-run", "--output", "markdown"]),
    );
    assert!(
        md.contains("**Redeploy** after their changes land: alpha."),
        "{md}"
    );
    assert!(
        md.contains("| alpha | 0 | 1 | 0 | 1 | changes, redeploy |"),
        "{md}"
    );
    let (_, json, _) = outcome(
        repo.reconcile(&emu.url)
            .args(["--dry-run", "--output", "json"]),
    );
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["redeploy"], 1);
    assert_eq!(plan["agents"][0]["redeploy"], "changes");
    assert_eq!(plan["agents"][1]["redeploy"], serde_json::Value::Null);
    assert_eq!(emu.redeploys("alpha"), 1, "a dry run redeploys nothing");
    assert_no_canary("plans", &format!("{md}{json}"), &[CANARY]);
}

fn access_rules_and_flags_choose_which_agents_redeploy(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("");
    // beta's access rule (the one that assigns its recipients) turns redeploys on for it.
    repo.config(&format!(
        "redeploy: never\naccess:\n  - agents: beta\n    recipients: [{}]\n    redeploy: on-change\n",
        repo.recipient
    ));
    repo.reconcile(&emu.url).assert().success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (0, 1));

    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one-v2")]);
    repo.reconcile(&emu.url)
        .arg("--no-redeploy")
        .assert()
        .success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (0, 1));

    repo.agent("alpha", &[("A1", "a-one-v3"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one-v3")]);
    repo.reconcile(&emu.url)
        .arg("--redeploy")
        .assert()
        .success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 2));

    let (code, _, stderr) = outcome(
        repo.reconcile(&emu.url)
            .args(["--redeploy", "--no-redeploy"]),
    );
    assert_ne!(code, 0, "conflicting flags are a usage error: {stderr}");
    assert!(stderr.contains("--no-redeploy"), "{stderr}");
    assert_eq!(emu.redeploys("alpha"), 1, "nothing was sent");
}

fn a_failed_redeploy_exits_1_keeps_the_secrets_and_is_retried_next_run(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("redeploy: on-change");
    repo.reconcile(&emu.url).assert().success();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);
    // A 403 is terminal: one request, no retries inside the run.
    emu.pin_fault("alpha", Some("POST"), Some("redeploy"), 403);
    emu.reset_stats();

    let (code, stdout, stderr) = outcome(repo.reconcile(&emu.url).args(["--output", "json"]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_plan_schema(&report);
    let alpha = &report["result"]["agents"][0];
    assert_eq!(alpha["agent"], "alpha");
    assert_eq!(alpha["applied"][0]["key"], "A1", "the secret landed");
    assert_eq!(alpha["redeploy"]["status"], "failed");
    assert_eq!(alpha["redeploy"]["error"]["class"], "terminal");
    assert_eq!(alpha["class"], "terminal");
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one-v2"));
    assert_eq!(emu.requests("POST"), 2, "one set and one redeploy attempt");

    // Nothing changed since, but the redeploy is owed: the next run sends it.
    emu.clear_faults();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--dry-run"));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("redeploy: owed by an earlier run"),
        "{stdout}"
    );
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Counted since the reset: the pinned fault answered before the handler counted it.
    assert_eq!(emu.redeploys("alpha"), 1);
    let (_, stdout, _) = outcome(&mut repo.reconcile(&emu.url));
    assert!(stdout.contains("No changes."), "{stdout}");
    assert_eq!(emu.redeploys("alpha"), 1);
}

fn redeploys_are_paid_from_the_same_rate_budget(wire: Wire) {
    // A day-long window of 3 requests: list, set, verify. The redeploy would be the fourth:
    // the client waits for the budget rather than earn a 429, and gives up (the wait is a
    // day), reporting it for the agent.
    let emu = Emulator::on(wire, &["--agents", "beta", "--rate-limit", "3/86400"]);
    let repo = SecretsRepo::new("redeploy: on-change");
    repo.agent("beta", &[("B1", "b-one")]);
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("redeploy failed: rate limited"), "{stdout}");
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
    let stats = emu.stats();
    assert_eq!(stats["requests"]["POST"], 1, "{stats}");
    assert!(stats["responses"].get("429").is_none(), "{stats}");
}

crate::on_both_wires!(
    on_change_redeploys_each_changed_agent_once_and_a_no_op_run_none,
    the_plan_and_the_pull_request_markdown_name_the_agents_to_redeploy,
    access_rules_and_flags_choose_which_agents_redeploy,
    a_failed_redeploy_exits_1_keeps_the_secrets_and_is_retried_next_run,
    redeploys_are_paid_from_the_same_rate_budget,
);
