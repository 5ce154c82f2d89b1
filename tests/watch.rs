//! `castsync watch` through the binary: a temp git repo as the remote, the real emulator as
//! the platform (in both wire profiles). Every wait is a poll with a deadline.

pub mod daemon;
mod flood;
mod history;
mod incremental;
mod monitoring;
mod notify;
mod page;
mod platform;
mod single;

use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use daemon::{Daemon, WEBHOOK_SECRET, eventually, watch_command};

use crate::support::*;

const CANARY: &str = "canary-watch-5b1e-never-print";
const DEADLINE: Duration = Duration::from_secs(5);
/// Startup includes a first clone and a full reconcile: allow more than a push.
const STARTUP: Duration = Duration::from_secs(20);

fn two_agent_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.commit_all("initial");
    repo
}

fn remote_url(repo: &SecretsRepo) -> String {
    format!("file://{}", repo.root.display())
}

fn data_dir(repo: &SecretsRepo) -> PathBuf {
    repo.home.join("data")
}

fn state_file(repo: &SecretsRepo) -> PathBuf {
    data_dir(repo)
        .join(castsync::daemon::remote_dir_name(&remote_url(repo)))
        .join("state.db")
}

/// `watch --git-url file://REPO` with a webhook secret, a 1 h interval (so only webhooks
/// and startup trigger work) and the emulator as the platform.
fn git_watch(repo: &SecretsRepo, emu: &Emulator, extra: &[&str]) -> Daemon {
    let secret = repo.home.join("webhook-secret");
    std::fs::write(&secret, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let mut cmd = watch_command(repo);
    cmd.arg("watch")
        .args(["--git-url", &remote_url(repo)])
        .arg("--data-dir")
        .arg(data_dir(repo))
        .arg("--webhook-secret-file")
        .arg(&secret)
        .args(["--interval", "1h", "--api-url", &emu.url])
        .args(extra);
    Daemon::start(cmd, &repo.home.join("watch.log"))
}

fn converged(emu: &Emulator, agent: &str, key: &str, value: &str) -> bool {
    emu.value(agent, key).as_deref() == Some(value)
}

/// Observes `check` for `window`; it must hold the whole time. Used only to show that
/// something does *not* happen (nothing else can prove an absence).
fn stays(window: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(check(), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn a_signed_webhook_converges_a_pushed_change_and_an_unsigned_one_does_nothing(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || {
        converged(&emu, "beta", "B2", "b-two")
    });

    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);
    repo.commit_all("rotate B2");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "the pushed value on the platform", || {
        converged(&emu, "beta", "B2", "b-two-rotated")
    });

    // A change is committed, but the only notification is unsigned or forged.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-unannounced")]);
    repo.commit_all("unannounced");
    emu.reset_stats();
    let body = r#"{"ref":"refs/heads/main"}"#;
    assert_eq!(d.webhook(body, None), 401);
    assert_eq!(d.webhook(body, Some("a-guessed-secret")), 401);
    stays(
        Duration::from_secs(1),
        "an unsigned webhook caused requests",
        || {
            let stats = emu.stats();
            stats["requests"]
                .as_object()
                .is_none_or(|m| m.values().all(|v| v.as_u64() == Some(0)))
        },
    );
    assert!(converged(&emu, "beta", "B2", "b-two-rotated"));
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("castsync_webhook_deliveries_total{result=\"unauthorized\"} 2"),
        "{metrics}"
    );
    assert_no_canary("the daemon log", &d.log(), &[CANARY, "b-two-rotated"]);
    assert_no_canary("the metrics", &metrics, &[CANARY]);
}

/// `castsync watch` on the repository's working tree (no remote), ticking hourly.
fn repo_mode_daemon(repo: &SecretsRepo, emu: &Emulator) -> Daemon {
    let mut cmd = watch_command(repo);
    cmd.arg("-C")
        .arg(&repo.root)
        .arg("watch")
        .args(["--interval", "1h", "--api-url", &emu.url]);
    Daemon::start(cmd, &repo.home.join("watch.log"))
}

