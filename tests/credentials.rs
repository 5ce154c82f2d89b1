//! Credentials given in URLs, environment variables and files (issue 21, point 1): a git
//! token, the API key, a webhook secret and a proxy password never appear in a log line,
//! `/readyz`, `/metrics`, `/history`, an error, the mirror's git config or the data
//! directory's name; and no credential is sent over plain http to anything but loopback,
//! proxies included. The git server is git's own `git http-backend` behind Basic auth.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::git_http::GitHttp;
use crate::support::*;
use crate::watch::daemon::{Daemon, eventually, watch_command};

const URL_TOKEN: &str = "ghp_canaryUrlToken1f2e3d4c5b6a";
const ENV_TOKEN: &str = "ghp_canaryEnvToken9a8b7c6d5e4f";
const API_KEY: &str = "cast_canaryApiKey0f1e2d3c4b5a";
const WEBHOOK: &str = "whsec_canaryWebhook77aa88bb99";
const VALUE: &str = "value-canary-3c4d-never-print";
const STARTUP: Duration = Duration::from_secs(20);

/// Every credential of these tests.
const CANARIES: &[&str] = &[URL_TOKEN, ENV_TOKEN, API_KEY, WEBHOOK, VALUE];

fn committed_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", VALUE)]);
    repo.commit_all("initial");
    repo
}

/// The repository served over smart HTTP (its parent dir is the server's root), and the
/// repository's URL without credentials.
fn serve(repo: &SecretsRepo, credentials: Option<(&str, &str)>) -> (GitHttp, String) {
    let server = GitHttp::serve(repo.root.parent().unwrap(), credentials);
    let url = format!("{}/repo", server.url);
    (server, url)
}

fn with_user_info(url: &str, user_info: &str) -> String {
    url.replacen("http://", &format!("http://{user_info}@"), 1)
}

/// `watch --git-url URL` against `emu`, with the API key and a webhook secret file as
/// canaries.
fn daemon(repo: &SecretsRepo, emu: &Emulator, git_url: &str, env: &[(&str, &str)]) -> Daemon {
    let secret = repo.home.join("webhook-secret");
    std::fs::write(&secret, format!("{WEBHOOK}\n")).unwrap();
    let mut cmd = watch_command(repo);
    cmd.env("CASTARI_API_KEY", API_KEY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("watch")
        .args(["--git-url", git_url])
        .arg("--data-dir")
        .arg(repo.home.join("data"))
        .arg("--webhook-secret-file")
        .arg(&secret)
        .args(["--interval", "1h", "--api-url", &emu.url]);
    Daemon::start(cmd, &repo.home.join("watch.log"))
}

/// Every file under `dir` as text (git's objects are compressed, so a token in them would
/// not show; the config, refs, logs and the state file would).
fn every_file(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                out.push((path, text));
            }
        }
    }
    out
}

/// The log, every HTTP surface of the daemon and every file and name under the data dir.
fn assert_nothing_leaks(d: &Daemon, data: &Path) {
    assert_no_canary("the daemon log", &d.log(), CANARIES);
    for path in ["/readyz", "/metrics", "/history", "/healthz"] {
        let (_, body) = d.get(path);
        assert_no_canary(path, &body, CANARIES);
    }
    for (path, text) in every_file(data) {
        let what = path.display().to_string();
        assert_no_canary(&what, &what, CANARIES);
        assert_no_canary(&what, &text, CANARIES);
    }
}

#[test]
fn a_token_in_the_git_url_is_sent_to_the_server_and_shown_nowhere() {
    let emu = Emulator::start(&["--agents", "alpha", "--token", API_KEY]);
    let repo = committed_repo();
    let (server, url) = serve(&repo, Some(("x-access-token", URL_TOKEN)));
    let git_url = with_user_info(&url, &format!("x-access-token:{URL_TOKEN}"));
    let d = daemon(&repo, &emu, &git_url, &[]);
    eventually(STARTUP, "the first reconcile", || {
        emu.value("alpha", "A2").as_deref() == Some(VALUE)
    });
    assert!(
        server
            .authorizations()
            .iter()
            .any(|a| a.starts_with("Basic ")),
        "the token reached the server: {:?}",
        server.authorizations()
    );
    let (_, ready) = d.readyz();
    assert_eq!(
        ready["source"].as_str().unwrap(),
        format!("{} (main)", with_user_info(&url, "***"))
    );
    let data = repo.home.join("data");
    assert_nothing_leaks(&d, &data);
    // The data directory is named after the URL without its credentials: a rotated token
    // keeps the clone and the state.
    let dirs: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, [castsync::daemon::remote_dir_name(&url)]);
    let config = std::fs::read_to_string(data.join(&dirs[0]).join("repo.git/config")).unwrap();
    assert!(config.contains(&format!("url = {url}")), "{config}");
}

