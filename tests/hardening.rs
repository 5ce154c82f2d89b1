//! The failures of the adversarial pass (issue 11), each reproduced through the binary:
//! unbounded reads, quadratic parses, silent skips, a panic, raw untrusted text, and a pull
//! request redirecting the API key. (Values in messages: `canary_forms.rs`; the webhook
//! flood: `daemon::http` unit tests and `tools/webhook-flood.sh`.)

use std::os::unix::fs::symlink;
use std::process::Command as StdCommand;

use crate::support::*;

fn mkfifo(path: &std::path::Path) {
    let ok = StdCommand::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

#[test]
fn links_to_devices_fifos_and_files_outside_the_repository_are_refused_by_name() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.agent("beta", &[("B", "b")]);
    repo.agent("gamma", &[("C", "c")]);
    // A committed symlink to /dev/zero was read for minutes, a FIFO blocked forever.
    let zero = repo.path("agents/alpha/secrets.yaml.age");
    std::fs::remove_file(&zero).unwrap();
    symlink("/dev/zero", &zero).unwrap();
    let fifo = repo.path("agents/beta/.env.example");
    std::fs::remove_file(&fifo).unwrap();
    mkfifo(&fifo);
    let outside = repo.home.join("outside.env");
    std::fs::write(&outside, "C=x\n").unwrap();
    let linked = repo.path("agents/gamma/.env.example");
    std::fs::remove_file(&linked).unwrap();
    symlink(&outside, &linked).unwrap();

    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has("agents/alpha/secrets.yaml.age is a symbolic link that leads outside the repository (to \"/dev/zero\")")
        .stdout_has("agents/beta/.env.example is a FIFO (named pipe), not a regular file")
        .stdout_has("agents/gamma/.env.example is a symbolic link that leads outside");

    // castsync.yaml itself.
    std::fs::remove_file(repo.path("castsync.yaml")).unwrap();
    symlink("/dev/zero", repo.path("castsync.yaml")).unwrap();
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .output_has("castsync.yaml is a symbolic link that leads outside");
    std::fs::remove_file(repo.path("castsync.yaml")).unwrap();
    mkfifo(&repo.path("castsync.yaml"));
    repo.test()
        .args(["show", "gamma"])
        .run()
        .failure()
        .stderr_has("castsync.yaml is a FIFO");
}

#[test]
fn a_link_inside_the_repository_is_followed() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("SHARED", "a")]);
    repo.agent("beta", &[("SHARED", "b")]);
    let schema = repo.path("agents/beta/.env.example");
    std::fs::remove_file(&schema).unwrap();
    symlink("../alpha/.env.example", &schema).unwrap();
    repo.test().arg("validate").run().success();
}

#[test]
fn deep_nesting_is_refused_before_it_is_parsed() {
    let repo = SecretsRepo::new("");
    // 200,000 `[` took libyaml over two minutes; this must answer at once.
    repo.raw_manifest(
        "alpha",
        &format!("agent: alpha\nsecrets:\n  A: {}\n", "[".repeat(200_000)),
    );
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_line_with(&[
            "agents/alpha/secrets.yaml.age (decrypted), line 3, column ",
            "the YAML is nested more than 16 levels deep",
        ]);

    std::fs::write(repo.path("castsync.yaml"), "{a: ".repeat(50_000)).unwrap();
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_line_with(&[
            "castsync.yaml, line 1, column ",
            "the YAML is nested more than 16 levels deep",
        ]);
}

#[test]
fn an_agent_directory_whose_name_is_not_utf8_is_an_error_naming_it() {
    use std::os::unix::ffi::OsStrExt as _;
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    let bad = repo
        .path("agents")
        .join(std::ffi::OsStr::from_bytes(b"bad-\xff-agent"));
    std::fs::create_dir_all(&bad).unwrap();
    // It used to be skipped, and validate said ok.
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has("error: agents/bad-\u{fffd}-agent: the agent directory name is not valid UTF-8")
        .stdout_has("failed: 2 agents checked");
}

