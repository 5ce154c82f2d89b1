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

    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("redeploy: after these changes land")
        .stdout_has("2 agents redeployed")
        .no_canary(&[CANARY]);
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 1));

    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("No changes.");
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 1));

    repo.agent("beta", &[("B1", "b-one-rotated")]);
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 2));
}

fn the_plan_and_the_pull_request_markdown_name_the_agents_to_redeploy(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("redeploy: on-change");
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);

    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--output", "markdown"])
        .run()
        .success()
        .stdout_has("**Redeploy** after their changes land: alpha.")
        .stdout_has("| alpha | 0 | 1 | 0 | 1 | changes, redeploy |")
        .no_canary(&[CANARY]);
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--output", "json"])
        .run()
        .success()
        .no_canary(&[CANARY])
        .json();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["redeploy"], 1);
    assert_eq!(plan["agents"][0]["redeploy"], "changes");
    assert_eq!(plan["agents"][1]["redeploy"], serde_json::Value::Null);
    assert_eq!(emu.redeploys("alpha"), 1, "a dry run redeploys nothing");
}

fn access_rules_and_flags_choose_which_agents_redeploy(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("");
    // beta's access rule (the one that assigns its recipients) turns redeploys on for it.
    repo.config(&format!(
        "redeploy: never\naccess:\n  - agents: beta\n    recipients: [{}]\n    redeploy: on-change\n",
        repo.recipient
    ));
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (0, 1));

    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one-v2")]);
    repo.test_reconcile(&emu.url)
        .arg("--no-redeploy")
        .run()
        .success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (0, 1));

    repo.agent("alpha", &[("A1", "a-one-v3"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one-v3")]);
    repo.test_reconcile(&emu.url)
        .arg("--redeploy")
        .run()
        .success();
    assert_eq!((emu.redeploys("alpha"), emu.redeploys("beta")), (1, 2));

    // Conflicting flags are a usage error.
    repo.test_reconcile(&emu.url)
        .args(["--redeploy", "--no-redeploy"])
        .run()
        .failure()
        .stderr_has("--no-redeploy");
    assert_eq!(emu.redeploys("alpha"), 1, "nothing was sent");
}

fn a_failed_redeploy_exits_1_keeps_the_secrets_and_is_retried_next_run(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo("redeploy: on-change");
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A2", CANARY)]);
    // A 403 is terminal: one request, no retries inside the run.
    emu.pin_fault("alpha", Some("POST"), Some("redeploy"), 403);
    emu.reset_stats();

    let report = repo
        .test_reconcile(&emu.url)
        .args(["--output", "json"])
        .run()
        .failure()
        .json();
    assert_plan_schema(&report);
    let alpha = &report["result"]["agents"][0];
    assert_eq!(alpha["agent"], "alpha");
    assert_eq!(alpha["applied"][0]["key"], "A1", "the secret landed");
    assert_eq!(alpha["redeploy"]["status"], "failed");
    assert_eq!(alpha["redeploy"]["error"]["class"], "terminal");
    assert_eq!(alpha["class"], "terminal");
    assert_eq!(alpha["hint"], alpha["redeploy"]["error"]["hint"]);
    assert!(
        alpha["hint"].as_str().unwrap().contains("API key"),
        "{alpha:#}"
    );
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one-v2"));
    assert_eq!(emu.requests("POST"), 2, "one set and one redeploy attempt");

    // Nothing changed since, but the redeploy is owed: the next run sends it.
    emu.clear_faults();
    repo.test_reconcile(&emu.url)
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("redeploy: owed by an earlier run");
    repo.test_reconcile(&emu.url).run().success();
    // Counted since the reset: the pinned fault answered before the handler counted it.
    assert_eq!(emu.redeploys("alpha"), 1);
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("No changes.");
    assert_eq!(emu.redeploys("alpha"), 1);
}

fn redeploys_are_paid_from_the_same_rate_budget(wire: Wire) {
    // A day-long window of 3 requests: list, set, verify. The redeploy would be the fourth:
    // the client waits for the budget rather than earn a 429, and gives up (the wait is a
    // day), reporting it for the agent.
    let emu = Emulator::on(wire, &["--agents", "beta", "--rate-limit", "3/86400"]);
    let repo = SecretsRepo::new("redeploy: on-change");
    repo.agent("beta", &[("B1", "b-one")]);
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .stdout_has("redeploy failed: rate limited");
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
