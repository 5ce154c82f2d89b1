//! The daemon against platform failures and redeploys: a terminal error (a wrong API key) is
//! shown and waited on, never retried with backoff; a failed redeploy is retried until it
//! lands. Both wire profiles.

use std::time::Duration;

use super::daemon::eventually;
use super::{DEADLINE, STARTUP, converged, git_watch, stays, two_agent_repo};
use crate::support::*;

fn wrong_key_waits_for_sighup_instead_of_retrying(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta", "--token", "cast_right"]);
    let repo = two_agent_repo();
    let key_file = repo.home.join("api-key");
    std::fs::write(&key_file, "cast_wrong\n").unwrap();
    let key_arg = key_file.to_string_lossy().into_owned();
    let d = git_watch(&repo, &emu, &["--api-key-file", &key_arg]);

    eventually(STARTUP, "readyz naming the refused key", || {
        let (status, body) = d.readyz();
        status == 503 && body["agent_errors"]["alpha"]["class"] == "terminal"
    });
    let (_, body) = d.readyz();
    let message = body["agents"]["alpha"].as_str().unwrap();
    assert!(message.contains("API key"), "{body}");
    assert!(
        body["agent_errors"]["alpha"]["hint"]
            .as_str()
            .unwrap()
            .contains("CASTARI_API_KEY"),
        "{body}"
    );
    assert!(
        body["reasons"]
            .to_string()
            .contains("waiting for a new commit, a config change or SIGHUP"),
        "{body}"
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("castsync_agent_error{agent=\"alpha\",class=\"terminal\"} 1"),
        "{metrics}"
    );
    // One list per agent, and then nothing: no backoff loop against a 401.
    let gets = emu.requests("GET");
    assert!(gets <= 4, "at most two requests per agent, got {gets}");
    assert_eq!(emu.requests("POST"), 0);
    stays(Duration::from_secs(3), "the daemon retried a 401", || {
        emu.requests("GET") == gets
    });

    // The key is fixed and the daemon told: it converges.
    std::fs::write(&key_file, "cast_right\n").unwrap();
    d.signal("HUP");
    eventually(DEADLINE, "the platform after SIGHUP", || {
        converged(&emu, "beta", "B2", "b-two")
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);
    assert_no_canary("the daemon log", &d.log(), &["cast_right", "cast_wrong"]);
}

fn redeploys_follow_changes_and_a_failed_one_is_retried(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    repo.config("redeploy: on-change");
    repo.commit_all("redeploy on change");
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile and its redeploys", || {
        emu.redeploys("alpha") == 1 && emu.redeploys("beta") == 1
    });
    eventually(DEADLINE, "ready", || d.readyz().0 == 200);

    // beta changes: beta alone is redeployed, once.
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);
    repo.commit_all("rotate B2");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "beta's redeploy", || emu.redeploys("beta") == 2);
    assert_eq!(emu.redeploys("alpha"), 1);
    assert!(converged(&emu, "beta", "B2", "b-two-rotated"));

    // alpha changes but its redeploy fails: the secret lands, the redeploy is retried.
    emu.pin_fault("alpha", Some("POST"), Some("redeploy"), 503);
    repo.agent(
        "alpha",
        &[
            ("A1", "a-one-rotated"),
            ("A2", "canary-watch-5b1e-never-print"),
        ],
    );
    repo.commit_all("rotate A1");
    assert_eq!(d.push(), 202);
    // The client retries a 503 with backoff before it gives up on this run (~8-15 s).
    eventually(
        Duration::from_secs(40),
        "readyz naming alpha's redeploy",
        || {
            let (_, body) = d.readyz();
            body["agent_errors"]["alpha"]["class"] == "transient"
                && body["agents"]["alpha"]
                    .as_str()
                    .is_some_and(|m| m.contains("redeploy failed"))
        },
    );
    assert!(converged(&emu, "alpha", "A1", "a-one-rotated"));
    emu.clear_faults();
    eventually(Duration::from_secs(15), "alpha redeployed on retry", || {
        emu.redeploys("alpha") == 2
    });
    eventually(DEADLINE, "ready again", || d.readyz().0 == 200);
    assert_eq!(emu.redeploys("beta"), 2, "beta changed nothing");
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("castsync_redeploys_total 4"), "{metrics}");
}

crate::on_both_wires!(
    wrong_key_waits_for_sighup_instead_of_retrying,
    redeploys_follow_changes_and_a_failed_one_is_retried,
);
