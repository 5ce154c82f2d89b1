//! `castsync history` and the history file every apply appends to: one line per change and
//! per redeploy, never a value; read back as text or JSON (schemas/history.schema.json).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;

use crate::cli::assert_matches_schema;
use crate::support::*;

const CANARY: &str = "canary-history-3f9a-never-print";
const CANARY_ROTATED: &str = "canary-history-rotated-77d0-never-print";

fn history_file(repo: &SecretsRepo) -> std::path::PathBuf {
    repo.path(".castsync/state.history.jsonl")
}

/// `castsync history ARGS…`; no canary may reach either stream.
fn history(repo: &SecretsRepo, args: &[&str]) -> Run {
    repo.test()
        .arg("history")
        .args(args)
        .run()
        .no_canary(&[CANARY, CANARY_ROTATED])
}

/// `castsync reconcile --yes EXTRA…`; no canary may reach either stream.
fn reconcile(repo: &SecretsRepo, emu: &Emulator, extra: &[&str]) -> Run {
    repo.test_reconcile(&emu.url)
        .arg("--yes")
        .args(extra)
        .run()
        .no_canary(&[CANARY, CANARY_ROTATED])
}

#[test]
fn history_lists_every_change_of_the_last_applies_and_never_a_value() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY), ("A2", "a-two")]);
    repo.agent("beta", &[("B1", "b-one")]);
    let first = repo.commit_all("first");
    reconcile(&repo, &emu, &["--ref", "HEAD"]).success();

    repo.agent("alpha", &[("A1", CANARY_ROTATED), ("A3", "a-three")]);
    let second = repo.commit_all("rotate A1, replace A2 by A3");
    reconcile(&repo, &emu, &["--ref", "HEAD"]).success();
    // A dry run applies nothing and records nothing.
    reconcile(&repo, &emu, &["--dry-run"]).success();

    let file = history_file(&repo);
    let raw = std::fs::read_to_string(&file).unwrap();
    assert_eq!(raw.lines().count(), 6, "{raw}");
    assert_no_canary("the history file", &raw, &[CANARY, CANARY_ROTATED]);
    assert!(!raw.contains("hmac-sha256"), "no fingerprint: {raw}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let run = history(&repo, &[]).success();
    let text = run.stdout();
    let mut rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().skip(1).collect())
        .collect();
    let short = |c: &str| c[..12].to_owned();
    // Oldest first: the first apply's three lines, then the second's. Within an apply, agents
    // are written as they finish (in parallel), each agent's changes in apply order.
    assert!(rows[..3].iter().all(|r| r[0] == short(&first)), "{text}");
    assert!(rows[3..].iter().all(|r| r[0] == short(&second)), "{text}");
    rows[..3].sort();
    let expected: Vec<Vec<String>> = [
        (&first, "alpha", "A1", "create"),
        (&first, "alpha", "A2", "create"),
        (&first, "beta", "B1", "create"),
        (&second, "alpha", "A1", "update (value-changed)"),
        (&second, "alpha", "A3", "create"),
        (&second, "alpha", "A2", "delete"),
    ]
    .iter()
    .map(|(c, a, k, act)| {
        let mut row = vec![short(c), (*a).to_owned(), (*k).to_owned()];
        row.extend(act.split(' ').map(str::to_owned));
        row.push("applied".to_owned());
        row
    })
    .collect();
    assert_eq!(rows, expected, "{text}");
    assert!(text.starts_with("TIME "), "{text}");

    let json = history(&repo, &["-o", "json"]).success();
    let doc = assert_matches_schema("history.schema.json", json.stdout());
    assert_eq!(doc["format_version"], 1);
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[3]["commit"], second.as_str());
    assert_eq!(entries[3]["reason"], "value-changed");
    assert!(entries.iter().all(|e| e["platform"] == emu.url.as_str()));

    // One agent; a window.
    let beta = history(&repo, &["beta", "-o", "json"]).success();
    let beta = assert_matches_schema("history.schema.json", beta.stdout());
    assert_eq!(beta["entries"].as_array().unwrap().len(), 1);
    assert_eq!(beta["entries"][0]["key"], "B1");
    let mut old = serde_json::from_str::<serde_json::Value>(raw.lines().next().unwrap()).unwrap();
    old["time"] = "2020-01-01T00:00:00Z".into();
    old["key"] = "ANCIENT".into();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(f, "{old}").unwrap();
    history(&repo, &[]).success().stdout_has("ANCIENT");
    let recent = history(&repo, &["--since", "1h"])
        .success()
        .stdout_lacks("ANCIENT");
    assert_eq!(recent.stdout().lines().count(), 7, "{}", recent.stdout());
    let none = history(&repo, &["gamma", "--since", "10m"])
        .success()
        .stderr_has("no entry names agent gamma; agents in the history: alpha, beta");
    assert!(
        none.stdout()
            .starts_with("No applies recorded for agent gamma in the last 10m"),
        "{}",
        none.stdout()
    );
}

