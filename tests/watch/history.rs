//! The daemon's applies land in the same history as the CLI's: `GET /history` serves the
//! last entries (schemas/history.schema.json) and `castsync history --state` reads them.

use super::daemon::eventually;
use super::{CANARY, DEADLINE, STARTUP, converged, git_watch, state_file, two_agent_repo};
use crate::cli::assert_matches_schema;
use crate::support::*;

#[test]
fn get_history_serves_the_daemons_applies_by_commit_without_a_value() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = two_agent_repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || {
        converged(&emu, "beta", "B2", "b-two")
    });

    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two-rotated")]);
    let second = repo.commit_all("rotate B2");
    assert_eq!(d.push(), 202);
    eventually(DEADLINE, "the rotated value on the platform", || {
        converged(&emu, "beta", "B2", "b-two-rotated")
    });

    // The history is appended once the agent is done: poll for the line.
    let mut body = String::new();
    eventually(DEADLINE, "the rotation in /history", || {
        let (status, text) = d.get("/history");
        body = text;
        status == 200 && body.contains(&second)
    });
    let doc = assert_matches_schema("history.schema.json", &body);
    assert!(doc.get("history_file").is_none(), "{doc:#}");
    let entries: Vec<(String, String, String, String)> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["commit"].as_str().unwrap()[..7].to_owned(),
                e["agent"].as_str().unwrap().to_owned(),
                e["key"].as_str().unwrap().to_owned(),
                e["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 5, "{doc:#}");
    assert_eq!(
        entries.last().unwrap(),
        &(
            second[..7].to_owned(),
            "beta".to_owned(),
            "B2".to_owned(),
            "applied".to_owned()
        )
    );
    assert!(entries[..4].iter().all(|e| e.0 == first[..7]), "{doc:#}");
    assert_no_canary("GET /history", &body, &[CANARY, "b-two-rotated"]);

    // The same file, from the command line, while the daemon holds the state lock.
    let state = state_file(&repo);
    let (code, stdout, stderr) = outcome(
        castsync(&repo.home)
            .arg("history")
            .arg("--state")
            .arg(&state)
            .args(["beta", "-o", "json"]),
    );
    assert_eq!(code, 0, "{stderr}");
    let cli = assert_matches_schema("history.schema.json", &stdout);
    assert_eq!(cli["entries"].as_array().unwrap().len(), 3);
    assert_no_canary("castsync history", &stdout, &[CANARY, "b-two-rotated"]);
}
