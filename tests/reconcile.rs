//! `castsync reconcile` through the binary against the real emulator, in both of its wire
//! profiles (`sdk`: the SDK's shapes, no timestamps; `docs`: paged and timestamped).

use serde_json::json;

use crate::support::*;

const CANARY: &str = "canary-reconcile-9d2e-never-print";

fn two_agent_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent(
        "alpha",
        &[("A1", "a-one"), ("A2", CANARY), ("A3", "a-three")],
    );
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo
}

fn first_reconcile_creates_every_key_and_a_second_changes_nothing(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();

    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("+ A1")
        .no_canary(&[CANARY]);
    assert_eq!(emu.requests("POST"), 5);
    assert_eq!(emu.value("alpha", "A2").as_deref(), Some(CANARY));
    assert_eq!(emu.value("beta", "B2").as_deref(), Some("b-two"));

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("No changes");
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.requests("DELETE"), 0);
}

fn changing_one_value_sends_exactly_one_post(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("~ B2 (value changed)");
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.value("beta", "B2").as_deref(), Some("b-two-rotated"));
}

fn removing_a_key_sends_one_delete_and_a_rename_sets_before_it_deletes(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();

    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    emu.reset_stats();
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!(emu.requests("DELETE"), 1);
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.value("alpha", "A3"), None);

    // Rename A1 → A1_RENAMED: the new key must exist before the old one goes.
    repo.agent("alpha", &[("A1_RENAMED", "a-one"), ("A2", CANARY)]);
    emu.reset_stats();
    let run = repo
        .test_reconcile(&emu.url)
        .arg("-vv")
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.requests("DELETE"), 1);
    let post = run.stderr().find("POST").expect("POST logged at -vv");
    let delete = run.stderr().find("DELETE").expect("DELETE logged at -vv");
    assert!(
        post < delete,
        "the set must come before the delete:\n{}",
        run.stderr()
    );
}

fn out_of_band_writes_are_reported_as_drift_and_healed(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();

    let status = emu.post_json(
        "/api/v1/agents/beta/secrets",
        json!({"key": "B1", "value": "changed-by-hand"}),
    );
    assert!(status.is_success());
    emu.reset_stats();
    let run = repo.test_reconcile(&emu.url).run().success();
    match wire {
        Wire::Docs => {
            run.stdout_has("~ B1 (drifted)")
                .stdout_lacks("lists no timestamps");
            assert_eq!(emu.requests("POST"), 1);
            assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
        }
        Wire::Sdk => {
            // No timestamps: the write behind castsync's back is invisible, and the plan
            // says so in one line; `--replace` is the way to heal it.
            let run = run.stdout_has("No changes.");
            let notes: Vec<&str> = run
                .stdout()
                .lines()
                .filter(|l| l.contains("lists no timestamps"))
                .collect();
            assert_eq!(notes.len(), 1, "{}", run.stdout());
            assert!(notes[0].contains("--replace-all"), "{}", run.stdout());
            assert_eq!(emu.requests("POST"), 0);
            repo.test_reconcile(&emu.url)
                .args(["--replace", "beta/B1"])
                .run()
                .success()
                .stdout_has("~ B1 (replace requested)");
            assert_eq!(emu.requests("POST"), 1);
            assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
        }
    }
}

#[test]
fn without_self_heal_drift_is_only_reported() {
    // Drift needs timestamps: only the docs profile has them.
    let emu = Emulator::on(Wire::Docs, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.config("self_heal: false");

    emu.post_json(
        "/api/v1/agents/beta/secrets",
        json!({"key": "B1", "value": "changed-by-hand"}),
    );
    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("B1 (drifted; not fixed");
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("changed-by-hand"));
}

/// Seeds the platform for both agents, breaks `alpha` with `breakage`, and checks that
/// alpha's keys are untouched while beta still converges; exit 1.
fn broken_agent_is_left_alone(
    wire: Wire,
    breakage: impl FnOnce(&SecretsRepo, &Emulator),
    expect: &str,
) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("beta", &[("B1", "b-one-new"), ("B2", "b-two")]);
    breakage(&repo, &emu);

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .output_has(expect)
        .no_canary(&[CANARY]);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
    assert_eq!(emu.value("alpha", "A3").as_deref(), Some("a-three"));
    assert_eq!(emu.requests("DELETE"), 0, "nothing may be deleted");
    assert_eq!(emu.requests("POST"), 1, "only beta's change is applied");
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one-new"));
}

fn an_undecryptable_manifest_never_touches_its_agent(wire: Wire) {
    broken_agent_is_left_alone(
        wire,
        |repo, _| {
            let other = castsync::crypto::generate_identity().1;
            let r = castsync::crypto::parse_recipient(&other).unwrap();
            let ct = castsync::crypto::encrypt(b"agent: alpha\nsecrets: {}\n", &[r]).unwrap();
            std::fs::write(repo.path("agents/alpha/secrets.yaml.age"), ct).unwrap();
        },
        "alpha",
    );
}