#[test]
fn failures_and_redeploys_are_recorded_with_their_result_and_class() {
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    repo.agent("beta", &[("B1", "b-one"), ("B2", "b-two")]);
    repo.commit_all("first");
    emu.pin_fault("beta", Some("POST"), Some("secrets"), 422);
    reconcile(&repo, &emu, &["--redeploy"]).failure();

    let json = history(&repo, &["-o", "json"]).success();
    let doc = assert_matches_schema("history.schema.json", json.stdout());
    let mut brief: Vec<String> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} {} {}",
                e["agent"].as_str().unwrap(),
                e["key"].as_str().unwrap_or("-"),
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
                e["error_class"].as_str().unwrap_or("-"),
                e["error"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    brief.sort();
    assert_eq!(
        brief,
        [
            "alpha - redeploy applied - -",
            "alpha A1 create applied - -",
            "beta - redeploy postponed - -",
            "beta B1 create failed terminal invalid-request",
            "beta B2 create failed terminal invalid-request",
        ],
        "{}",
        json.stdout()
    );
    history(&repo, &["beta"])
        .success()
        .stdout_has("failed (terminal: invalid-request)");
}

#[test]
fn a_torn_last_line_is_skipped_with_a_note_and_the_next_apply_still_reads() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    repo.commit_all("first");
    reconcile(&repo, &emu, &[]).success();
    // An apply killed in the middle of a line.
    let file = history_file(&repo);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(br#"{"time":"2026-11-20T10:00:00Z","commit":"ab"#)
        .unwrap();
    drop(f);

    let run = history(&repo, &[])
        .success()
        .stderr_has("1 unreadable line");
    assert_eq!(run.stdout().lines().count(), 2, "{}", run.stdout());

    repo.agent("alpha", &[("A1", CANARY), ("A2", "a-two")]);
    repo.commit_all("add A2");
    reconcile(&repo, &emu, &[]).success();
    let json = history(&repo, &["-o", "json"]).success();
    let doc = assert_matches_schema("history.schema.json", json.stdout());
    let keys: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["A1", "A2"]);
    assert_eq!(doc["skipped_lines"], 1);
}

#[test]
fn history_before_any_apply_is_empty_and_a_missing_state_file_names_the_fix() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    // Nothing applied yet: an empty history, `[]` for a script.
    history(&repo, &[])
        .success()
        .stdout_has("No applies recorded");
    let doc = assert_matches_schema(
        "history.schema.json",
        history(&repo, &["-o", "json"]).success().stdout(),
    );
    assert_eq!(doc["entries"], serde_json::json!([]));
    // A --state that is not there is more likely a mistyped path.
    let elsewhere = repo.home.join("nowhere/state.json");
    history(&repo, &["--state", elsewhere.to_str().unwrap()])
        .failure()
        .stderr_has("nowhere/state.json")
        .stderr_line_with(&["hint: ", "check the path"]);
    // A bad duration is a usage error.
    history(&repo, &["--since", "soon"])
        .failure()
        .stderr_has("30s, 10m or 1h");
}

/// A history line as an apply writes it, with `key`.
fn planted_line(key: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "time": "2026-11-20T10:00:00Z",
            "commit": "0123456789abcdef",
            "platform": "https://api.example",
            "agent": "alpha",
            "key": key,
            "action": "delete",
            "result": "applied",
        })
    )
}

#[test]
fn a_giant_key_name_planted_by_the_platform_is_cut_and_never_panics_or_widens_the_table() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    std::fs::create_dir_all(repo.path(".castsync")).unwrap();
    // A platform listed a 70,000-character key and a prune recorded it; 5,000 rows follow.
    let giant = format!("K{}", "\u{1b}[2J".repeat(10)).repeat(5_000);
    let mut text = planted_line(&giant);
    for n in 0..5_000 {
        text.push_str(&planted_line(&format!("KEY_{n}")));
    }
    std::fs::write(history_file(&repo), &text).unwrap();

    let run = history(&repo, &[]).success();
    let out = run.stdout();
    assert_eq!(out.lines().count(), 5_002);
    assert!(!out.contains('\u{1b}'), "escaped");
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(
        widest < 250,
        "one cell widened the table to {widest} characters"
    );
    assert!(out.len() < 1_000_000, "{} bytes", out.len());
    assert!(
        out.lines().nth(1).unwrap().contains("…"),
        "the cut is marked"
    );
    // JSON keeps the key whole.
    let doc = history(&repo, &["-o", "json"]).success().json();
    assert_eq!(doc["entries"][0]["key"].as_str(), Some(giant.as_str()));
}

