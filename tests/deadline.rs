//! Deadlines: a platform that accepts connections and never answers must not hold a run,
//! a doctor or a daemon cycle for long. Per-request timeouts are typed and retried once; one
//! deadline per run (`--timeout`) cancels what is in flight, records nothing half done, and
//! says which agents did not finish. Every bound here is a small real timeout; no test sleeps
//! to wait for an outcome.

use std::time::Duration;

use castsync::hint::Hinted as _;
use castsync::platform::castari::{CastariClient, ClientConfig};
use castsync::platform::retry::RetryPolicy;
use castsync::platform::{ErrorClass, Platform, PlatformError};
use secrecy::SecretString;

use crate::support::*;
use crate::watch::daemon::{Daemon, eventually, watch_command};

const CANARY: &str = "canary-deadline-4c1f-never-print";
const AGENTS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
/// A guard against a hang: far above every deadline these tests set, so only a run that
/// ignores its deadline reaches it.
const HANG: Duration = Duration::from_secs(90);

fn four_agent_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for agent in AGENTS {
        repo.agent(agent, &[("API_KEY", CANARY), ("REGION", "eu-west-1")]);
    }
    repo
}

#[test]
fn a_silent_platform_is_a_typed_timeout_retried_once() {
    let silent = Silent::start();
    let client = CastariClient::new(ClientConfig {
        retry: RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        request_timeout: Duration::from_secs(1),
        ..ClientConfig::new(&silent.url, SecretString::from("cast_test"))
    })
    .expect("client");
    let error = block_on(client.list("alpha")).unwrap_err();
    assert!(matches!(error, PlatformError::Timeout { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.kind(), "timeout");
    let text = error.to_string();
    assert!(
        text.contains("did not answer in time") && text.contains("within 1s"),
        "{text}"
    );
    assert!(error.hint().unwrap().contains("--request-timeout"));
    assert_eq!(silent.accepted(), 2, "one attempt and one retry");
    assert_eq!(client.stats().transport_errors, 2);
}

#[test]
fn a_dry_run_over_four_agents_of_a_silent_platform_exits_1_naming_the_timeout() {
    let silent = Silent::start();
    let repo = four_agent_repo();
    let mut run = repo
        .test_reconcile(&silent.url)
        .args(["--dry-run", "--timeout", "4s"])
        .timeout(HANG)
        .run()
        .failure()
        .stderr_has("error: timed out: the run's deadline (4s, --timeout) passed")
        .stderr_has("\n  not finished: listing alpha, beta, delta, gamma\n  hint: only verified changes are recorded")
        .no_canary(&[CANARY]);
    for agent in AGENTS {
        run = run.stdout_has(format!("{agent}: skipped, nothing changed: cannot list platform keys: cancelled: the run's deadline (4s) passed"));
    }
    // The agents were listed side by side: the first request alone while the rate budget
    // is unknown, the other three once its patience (2 s) ran out, within the 4 s.
    assert_eq!(silent.accepted(), 4, "one connection per agent");
}

#[test]
fn the_json_plan_names_the_timed_out_agents_as_transient() {
    let silent = Silent::start();
    let repo = four_agent_repo();
    let plan = repo
        .test_reconcile(&silent.url)
        .args(["--dry-run", "--timeout", "2s", "-o", "json"])
        .timeout(HANG)
        .run()
        .failure()
        .json();
    assert_plan_schema(&plan);
    assert_eq!(plan["timed_out"]["seconds"], 2.0);
    let cut: Vec<(&str, &str)> = plan["timed_out"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["agent"].as_str().unwrap(), a["step"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cut,
        [
            ("alpha", "list"),
            ("beta", "list"),
            ("delta", "list"),
            ("gamma", "list")
        ]
    );
    for agent in plan["agents"].as_array().unwrap() {
        let skipped = &agent["skipped"];
        assert_eq!(skipped["kind"], "list-failed", "{agent}");
        assert_eq!(skipped["class"], "transient", "{agent}");
        assert_eq!(skipped["error"]["kind"], "deadline-exceeded", "{agent}");
        assert_eq!(skipped["error"]["class"], "transient", "{agent}");
        assert_eq!(skipped["hint"], skipped["error"]["hint"], "{agent}");
    }
}

fn a_deadline_during_an_apply_records_nothing_half_done(wire: Wire) {
    // The list answers at once; the set lands, and its reply is held back a minute, far past
    // the 2 s deadline: the value reaches the platform, but castsync cannot know it did.
    let emu = Emulator::on(wire, &["--agents", "alpha"]);
    emu.pin_delay("alpha", "POST", 60_000);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("API_KEY", CANARY)]);
    repo.test_reconcile(&emu.url)
        .args(["--yes", "--timeout", "2s"])
        .timeout(HANG)
        .run()
        .failure()
        .stderr_has("not finished: applying alpha")
        .stdout_has("alpha: + API_KEY: cancelled: the run's deadline (2s) passed");
    assert_eq!(emu.requests("POST"), 1, "the set was sent");
    assert_eq!(emu.value("alpha", "API_KEY").as_deref(), Some(CANARY));
    let state = repo.state_export().to_string();
    assert!(
        !state.contains("API_KEY"),
        "a write that was never confirmed is recorded: {state}"
    );

    // The next run does not trust the unconfirmed write: it sets it again and verifies it.
    emu.clear_faults();
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "-o", "json"])
        .timeout(HANG)
        .run()
        .success()
        .json();
    assert_eq!(
        plan["agents"][0]["changes"],
        serde_json::json!([{"key": "API_KEY", "action": "update", "reason": "unverified"}]),
        "{plan:#}"
    );
    assert!(plan.get("timed_out").is_none(), "{plan:#}");
}

