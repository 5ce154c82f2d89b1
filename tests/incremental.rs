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
fn at_head(repo: &SecretsRepo, emu: &Emulator) -> Command {
    let mut cmd = repo.reconcile(&emu.url);
    cmd.args(["--ref", "HEAD"]);
    cmd
}

fn a_one_key_commit_lists_one_agent_and_a_full_reconcile_still_heals_the_rest(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(40);
    at_head(&repo, &emu).assert().success();
    let first = repo.git(&["rev-parse", "HEAD"]);

    repo.agent("agent-017", &[("K1", "one-17-rotated"), ("K2", CANARY)]);
    repo.commit_all("rotate agent-017 K1");
    // Someone deletes a key of another agent on the platform.
    let gone = emu.request(
        "DELETE",
        "/api/v1/agents/agent-003/secrets/K1",
        Some("cast_test"),
        None,
    );
    assert!(gone.status < 300, "{gone:?}");

    emu.reset_stats();
    let (code, stdout, stderr) = outcome(at_head(&repo, &emu).arg("--changed"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // One list, one write, one verifying list.
    assert_eq!(requests(&emu), (2, 1, 0), "{stdout}");
    assert!(stdout.contains("~ K1 (value changed)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "39 agents unchanged since {}, not refreshed.",
            short(&first)
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("agent-003"), "{stdout}");
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
    let (code, stdout, _) = outcome(at_head(&repo, &emu).arg("--changed"));
    assert_eq!(code, 0);
    assert_eq!(requests(&emu), (0, 0, 0), "{stdout}");
    assert!(
        stdout.contains("40 agents unchanged since their last refresh"),
        "{stdout}"
    );

    // The full reconcile lists everyone and heals the deleted key.
    emu.reset_stats();
    let (code, stdout, _) = outcome(&mut at_head(&repo, &emu));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("agent-003:\n      + K1"), "{stdout}");
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.value("agent-003", "K1").as_deref(), Some("one-3"));
    let head = repo.git(&["rev-parse", "HEAD"]);
    let (_, stdout, _) = outcome(at_head(&repo, &emu).arg("--changed"));
    assert!(
        stdout.contains(&format!(
            "40 agents unchanged since {}, not refreshed.",
            short(&head)
        )),
        "{stdout}"
    );
    assert_no_canary("the output", &format!("{stdout}{stderr}"), &[CANARY]);
}

fn since_a_revision_compares_with_its_inputs_without_any_state(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(6);
    repo.reconcile(&emu.url).assert().success();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.agent(
        "agent-002",
        &[("K1", "one-2"), ("K2", CANARY), ("K3", "new")],
    );
    repo.agent("agent-006", &[("K1", "a new agent")]);
    repo.commit_all("add K3 to agent-002, add agent-006");

    let fresh_state = repo.home.join("elsewhere/state.json");
    emu.reset_stats();
    let (code, stdout, stderr) = outcome(
        repo.reconcile(&emu.url)
            .args(["--changed", "--since", "HEAD~1", "--dry-run"])
            .arg("--state")
            .arg(&fresh_state),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(emu.requests("GET"), 2, "{stdout}");
    assert!(stdout.contains("+ K3"), "{stdout}");
    assert!(stdout.contains("agent-006:"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "5 agents unchanged since {}, not refreshed.",
            short(&before)
        )),
        "{stdout}"
    );

    let (code, _, stderr) =
        outcome(
            repo.reconcile(&emu.url)
                .args(["--changed", "--since", "no-such-ref"]),
        );
    assert_eq!(code, 1);
    assert!(stderr.contains("no-such-ref"), "{stderr}");
    let (code, _, stderr) = outcome(repo.reconcile(&emu.url).args(["--since", "HEAD~1"]));
    assert_ne!(code, 0, "--since without --changed is a usage error");
    assert!(stderr.contains("--changed"), "{stderr}");
}

/// Runs `reconcile --changed` and returns its `full reconcile: …` lines and stdout.
fn fallback_lines(cmd: &mut Command) -> (Vec<String>, String) {
    let (code, stdout, stderr) = outcome(cmd.arg("--changed"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let lines = stdout
        .lines()
        .filter(|l| l.starts_with("full reconcile: "))
        .map(str::to_owned)
        .collect();
    (lines, stdout)
}

fn every_fallback_refreshes_every_agent_and_says_why_in_one_line(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);

    // No state yet.
    let (lines, stdout) = fallback_lines(&mut repo.reconcile(&emu.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("no state file yet"), "{stdout}");
    assert_eq!(emu.value("agent-002", "K1").as_deref(), Some("one-2"));

    // A setting that bears on every agent.
    repo.config("max_delete_fraction: 0.9");
    repo.commit_all("allow larger deletes");
    emu.reset_stats();
    let (lines, stdout) = fallback_lines(&mut repo.reconcile(&emu.url));
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
    let (lines, stdout) = fallback_lines(&mut repo.reconcile(&emu.url));
    assert!(lines.is_empty(), "{stdout}");
    assert_eq!(emu.requests("GET"), 0, "{stdout}");

    // The same state, another platform.
    let other = auto_emulator(wire);
    let (lines, stdout) = fallback_lines(&mut repo.reconcile(&other.url));
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("holds no record for"), "{stdout}");
    assert_eq!(other.value("agent-001", "K1").as_deref(), Some("one-1"));

    // A record this build cannot read.
    let path = repo.path(".castsync/state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records = state["applied_from"][&emu.url].as_object_mut().unwrap();
    records.get_mut("agent-001").unwrap()["manifest"] = "md5:00".into();
    std::fs::write(&path, state.to_string()).unwrap();
    emu.reset_stats();
    let (lines, stdout) = fallback_lines(&mut repo.reconcile(&emu.url));
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
    let (code, stdout, _) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 1, "{stdout}");
    emu.clear_faults();

    emu.reset_stats();
    let (code, stdout, stderr) = outcome(repo.reconcile(&emu.url).arg("--changed"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("agent-001:"), "{stdout}");
    assert!(stdout.contains("3 agents unchanged since"), "{stdout}");
    assert_eq!(emu.value("agent-001", "K1").as_deref(), Some("one-1"));
}

fn a_bad_manifest_never_prunes_and_the_mass_delete_guard_holds_with_changed(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);
    repo.reconcile(&emu.url).assert().success();

    repo.raw_manifest("agent-000", "agent: agent-000\nsecrets: [broken\n");
    repo.agent("agent-001", &[]);
    repo.schema("agent-001", "");
    repo.commit_all("break agent-000, empty agent-001");
    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--changed"));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("agent-000: skipped"), "{stdout}");
    assert!(stdout.contains("agent-001: skipped"), "{stdout}");
    assert!(stdout.contains("--allow-mass-delete"), "{stdout}");
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.requests("POST"), 0);
    assert!(stdout.contains("1 agent unchanged since"), "{stdout}");

    // Both stay refreshed by every --changed run until fixed.
    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--changed"));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("agent-000: skipped"), "{stdout}");
    assert_eq!(emu.requests("DELETE"), 0);
}

fn the_changed_json_plan_validates_and_names_the_unrefreshed_agents(wire: Wire) {
    let emu = auto_emulator(wire);
    let repo = repo_with_agents(3);
    repo.reconcile(&emu.url).assert().success();
    repo.agent("agent-001", &[("K1", "rotated"), ("K2", CANARY)]);
    repo.commit_all("rotate");
    for dry in [true, false] {
        let mut cmd = repo.reconcile(&emu.url);
        cmd.args(["--changed", "--output", "json"]);
        if dry {
            cmd.arg("--dry-run");
        }
        let (code, stdout, stderr) = outcome(&mut cmd);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
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
        assert_no_canary("the JSON plan", &stdout, &[CANARY]);
    }
    let (_, md, _) =
        outcome(
            repo.reconcile(&emu.url)
                .args(["--changed", "--dry-run", "--output", "markdown"]),
        );
    assert!(md.contains("3 agents unchanged since"), "{md}");
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
    repo.reconcile(&emu.url).assert().success();
    // What a castsync without change tracking left: the same file, version 1, no records.
    let path = repo.path(".castsync/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(state["version"], 2);
    state["version"] = 1.into();
    state.as_object_mut().unwrap().remove("applied_from");
    std::fs::write(&path, state.to_string()).unwrap();

    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--changed"));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("full reconcile: the state was written by a castsync that did not record"),
        "{stdout}"
    );
    assert_eq!(emu.requests("POST"), 0, "fingerprints kept: {stdout}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
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
    repo.reconcile(&emu.url)
        .args(["--concurrency", "16"])
        .assert()
        .success();
    repo.agent("agent-150", &[("K1", "rotated")]);
    repo.commit_all("rotate");
    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--changed"));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(requests(&emu), (2, 1, 0), "{stdout}");
    assert!(stdout.contains("299 agents unchanged since"), "{stdout}");
}
