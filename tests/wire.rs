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

    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(emu.requests("POST"), 153);
    assert_eq!(emu.value("alpha", "KEY_149").as_deref(), Some("value-149"));
    assert_eq!(emu.value("beta", "B2").as_deref(), Some(CANARY));
    assert_eq!(emu.stats()["missing_accept"], 0, "{}", emu.stats());

    // The second run finds nothing to do and writes nothing.
    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("No changes.");
    assert_eq!(emu.requests("POST"), 0);
    assert_eq!(emu.requests("DELETE"), 0);
    // sdk: one unpaged response per agent; docs: alpha takes two pages.
    let gets = emu.requests("GET");
    assert!((3..=4).contains(&gets), "{gets} GETs");
    assert_eq!(emu.stats()["missing_accept"], 0);

    // A key deleted on the platform comes back.
    let gone = emu.delete_out_of_band("beta", "B1");
    assert_eq!(gone.status, 204);
    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("+ B1")
        .no_canary(&[CANARY]);
    assert_eq!(emu.requests("POST"), 1);
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
    assert_eq!(emu.stats()["missing_accept"], 0, "no request lacks Accept");
}

fn a_wrong_api_key_fails_once_per_agent_with_a_message_about_the_key(wire: Wire) {
    let emu = Emulator::on(
        wire,
        &["--agents", "alpha,beta,gamma", "--token", "cast_right"],
    );
    let repo = three_agent_repo();
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .stdout_has("refused the API key (401)")
        .stdout_has("hint: check the API key in CASTARI_API_KEY")
        .no_canary(&[CANARY, "cast_right"]);
    let gets = emu.requests("GET");
    assert!(gets <= 6, "at most two requests per agent, got {gets}");
    assert_eq!(emu.requests("POST") + emu.requests("DELETE"), 0);

    // The JSON plan carries the error with its class.
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--output", "json"])
        .run()
        .failure()
        .no_canary(&[CANARY, "cast_right"])
        .json();
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
    assert_eq!(skipped["hint"], skipped["error"]["hint"]);
}

fn an_agent_the_platform_does_not_know_fails_naming_it_without_a_retry(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("beta", &[("B1", "b-one")]);
    repo.agent("ghost", &[("G1", "g-one")]);
    repo.test_reconcile(&emu.url)
        .run()
        .failure()
        .stdout_has("agent \"ghost\" not found on the platform")
        // The hint names the directory.
        .stdout_line_with(&["hint: ", "agents/ghost"]);
    // beta: one list and one verify; ghost: one list, never retried.
    assert_eq!(emu.requests("GET"), 3);
    assert_eq!(emu.value("beta", "B1").as_deref(), Some("b-one"));
}

/// An emulator store file holding keys castsync would never create, next to managed ones.
fn store_with_odd_names(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("store.db");
    let mut store = castsync::platform::store::Store::open(&path).unwrap();
    store.ensure_agent("alpha").unwrap();
    for (key, value) in [
        ("A1", "a-one"),
        ("A2", "a-two"),
        ("A3", "a-three"),
        ("my-key", "someone's"),
        ("lower_case", "someone else's"),
    ] {
        store.set("alpha", key, &value.into()).unwrap();
    }
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

    repo.test_reconcile(&emu.url)
        .arg("--dry-run")
        .run()
        .success()
        .stdout_has("- my-key")
        .stdout_has("- lower_case");
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--output", "json"])
        .run()
        .success()
        .json();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["delete"], 2);
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!(emu.value("alpha", "my-key"), None);
    assert_eq!(emu.value("alpha", "lower_case"), None);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some("a-one"));
}

fn replace_rewrites_named_values_and_refuses_unknown_targets(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    repo.test_reconcile(&emu.url).run().success();

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .args(["--replace", "alpha/A1"])
        .run()
        .success()
        .stdout_has("~ A1 (replace requested)")
        .stdout_has("1 to replace");
    assert_eq!(emu.requests("POST"), 1);

    emu.reset_stats();
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--output", "json", "--replace-all", "beta"])
        .run()
        .success()
        .json();
    assert_plan_schema(&plan);
    assert_eq!(plan["totals"]["replace"], 1);
    assert_eq!(plan["agents"][1]["changes"][0]["action"], "replace");
    assert_eq!(emu.requests("POST"), 0);

    repo.test_reconcile(&emu.url)
        .arg("--replace-all")
        .run()
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
        repo.test_reconcile(&emu.url)
            .args(args)
            .run()
            .failure()
            .stderr_has(expect);
    }
    // A usage error.
    repo.test_reconcile(&emu.url)
        .args(["--replace", "A1"])
        .run()
        .failure()
        .stderr_has("AGENT/KEY");
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