fn repo_mode_converges_on_a_file_change_without_webhook_or_tick(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = repo_mode_daemon(&repo, &emu);
    eventually(STARTUP, "the first reconcile", || {
        converged(&emu, "alpha", "A1", "a-one")
    });

    repo.agent("alpha", &[("A1", "a-one-edited"), ("A2", CANARY)]);
    eventually(DEADLINE, "the edited value on the platform", || {
        converged(&emu, "alpha", "A1", "a-one-edited")
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);
    assert!(repo.root.join(".castsync/state.db").exists());
    assert_no_canary("the daemon log", &d.log(), &[CANARY]);
}

#[test]
fn repo_mode_keeps_converging_past_a_fifo_and_a_link_to_dev_zero() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let repo = two_agent_repo();
    // Hostile files a pull request could commit: read naively, one hangs forever and the
    // other never ends.
    let gamma = repo.root.join("agents/gamma");
    std::fs::create_dir_all(&gamma).unwrap();
    let fifo = gamma.join("secrets.yaml.age");
    assert!(
        StdCommand::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let schema = repo.root.join("agents/beta/.env.example");
    std::fs::remove_file(&schema).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &schema).unwrap();
    let d = repo_mode_daemon(&repo, &emu);
    eventually(STARTUP, "the healthy agent's first reconcile", || {
        converged(&emu, "alpha", "A1", "a-one")
    });
    repo.agent("alpha", &[("A1", "a-one-edited"), ("A2", CANARY)]);
    eventually(DEADLINE, "the healthy agent's edit on the platform", || {
        converged(&emu, "alpha", "A1", "a-one-edited")
    });
    let log = d.log();
    assert!(log.contains("is a FIFO"), "{log}");
    assert!(log.contains("leads outside the repository"), "{log}");
    assert_eq!(emu.value("beta", "B1"), None, "beta is skipped whole");
}

fn a_broken_agent_stays_as_applied_while_the_others_converge_until_a_fix(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || {
        converged(&emu, "alpha", "A2", CANARY)
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);

    // One commit breaks alpha (its manifest claims another agent) and changes beta.
    repo.raw_manifest(
        "alpha",
        "agent: somebody-else\nsecrets:\n  A1: a-one-broken\n  A2: x\n",
    );
    repo.agent("beta", &[("B1", "b-one-new"), ("B2", "b-two")]);
    let broken = repo.commit_all("break alpha, change beta");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "beta's new value", || {
        converged(&emu, "beta", "B1", "b-one-new")
    });
    eventually(DEADLINE, "readyz naming alpha", || {
        let (status, body) = d.readyz();
        status == 503 && body["agents"].get("alpha").is_some()
    });
    assert!(converged(&emu, "alpha", "A1", "a-one"), "alpha was touched");
    assert!(converged(&emu, "alpha", "A2", CANARY), "alpha was touched");
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("castsync_agent_error{agent=\"alpha\",class=\"terminal\"} 1"),
        "{metrics}"
    );

    // Another notification for the same commit: the error is not logged again.
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "the second fetch", || {
        d.get("/metrics")
            .1
            .contains("castsync_fetches_total{result=\"success\"} 3")
    });
    let log = d.log();
    let mentions = log
        .lines()
        .filter(|l| l.contains("agent not reconciled") && l.contains("alpha"))
        .count();
    assert_eq!(mentions, 1, "logged once per commit:\n{log}");
    assert!(log.contains(&broken[..12]), "{log}");

    repo.agent("alpha", &[("A1", "a-one-fixed"), ("A2", CANARY)]);
    repo.commit_all("fix alpha");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "alpha's fixed value", || {
        converged(&emu, "alpha", "A1", "a-one-fixed")
    });
    eventually(DEADLINE, "ready again", || d.readyz().0 == 200);
    assert_no_canary("the daemon log", &d.log(), &[CANARY, "a-one-broken"]);
}

