//! Sending notifications without ever holding up an apply: each target has its own small
//! queue and task; the daemon's loop only enqueues (never waits), a full queue drops the
//! newest message (counted), and each delivery gets bounded retries with backoff.
//!
//! A delivery is retried on what time may fix (no answer, 429, 5xx) and given up on what a
//! person must fix (another 4xx: a bad token, an unknown repository). Failures are logged
//! with the target's label and the answer's status, never its URL or credentials: every
//! credential of the target is cut out of any text logged (a URL from the environment, a
//! token, a signing secret), and reqwest's errors lose their URL first.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;

use super::super::metrics::NotifyLabel;

/// Attempts per delivery: the first and up to 3 retries (after about 1, 2 and 4 s).
pub const ATTEMPTS: usize = 4;
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting per target; more are dropped (and counted).
pub const QUEUE: usize = 32;

/// One request to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URL and headers may hold credentials.
        f.debug_struct("Outgoing")
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// A JSON POST.
    pub fn json(
        url: String,
        mut headers: Vec<(&'static str, String)>,
        body: &serde_json::Value,
    ) -> Outgoing {
        headers.push(("content-type", "application/json".to_owned()));
        Outgoing {
            url,
            headers,
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

/// What answered, or why nothing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status and the start of the body.
    Status(u16, String),
    /// No answer (connection refused, timeout, TLS): the error's text, without the URL.
    Failed(String),
}

impl Answer {
    fn ok(&self) -> bool {
        matches!(self, Answer::Status(code, _) if (200..300).contains(code))
    }

    /// Time may fix it.
    fn transient(&self) -> bool {
        match self {
            Answer::Status(code, _) => *code == 429 || *code == 408 || *code >= 500,
            Answer::Failed(_) => true,
        }
    }
}

/// Where requests go: HTTP in the daemon, a script in the retry tests.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn post(&self, request: &Outgoing) -> Answer;
}

/// The real transport: reqwest, no redirects (a token must not follow one), bounded time.
pub struct Http(reqwest::Client);

impl Http {
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .user_agent(concat!("castsync/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Http(client)
    }
}

#[async_trait::async_trait]
impl Transport for Http {
    async fn post(&self, request: &Outgoing) -> Answer {
        let mut builder = self.0.post(&request.url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send().await {
            Ok(response) => {
                let code = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let head: String = text.chars().take(200).collect();
                Answer::Status(code, head)
            }
            Err(e) => {
                let e = e.without_url();
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                Answer::Failed(text)
            }
        }
    }
}

/// A target's queue.
#[derive(Debug, Clone)]
pub struct Worker {
    tx: mpsc::Sender<Outgoing>,
    kind: &'static str,
    counter: Family<NotifyLabel, Counter>,
}

/// What a worker needs to know about its target.
pub struct TargetInfo {
    /// `github_status`, `webhook`, `slack`: the metrics label.
    pub kind: &'static str,
    /// For logs: kind and where, without credentials.
    pub label: String,
    /// Texts that must never be logged (tokens, URLs from the environment, secrets).
    pub secrets: Vec<String>,
}

impl Worker {
    /// Starts the target's task; it ends when the worker is dropped and its queue drained.
    pub fn spawn(
        info: TargetInfo,
        transport: Arc<dyn Transport>,
        counter: Family<NotifyLabel, Counter>,
    ) -> Worker {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(QUEUE);
        let kind = info.kind;
        let task_counter = counter.clone();
        tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                let result = match deliver(transport.as_ref(), &request, &info).await {
                    Ok(()) => "sent",
                    Err(answer) => {
                        log_failure(&info, &answer);
                        "failed"
                    }
                };
                count(&task_counter, info.kind, result);
            }
        });
        Worker { tx, kind, counter }
    }

    /// Queues a request; never waits. A full or closed queue drops it (counted).
    pub fn send(&self, request: Outgoing) {
        if self.tx.try_send(request).is_err() {
            count(&self.counter, self.kind, "dropped");
            tracing::warn!(
                target_kind = self.kind,
                "notification dropped: its target is {QUEUE} messages behind"
            );
        }
    }
}

pub fn count(counter: &Family<NotifyLabel, Counter>, kind: &'static str, result: &'static str) {
    counter
        .get_or_create(&NotifyLabel {
            target: kind,
            result,
        })
        .inc();
}

async fn deliver(
    transport: &dyn Transport,
    request: &Outgoing,
    info: &TargetInfo,
) -> Result<(), Answer> {
    let attempt = || async {
        let answer = transport.post(request).await;
        if answer.ok() { Ok(()) } else { Err(answer) }
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(8))
                .with_max_times(ATTEMPTS - 1)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(Answer::transient)
        .notify(|answer, delay| {
            tracing::debug!(
                notify_target = %info.label,
                answer = %redact(&describe(answer), &info.secrets),
                retry_in = ?delay,
                "notification not delivered yet; retrying"
            );
        })
        .await
}

fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Status(code, body) if body.trim().is_empty() => format!("HTTP {code}"),
        Answer::Status(code, body) => format!("HTTP {code}: {}", body.trim()),
        Answer::Failed(e) => e.clone(),
    }
}

fn log_failure(info: &TargetInfo, answer: &Answer) {
    let answer_text = redact(&describe(answer), &info.secrets);
    let answer_text = crate::escape::terminal(&answer_text);
    let hint = match answer {
        Answer::Status(401 | 403, _) => "check the token (and its scope) named by the target",
        Answer::Status(404, _) => "check the repository and api_url (or the webhook URL)",
        Answer::Status(..) if !answer.transient() => "the target refused the message",
        _ => "the target did not answer; later events are still sent",
    };
    tracing::warn!(
        notify_target = %info.label,
        answer = %answer_text,
        hint,
        "notification not delivered; the apply is not affected"
    );
}

/// `text` with every secret cut out.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// Answers from a script, recording when each attempt came.
    struct Script {
        answers: Mutex<Vec<Answer>>,
        seen: Mutex<Vec<Instant>>,
    }

    #[async_trait::async_trait]
    impl Transport for Script {
        async fn post(&self, _request: &Outgoing) -> Answer {
            self.seen.lock().unwrap().push(Instant::now());
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Answer::Status(204, String::new())
            } else {
                answers.remove(0)
            }
        }
    }

    fn script(answers: Vec<Answer>) -> Arc<Script> {
        Arc::new(Script {
            answers: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn info() -> TargetInfo {
        TargetInfo {
            kind: "webhook",
            label: "webhook (hooks.example.com)".into(),
            secrets: vec!["s3cret-token".into()],
        }
    }

    fn request() -> Outgoing {
        Outgoing::json("http://x".into(), Vec::new(), &serde_json::json!({}))
    }

    fn counted(counter: &Family<NotifyLabel, Counter>, result: &'static str) -> u64 {
        counter
            .get_or_create(&NotifyLabel {
                target: "webhook",
                result,
            })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays_then_given_up() {
        let failing = script(vec![Answer::Failed("connection refused".into()); 10]);
        let counter = Family::default();
        let start = Instant::now();
        let worker = Worker::spawn(info(), failing.clone(), counter.clone());
        worker.send(request());
        tokio::time::sleep(Duration::from_secs(60)).await;
        let seen = failing.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), ATTEMPTS, "{seen:?}");
        let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_secs(1), "{gaps:?}");
        assert!(gaps[2] > gaps[0], "{gaps:?}");
        assert!(
            seen[ATTEMPTS - 1] - start < Duration::from_secs(30),
            "{seen:?}"
        );
        assert_eq!(counted(&counter, "failed"), 1);
        assert_eq!(counted(&counter, "sent"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_then_success_is_sent_and_a_401_is_not_retried() {
        let flaky = script(vec![Answer::Status(429, String::new())]);
        let counter = Family::default();
        let worker = Worker::spawn(info(), flaky.clone(), counter.clone());
        worker.send(request());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(flaky.seen.lock().unwrap().len(), 2);
        assert_eq!(counted(&counter, "sent"), 1);

        let refused = script(vec![Answer::Status(401, "Bad credentials".into())]);
        let worker = Worker::spawn(info(), refused.clone(), counter.clone());
        worker.send(request());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(refused.seen.lock().unwrap().len(), 1);
        assert_eq!(counted(&counter, "failed"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        // A target that never answers: every attempt hangs.
        struct Hang;
        #[async_trait::async_trait]
        impl Transport for Hang {
            async fn post(&self, _request: &Outgoing) -> Answer {
                std::future::pending().await
            }
        }
        let counter = Family::default();
        let worker = Worker::spawn(info(), Arc::new(Hang), counter.clone());
        let start = Instant::now();
        for _ in 0..QUEUE + 10 {
            worker.send(request());
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        tokio::task::yield_now().await;
        // One is in flight, QUEUE wait; the rest were dropped.
        assert!(
            counted(&counter, "dropped") >= 9,
            "{}",
            counted(&counter, "dropped")
        );
    }

    #[test]
    fn secrets_are_cut_out_of_logged_text() {
        assert_eq!(
            redact(
                "401 for token s3cret-token at s3cret-token",
                &info().secrets
            ),
            "401 for token <redacted> at <redacted>"
        );
    }
}