crate::on_both_wires!(a_deadline_during_an_apply_records_nothing_half_done);

#[test]
fn doctor_reports_the_agents_it_could_not_check_before_its_deadline() {
    let silent = Silent::start();
    let repo = four_agent_repo();
    repo.test()
        .env("CASTARI_API_KEY", "cast_test")
        .args(["doctor", "--timeout", "2s", "--api-url", &silent.url])
        .timeout(HANG)
        .run()
        .failure()
        .stdout_has("FAIL  platform: timed out (--timeout): cancelled: the run's deadline (2s) passed before this call finished; not checked: alpha, beta, delta, gamma")
        .stdout_has("fix: only verified changes are recorded");
}

#[test]
fn doctor_stops_at_the_first_agent_a_silent_platform_does_not_answer_for() {
    let silent = Silent::start();
    let repo = four_agent_repo();
    repo.test()
        .env("CASTARI_API_KEY", "cast_test")
        .args(["doctor", "--request-timeout", "1s", "--api-url", &silent.url])
        .timeout(HANG)
        .run()
        .failure()
        .stdout_has("FAIL  list alpha: the platform did not answer in time: no complete answer to GET /api/v1/agents/alpha/secrets within 1s; not checked: beta, delta, gamma")
        .stdout_line_with(&["fix: ", "--request-timeout"]);
    assert_eq!(
        silent.accepted(),
        2,
        "one attempt and one retry, for one agent"
    );
}

#[test]
fn timeouts_that_are_not_durations_are_usage_errors() {
    let repo = four_agent_repo();
    for (flag, value, says) in [
        ("--timeout", "soon", "30s, 10m or 1h"),
        ("--timeout", "500ms", "minimum is 1s"),
        ("--request-timeout", "0s", "minimum is 1s"),
        ("--timeout", "99999999999999d", "maximum is 365d"),
    ] {
        repo.test_reconcile("http://127.0.0.1:9")
            .args(["--dry-run", flag, value])
            .run()
            .failure()
            .stderr_has(says);
    }
}

#[test]
fn a_daemon_whose_cycle_times_out_is_not_ready_and_still_healthy() {
    let silent = Silent::start();
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("API_KEY", CANARY)]);
    repo.agent("beta", &[("REGION", "eu-west-1")]);
    let mut cmd = watch_command(&repo);
    cmd.arg("-C").arg(&repo.root).arg("watch").args([
        "--interval",
        "1h",
        "--timeout",
        "2s",
        "--api-url",
        &silent.url,
    ]);
    let d = Daemon::start(cmd, &repo.home.join("watch.log"));
    let mut last = serde_json::Value::Null;
    eventually(
        Duration::from_secs(30),
        "a timed-out cycle on /readyz",
        || {
            let (status, body) = d.readyz();
            last = body;
            status == 503
                && last["reasons"]
                    .to_string()
                    .contains("last reconcile timed out")
        },
    );
    let reasons = last["reasons"].to_string();
    assert!(
        reasons.contains("the cycle's deadline (2s) passed; not finished: listing alpha, beta"),
        "{last:#}"
    );
    for agent in ["alpha", "beta"] {
        assert_eq!(
            last["agent_errors"][agent]["class"], "transient",
            "{last:#}"
        );
    }
    assert_eq!(d.get("/healthz"), (200, "ok\n".to_owned()));
    let log = d.log();
    assert!(log.contains("deadline"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_no_canary("the daemon log", &log, &[CANARY]);
}