#[test]
fn a_refused_token_from_the_url_is_reported_without_it_and_without_the_env_hint() {
    let emu = Emulator::start(&["--agents", "alpha", "--token", API_KEY]);
    let repo = committed_repo();
    let (_server, url) = serve(&repo, Some(("x-access-token", "the-right-token")));
    let git_url = with_user_info(&url, &format!("x-access-token:{URL_TOKEN}"));
    let d = daemon(&repo, &emu, &git_url, &[]);
    let mut ready = serde_json::Value::Null;
    eventually(STARTUP, "the fetch error on /readyz", || {
        ready = d.readyz().1;
        ready["last_fetch"]["error"].is_string()
    });
    let error = format!(
        "{} {}",
        ready["last_fetch"]["error"], ready["last_fetch"]["hint"]
    );
    assert!(
        error.contains("refused the credentials given in the URL"),
        "{ready:#}"
    );
    assert!(!error.contains("CASTSYNC_GIT_TOKEN"), "{ready:#}");
    assert_nothing_leaks(&d, &repo.home.join("data"));
}

#[test]
fn a_token_from_the_environment_is_sent_and_shown_nowhere() {
    let emu = Emulator::start(&["--agents", "alpha", "--token", API_KEY]);
    let repo = committed_repo();
    let (_server, url) = serve(&repo, Some(("x-access-token", ENV_TOKEN)));
    let d = daemon(&repo, &emu, &url, &[("CASTSYNC_GIT_TOKEN", ENV_TOKEN)]);
    eventually(STARTUP, "the first reconcile", || {
        emu.value("alpha", "A2").as_deref() == Some(VALUE)
    });
    assert_nothing_leaks(&d, &repo.home.join("data"));
}

#[test]
fn git_credentials_are_never_offered_over_plain_http_to_another_host() {
    let repo = committed_repo();
    // A documentation address (TEST-NET-1): nothing may be sent to it at all.
    let git_url = format!("http://x-access-token:{URL_TOKEN}@192.0.2.1/acme/secrets.git");
    repo.test()
        .env("CASTARI_API_KEY", API_KEY)
        .arg("watch")
        .args(["--git-url", &git_url])
        .arg("--data-dir")
        .arg(repo.home.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .timeout(Duration::from_secs(10))
        .run()
        .failure()
        .stderr_has("refusing to send git credentials over plain http:// to 192.0.2.1")
        .stderr_has("http://***@192.0.2.1/acme/secrets.git")
        .no_canary(CANARIES);
}

#[test]
fn the_api_key_never_goes_through_a_plain_http_proxy_on_another_host() {
    let emu = Emulator::start(&["--agents", "alpha", "--token", API_KEY]);
    let repo = committed_repo();
    let proxy = format!("http://user:{URL_TOKEN}@192.0.2.1:3128");
    repo.test_reconcile(&emu.url)
        .env("CASTARI_API_KEY", API_KEY)
        .env("HTTP_PROXY", &proxy)
        .arg("--dry-run")
        .timeout(Duration::from_secs(10))
        .run()
        .failure()
        .stderr_has("refusing plain http:// through the proxy http://***@192.0.2.1:3128")
        .no_canary(CANARIES);
    assert_eq!(emu.requests("GET"), 0);
    // NO_PROXY naming the platform's address sends it straight to the loopback platform.
    repo.test_reconcile(&emu.url)
        .env("CASTARI_API_KEY", API_KEY)
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "127.0.0.1")
        .arg("--dry-run")
        .run()
        .success()
        .no_canary(CANARIES);
}

#[test]
fn a_platform_url_with_a_token_in_its_query_is_refused_without_showing_it() {
    let repo = committed_repo();
    repo.test()
        .env("CASTARI_API_KEY", API_KEY)
        .args(["reconcile", "--dry-run", "--api-url"])
        .arg(format!("https://api.example.com/?access_token={URL_TOKEN}"))
        .run()
        .failure()
        .stderr_has("https://api.example.com/?access_token=***")
        .no_canary(CANARIES);
}
