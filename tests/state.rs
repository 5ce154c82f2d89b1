//! The state in its database, through the binary: a reconcile killed at any moment leaves a
//! state that reads and records only verified writes; a state file of an earlier castsync
//! migrates on first use, keeps a copy, and exports as it was; what an earlier castsync finds
//! in the file's place makes it stop.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::*;

const CANARY: &str = "canary-state-9d2e-never-print";

/// The value of `agent`/`key` in round `round`: every round changes every value.
fn value(round: usize, agent: &str, key: &str) -> String {
    format!("{CANARY}-{round}-{agent}-{key}")
}

fn write_round(repo: &SecretsRepo, agents: &[String], round: usize) {
    for agent in agents {
        let secrets: Vec<(String, String)> = ["K1", "K2", "K3"]
            .iter()
            .map(|k| (k.to_string(), value(round, agent, k)))
            .collect();
        let pairs: Vec<(&str, &str)> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        repo.agent(agent, &pairs);
    }
}

/// The fingerprint castsync records for `value` (the HMAC key comes from `state export`).
fn fingerprint(hmac_key: &[u8], agent: &str, key: &str, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hmac_key).unwrap();
    for part in [
        agent.as_bytes(),
        &[0],
        key.as_bytes(),
        &[0],
        value.as_bytes(),
    ] {
        mac.update(part);
    }
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// Every record of `state` names a value castsync wrote in some round up to `round`, and a
/// record of this round's value is on the platform: nothing unverified was recorded. Returns
/// how many records hold this round's value.
fn check_records(state: &serde_json::Value, emu: &Emulator, round: usize) -> usize {
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        state["hmac_key"].as_str().unwrap(),
    )
    .unwrap();
    let records = state["platforms"][&emu.url].as_object();
    let mut current = 0;
    for (agent, keys) in records.into_iter().flatten() {
        for (name, record) in keys.as_object().unwrap() {
            let recorded = record["fingerprint"].as_str().unwrap();
            let of = |r: usize| fingerprint(&key, agent, name, &value(r, agent, name));
            let written = (0..=round).rev().find(|&r| of(r) == recorded);
            let written = written.unwrap_or_else(|| panic!("{agent}/{name}: unknown record"));
            if written == round {
                assert_eq!(
                    platform_value(emu, agent, name),
                    Some(value(round, agent, name)),
                    "{agent}/{name}: recorded, but not what the platform holds"
                );
                current += 1;
            }
        }
    }
    current
}

/// `GET` an admin route of the emulator on a plain socket: the test polls it every
/// millisecond to kill at the moment it chose, which the support's HTTP client (a runtime and
/// a client per call) is too slow for.
fn admin_get(emu: &Emulator, path: &str) -> serde_json::Value {
    use std::io::{Read as _, Write as _};
    let host = emu.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer cast_test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {head}\n{body}"))
}

fn posts(emu: &Emulator) -> u64 {
    admin_get(emu, "/_emulator/stats")["requests"]["POST"]
        .as_u64()
        .unwrap_or(0)
}

fn platform_value(emu: &Emulator, agent: &str, key: &str) -> Option<String> {
    let v = admin_get(emu, &format!("/_emulator/agents/{agent}/secrets/{key}"));
    v.get("value").and_then(|v| v.as_str()).map(str::to_owned)
}

/// A small LCG: the kill moments differ from round to round and from run to run of the test
/// (the seed is printed: a failure can be replayed by fixing it here).
struct Moments(u64);

