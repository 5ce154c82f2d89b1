//! The status page at `/`, loaded in a real browser: headless Chromium (Debian's `chromium`)
//! renders it against a running daemon; the test reads the DOM Chromium built (`--dump-dom`)
//! and keeps a screenshot in its temp dir. A key name carrying `<script>` shows as text.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use super::daemon::eventually;
use super::{CANARY, STARTUP, converged, git_watch};
use crate::support::*;

/// A key name castsync itself never writes (validation refuses it, and does not even repeat
/// it), but that a hand-edited or corrupted history file next to the state can hold: the page
/// must show it as text.
const HOSTILE_KEY: &str = "X<script>document.title='pwned'</script>";

/// Runs headless Chromium with `args` and the page's URL; its stdout.
fn chromium(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = StdCommand::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_renders_in_chromium_with_hostile_names_as_text() {
    let Some(browser) = tool("chromium") else {
        return;
    };
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let repo = super::two_agent_repo();
    // gamma's manifest names a key that is not a valid name: gamma is skipped, with why.
    repo.raw_manifest(
        "gamma",
        &format!("agent: gamma\nsecrets:\n  \"{HOSTILE_KEY}\": x\n"),
    );
    let head = repo.commit_all("gamma, hostile");
    let history = castsync::history::path_for_state(&super::state_file(&repo));
    std::fs::create_dir_all(history.parent().unwrap()).unwrap();
    let line = serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "commit": "0123456789abcdef", "platform": "x",
        "agent": "<img src=x onerror=alert(1)>", "key": HOSTILE_KEY,
        "action": "delete", "result": "applied",
    });
    std::fs::write(&history, format!("{line}\n")).unwrap();
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first apply", || {
        converged(&emu, "beta", "B2", "b-two")
    });
    eventually(Duration::from_secs(10), "gamma's error on /readyz", || {
        d.readyz().1["agents"].get("gamma").is_some()
    });
    let (status, html) = d.get("/");
    assert_eq!(status, 200);
    assert_no_canary(
        "the status page",
        &html,
        &[CANARY, "a-one", "b-two", "planted", "hmac-sha256"],
    );

    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/", d.url);
    let dom = chromium(&browser, &profile.path().join("dom"), &["--dump-dom"], &url);
    assert!(dom.contains("<table id=\"agents\""), "{dom}");
    assert!(dom.contains(&head[..12]), "the applied commit: {dom}");
    for (agent, state) in [
        ("alpha", "converged"),
        ("beta", "converged"),
        ("gamma", "skipped"),
    ] {
        assert!(
            dom.contains(&format!("<tr><td>{agent}</td><td class=\"")) && dom.contains(state),
            "{agent} {state}: {dom}"
        );
    }
    // Chromium parsed the hostile name as text: serialized back escaped, no script element,
    // and the title is untouched.
    assert!(
        dom.contains("X&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(dom.contains("<title>castsync watch</title>"), "{dom}");

    let shot = profile.path().join("status-page.png");
    chromium(
        &browser,
        &profile.path().join("shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
            "--hide-scrollbars",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("CASTSYNC_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