fn a_manifest_bound_to_another_agent_never_touches_its_agent(wire: Wire) {
    broken_agent_is_left_alone(
        wire,
        |repo, _| repo.raw_manifest("alpha", "agent: beta\nsecrets:\n  A1: x\n"),
        "beta",
    );
}

fn a_schema_violation_never_touches_its_agent(wire: Wire) {
    broken_agent_is_left_alone(
        wire,
        |repo, _| repo.schema("alpha", "A1=x\nA2=y\nA3=z\nREQUIRED_BUT_MISSING=x\n"),
        "REQUIRED_BUT_MISSING",
    );
}

fn a_failing_key_list_never_touches_its_agent(wire: Wire) {
    broken_agent_is_left_alone(
        wire,
        |repo, emu| {
            // alpha would lose A3, but its list call fails: nothing may happen to it.
            repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
            let status = emu.post_json(
                "/_emulator/faults",
                json!({"agent": "alpha", "method": "GET", "status": 500}),
            );
            assert!(status.is_success(), "fault injection route: {status}");
        },
        "alpha",
    );
}

fn a_mass_delete_is_refused_without_the_override(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("alpha", &[]);

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .stdout_has("hint: rerun with --allow-mass-delete");
    assert_eq!(emu.requests("DELETE"), 0);

    repo.test_reconcile(&emu.url)
        .arg("--allow-mass-delete")
        .run()
        .success();
    assert_eq!(emu.requests("DELETE"), 3);
}

fn unmanaged_keys_and_undeclared_agents_are_never_touched(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta,stranger"]);
    for (agent, key) in [("alpha", "ANTHROPIC_API_KEY"), ("stranger", "THEIRS")] {
        emu.post_json(
            &format!("/api/v1/agents/{agent}/secrets"),
            json!({"key": key, "value": "platform-owned"}),
        );
    }
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!(
        emu.value("alpha", "ANTHROPIC_API_KEY").as_deref(),
        Some("platform-owned")
    );
    assert_eq!(
        emu.value("stranger", "THEIRS").as_deref(),
        Some("platform-owned")
    );
    assert_eq!(emu.requests("DELETE"), 0);
}

fn a_dry_run_sends_only_gets_and_exit_code_reports_pending_changes(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();

    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--exit-code"])
        .run()
        .code(2)
        .stdout_has("+ A1");
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.requests("DELETE"), 0);
    assert!(emu.requests("GET") >= 2);
    for file in ["state.db", "state.json"] {
        assert!(
            !repo.path(&format!(".castsync/{file}")).exists(),
            "a dry run writes no state"
        );
    }

    repo.test_reconcile(&emu.url).run().success();
    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--exit-code"])
        .run()
        .success();
    repo.test_reconcile(&emu.url)
        .arg("--dry-run")
        .run()
        .success();
}

fn with_a_base_revision_only_values_changed_since_it_are_value_changed(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.commit_all("first");
    // The platform holds the keys, but without a state file nothing is known about them.
    repo.test_reconcile(&emu.url).run().success();
    repo.forget_state();

    repo.agent(
        "alpha",
        &[("A1", "a-one-v2"), ("A2", CANARY), ("A3", "a-three")],
    );
    repo.commit_all("second");
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--ref", "HEAD", "--base", "HEAD~1"])
        .args(["--output", "json"])
        .run()
        .success()
        .json();
    let changes: Vec<_> = plan["agents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["changes"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        changes,
        vec![json!({"key": "A1", "action": "update", "reason": "value-changed"})]
    );
}

/// The keys of a JSON plan's changes, per agent, as `agent/KEY:action`.
fn planned(plan: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for agent in plan["agents"].as_array().unwrap() {
        for change in agent["changes"].as_array().unwrap() {
            out.push(format!(
                "{}/{}:{}",
                agent["agent"].as_str().unwrap(),
                change["key"].as_str().unwrap(),
                change["action"].as_str().unwrap()
            ));
        }
    }
    out
}

/// Moves `agents/` to `teams/` and says so in castsync.yaml.
fn move_agents_dir(repo: &SecretsRepo) {
    std::fs::rename(repo.path("agents"), repo.path("teams")).unwrap();
    repo.config("agents_dir: teams");
}

fn a_ref_is_planned_with_the_config_of_that_revision(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.commit_all("v1");
    repo.git(&["tag", "v1"]);
    move_agents_dir(&repo);
    repo.commit_all("move the agents");

    let run = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--ref", "v1", "--output", "json"])
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(
        planned(&run.json()),
        [
            "alpha/A1:create",
            "alpha/A2:create",
            "alpha/A3:create",
            "beta/B1:create",
            "beta/B2:create"
        ]
    );
    assert_eq!(emu.requests("POST"), 0);
}

