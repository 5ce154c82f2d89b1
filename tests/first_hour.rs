//! What a newcomer reads in the first hour: a reconcile's output in the order things happen,
//! each change said once, progress that counts what it says, notes only when they matter,
//! one clear message for a platform that is not there, hints in the order a new teammate
//! follows them.

use std::process::Stdio;

use crate::support::*;

const CANARY: &str = "canary-first-hour-never-printed";

/// A repository with agents `alpha`, `beta` and `gamma`, one key each.
fn three_agents() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for agent in ["alpha", "beta", "gamma"] {
        repo.agent(agent, &[("TOKEN", CANARY)]);
    }
    repo
}

/// `castsync reconcile ARGS` with stdout and stderr into one file, as `2>&1` in CI does:
/// (exit code, the combined log).
fn combined_log(repo: &SecretsRepo, url: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let log = std::fs::File::create(&path).expect("create the log");
    let status = castsync_std(&repo.home)
        .arg("-C")
        .arg(&repo.root)
        .arg("-i")
        .arg(&repo.key_file)
        .args(["reconcile", "--api-url", url])
        .args(args)
        .env("CASTARI_API_KEY", "cast_test")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .status()
        .expect("run castsync");
    let text = std::fs::read_to_string(&path).expect("read the log");
    assert_no_panic("castsync reconcile", text.as_bytes());
    assert_no_canary("the combined log", &text, &[CANARY]);
    (status.code().unwrap_or(-1), text)
}

#[test]
fn a_combined_log_shows_the_plan_before_the_apply_and_each_change_once() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let repo = three_agents();
    let (code, log) = combined_log(&repo, &emu.url, &[]);
    assert_eq!(code, 0, "{log}");
    let header = log.find("castsync plan for").expect("the plan header");
    let totals = log.find("Plan: 3 to create").expect("the plan's totals");
    let first_progress = log.find("change(s) applied").expect("a progress line");
    let summary = log.find("Apply complete: 3 created").expect("the summary");
    assert!(
        header < totals && totals < first_progress && first_progress < summary,
        "the plan, then the progress, then the summary:\n{log}"
    );
    // Each change is listed once: in the plan, not again after the apply.
    assert_eq!(log.matches("+ TOKEN").count(), 3, "{log}");
}

#[test]
fn progress_lines_count_the_requests_of_the_agents_done() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let repo = three_agents();
    let (code, log) = combined_log(&repo, &emu.url, &["--concurrency", "3"]);
    assert_eq!(code, 0, "{log}");
    // One set and one verifying list per agent: 6 requests, 2 more for each agent done.
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("change(s) applied"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    for (i, line) in lines.iter().enumerate() {
        let done = i + 1;
        let expected = format!("({done}/3 agents, {}/6 requests)", 2 * done);
        assert!(
            line.ends_with(&expected),
            "{line:?} should end with {expected:?}"
        );
    }
}

#[test]
fn the_timestamps_note_appears_once_and_only_when_values_could_change_unseen() {
    // The SDK's wire shape lists keys without timestamps.
    let emu = Emulator::on(Wire::Sdk, &["--agents", "alpha,beta,gamma"]);
    let repo = three_agents();
    let note = "lists no timestamps";
    // A first apply writes every value: nothing could have changed unseen.
    let (_, first) = combined_log(&repo, &emu.url, &[]);
    assert!(!first.contains(note), "{first}");
    // Now every key is in sync on record, and a value changed outside castsync would not
    // show: one note, in one line, naming how many agents it is about.
    let (_, second) = combined_log(&repo, &emu.url, &[]);
    let notes: Vec<&str> = second.lines().filter(|l| l.contains(note)).collect();
    assert_eq!(notes.len(), 1, "{second}");
    assert!(
        notes[0].contains("(3 agents with keys in sync)"),
        "{}",
        notes[0]
    );
    // An agent whose every key this run rewrites is not counted.
    repo.agent("alpha", &[("TOKEN", "canary-first-hour-rotated")]);
    let (_, third) = combined_log(&repo, &emu.url, &[]);
    let notes: Vec<&str> = third.lines().filter(|l| l.contains(note)).collect();
    assert_eq!(notes.len(), 1, "{third}");
    assert!(
        notes[0].contains("(2 agents with keys in sync)"),
        "{}",
        notes[0]
    );
    assert!(!third.contains("canary-first-hour-rotated"), "{third}");
}

#[test]
fn an_unreachable_platform_is_reported_once_with_its_address() {
    let repo = three_agents();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, log) = combined_log(&repo, &url, &[]);
    assert_eq!(code, 1, "{log}");
    let said = format!("cannot connect to the platform at {url}: connection refused");
    assert_eq!(log.matches(&said).count(), 1, "{log}");
    assert_eq!(log.matches("is the platform running").count(), 1, "{log}");
    assert!(
        log.contains("3 agents skipped, nothing changed: alpha, beta, gamma"),
        "{log}"
    );
    assert!(
        !log.contains("tcp connect error"),
        "no transport dump:\n{log}"
    );
}

#[test]
fn a_new_teammate_without_a_key_is_told_the_whole_way_in_order() {
    let repo = three_agents();
    // A fresh HOME: no identity anywhere, and no -i.
    let home = tempfile::tempdir().expect("tempdir");
    let run = Test::at_home(home.path())
        .args(["-C"])
        .arg(&repo.root)
        .arg("validate")
        .run()
        .failure();
    let output = run.output();
    let hint = output
        .lines()
        .find(|l| l.trim_start().starts_with("hint: new here?"))
        .unwrap_or_else(|| panic!("no newcomer hint:\n{output}"))
        .to_owned();
    let at = |what: &str| {
        hint.find(what)
            .unwrap_or_else(|| panic!("{what} missing: {hint}"))
    };
    assert!(
        at("castsync keygen") < at("send") && at("send") < at("castsync rekey"),
        "{hint}"
    );
}
