//! `notify:` through the binary: commit statuses on loopback fakes of GitHub, GitLab and
//! Gitea that check each request against the forge's published API, a signed generic webhook,
//! a Slack-compatible receiver, and a dead target — whose failures are counted while the
//! applies go on. No token or secret reaches the log, `/readyz`, `/metrics` or `/`.

use std::time::Duration;

use super::daemon::{Daemon, eventually, watch_command};
use super::{CANARY, DEADLINE, STARTUP, converged, data_dir, remote_url};
use crate::support::forge::{FakeForge, Kind, Seen};
use crate::support::*;

const GITHUB_TOKEN: &str = "ghp_canaryGitHubToken0000000000000000";
const GITLAB_TOKEN: &str = "glpat-canaryGitLabToken000";
const GITEA_TOKEN: &str = "canary-gitea-token-0000000000000000000000";
const HOOK_SECRET: &str = "canary-webhook-signing-secret";

struct Fakes {
    github: FakeForge,
    gitlab: FakeForge,
    gitea: FakeForge,
    hooks: FakeForge,
    slack: FakeForge,
    dead: String,
}

fn fakes() -> Fakes {
    // A port nothing listens on: connections are refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/castsync", l.local_addr().unwrap())
    };
    Fakes {
        github: FakeForge::start(Kind::GitHub, GITHUB_TOKEN),
        gitlab: FakeForge::start(Kind::GitLab, GITLAB_TOKEN),
        gitea: FakeForge::start(Kind::Gitea, GITEA_TOKEN),
        hooks: FakeForge::start(Kind::Receiver, ""),
        slack: FakeForge::start(Kind::Receiver, ""),
        dead,
    }
}

fn notify_config(f: &Fakes) -> String {
    format!(
        "notify:
  - github_status: {{ token_env: GITHUB_TOKEN, api_url: '{}', repository: acme/secrets }}
  - gitlab_status: {{ token_env: GITLAB_TOKEN, api_url: '{}', repository: acme/platform/secrets }}
  - gitea_status: {{ token_env: GITEA_TOKEN, api_url: '{}', repository: acme/secrets }}
  - webhook: {{ url: '{}/hook', secret_env: NOTIFY_SECRET }}
  - slack: {{ url_env: SLACK_WEBHOOK_URL, events: [failure] }}
  - webhook: {{ url: '{}' }}
",
        f.github.api_url(),
        f.gitlab.api_url(),
        f.gitea.api_url(),
        f.hooks.url,
        f.dead,
    )
}

fn start(repo: &SecretsRepo, emu: &Emulator, f: &Fakes) -> Daemon {
    let mut cmd = watch_command(repo);
    cmd.env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("GITLAB_TOKEN", GITLAB_TOKEN)
        .env("GITEA_TOKEN", GITEA_TOKEN)
        .env("NOTIFY_SECRET", HOOK_SECRET)
        .env(
            "SLACK_WEBHOOK_URL",
            format!("{}/services/T0/B0/canary", f.slack.url),
        )
        .arg("watch")
        .args(["--git-url", &remote_url(repo)])
        .arg("--data-dir")
        .arg(data_dir(repo))
        .args(["--interval", "1h", "--api-url", &emu.url]);
    let secret = repo.home.join("webhook-secret");
    std::fs::write(&secret, format!("{}\n", super::daemon::WEBHOOK_SECRET)).unwrap();
    cmd.arg("--webhook-secret-file").arg(&secret);
    Daemon::start(cmd, &repo.home.join("watch.log"))
}

/// (state, description) of the statuses a forge accepted for `sha`, in order; panics on
/// any request the fake refused.
fn statuses(forge: &FakeForge, sha: &str) -> Vec<(String, String)> {
    let seen = forge.seen();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.refused.is_some()).collect();
    assert!(
        refused.is_empty(),
        "requests that do not fit the API: {refused:#?}"
    );
    seen.iter()
        .filter(|s| s.path.ends_with(sha))
        .map(|s| {
            let body = s.json();
            let state = body["state"].as_str().unwrap_or_default().to_owned();
            let description = body["description"].as_str().unwrap_or_default().to_owned();
            (state, description)
        })
        .collect()
}

