//! `reconcile --changed` through the binary against the real emulator: only agents whose
//! inputs changed are listed, the plan says how many were left unrefreshed and since when,
//! a full reconcile still heals what was left alone, and every fallback refreshes every
//! agent and says why in one line.

use crate::support::*;

const CANARY: &str = "canary-incremental-3f1a-never-print";

/// `n` agents (`agent-000`…), two keys each, committed; the emulator creates them on first use.
fn repo_with_agents(n: usize) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for i in 0..n {
        let agent = format!("agent-{i:03}");
        repo.agent(&agent, &[("K1", &format!("one-{i}")), ("K2", CANARY)]);
    }
    repo.commit_all("initial");
    repo
}

/// The emulator with the rate limit lifted: these tests count requests, not wait for them.
fn auto_emulator(wire: Wire) -> Emulator {
    Emulator::on(
        wire,
        &["--auto-create-agents", "--rate-limit", "1000000/60"],
    )
}

/// Requests by method since the last reset: (GET, POST, DELETE).
fn requests(emu: &Emulator) -> (u64, u64, u64) {
    (
        emu.requests("GET"),
        emu.requests("POST"),
        emu.requests("DELETE"),
    )
}

fn short(commit: &str) -> &str {
    &commit[..7]
}

/// `reconcile --ref HEAD`: manifests from the commit, so the state records commit ids.
fn at_head(repo: &SecretsRepo, emu: &Emulator) -> Test {
    repo.test_reconcile(&emu.url).args(["--ref", "HEAD"])
}

fn a_one_key_commit_lists_one_agent_and_a_full_reconcile_still_heals_the_rest(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(40);
    at_head(&repo, &emu).run().success();
    let first = repo.git(&["rev-parse", "HEAD"]);

    repo.agent("agent-017", &[("K1", "one-17-rotated"), ("K2", CANARY)]);
    repo.commit_all("rotate agent-017 K1");
    // Someone deletes a key of another agent on the platform.
    emu.delete_out_of_band("agent-003", "K1");

    emu.reset_stats();
    let changed = at_head(&repo, &emu)
        .arg("--changed")
        .run()
        .success()
        .stdout_has("~ K1 (value changed)")
        .stdout_has(format!(
            "39 agents unchanged since {}, not refreshed.",
            short(&first)
        ))
        .stdout_lacks("agent-003");
    // One list, one write, one verifying list.
    assert_eq!(requests(&emu), (2, 1, 0), "{}", changed.stdout());
    assert_eq!(
        emu.value("agent-017", "K1").as_deref(),
        Some("one-17-rotated")
    );
    assert_eq!(
        emu.value("agent-003", "K1"),
        None,
        "left alone by --changed"
    );

    // Nothing changed since: nothing is listed.
    emu.reset_stats();
    let idle = at_head(&repo, &emu)
        .arg("--changed")
        .run()
        .success()
        .stdout_has("40 agents unchanged since their last refresh");
    assert_eq!(requests(&emu), (0, 0, 0), "{}", idle.stdout());

    // The full reconcile lists everyone and heals the deleted key.
    emu.reset_stats();
    let full = at_head(&repo, &emu)
        .run()
        .success()
        .stdout_has("agent-003:\n      + K1");
    assert_eq!(emu.requests("POST"), 1, "{}", full.stdout());
    assert_eq!(emu.value("agent-003", "K1").as_deref(), Some("one-3"));
    let head = repo.git(&["rev-parse", "HEAD"]);
    let after = at_head(&repo, &emu)
        .arg("--changed")
        .run()
        .success()
        .stdout_has(format!(
            "40 agents unchanged since {}, not refreshed.",
            short(&head)
        ));
    for run in [&changed, &idle, &full, &after] {
        assert_no_canary("the output", &run.output(), &[CANARY]);
    }
}