/// Runs castsync with its stdout on a pipe whose reader is already gone, as `| head -1`
/// leaves it; returns the exit code and stderr.
fn with_closed_stdout(home: &std::path::Path, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = castsync_std(home)
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_exits_quietly_when_the_reader_of_stdout_goes_away() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    repo.commit_all("alpha");
    std::fs::create_dir_all(repo.path(".castsync")).unwrap();
    std::fs::write(history_file(&repo), planted_line("A1").repeat(2_000)).unwrap();
    let (root, key) = (repo.root.as_os_str(), repo.key_file.as_os_str());
    let state = repo.home.join("state.json");
    let cases: &[(&[&str], i32)] = &[
        (&["history"], 0),
        (&["history", "-o", "json"], 0),
        (&["--help"], 0),
        (&["help", "reconcile"], 0),
        (&["validate"], 0),
        (&["validate", "-o", "json"], 0),
        (&["show", "alpha"], 0),
        (&["diff", "HEAD"], 0),
        (&["doctor", "-o", "json", "--api-url", "local://x.db"], 0),
        (&["reconcile", "--dry-run", "--api-url", "local://x.db"], 0),
        (&["completions", "bash"], 0),
        (&["audit"], 0),
        (&["keygen", "-o"], 0),
    ];
    for (args, code) in cases {
        let mut line: Vec<&std::ffi::OsStr> = vec!["-C".as_ref(), root, "-i".as_ref(), key];
        let keygen_out;
        if args[0] == "keygen" {
            keygen_out = state.with_file_name("new-key.txt");
            line.extend([std::ffi::OsStr::new("keygen"), "-o".as_ref()]);
            line.push(keygen_out.as_os_str());
        } else {
            line.extend(args.iter().map(std::ffi::OsStr::new));
        }
        let (got, stderr) = with_closed_stdout(&repo.home, &line);
        assert_no_panic(&format!("castsync {args:?}"), stderr.as_bytes());
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(!stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
        assert_no_canary(&format!("{args:?}"), &stderr, &[CANARY]);
        assert_eq!(got, *code, "{args:?}: {stderr}");
    }
}

/// Runs castsync with its stderr on a pipe whose reader is already gone (a supervisor that
/// went away, `2>&1 | head -1` after the first line); returns the exit code and stdout.
fn with_closed_stderr(home: &std::path::Path, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = castsync_std(home)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(writer)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn commands_that_talk_on_stderr_finish_their_work_when_nobody_reads_it() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    repo.commit_all("alpha");
    let (root, key) = (repo.root.as_os_str(), repo.key_file.as_os_str());
    let new_key = repo.home.join("new-key.txt");
    let base: Vec<&std::ffi::OsStr> = vec!["-C".as_ref(), root, "-i".as_ref(), key];
    let run = |args: &[&std::ffi::OsStr]| {
        let line: Vec<&std::ffi::OsStr> =
            base.iter().copied().chain(args.iter().copied()).collect();
        with_closed_stderr(&repo.home, &line)
    };
    // keygen writes the key file and says so on stderr; the recipient goes to stdout.
    let (code, stdout) = run(&["keygen".as_ref(), "-o".as_ref(), new_key.as_os_str()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("age1"), "{stdout}");
    assert!(new_key.exists());
    // new and set report on stderr; the manifest is written all the same.
    let (code, _) = run(&["new".as_ref(), "beta".as_ref()]);
    assert_eq!(code, 0);
    assert!(repo.path("agents/beta/secrets.yaml.age").exists());
    // An error is lost with its stream, and the exit code still says so.
    let (code, _) = run(&["show".as_ref(), "nobody".as_ref()]);
    assert_ne!(code, 0);
    assert_ne!(code, 101, "a panic");
    // The audit's headline goes to stderr, its report to stdout.
    let (code, stdout) = run(&["audit".as_ref()]);
    assert_eq!(code, 0, "{stdout}");
    assert_no_canary("audit", &stdout, &[CANARY]);
}
