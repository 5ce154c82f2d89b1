//! The daemon refreshes only what a commit changed: a one-key commit among many agents costs
//! one list, one write and one verifying list; the agents it did not touch wait for the paced
//! drift resync, which still finds and heals a key deleted on the platform.

use std::time::Duration;

use super::daemon::eventually;
use super::{DEADLINE, STARTUP, converged, git_watch};
use crate::support::*;

const AGENTS: usize = 50;

fn many_agent_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for i in 0..AGENTS {
        repo.agent(
            &format!("agent-{i:03}"),
            &[("K1", &format!("one-{i}")), ("K2", &format!("two-{i}"))],
        );
    }
    repo.commit_all("initial");
    repo
}

fn total_requests(emu: &Emulator) -> u64 {
    ["GET", "POST", "DELETE"]
        .iter()
        .map(|m| emu.requests(m))
        .sum()
}

fn a_one_key_commit_among_many_agents_costs_three_requests(wire: Wire) {
    let emu = Emulator::on(
        wire,
        &["--auto-create-agents", "--rate-limit", "1000000/60"],
    );
    let repo = many_agent_repo();
    let d = git_watch(&repo, &emu, &["--concurrency", "8"]);
    eventually(STARTUP, "the first reconcile", || d.readyz().0 == 200);
    assert!(converged(&emu, "agent-049", "K2", "two-49"));

    for round in 0..3 {
        let value = format!("one-17-rotated-{round}");
        repo.agent("agent-017", &[("K1", &value), ("K2", "two-17")]);
        let commit = repo.commit_all("rotate agent-017 K1");
        emu.reset_stats();
        assert_eq!(d.push(), 202);
        eventually(DEADLINE, "the rotated value applied", || {
            d.readyz().1["applied_revision"] == commit.as_str()
        });
        assert!(converged(&emu, "agent-017", "K1", &value));
        assert_eq!(emu.requests("GET"), 2, "one list and one verify");
        assert_eq!(emu.requests("POST"), 1, "one write");
        assert_eq!(total_requests(&emu), 3);
    }
    let log = d.log();
    assert!(log.contains("unrefreshed=49"), "{log}");
}

fn a_restart_refreshes_nothing_and_the_resync_still_heals_a_deleted_key(wire: Wire) {
    let emu = Emulator::on(
        wire,
        &["--auto-create-agents", "--rate-limit", "1000000/60"],
    );
    let repo = many_agent_repo();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || d.readyz().0 == 200);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));

    // Restarted on the same state and the same commit: every agent is known and unchanged.
    emu.reset_stats();
    let d = git_watch(&repo, &emu, &["--resync", "3s"]);
    eventually(STARTUP, "ready after the restart", || d.readyz().0 == 200);
    assert!(d.log().contains("unrefreshed=50"), "{}", d.log());

    // A key deleted on the platform is found by the paced resync, not by a commit.
    emu.delete_out_of_band("agent-003", "K1");
    eventually(
        Duration::from_secs(30),
        "the resync healing agent-003",
        || converged(&emu, "agent-003", "K1", "one-3"),
    );
}

crate::on_both_wires!(
    a_one_key_commit_among_many_agents_costs_three_requests,
    a_restart_refreshes_nothing_and_the_resync_still_heals_a_deleted_key,
);
