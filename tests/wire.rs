//! `castsync reconcile` against the platform's real wire format (the SDK's shapes) and the
//! docs' variant: a large unpaged agent, wrong keys, unknown agents, key names castsync
//! would not create, `--replace`, and typed errors in every output.

use serde_json::json;

use crate::support::*;

const CANARY: &str = "canary-wire-4c7a-never-print";

fn three_agent_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    let keys: Vec<(String, String)> = (0..150)
        .map(|i| (format!("KEY_{i:03}"), format!("value-{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    repo.agent("alpha", &pairs);
    repo.agent("beta", &[("B1", "b-one"), ("B2", CANARY)]);
    repo.agent("gamma", &[("G1", "g-one")]);
    repo
}

fn three_agents_one_with_150_keys_converge_and_stay_converged(wire: Wire) {
    let emu = Emulator::on(
        wire,
        &["--agents", "alpha,beta,gamma", "--rate-limit", "2000/60"],
    );
    let repo = three_agent_repo();

    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(emu.requests("POST"), 153);
    assert_eq!(emu.value("alpha", "KEY_149").as_deref(), Some("value-149"));
    assert_eq!(emu.value("beta", "B2").as_deref(), Some(CANARY));
    assert_eq!(emu.stats()["missing_accept"], 0, "{}", emu.stats());

    // The second run finds nothing to do and writes nothing.
    emu.reset_stats();
    let (code, stdout, _) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("No changes."), "{stdout}");
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.requests("DELETE"), 0);
    // sdk: one unpaged response per agent; docs: alpha takes two pages.
    let gets = emu.requests("GET");
    assert!((3..=4).contains(&gets), "{gets} GETs");
    assert_eq!(emu.stats()["missing_accept"], 0);

    // A key deleted on the platform comes back.
    let gone = emu.request(
        "DELETE",
        "/api/v1/agents/beta/secrets/B1",
        Some("cast_test"),
        None,
    );
    assert_eq!(gone.status, 204);
    emu.reset_stats();
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("+ B1"), "{stdout}");
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
    assert_eq!(emu.stats()["missing_accept"], 0, "no request lacks Accept");
    assert_no_canary("output", &format!("{stdout}{stderr}"), &[CANARY]);
}

fn a_wrong_api_key_fails_once_per_agent_with_a_message_about_the_key(wire: Wire) {
    let emu = Emulator::on(
        wire,
        &["--agents", "alpha,beta,gamma", "--token", "cast_right"],
    );
    let repo = three_agent_repo();
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("refused the API key (401)"), "{stdout}");
    assert!(
        stdout.contains("hint: check the API key in CASTARI_API_KEY"),
        "{stdout}"
    );
    let gets = emu.requests("GET");
    assert!(gets <= 6, "at most two requests per agent, got {gets}");
    assert_eq!(emu.requests("POST") + emu.requests("DELETE"), 0);

    // The JSON plan carries the error with its class.
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).args(["--output", "json"]));
    assert_eq!(code, 1);
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_plan_schema(&plan);
    let skipped = &plan["agents"][0]["skipped"];
    assert_eq!(skipped["kind"], "list-failed");
    assert_eq!(skipped["class"], "terminal");
    assert_eq!(skipped["error"]["kind"], "unauthorized");
    assert!(
        skipped["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("CASTARI_API_KEY")
    );
    assert_no_canary("output", &stdout, &[CANARY, "cast_right"]);
}

fn an_agent_the_platform_does_not_know_fails_naming_it_without_a_retry(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("beta", &[("B1", "b-one")]);
    repo.agent("ghost", &[("G1", "g-one")]);
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("agent \"ghost\" not found on the platform"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agents/ghost"),
        "the hint names the directory: {stdout}"
    );
    // beta: one list and one verify; ghost: one list, never retried.
    assert_eq!(emu.requests("GET"), 3);
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
}

/// An emulator store file holding keys castsync would never create, next to managed ones.
fn store_with_odd_names(dir: &std::path::Path) -> std::path::PathBuf {
    let stamp = "2026-01-01T00:00:00.000000Z";
    let entry = |v: &str| json!({ "value": v, "created_at": stamp, "updated_at": stamp });
    let store = json!({
        "version": 1,
        "agents": {
            "alpha": {
                "A1": entry("a-one"),
                "A2": entry("a-two"),
                "A3": entry("a-three"),
                "my-key": entry("someone's"),
                "lower_case": entry("someone else's"),
            }
        }
    });
    let path = dir.join("store.json");
    std::fs::write(&path, store.to_string()).unwrap();
    path
}

fn remote_keys_castsync_would_not_create_are_listed_and_pruned(wire: Wire) {
    let dir = tempfile::tempdir().unwrap();
    let data = store_with_odd_names(dir.path());
    let emu = Emulator::on(wire, &["--data", data.to_str().unwrap()]);
    let repo = SecretsRepo::new("");
    repo.agent(
        "alpha",
        &[("A1", "a-one"), ("A2", "a-two"), ("A3", "a-three")],
    );

    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).arg("--dry-run"));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("- my-key") && stdout.contains("- lower_case"),
        "{stdout}"
    );
    let (_, json, _) = outcome(
        repo.reconcile(&emu.url)
            .args(["--dry-run", "--output", "json"]),
    );
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["delete"], 2);
    let (code, stdout, stderr) = outcome(&mut repo.reconcile(&emu.url));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(emu.value("alpha", "my-key"), None);
    assert_eq!(emu.value("alpha", "lower_case"), None);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
}

fn replace_rewrites_named_values_and_refuses_unknown_targets(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    repo.reconcile(&emu.url).assert().success();

    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).args(["--replace", "alpha/A1"]));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("~ A1 (replace requested)"), "{stdout}");
    assert!(stdout.contains("1 to replace"), "{stdout}");
    assert_eq!(emu.requests("POST"), 1);

    emu.reset_stats();
    let (code, stdout, _) = outcome(repo.reconcile(&emu.url).args([
        "--dry-run",
        "--output",
        "json",
        "--replace-all",
        "beta",
    ]));
    assert_eq!(code, 0, "{stdout}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["replace"], 1);
    assert_eq!(plan["agents"][1]["changes"][0]["action"], "replace");
    assert_eq!(emu.requests("POST"), 0);

    repo.reconcile(&emu.url)
        .arg("--replace-all")
        .assert()
        .success();
    assert_eq!(emu.requests("POST"), 3);

    emu.reset_stats();
    for (args, expect) in [
        (
            &["--replace", "alpha/NOPE"][..],
            "alpha declares no key NOPE",
        ),
        (&["--replace", "ghost/A1"][..], "no such agent"),
        (&["--replace-all", "ghost"][..], "no such agent"),
    ] {
        let (code, stdout, stderr) = outcome(repo.reconcile(&emu.url).args(args));
        assert_eq!(code, 1, "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = outcome(repo.reconcile(&emu.url).args(["--replace", "A1"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("AGENT/KEY"), "{stderr}");
    let stats = emu.stats();
    assert_eq!(stats["requests"], json!({"GET": 0, "POST": 0, "DELETE": 0}));
}

crate::on_both_wires!(
    three_agents_one_with_150_keys_converge_and_stay_converged,
    a_wrong_api_key_fails_once_per_agent_with_a_message_about_the_key,
    an_agent_the_platform_does_not_know_fails_naming_it_without_a_retry,
    remote_keys_castsync_would_not_create_are_listed_and_pruned,
    replace_rewrites_named_values_and_refuses_unknown_targets,
);
