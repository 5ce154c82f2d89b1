//! `castsync doctor`: read-only, exit 0 when the setup works (against the emulator in both
//! wire profiles), exit 1 naming each problem with its fix, `-o json`.

use crate::support::*;

const CANARY: &str = "canary-doctor-2b9d-never-print";

fn repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    repo
}

fn doctor(repo: &SecretsRepo, emu: &Emulator) -> Command {
    let mut c = repo.cmd();
    c.env("CASTARI_API_KEY", "cast_test")
        .arg("doctor")
        .args(["--api-url", &emu.url]);
    c
}

/// Every file under the repository, with its content, to prove nothing was written.
fn snapshot(root: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn a_working_setup_passes_read_only_and_explains_drift(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta"]);
    let repo = repo();
    repo.reconcile(&emu.url).assert().success();
    let before = snapshot(&repo.root);
    emu.reset_stats();

    let (code, stdout, stderr) = outcome(&mut doctor(&repo, &emu));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok    api key: accepted by the platform"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    manifest alpha: decrypts and validates (2 keys)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    rate limit: X-RateLimit headers present"),
        "{stdout}"
    );
    assert!(stdout.contains("no problems found"), "{stdout}");
    match wire {
        Wire::Sdk => {
            assert!(
                stdout.contains("without timestamps: value drift is invisible"),
                "{stdout}"
            );
            assert!(stdout.contains("note  drift:"), "{stdout}");
            assert!(stdout.contains("--replace"), "{stdout}");
        }
        Wire::Docs => {
            assert!(stdout.contains("the list route pages"), "{stdout}");
            assert!(
                stdout.contains("with timestamps: value drift is detected"),
                "{stdout}"
            );
            assert!(!stdout.contains("note  drift:"), "{stdout}");
        }
    }
    assert_eq!(
        emu.requests("POST") + emu.requests("DELETE"),
        0,
        "read-only"
    );
    assert_eq!(
        snapshot(&repo.root),
        before,
        "doctor wrote into the repository"
    );

    let (code, json, _) = outcome(doctor(&repo, &emu).args(["-o", "json"]));
    assert_eq!(code, 0, "{json}");
    let report = crate::cli::assert_matches_schema("doctor.schema.json", &json);
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], 0);
    let alpha = &report["agents"][0];
    assert_eq!(alpha["agent"], "alpha");
    assert_eq!(alpha["keys"], 2);
    let expected = match wire {
        Wire::Sdk => ("none", "invisible"),
        Wire::Docs => ("all", "detected"),
    };
    assert_eq!(
        (alpha["timestamps"].as_str(), alpha["value_drift"].as_str()),
        (Some(expected.0), Some(expected.1))
    );
    assert_no_canary(
        "doctor output",
        &format!("{stdout}{stderr}{json}"),
        &[CANARY],
    );
}

fn a_wrong_key_fails_with_the_fix_after_one_request(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta", "--token", "cast_right"]);
    let repo = repo();
    let (code, stdout, stderr) = outcome(&mut doctor(&repo, &emu));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAIL  api key: the platform refused the API key (401)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: check the API key in CASTARI_API_KEY"),
        "{stdout}"
    );
    assert_eq!(
        emu.requests("GET"),
        1,
        "every other agent would answer the same"
    );
    let (code, json, _) = outcome(doctor(&repo, &emu).args(["--output", "json"]));
    assert_eq!(code, 1);
    let report = crate::cli::assert_matches_schema("doctor.schema.json", &json);
    assert_eq!(report["ok"], false);
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["check"], "api key");
    assert_no_canary(
        "doctor output",
        &format!("{stdout}{json}"),
        &[CANARY, "cast_right"],
    );
}

crate::on_both_wires!(
    a_working_setup_passes_read_only_and_explains_drift,
    a_wrong_key_fails_with_the_fix_after_one_request,
);

#[test]
fn each_problem_is_named_with_its_fix() {
    // gamma is not on the platform; beta's manifest is for someone else's key.
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = repo();
    repo.agent("gamma", &[("G1", "g")]);
    let other = castsync::crypto::generate_identity().1;
    let r = castsync::crypto::parse_recipient(&other).unwrap();
    let ct = castsync::crypto::encrypt(b"agent: beta\nsecrets: {}\n", &[r]).unwrap();
    std::fs::write(repo.path("agents/beta/secrets.yaml.age"), ct).unwrap();

    let (code, stdout, stderr) = outcome(&mut doctor(&repo, &emu));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("FAIL  manifest beta:"), "{stdout}");
    assert!(
        stdout.contains("FAIL  list gamma: agent \"gamma\" not found on the platform"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: create the agent on Castari first"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    manifest alpha"), "{stdout}");
    assert!(stdout.contains("2 problems found"), "{stdout}");
    assert_no_canary("doctor output", &stdout, &[CANARY]);
}

#[test]
fn outside_a_repository_or_without_an_api_key_it_fails_and_says_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, _) = outcome(
        castsync(home.path())
            .arg("-C")
            .arg(empty.path())
            .arg("doctor"),
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  repository:"), "{stdout}");
    assert!(stdout.contains("castsync init"), "{stdout}");

    let repo = repo();
    let (code, stdout, _) =
        outcome(
            repo.cmd()
                .args(["doctor", "--api-url", "https://api.castari.com"]),
        );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  platform: no API key"), "{stdout}");
    assert!(stdout.contains("fix: set CASTARI_API_KEY"), "{stdout}");
}