/// `ssh-keygen -t ed25519` into HOME/NAME; returns the private key path.
fn ssh_key(repo: &SecretsRepo, name: &str) -> PathBuf {
    let path = repo.home.join(name);
    let out = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Waits until `/readyz` refuses `commit` (503) with a reason holding each of `says`; the log
/// says the first.
fn refused(d: &Daemon, commit: &str, says: &[&str]) {
    eventually(DEADLINE, "readyz refusing the commit", || {
        let (status, body) = d.readyz();
        status == 503 && body["rejected_commit"]["commit"] == commit
    });
    let (_, body) = d.readyz();
    let reason = body["rejected_commit"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(says.iter().all(|s| reason.contains(s)), "{reason}");
    assert!(d.log().contains(says[0]), "{}", d.log());
}

fn signed_commit(repo: &SecretsRepo, key: &std::path::Path, message: &str) -> String {
    repo.git(&["add", "-A"]);
    let signing_key = format!("user.signingkey={}", key.display());
    repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing_key,
        "commit",
        "-q",
        "-S",
        "-m",
        message,
    ]);
    repo.git(&["rev-parse", "HEAD"])
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_applied() {
    let Some(_) = tool("ssh-keygen") else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.git(&["init", "-q"]);
    let alice = ssh_key(&repo, "alice");
    let mallory = ssh_key(&repo, "mallory");
    let alice_pub = std::fs::read_to_string(alice.with_extension("pub")).unwrap();
    let signers = repo.home.join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.com {alice_pub}")).unwrap();
    signed_commit(&repo, &alice, "initial, signed by alice");

    let signers_arg = signers.to_string_lossy().into_owned();
    let d = git_watch(&repo, &emu, &["--verify-signatures", &signers_arg]);
    eventually(STARTUP, "the signed commit applied", || {
        converged(&emu, "beta", "B2", "b-two")
    });

    // Unsigned: not applied, reason in /readyz and the log.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-unsigned")]);
    let unsigned = repo.commit_all("unsigned change");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "readyz refusing the unsigned commit", || {
        let (status, body) = d.readyz();
        status == 503 && body["rejected_commit"]["commit"] == unsigned.as_str()
    });
    let (_, body) = d.readyz();
    assert!(
        body["rejected_commit"]["reason"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{body}"
    );
    assert!(d.log().contains("not signed"), "{}", d.log());
    assert!(converged(&emu, "beta", "B2", "b-two"));

    // Signed by a key that is not allowed: refused, naming the signer's fingerprint.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-mallory")]);
    let by_mallory = signed_commit(&repo, &mallory, "signed by mallory");
    assert_eq!(d.push(), 202);
    refused(&d, &by_mallory, &["not allowed", "SHA256:"]);
    assert!(converged(&emu, "beta", "B2", "b-two"));

    // Alice signs again: applied, ready.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-by-alice")]);
    signed_commit(&repo, &alice, "signed by alice again");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "alice's change applied", || {
        converged(&emu, "beta", "B2", "b-two-by-alice")
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);
}

#[test]
fn a_force_push_back_to_an_older_signed_commit_is_refused_unless_allowed() {
    let Some(_) = tool("ssh-keygen") else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "old-value")]);
    repo.git(&["init", "-q"]);
    let alice = ssh_key(&repo, "alice");
    let alice_pub = std::fs::read_to_string(alice.with_extension("pub")).unwrap();
    let signers = repo.home.join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.com {alice_pub}")).unwrap();
    let old = signed_commit(&repo, &alice, "old value, signed");
    let signers_arg = signers.to_string_lossy().into_owned();

    let d = git_watch(&repo, &emu, &["--verify-signatures", &signers_arg]);
    eventually(STARTUP, "the old value applied", || {
        converged(&emu, "alpha", "A1", "old-value")
    });
    repo.agent("alpha", &[("A1", "rotated-value")]);
    signed_commit(&repo, &alice, "rotated, signed");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "the rotation applied", || {
        converged(&emu, "alpha", "A1", "rotated-value")
    });

    // A force-push back to the older (validly signed) commit: refused like an unsigned one.
    repo.git(&["reset", "-q", "--hard", &old]);
    assert_eq!(d.push(), 202);
    refused(&d, &old, &["does not descend from", "--allow-rollback"]);
    assert!(converged(&emu, "alpha", "A1", "rotated-value"));

    // A restart remembers which way is forward.
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
    let d = git_watch(&repo, &emu, &["--verify-signatures", &signers_arg]);
    eventually(
        STARTUP,
        "readyz refusing the rollback after a restart",
        || {
            let (status, body) = d.readyz();
            status == 503 && body["rejected_commit"]["commit"] == old.as_str()
        },
    );
    assert!(converged(&emu, "alpha", "A1", "rotated-value"));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));

    // The operator allows it: the old value goes back.
    let d = git_watch(
        &repo,
        &emu,
        &["--verify-signatures", &signers_arg, "--allow-rollback"],
    );
    eventually(STARTUP, "the rollback applied when allowed", || {
        converged(&emu, "alpha", "A1", "old-value")
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);
}