fn a_base_is_read_with_the_config_of_that_revision(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.commit_all("v1");
    repo.git(&["tag", "v1"]);
    repo.test_reconcile(&emu.url).run().success();
    repo.forget_state();

    repo.agent(
        "alpha",
        &[("A1", "a-one-v2"), ("A2", CANARY), ("A3", "a-three")],
    );
    move_agents_dir(&repo);
    repo.commit_all("change A1 and move the agents");

    let plan = repo
        .test_reconcile(&emu.url)
        .args([
            "--dry-run",
            "--ref",
            "HEAD",
            "--base",
            "v1",
            "--output",
            "json",
        ])
        .run()
        .success()
        .json();
    // Read with HEAD's config, v1 would declare no agent and every key would be unverified.
    assert_eq!(planned(&plan), ["alpha/A1:update"]);
}

fn a_reconcile_killed_mid_apply_converges_on_the_next_run(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta", "--latency-ms", "200"]);
    let repo = two_agent_repo();
    let mut child = std::process::Command::new(bin())
        .env("HOME", &repo.home)
        .env("CASTARI_API_KEY", "cast_test")
        .arg("-C")
        .arg(&repo.root)
        .arg("-i")
        .arg(&repo.key_file)
        .args(["reconcile", "--concurrency", "1", "--api-url", &emu.url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until at least one write landed, then kill without warning.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while emu.requests("POST") < 2 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    if repo.path(".castsync/state.db").exists() {
        repo.state_export();
    }
    repo.test_reconcile(&emu.url).run().success();
    let text = repo.state_export().to_string();
    assert_no_canary("state", &text, &[CANARY]);
    for (agent, key, value) in [("alpha", "A2", CANARY), ("beta", "B2", "b-two")] {
        assert_eq!(emu.value(agent, key).as_deref(), Some(value));
    }
    emu.reset_stats();
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!(emu.requests("POST"), 0, "converged: nothing left to write");
}

fn the_json_plan_validates_against_its_schema(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.schema("beta", "B1=x\nB2=y\nB3_MISSING=z\n");
    for args in [&["--dry-run"][..], &[][..]] {
        // beta is skipped (a required key is missing): exit 1 either way.
        let run = repo
            .test_reconcile(&emu.url)
            .args(args)
            .args(["--output", "json"])
            .run()
            .failure()
            .no_canary(&[CANARY]);
        assert_plan_schema(&run.json());
    }
}

fn text_and_markdown_plans_match_their_snapshots(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.test_reconcile(&emu.url).run().success();
    repo.agent(
        "alpha",
        &[("A1", "a-one-v2"), ("A2", CANARY), ("A4", "new")],
    );
    repo.raw_manifest("beta", "agent: beta\nsecrets:\n  B1: 1.10\n");

    let filters = vec![
        (r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT"),
        (r"/tmp/[^ \n:]+", "[TMP]"),
    ];
    let plan = |format: &str| {
        repo.test_reconcile(&emu.url)
            .args(["--dry-run", "--output", format])
            .run()
            .failure()
            .no_canary(&[CANARY])
            .stdout()
            .to_owned()
    };
    let (text, md) = (plan("text"), plan("markdown"));
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(format!("reconcile_text_plan_{}", wire.name()), text);
        insta::assert_snapshot!(format!("reconcile_markdown_plan_{}", wire.name()), md);
    });
}

crate::on_both_wires!(
    first_reconcile_creates_every_key_and_a_second_changes_nothing,
    changing_one_value_sends_exactly_one_post,
    removing_a_key_sends_one_delete_and_a_rename_sets_before_it_deletes,
    out_of_band_writes_are_reported_as_drift_and_healed,
    an_undecryptable_manifest_never_touches_its_agent,
    a_manifest_bound_to_another_agent_never_touches_its_agent,
    a_schema_violation_never_touches_its_agent,
    a_failing_key_list_never_touches_its_agent,
    a_mass_delete_is_refused_without_the_override,
    unmanaged_keys_and_undeclared_agents_are_never_touched,
    a_dry_run_sends_only_gets_and_exit_code_reports_pending_changes,
    with_a_base_revision_only_values_changed_since_it_are_value_changed,
    a_ref_is_planned_with_the_config_of_that_revision,
    a_base_is_read_with_the_config_of_that_revision,
    a_reconcile_killed_mid_apply_converges_on_the_next_run,
    the_json_plan_validates_against_its_schema,
    text_and_markdown_plans_match_their_snapshots,
);