impl Moments {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn a_reconcile_killed_at_random_moments_leaves_a_readable_state_of_verified_writes_only() {
    let emu = Emulator::start(&[
        "--auto-create-agents",
        "--rate-limit",
        "1000000/60",
        "--latency-ms",
        "3",
    ]);
    let repo = SecretsRepo::new("");
    let agents: Vec<String> = (0..24).map(|i| format!("agent-{i:02}")).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seed: {seed}");
    let mut moments = Moments(seed);
    let writes = (agents.len() * 3) as u64;
    let mut recorded_mid_run = 0;
    let mut killed_mid_apply = 0;
    for round in 0..10 {
        write_round(&repo, &agents, round);
        emu.reset_stats();
        let mut child = castsync_std(&repo.home)
            .env("CASTARI_API_KEY", "cast_test")
            .arg("-C")
            .arg(&repo.root)
            .arg("-i")
            .arg(&repo.key_file)
            .args(["reconcile", "--concurrency", "4", "--api-url", &emu.url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Somewhere in the apply: after a random number of writes, plus up to 10 ms.
        let target = 1 + moments.next(writes - 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while posts(&emu) < target && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_micros(moments.next(10_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        killed_mid_apply += usize::from(posts(&emu) < writes);

        let state = repo.state_export();
        assert_eq!(state["version"], 2);
        recorded_mid_run += check_records(&state, &emu, round);
        let text = state.to_string();
        assert_no_canary("the exported state", &text, &[CANARY]);
    }
    // Kills after the first writes of a round land between agents too: some rounds recorded
    // agents before the kill.
    assert!(recorded_mid_run > 0, "no kill came after an agent's save");
    assert!(
        killed_mid_apply >= 3,
        "only {killed_mid_apply} kills came mid-apply"
    );

    repo.test_reconcile(&emu.url).run().success();
    let state = repo.state_export();
    assert_eq!(check_records(&state, &emu, 9), agents.len() * 3);
    emu.reset_stats();
    repo.test_reconcile(&emu.url).run().success();
    assert_eq!(emu.requests("POST"), 0, "converged: nothing left to write");
    let db = rusqlite::Connection::open(repo.path(".castsync/state.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

fn converged_repo(emu: &Emulator) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    repo.commit_all("initial");
    repo.test_reconcile(&emu.url).run().success();
    repo
}

/// The names of the files in `.castsync/`, sorted.
fn state_dir(repo: &SecretsRepo) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.path(".castsync"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_state_file_of_an_earlier_castsync_migrates_on_first_use_keeping_a_copy() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = converged_repo(&emu);
    // The state file an earlier castsync would have written: byte for byte the export.
    let export = repo.test().args(["state", "export"]).run().success();
    let file = export.stdout().to_owned();
    repo.forget_state();
    std::fs::write(repo.path(".castsync/state.json"), &file).unwrap();
    set_private(&repo.path(".castsync/state.json"));

    // Read only, the file is printed as it is, and nothing is migrated.
    let export = repo.test().args(["state", "export"]).run().success();
    assert_eq!(export.stdout(), file);
    assert!(!repo.path(".castsync/state.db").exists());

    emu.reset_stats();
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stderr_has("state.json.migrated")
        .no_canary(&[CANARY]);
    assert_eq!(emu.requests("POST"), 0, "every fingerprint was kept");
    // A run that ends leaves the database whole: nothing is left in a -wal beside it (what
    // the CI example's cache relies on).
    let files = state_dir(&repo);
    assert!(files.contains(&"state.db".to_owned()), "{files:?}");
    assert!(!files.contains(&"state.db-wal".to_owned()), "{files:?}");
    assert_eq!(
        std::fs::read_to_string(repo.path(".castsync/state.json.migrated")).unwrap(),
        file
    );
    let stub: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.path(".castsync/state.json")).unwrap())
            .unwrap();
    assert_eq!(stub["version"], 3);
    assert_eq!(stub["moved_to"], "state.db");
    let export = repo.test().args(["state", "export"]).run().success();
    assert_eq!(
        export.stdout(),
        file,
        "the export prints what the file held"
    );
    crate::cli::assert_matches_schema("state.schema.json", export.stdout());

    // The next run migrates nothing again.
    repo.test_reconcile(&emu.url)
        .run()
        .success()
        .stderr_lacks("migrated");
}

#[test]
fn what_an_earlier_castsync_finds_in_the_files_place_makes_it_stop() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = converged_repo(&emu);
    // An earlier castsync read the file's `version` first and refused one past the version
    // it wrote (2): "state file … has version 3, but this castsync understands version 2".
    let stub: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.path(".castsync/state.json")).unwrap())
            .unwrap();
    assert!(stub["version"].as_u64().unwrap() > 2, "{stub}");
    assert!(
        stub["note"].as_str().unwrap().contains("state export"),
        "{stub}"
    );

    // A database of a newer layout than this build knows is refused, not misread.
    let db = rusqlite::Connection::open(repo.path(".castsync/state.db")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    emu.reset_stats();
    let url = emu.url.as_str();
    let runs: [&[&str]; 3] = [
        &["reconcile", "--api-url", url],
        &["reconcile", "--dry-run", "--api-url", url],
        &["state", "export"],
    ];
    for args in runs {
        repo.test()
            .env("CASTARI_API_KEY", "cast_test")
            .args(args)
            .run()
            .failure()
            .stderr_has("written by a newer castsync")
            .stderr_has("upgrade castsync");
    }
    assert_eq!(emu.requests("POST"), 0);
}

#[test]
fn state_export_names_a_missing_state_with_the_fix() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    repo.commit_all("initial");
    repo.test()
        .args(["state", "export"])
        .run()
        .failure()
        .stderr_has("no state at")
        .stderr_has("hint:");
    let elsewhere = repo.home.join("nowhere/state.db");
    repo.test()
        .args(["state", "export", "--state"])
        .arg(&elsewhere)
        .run()
        .failure()
        .stderr_has("nowhere/state.db");
}