fn since_a_revision_compares_with_its_inputs_without_any_state(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(6);
    repo.test_reconcile(&emu.url).run().success();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.agent(
        "agent-002",
        &[("K1", "one-2"), ("K2", CANARY), ("K3", "new")],
    );
    repo.agent("agent-006", &[("K1", "a new agent")]);
    repo.commit_all("add K3 to agent-002, add agent-006");

    let fresh_state = repo.home.join("elsewhere/state.json");
    emu.reset_stats();
    let since = repo
        .test_reconcile(&emu.url)
        .args(["--changed", "--since", "HEAD~1", "--dry-run"])
        .arg("--state")
        .arg(&fresh_state)
        .run()
        .success()
        .stdout_has("+ K3")
        .stdout_has("agent-006:")
        .stdout_has(format!(
            "5 agents unchanged since {}, not refreshed.",
            short(&before)
        ));
    assert_eq!(emu.requests("GET"), 2, "{}", since.stdout());

    repo.test_reconcile(&emu.url)
        .args(["--changed", "--since", "no-such-ref"])
        .run()
        .code(1)
        .stderr_has("no-such-ref");
    // --since without --changed is a usage error.
    repo.test_reconcile(&emu.url)
        .args(["--since", "HEAD~1"])
        .run()
        .code(1)
        .stderr_has("--changed");
}

/// Runs `reconcile --changed` and returns its `full reconcile: …` lines and stdout.
fn fallback_lines(test: Test) -> (Vec<String>, String) {
    let run = test.arg("--changed").run().success();
    let lines = run
        .stdout()
        .lines()
        .filter(|l| l.starts_with("full reconcile: "))
        .map(str::to_owned)
        .collect();
    (lines, run.stdout().to_owned())
}

fn every_fallback_refreshes_every_agent_and_says_why_in_one_line(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);

    // No state yet.
    let (lines, stdout) = fallback_lines(repo.test_reconcile(&emu.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("no state file yet"), "{stdout}");
    assert_eq!(emu.value("agent-002", "K1").as_deref(), Some("one-2"));

    // A setting that bears on every agent.
    repo.config("max_delete_fraction: 0.9");
    repo.commit_all("allow larger deletes");
    emu.reset_stats();
    let (lines, stdout) = fallback_lines(repo.test_reconcile(&emu.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("castsync.yaml"), "{stdout}");
    assert_eq!(emu.requests("GET"), 3);
    assert_eq!(emu.requests("POST"), 0);

    // Recipients do not bear on what is applied.
    let (_, extra) = castsync::crypto::generate_identity();
    let config = std::fs::read_to_string(repo.path("castsync.yaml")).unwrap();
    let config = config.replace("recipients:\n", &format!("recipients:\n  - {extra}\n"));
    std::fs::write(repo.path("castsync.yaml"), config).unwrap();
    emu.reset_stats();
    let (lines, stdout) = fallback_lines(repo.test_reconcile(&emu.url));
    assert!(lines.is_empty(), "{stdout}");
    assert_eq!(emu.requests("GET"), 0, "{stdout}");

    // The same state, another platform.
    let other = auto_emulator(wire);
    let (lines, stdout) = fallback_lines(repo.test_reconcile(&other.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("holds no record for"), "{stdout}");
    assert_eq!(other.value("agent-001", "K1").as_deref(), Some("one-1"));

    // A record this build cannot read (in a state file an earlier castsync left: migrated).
    let mut state = repo.state_export();
    let records = state["applied_from"][&emu.url].as_object_mut().unwrap();
    records.get_mut("agent-001").unwrap()["manifest"] = "md5:00".into();
    repo.replace_state(&state);
    emu.reset_stats();
    let (lines, stdout) = fallback_lines(repo.test_reconcile(&emu.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains("agent-001 was applied from cannot be read"),
        "{stdout}"
    );
    assert_eq!(emu.requests("GET"), 3);
}

fn an_agent_that_failed_last_time_is_refreshed_by_the_next_changed_run(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(4);
    emu.pin_fault("agent-001", Some("GET"), None, 404);
    repo.test_reconcile(&emu.url).run().code(1);
    emu.clear_faults();

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .arg("--changed")
        .run()
        .success()
        .stdout_has("agent-001:")
        .stdout_has("3 agents unchanged since");
    assert_eq!(emu.value("agent-001", "K1").as_deref(), Some("one-1"));
}

fn a_bad_manifest_never_prunes_and_the_mass_delete_guard_holds_with_changed(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);
    repo.test_reconcile(&emu.url).run().success();

    repo.raw_manifest("agent-000", "agent: agent-000\nsecrets: [broken\n");
    repo.agent("agent-001", &[]);
    repo.schema("agent-001", "");
    repo.commit_all("break agent-000, empty agent-001");
    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .arg("--changed")
        .run()
        .code(1)
        .stdout_has("agent-000: skipped")
        .stdout_has("agent-001: skipped")
        .stdout_has("--allow-mass-delete")
        .stdout_has("1 agent unchanged since");
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.requests("POST"), 0);

    // Both stay refreshed by every --changed run until fixed.
    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .arg("--changed")
        .run()
        .code(1)
        .stdout_has("agent-000: skipped");
    assert_eq!(emu.requests("DELETE"), 0);
}

fn the_changed_json_plan_validates_and_names_the_unrefreshed_agents(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);
    repo.test_reconcile(&emu.url).run().success();
    repo.agent("agent-001", &[("K1", "rotated"), ("K2", CANARY)]);
    repo.commit_all("rotate");
    for dry in [true, false] {
        let mut test = repo
            .test_reconcile(&emu.url)
            .args(["--changed", "--output", "json"]);
        if dry {
            test = test.arg("--dry-run");
        }
        let run = test.run().success().no_canary(&[CANARY]);
        let v = run.json();
        assert_plan_schema(&v);
        assert_eq!(v["coverage"]["mode"], "changed");
        assert_eq!(v["coverage"]["refreshed"], 1);
        assert_eq!(
            v["coverage"]["unrefreshed_agents"],
            serde_json::json!(["agent-000", "agent-002"])
        );
        // A working tree has no commit id: its runs are named by time.
        assert_eq!(v["coverage"]["since"]["revision"], "worktree");
        assert!(
            v["coverage"]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("2 agents unchanged since the worktree run of 20")),
            "{v:#}"
        );
    }
    repo.test_reconcile(&emu.url)
        .args(["--changed", "--dry-run", "--output", "markdown"])
        .run()
        .success()
        .stdout_has("3 agents unchanged since");
}

