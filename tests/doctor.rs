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

fn doctor(repo: &SecretsRepo, emu: &Emulator) -> Test {
    repo.test()
        .env("CASTARI_API_KEY", "cast_test")
        .arg("doctor")
        .args(["--api-url", &emu.url])
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
    repo.test_reconcile(&emu.url).run().success();
    let before = snapshot(&repo.root);
    emu.reset_stats();

    let run = doctor(&repo, &emu)
        .run()
        .success()
        .stdout_has("ok    api key: accepted by the platform")
        .stdout_has("ok    manifest alpha: decrypts and validates (2 keys)")
        .stdout_has("ok    rate limit: X-RateLimit headers present")
        .stdout_has("no problems found")
        .no_canary(&[CANARY]);
    match wire {
        Wire::Sdk => run
            .stdout_has("without timestamps: value drift is invisible")
            .stdout_has("note  drift:")
            .stdout_has("--replace"),
        Wire::Docs => run
            .stdout_has("the list route pages")
            .stdout_has("with timestamps: value drift is detected")
            .stdout_lacks("note  drift:"),
    };
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

    let json = doctor(&repo, &emu)
        .args(["-o", "json"])
        .run()
        .success()
        .no_canary(&[CANARY]);
    let report = crate::cli::assert_matches_schema("doctor.schema.json", json.stdout());
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
}

fn a_wrong_key_fails_with_the_fix_after_one_request(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta", "--token", "cast_right"]);
    let repo = repo();
    doctor(&repo, &emu)
        .run()
        .failure()
        .stdout_has("FAIL  api key: the platform refused the API key (401)")
        .stdout_has("fix: check the API key in CASTARI_API_KEY")
        .no_canary(&[CANARY, "cast_right"]);
    assert_eq!(
        emu.requests("GET"),
        1,
        "every other agent would answer the same"
    );
    let json = doctor(&repo, &emu)
        .args(["--output", "json"])
        .run()
        .failure()
        .no_canary(&[CANARY, "cast_right"]);
    let report = crate::cli::assert_matches_schema("doctor.schema.json", json.stdout());
    assert_eq!(report["ok"], false);
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["check"], "api key");
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

    doctor(&repo, &emu)
        .run()
        .failure()
        .stdout_has("FAIL  manifest beta:")
        .stdout_has("FAIL  list gamma: agent \"gamma\" not found on the platform")
        .stdout_has("fix: create the agent on Castari first")
        .stdout_has("ok    manifest alpha")
        .stdout_has("2 problems found")
        .no_canary(&[CANARY]);
}

#[test]
fn outside_a_repository_or_without_an_api_key_it_fails_and_says_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    Test::new()
        .arg("-C")
        .arg(empty.path())
        .arg("doctor")
        .run()
        .failure()
        .stdout_has("FAIL  repository:")
        .stdout_has("castsync init");

    repo()
        .test()
        .args(["doctor", "--api-url", "https://api.castari.com"])
        .run()
        .failure()
        .stdout_has("FAIL  platform: no API key")
        .stdout_has("fix: set CASTARI_API_KEY");
}

/// A platform at a loopback URL that answers every request with `status` and a JSON body whose
/// `detail` tries to drive the terminal and forge a passing line.
fn hostile_platform(status: u16) -> String {
    let detail = "nope\u{1b}[2J\u{1b}[1;1H\u{1b}[32m\nok    api key: accepted\r\u{9b}0m";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        block_on(async move {
            let app = axum::Router::new().fallback(move || async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(serde_json::json!({ "detail": detail })),
                )
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        })
    });
    url
}

#[test]
fn the_platform_error_detail_is_escaped_and_cannot_forge_a_passing_line() {
    let repo = repo();
    for status in [401, 403, 422, 500] {
        let url = hostile_platform(status);
        let run = repo
            .test()
            .env("CASTARI_API_KEY", "cast_test")
            .args(["doctor", "--api-url", &url, "--request-timeout", "2s"])
            .run()
            .failure()
            .no_canary(&[CANARY]);
        let out = run.output();
        assert!(
            !out.contains(['\u{1b}', '\r', '\u{9b}']),
            "{status}: a control character reached the terminal:\n{out:?}"
        );
        assert!(
            !out.lines().any(|l| l.starts_with("ok    api key")),
            "{status}: a forged line:\n{out}"
        );
        assert!(out.contains("\\x1b[2J"), "{status}: shown escaped:\n{out}");
    }
}
