//! The Castari client (`castsync::platform`) against the real emulator: paging, faults, the
//! rate budget, typed errors, transport security and log hygiene.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castsync::platform::castari::{CastariClient, ClientConfig};
use castsync::platform::retry::RetryPolicy;
use castsync::platform::{
    ErrorClass, Listing, OpenError, Paging, Platform, PlatformError, PlatformOptions, Timestamps,
    open,
};
use castsync::secret::SecretValue;
use secrecy::SecretString;

use crate::support::*;

const AGENT: &str = "support-bot";
const CANARY: &str = "canary-7f3a91-do-not-print";
const API_KEY: &str = "cast_canary-apikey-93d0";

fn client(emu: &Emulator, retry: RetryPolicy) -> CastariClient {
    CastariClient::new(ClientConfig {
        retry,
        ..ClientConfig::new(&emu.url, SecretString::from(API_KEY))
    })
    .expect("client")
}

/// Retries fast enough for hundreds of injected faults.
fn quick_retries(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        min_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

/// Sets `n` keys through the client.
fn fill(c: &CastariClient, n: usize) {
    block_on(async {
        for i in 0..n {
            c.set(AGENT, &format!("KEY_{i:03}"), &SecretValue::new("v"))
                .await
                .unwrap();
        }
    });
}

fn names(listing: &Listing) -> Vec<String> {
    listing.keys.iter().map(|k| k.key.clone()).collect()
}

#[test]
fn the_client_lists_all_250_keys_across_pages_of_the_docs_profile() {
    let emu = Emulator::start(&[
        "--wire",
        "docs",
        "--agents",
        AGENT,
        "--rate-limit",
        "10000/60",
    ]);
    let c = client(&emu, RetryPolicy::default());
    fill(&c, 250);
    emu.reset_stats();
    let listing = block_on(c.list(AGENT)).unwrap();
    let expected: Vec<String> = (0..250).map(|i| format!("KEY_{i:03}")).collect();
    assert_eq!(names(&listing), expected);
    assert_eq!(emu.requests("GET"), 3, "pages of 100, 100 and 50");
    assert_eq!(listing.shape.paging, Paging::Paged);
    assert_eq!(listing.shape.timestamps, Timestamps::All);
}

#[test]
fn an_unpaged_sdk_list_is_taken_whole_with_at_most_one_extra_request() {
    let emu = Emulator::start(&["--agents", AGENT, "--rate-limit", "10000/60"]);
    let c = client(&emu, RetryPolicy::default());
    // Exactly one page's worth: the next offset repeats it, so it was the whole list.
    fill(&c, 100);
    emu.reset_stats();
    let listing = block_on(c.list(AGENT)).unwrap();
    assert_eq!(listing.keys.len(), 100);
    assert_eq!(emu.requests("GET"), 2);
    assert_eq!(listing.shape.paging, Paging::Unpaged);
    assert_eq!(listing.shape.timestamps, Timestamps::None);
    // More than a page: the server plainly ignores `limit`; one request.
    fill(&c, 150);
    emu.reset_stats();
    let listing = block_on(c.list(AGENT)).unwrap();
    assert_eq!(listing.keys.len(), 150);
    assert_eq!(emu.requests("GET"), 1);
    assert_eq!(listing.shape.paging, Paging::Unpaged);
    // A short list: one request.
    let small = Emulator::start(&["--agents", AGENT]);
    let c = client(&small, RetryPolicy::default());
    fill(&c, 3);
    small.reset_stats();
    assert_eq!(block_on(c.list(AGENT)).unwrap().keys.len(), 3);
    assert_eq!(small.requests("GET"), 1);
}

#[test]
fn every_request_sends_accept_json_and_the_castsync_user_agent() {
    for wire in ["sdk", "docs"] {
        let emu = Emulator::start(&["--wire", wire, "--agents", AGENT]);
        let c = client(&emu, RetryPolicy::default());
        block_on(async {
            c.set(AGENT, "A", &SecretValue::new("v")).await.unwrap();
            c.list(AGENT).await.unwrap();
            c.delete(AGENT, "A").await.unwrap();
            c.redeploy(AGENT).await.unwrap();
        });
        let stats = emu.stats();
        assert_eq!(stats["missing_accept"], 0, "{wire}: {stats}");
        let agents = stats["user_agents"].as_object().unwrap();
        assert_eq!(agents.len(), 1, "{wire}: {stats}");
        assert_eq!(
            agents[concat!("castsync/", env!("CARGO_PKG_VERSION"))],
            4,
            "{wire}: {stats}"
        );
    }
}

#[test]
fn a_redeploy_is_one_post_counted_by_the_emulator_and_an_unknown_agent_is_terminal() {
    let emu = Emulator::start(&["--agents", AGENT]);
    let c = client(&emu, RetryPolicy::default());
    block_on(c.redeploy(AGENT)).unwrap();
    assert_eq!(emu.stats()["redeploys"][AGENT], 1);
    assert_eq!(emu.requests("POST"), 1);
    emu.reset_stats();
    let err = block_on(c.redeploy("ghost")).unwrap_err();
    assert_eq!(
        err,
        PlatformError::AgentNotFound {
            agent: "ghost".into()
        }
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(emu.requests("POST"), 1, "a terminal error is never retried");
}

/// 200 sets then 50 deletes against `--fail-rate 0.3` in `mode`: every call ends in success
/// or a transient error, and the emulator holds exactly what the successful calls wrote.
fn faults_never_corrupt_the_store(mode: &str) {
    let emu = Emulator::start(&[
        "--agents",
        AGENT,
        "--rate-limit",
        "100000/60",
        "--fail-rate",
        "0.3",
        "--fail-mode",
        mode,
        "--seed",
        "42",
    ]);
    // Two retries: most calls recover, a few run out, so both outcomes are exercised.
    let c = client(&emu, quick_retries(2));
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut failures = Vec::new();
    block_on(async {
        for i in 0..200 {
            let (key, value) = (format!("KEY_{i:03}"), format!("value-{i}"));
            match c.set(AGENT, &key, &SecretValue::new(value.clone())).await {
                Ok(()) => {
                    expected.insert(key, value);
                }
                Err(e) => failures.push(e),
            }
        }
        for i in 0..50 {
            let key = format!("KEY_{i:03}");
            match c.delete(AGENT, &key).await {
                Ok(()) => {
                    expected.remove(&key);
                }
                Err(e) => failures.push(e),
            }
        }
    });
    for e in &failures {
        assert!(e.is_transient(), "mode {mode}: a terminal error: {e}");
    }
    let stored: BTreeMap<String, String> = emu
        .get_json(&format!("/_emulator/agents/{AGENT}/secrets"))
        .as_array()
        .expect("admin dump")
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        stored, expected,
        "mode {mode}: the store differs from the successful calls"
    );
    assert!(
        expected.len() > 100,
        "mode {mode}: most calls should succeed"
    );
    let stats = emu.stats();
    let responses = &stats["responses"];
    let injected = match mode {
        "500" => responses["500"].as_u64(),
        "429" => responses["429"].as_u64(),
        "reset" => responses["reset"].as_u64(),
        "mixed" => {
            Some(responses["500"].as_u64().unwrap_or(0) + responses["reset"].as_u64().unwrap_or(0))
        }
        _ => Some(1),
    };
    assert!(
        injected.unwrap_or(0) > 0,
        "mode {mode}: no fault was injected: {stats}"
    );
    let client_stats = c.stats();
    assert!(
        client_stats.retries > 0 || mode == "malformed",
        "{client_stats:?}"
    );
}

#[test]
fn server_error_faults_end_in_success_or_a_transient_error() {
    faults_never_corrupt_the_store("500");
}

#[test]
fn injected_429s_end_in_success_or_a_transient_error() {
    faults_never_corrupt_the_store("429");
}

#[test]
fn connection_resets_end_in_success_or_a_transient_error() {
    faults_never_corrupt_the_store("reset");
}

#[test]
fn malformed_replies_end_in_success_or_a_transient_error() {
    faults_never_corrupt_the_store("malformed");
}

#[test]
fn mixed_faults_end_in_success_or_a_transient_error() {
    faults_never_corrupt_the_store("mixed");
}

#[test]
fn a_garbled_list_is_a_protocol_error_never_a_shorter_list() {
    let emu = Emulator::start(&[
        "--agents",
        AGENT,
        "--fail-rate",
        "1",
        "--fail-mode",
        "malformed",
    ]);
    let c = client(&emu, quick_retries(2));
    let err = block_on(c.list(AGENT)).unwrap_err();
    assert!(matches!(err, PlatformError::Protocol { .. }), "{err}");
    assert_eq!(
        emu.requests("GET"),
        3,
        "the GET was retried before giving up"
    );
}

#[test]
fn a_run_inside_the_budget_never_receives_a_429() {
    // Takes about 20 s: 200 calls at 20 per 2 s, on a real clock.
    let emu = Emulator::start(&["--agents", AGENT, "--rate-limit", "20/2"]);
    let c = Arc::new(client(&emu, RetryPolicy::default()));
    block_on(async {
        for i in 0..100 {
            c.set(AGENT, &format!("SEQ_{i}"), &SecretValue::new("v"))
                .await
                .unwrap();
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let (c, gate) = (Arc::clone(&c), Arc::clone(&gate));
            tasks.spawn(async move {
                let _slot = gate.acquire_owned().await.unwrap();
                c.set(AGENT, &format!("PAR_{i}"), &SecretValue::new("v"))
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
    });
    let stats = emu.stats();
    assert_eq!(
        stats["responses"]["429"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    assert_eq!(stats["requests"]["POST"], 200, "no call needed a retry");
    let client_stats = c.stats();
    assert_eq!(client_stats.responses.get(&429), None);
    assert_eq!(client_stats.rate_limit, Some(20));
}

#[test]
fn status_errors_map_to_typed_errors_that_keep_the_detail() {
    let emu = Emulator::start(&["--agents", AGENT, "--token", "cast_right"]);
    // The default policy retries transient errors; a 401 is terminal: one request.
    let c = client(&emu, RetryPolicy::default());
    match block_on(c.list(AGENT)) {
        Err(e @ PlatformError::Unauthorized { .. }) => {
            assert_eq!(e.class(), ErrorClass::Terminal);
            assert!(e.to_string().contains("Invalid API key"), "{e}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(emu.requests("GET"), 1, "a 401 is never retried");

    let good = CastariClient::new(ClientConfig::new(
        &emu.url,
        SecretString::from("cast_right"),
    ))
    .unwrap();
    assert_eq!(
        block_on(good.list("billing-agent")).unwrap_err(),
        PlatformError::AgentNotFound {
            agent: "billing-agent".into()
        }
    );
    let huge = SecretValue::new("x".repeat(70 * 1024));
    match block_on(good.set(AGENT, "BIG", &huge)) {
        Err(PlatformError::InvalidRequest {
            status: 422,
            detail,
        }) => {
            assert!(
                detail.starts_with("body.value: String should have at most"),
                "{detail}"
            );
            assert!(detail.contains("string_too_long"), "{detail}");
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    // Deleting a key that is already gone succeeds.
    block_on(good.delete(AGENT, "NEVER_SET")).unwrap();
    // Names are checked before anything is sent.
    emu.reset_stats();
    assert!(matches!(
        block_on(good.set("Bad Slug", "K", &SecretValue::new("v"))),
        Err(PlatformError::InvalidName { .. })
    ));
    assert!(matches!(
        block_on(good.delete(AGENT, "..")),
        Err(PlatformError::InvalidName { .. })
    ));
    assert_eq!(
        emu.stats()["requests"],
        serde_json::json!({"GET": 0, "POST": 0, "DELETE": 0})
    );
    // A name the platform listed but castsync would never create is still deletable.
    block_on(good.delete(AGENT, "my-key")).unwrap();
    assert_eq!(emu.requests("DELETE"), 1);
}

#[test]
fn plain_http_is_refused_for_remote_hosts_and_accepted_on_loopback() {
    let options = |url: &str| PlatformOptions {
        url: url.to_owned(),
        api_key: Some(SecretString::from(API_KEY)),
        ..PlatformOptions::default()
    };
    // Refused before any connection is attempted.
    let err = open(options("http://example.com")).err().expect("refused");
    assert!(matches!(err, OpenError::InsecureHttp { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("example.com") && text.contains("--allow-insecure-http"),
        "{text}"
    );
    assert!(
        open(PlatformOptions {
            allow_insecure_http: true,
            ..options("http://example.com")
        })
        .is_ok()
    );

    let emu = Emulator::start(&["--agents", AGENT]);
    let platform = open(options(&emu.url)).expect("loopback http is fine");
    assert_eq!(platform.id(), emu.url);
    assert_eq!(block_on(platform.list(AGENT)).unwrap().keys, vec![]);
    assert!(platform.stats().is_some());
}

#[test]
fn an_http_platform_without_an_api_key_says_how_to_provide_one() {
    let err = open(PlatformOptions {
        url: "https://api.castari.com".into(),
        ..PlatformOptions::default()
    })
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("CASTARI_API_KEY") && text.contains("--api-key-file"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let local = open(PlatformOptions {
        url: format!("local://{}", dir.path().join("p.db").display()),
        declared_agents: vec![AGENT.into()],
        ..PlatformOptions::default()
    })
    .expect("local:// needs no key");
    assert_eq!(block_on(local.list(AGENT)).unwrap().keys, vec![]);
}

#[test]
fn the_api_key_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("  {API_KEY}\n")).unwrap();
    let key = castsync::platform::read_api_key(Some(&path))
        .unwrap()
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&key), API_KEY);
    std::fs::write(&path, "\n").unwrap();
    let err = castsync::platform::read_api_key(Some(&path)).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let missing = castsync::platform::read_api_key(Some(&dir.path().join("nope"))).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

/// A tracing writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logs_never_contain_the_api_key_or_a_value() {
    let emu = Emulator::start(&[
        "--agents",
        AGENT,
        "--fail-rate",
        "0.3",
        "--fail-mode",
        "mixed",
        "--seed",
        "7",
    ]);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let c = client(&emu, quick_retries(5));
    block_on(async {
        for i in 0..10 {
            // Other tests in this process use the client at the same time, with no
            // subscriber; one of them registering a callsite while ours is being set up can
            // leave it cached as "never" (tracing-core's interest cache). Rebuilding before
            // each call closes that window.
            tracing::callsite::rebuild_interest_cache();
            let _ = c
                .set(AGENT, &format!("KEY_{i}"), &SecretValue::new(CANARY))
                .await;
        }
        let _ = c.list(AGENT).await;
        let _ = c
            .set(
                AGENT,
                "BIG",
                &SecretValue::new(format!("{CANARY}{}", "x".repeat(70 * 1024))),
            )
            .await;
        let _ = c.delete(AGENT, "KEY_0").await;
    });
    let wrong = CastariClient::new(ClientConfig {
        retry: quick_retries(1),
        ..ClientConfig::new("http://127.0.0.1:9", SecretString::from(API_KEY))
    })
    .unwrap();
    let unreachable = block_on(wrong.list(AGENT)).unwrap_err();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("platform request"),
        "the client logged its requests:\n{logs}"
    );
    assert!(logs.contains("TRACE"), "trace level was on");
    assert_no_canary("trace logs", &logs, &[CANARY, API_KEY, "Bearer cast_"]);
    assert_no_canary(
        "an error",
        &format!("{unreachable} {unreachable:?} {c:?}"),
        &[CANARY, API_KEY],
    );
}
