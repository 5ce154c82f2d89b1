use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::deliver::Answer;
use super::*;
use crate::daemon::engine::{AgentFailure, ChangeCounts};
use crate::platform::ErrorClass;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Records every request and answers 201.
#[derive(Default)]
struct Recorder(Mutex<Vec<Outgoing>>);

#[async_trait::async_trait]
impl Transport for Recorder {
    async fn post(&self, request: &Outgoing) -> Answer {
        self.0.lock().unwrap().push(request.clone());
        Answer::Status(201, String::new())
    }
}

impl Recorder {
    fn take(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn header<'a>(r: &'a Outgoing, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn body(r: &Outgoing) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn notifier(env: &[(&str, &str)]) -> (Notifier, Arc<Recorder>, Family<NotifyLabel, Counter>) {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let recorder = Arc::new(Recorder::default());
    let counter = Family::default();
    let n = Notifier::with(
        Followed {
            remote: Some("https://github.com/acme/secrets.git".into()),
            branch: Some("main".into()),
            context: message::context(None),
        },
        counter.clone(),
        Arc::new(move |k: &str| env.get(k).cloned()),
        recorder.clone(),
    );
    (n, recorder, counter)
}

fn entries(yaml: &str) -> Vec<NotifyEntry> {
    serde_yaml::from_str(yaml).unwrap()
}

fn applied() -> RunReport {
    let counts = ChangeCounts {
        create: 1,
        update: 2,
        delete: 0,
    };
    RunReport {
        revision: SHA.into(),
        applied: counts,
        changed_agents: [("billing".to_owned(), counts)].into(),
        ..RunReport::default()
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(start_paused = true)]
async fn a_cycle_posts_pending_then_success_once_per_commit() {
    let (mut n, rec, _) = notifier(&[("GITHUB_TOKEN", "ghp_canary_token")]);
    n.configure(&entries("- github_status: { token_env: GITHUB_TOKEN }"));
    n.applying(SHA);
    n.finished(&applied(), true);
    // A retry of the same commit with the same outcome posts nothing new.
    n.applying(SHA);
    n.finished(&applied(), true);
    settle().await;
    let sent = rec.take();
    let states: Vec<serde_json::Value> = sent.iter().map(|r| body(r)["state"].clone()).collect();
    assert_eq!(states, ["pending", "success"]);
    assert_eq!(
        sent[1].url,
        format!("https://api.github.com/repos/acme/secrets/statuses/{SHA}")
    );
    assert_eq!(body(&sent[1])["context"], "castsync");
    assert_eq!(
        body(&sent[1])["description"],
        "applied 3 changes to 1 agent"
    );
    assert_eq!(
        header(&sent[1], "authorization"),
        Some("Bearer ghp_canary_token")
    );
    assert!(!format!("{:?}", sent[1]).contains("ghp_canary_token"));
}

#[tokio::test(start_paused = true)]
async fn webhooks_get_each_event_once_signed_and_filtered_per_target() {
    let (mut n, rec, _) = notifier(&[
        ("SECRET", "hook-secret"),
        ("SLACK_URL", "https://hooks.slack.test/T/B/x"),
    ]);
    n.configure(&entries(
        "- webhook: { url: 'https://hooks.example.com/c', secret_env: SECRET }\n- slack: { url_env: SLACK_URL, events: [failure] }",
    ));
    let mut report = applied();
    report.agent_errors.insert(
        "support".into(),
        AgentFailure::new("platform refused: 401", ErrorClass::Terminal),
    );
    n.finished(&report, true);
    // The same failure again (a retry): not told twice.
    n.finished(&report, true);
    settle().await;
    let sent = rec.take();
    let hooks: Vec<&Outgoing> = sent.iter().filter(|r| r.url.contains("example")).collect();
    let slack: Vec<&Outgoing> = sent.iter().filter(|r| r.url.contains("slack")).collect();
    let events: Vec<&str> = hooks
        .iter()
        .map(|r| header(r, "x-castsync-event").unwrap())
        .collect();
    assert_eq!(
        events,
        ["apply", "failure", "apply"],
        "the apply repeats, the failure does not"
    );
    let secret = WebhookSecret::new(b"hook-secret".to_vec());
    for r in &hooks {
        let signature = header(r, SIGNATURE_HEADER).unwrap();
        assert_eq!(secret.check(Some(signature.as_bytes()), &r.body), Ok(()));
        assert_eq!(body(r)["format_version"], 1);
    }
    assert_eq!(body(hooks[1])["failures"][0]["agent"], "support");
    assert_eq!(slack.len(), 1);
    let text = body(slack[0])["text"].as_str().unwrap().to_owned();
    assert!(text.contains("support: platform refused: 401"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_target_whose_credential_is_missing_is_counted_and_the_others_still_work() {
    let (mut n, rec, counter) = notifier(&[]);
    n.configure(&entries(
        "- gitea_status: { token_env: GITEA_TOKEN }\n- webhook: { url: 'https://hooks.example.com/c' }",
    ));
    n.finished(&applied(), true);
    settle().await;
    assert_eq!(rec.take().len(), 1);
    let failed = counter
        .get_or_create(&NotifyLabel {
            target: "gitea_status",
            result: "failed",
        })
        .get();
    assert_eq!(failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_working_tree_revision_gets_no_status() {
    let (mut n, rec, _) = notifier(&[("T", "token")]);
    n.configure(&entries("- github_status: { token_env: T }"));
    n.applying("worktree:0123456789abcdef");
    let report = RunReport {
        revision: "worktree:0123456789abcdef".into(),
        ..applied()
    };
    n.finished(&report, true);
    settle().await;
    assert!(rec.take().is_empty());
}

#[test]
fn credentials_leave_the_source_url() {
    assert_eq!(
        without_credentials("https://x-access-token:ghp_abc@github.com/a/b.git"),
        "https://github.com/a/b.git"
    );
    assert_eq!(
        without_credentials("git@github.com:a/b.git"),
        "git@github.com:a/b.git"
    );
    assert_eq!(
        host_of("https://u:p@hooks.example.com:8443/x?y"),
        "hooks.example.com:8443"
    );
}