fn context_of(s: &Seen) -> String {
    let body = s.json();
    body.get("context")
        .or_else(|| body.get("name"))
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn each_forge_gets_its_commit_status_hooks_their_events_and_no_credential_leaks() {
    let f = fakes();
    let emu = Emulator::start(&["--agents", "alpha,beta"]);
    let repo = SecretsRepo::new(&notify_config(&f));
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.agent("beta", &[("B1", "b-one")]);
    let first = repo.commit_all("initial");
    let d = start(&repo, &emu, &f);
    eventually(STARTUP, "the first apply", || {
        converged(&emu, "beta", "B1", "b-one")
    });

    // A successful cycle: pending, then success, with the right sha and context.
    let done = [("pending".to_owned(), "applying".to_owned())];
    for (forge, success) in [
        (&f.github, "success"),
        (&f.gitlab, "success"),
        (&f.gitea, "success"),
    ] {
        eventually(DEADLINE, "the final status", || {
            statuses(forge, &first).len() == 2
        });
        let got = statuses(forge, &first);
        assert_eq!(got[0], done[0]);
        assert_eq!(got[1].0, success);
        assert_eq!(got[1].1, "applied 3 changes to 2 agents");
        assert!(forge.seen().iter().all(|s| context_of(s) == "castsync"));
    }
    assert!(
        f.gitlab.seen()[0]
            .path
            .starts_with("/api/v4/projects/acme%2Fplatform%2Fsecrets/statuses/")
    );
    assert_eq!(f.gitlab.seen()[1].json()["ref"], "main");

    // A failing cycle: the platform refuses beta's writes.
    emu.pin_fault("beta", Some("POST"), None, 401);
    repo.agent("beta", &[("B1", "b-one-rotated")]);
    let second = repo.commit_all("rotate beta");
    assert_eq!(d.push(), 202);
    for forge in [&f.github, &f.gitlab, &f.gitea] {
        eventually(DEADLINE, "the failure status", || {
            statuses(forge, &second).len() == 2
        });
        let (state, description) = statuses(forge, &second)[1].clone();
        assert!(state == "failure" || state == "failed", "{state}");
        assert!(description.starts_with("beta: "), "{description}");
        assert!(description.contains("401"), "{description}");
    }

    // The generic webhook: one signed message per event (apply, then failure).
    eventually(DEADLINE, "two webhook deliveries", || {
        f.hooks.seen().len() == 2
    });
    let secret = castsync::daemon::WebhookSecret::new(HOOK_SECRET.as_bytes().to_vec());
    let events: Vec<String> = f
        .hooks
        .seen()
        .iter()
        .map(|s| {
            let signature = s.headers.get("x-castsync-signature-256").expect("signed");
            assert_eq!(secret.check(Some(signature.as_bytes()), &s.body), Ok(()));
            crate::cli::assert_matches_schema(
                "notify-event.schema.json",
                &String::from_utf8_lossy(&s.body),
            );
            s.headers["x-castsync-event"].clone()
        })
        .collect();
    assert_eq!(events, ["apply", "failure"]);
    let failure = f.hooks.seen()[1].json();
    assert_eq!(failure["revision"], second.as_str());
    assert_eq!(failure["failures"][0]["agent"], "beta");

    // Slack: only the failure it asked for, as text.
    eventually(DEADLINE, "the chat message", || f.slack.seen().len() == 1);
    let slack = &f.slack.seen()[0];
    assert_eq!(slack.path, "/services/T0/B0/canary");
    let text = slack.json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("beta") && text.contains("401"), "{text}");

    // The dead target: its failures are counted, and the applies above went on regardless.
    eventually(
        Duration::from_secs(40),
        "the dead target's failures counted",
        || {
            d.get("/metrics")
                .1
                .contains("castsync_notifications_total{target=\"webhook\",result=\"failed\"} 2")
        },
    );
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics
            .contains("castsync_notifications_total{target=\"github_status\",result=\"sent\"} 4"),
        "{metrics}"
    );

    let (_, readyz) = d.readyz();
    let (_, page) = d.get("/");
    let canaries = [
        GITHUB_TOKEN,
        GITLAB_TOKEN,
        GITEA_TOKEN,
        HOOK_SECRET,
        "T0/B0/canary",
        CANARY,
    ];
    assert_no_canary("the daemon log", &d.log(), &canaries);
    assert_no_canary("/readyz", &readyz.to_string(), &canaries);
    assert_no_canary("/metrics", &metrics, &canaries);
    assert_no_canary("the status page", &page, &canaries);
    for forge in [&f.hooks, &f.slack] {
        for s in forge.seen() {
            assert_no_canary(
                "a notification",
                &String::from_utf8_lossy(&s.body),
                &[CANARY, "b-one-rotated"],
            );
        }
    }
}