fn sigterm_during_a_slow_apply_exits_cleanly_and_a_restart_converges(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "a1,a2,a3", "--latency-ms", "300"]);
    let repo = SecretsRepo::new("");
    let keys: Vec<(String, String)> = (0..8)
        .map(|i| (format!("KEY_{i}"), format!("value-{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for agent in ["a1", "a2", "a3"] {
        repo.agent(agent, &pairs);
    }
    repo.commit_all("24 keys");

    let d = git_watch(&repo, &emu, &["--concurrency", "2"]);
    eventually(STARTUP, "the apply to start", || emu.requests("POST") >= 1);
    let signalled = Instant::now();
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    let posted = emu.requests("POST");
    assert!(
        posted < 24,
        "the apply should have been interrupted ({posted} POSTs)"
    );

    let run = Test::at_home(&repo.home)
        .args(["state", "export", "--state"])
        .arg(state_file(&repo))
        .run()
        .success();
    let state = run.json();
    assert_eq!(state["version"], castsync::state::STATE_VERSION);
    assert_no_canary("the state", run.stdout(), &["value-1", "value-7"]);

    let d = git_watch(&repo, &emu, &[]);
    eventually(
        Duration::from_secs(30),
        "every key after the restart",
        || {
            ["a1", "a2", "a3"].iter().all(|a| {
                converged(&emu, a, "KEY_7", "value-7") && converged(&emu, a, "KEY_0", "value-0")
            })
        },
    );
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn the_metrics_pass_promtool_check_metrics(wire: Wire) {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || d.readyz().0 == 200);
    assert_eq!(d.webhook("{}", None), 401);
    let (status, metrics) = d.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "castsync_reconcile_runs_total{result=\"success\"} 1",
        "castsync_reconcile_duration_seconds_count 1",
        "castsync_changes_applied_total{kind=\"create\"} 4",
        "castsync_api_requests_total{code=\"200\"}",
        "castsync_rate_limit_remaining",
        "castsync_agents_skipped 0",
        "castsync_drift_found_total 0",
        "castsync_last_applied_commit_timestamp_seconds",
        "castsync_webhook_deliveries_total{result=\"unauthorized\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let mut promtool = StdCommand::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().unwrap();
        stdin.write_all(metrics.as_bytes()).unwrap();
    }
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sighup_reconciles_again_and_json_logs_carry_one_span_per_reconcile(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let d = git_watch(&repo, &emu, &["--log-format", "json"]);
    let runs = |n: u32| {
        d.get("/metrics").1.contains(&format!(
            "castsync_reconcile_runs_total{{result=\"success\"}} {n}"
        ))
    };
    eventually(STARTUP, "the first reconcile", || runs(1));
    emu.reset_stats();
    d.signal("HUP");
    eventually(DEADLINE, "a second reconcile of the same commit", || {
        runs(2)
    });
    // The platform was listed again (drift check), and nothing needed writing.
    assert!(emu.requests("GET") >= 2);
    assert_eq!(emu.requests("POST"), 0);

    let head = repo.git(&["rev-parse", "HEAD"]);
    let finished: Vec<serde_json::Value> = d
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "reconcile finished")
        .collect();
    assert_eq!(finished.len(), 2, "{}", d.log());
    let triggers: Vec<&str> = finished
        .iter()
        .map(|v| v["span"]["trigger"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(triggers, ["startup", "sighup"]);
    for event in &finished {
        assert_eq!(event["span"]["name"], "reconcile");
        assert_eq!(event["span"]["commit"], &head[..12]);
        assert!(event["span"]["duration_ms"].is_u64(), "{event}");
    }
    assert_no_canary("the daemon log", &d.log(), &[CANARY]);
}

crate::on_both_wires!(
    a_signed_webhook_converges_a_pushed_change_and_an_unsigned_one_does_nothing,
    repo_mode_converges_on_a_file_change_without_webhook_or_tick,
    a_broken_agent_stays_as_applied_while_the_others_converge_until_a_fix,
    sigterm_during_a_slow_apply_exits_cleanly_and_a_restart_converges,
    the_metrics_pass_promtool_check_metrics,
    sighup_reconciles_again_and_json_logs_carry_one_span_per_reconcile,
);