#[test]
fn an_interval_too_large_for_the_clock_is_a_usage_error_not_a_panic() {
    let repo = SecretsRepo::new("");
    // It panicked in 3 to 4 runs of 10.
    for _ in 0..10 {
        repo.test()
            .args(["watch", "--interval", "99999999999999d"])
            .args(["--api-url", "local://store.json"])
            .run()
            .failure()
            .stderr_line_with(&["--interval", "too long"]);
    }
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_manifest_is_accepted() {
    let repo = SecretsRepo::new("");
    repo.raw_manifest("alpha", "\u{feff}agent: alpha\nsecrets:\n  A: \"a\"\n");
    repo.schema("alpha", "\u{feff}A=placeholder\n");
    // It was reported as more than one document.
    repo.test().arg("validate").run().success();
}

#[test]
fn a_pull_request_plan_refuses_a_changed_platform_url() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    let base = repo.commit_all("base");
    // The one line a pull request needs to send the CI's API key elsewhere.
    repo.config("platform:\n  url: https://collector.example.net\n");
    repo.commit_all("redirect");
    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--base", &base, "--output", "markdown"])
        .run()
        .failure()
        // No plan is printed.
        .stdout_is("")
        .stderr_has("platform.url in castsync.yaml differs between the base revision (https://api.castari.com) and this revision (https://collector.example.net)")
        .stderr_has("\n  hint: merge the change of platform.url on its own first");
    assert_eq!(emu.requests("GET"), 0, "nothing was sent anywhere");

    // The same URL spelled the same way as the default: allowed.
    repo.config("platform:\n  url: https://api.castari.com/\n");
    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--base", &base])
        .run()
        .success();
}

#[test]
fn remote_key_names_reach_the_terminal_and_the_pr_comment_escaped() {
    use axum::routing::get;
    let at = "2026-01-01T00:00:00Z";
    let hostile = serde_json::json!({"secrets": [
        {"key": "A", "created_at": at},
        {"key": "RED\u{1b}[31mKEY", "created_at": at},
        {"key": "X\n\nPlan: 0 to create, 0 to update, 0 to delete, 9 unchanged.", "created_at": at},
        {"key": "F\n```\n</details><img src=x onerror=alert(1)>", "created_at": at},
    ]});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        block_on(async move {
            let app = axum::Router::new().route(
                "/api/v1/agents/{slug}/secrets",
                get(move || {
                    let body = hostile.clone();
                    async move { axum::Json(body) }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        })
    });
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    let run = |format: &str| {
        repo.test_reconcile(&url)
            .args(["--dry-run", "--allow-mass-delete", "--output", format])
            .run()
            .success()
            .stdout()
            .to_owned()
    };
    let text = run("text");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Plan:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("- RED\\x1b[31mKEY"), "{text}");
    let md = run("markdown");
    assert!(!md.lines().any(|l| l.starts_with("</details><img")), "{md}");
    assert_eq!(
        md.lines().filter(|l| l.starts_with("```")).count(),
        2,
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let keys: Vec<&str> = json["agents"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"RED\u{1b}[31mKEY"),
        "JSON stays exact: {keys:?}"
    );
}

#[test]
fn a_committed_group_link_leading_outside_is_named_when_read_from_a_revision() {
    let repo = SecretsRepo::new("");
    repo.group("openai", &[("OPENAI_API_KEY", "o")]);
    repo.agent_using(
        "alpha",
        "[openai]",
        &[("A1", "a")],
        &["A1", "OPENAI_API_KEY"],
    );
    // The group's folder moves out of the repository, leaving a link behind.
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("openai");
    std::fs::rename(repo.path("shared/openai"), &moved).unwrap();
    symlink(&moved, repo.path("shared/openai")).unwrap();
    repo.commit_all("link the group");
    for rev in [&["--dry-run"][..], &["--dry-run", "--ref", "HEAD"]] {
        repo.test()
            .args(["reconcile", "--api-url", "local://x.db"])
            .args(rev)
            .run()
            .failure()
            .stdout_has("shared/openai/secrets.yaml.age is a symbolic link that leads outside the repository")
            .stdout_lacks("there is no shared/openai");
    }
}

#[test]
fn libgit2_repeating_a_bad_revision_reaches_the_terminal_escaped() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a")]);
    repo.commit_all("alpha");
    let bad = "main\u{1b}[2J\u{1b}]0;owned\u{7}";
    let local = "--api-url=local://x.db";
    for args in [
        &["reconcile", local, "--dry-run", "--changed", "--since", bad][..],
        &["reconcile", local, "--dry-run", "--ref", bad],
        &["diff", bad],
    ] {
        let run = repo
            .test()
            .args(args)
            .run()
            .failure()
            .stderr_has("cannot resolve revision");
        assert!(
            !run.output().contains(['\u{1b}', '\u{7}']),
            "{:?}",
            run.output()
        );
        assert!(run.stderr().contains("\\x1b[2J"), "{}", run.stderr());
    }
}