crate::on_both_wires!(
    a_one_key_commit_lists_one_agent_and_a_full_reconcile_still_heals_the_rest,
    since_a_revision_compares_with_its_inputs_without_any_state,
    every_fallback_refreshes_every_agent_and_says_why_in_one_line,
    an_agent_that_failed_last_time_is_refreshed_by_the_next_changed_run,
    a_bad_manifest_never_prunes_and_the_mass_delete_guard_holds_with_changed,
    the_changed_json_plan_validates_and_names_the_unrefreshed_agents,
);

#[test]
fn a_version_1_state_is_read_and_its_fingerprints_kept_while_every_agent_is_refreshed() {
    let emu = auto_emulator(Wire::Sdk);
    let repo = repo_with_agents(2);
    repo.test_reconcile(&emu.url).run().success();
    // What a castsync without change tracking left: the same file, version 1, no records.
    let mut state = repo.state_export();
    assert_eq!(state["version"], 2);
    state["version"] = 1.into();
    state.as_object_mut().unwrap().remove("applied_from");
    repo.replace_state(&state);

    emu.reset_stats();
    let run = repo
        .test_reconcile(&emu.url)
        .arg("--changed")
        .run()
        .success()
        .stdout_has("full reconcile: the state was written by a castsync that did not record");
    assert_eq!(
        emu.requests("POST"),
        0,
        "fingerprints kept: {}",
        run.stdout()
    );
    let state = repo.state_export();
    assert_eq!(state["version"], 2);
    assert!(state["applied_from"][&emu.url]["agent-001"]["manifest"].is_string());
}

/// The figure the issue asks for, at its size: 300 agents, a one-key commit, one agent listed.
#[test]
fn changed_in_a_300_agent_repository_lists_one_agent() {
    let emu = auto_emulator(Wire::Sdk);
    let repo = SecretsRepo::new("");
    for i in 0..300 {
        repo.agent(&format!("agent-{i:03}"), &[("K1", &format!("one-{i}"))]);
    }
    repo.commit_all("initial");
    repo.test_reconcile(&emu.url)
        .args(["--concurrency", "16"])
        .run()
        .success();
    repo.agent("agent-150", &[("K1", "rotated")]);
    repo.commit_all("rotate");
    emu.reset_stats();
    let run = repo
        .test_reconcile(&emu.url)
        .arg("--changed")
        .run()
        .success()
        .stdout_has("299 agents unchanged since");
    assert_eq!(requests(&emu), (2, 1, 0), "{}", run.stdout());
}
