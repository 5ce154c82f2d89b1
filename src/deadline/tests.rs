use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::apply::{AgentResult, Failed};
use crate::plan::{Action, AgentPlan, Change, SkipReason};

/// A platform that answers `list` after `answer_after` (never, when None) and counts calls;
/// with `untrusted`, the answer is an error that ends the run.
struct Slow {
    answer_after: Option<Duration>,
    untrusted: bool,
    calls: AtomicUsize,
}

#[async_trait]
impl Platform for Slow {
    fn id(&self) -> &str {
        "slow"
    }

    async fn list(&self, _agent: &str) -> Result<Listing, PlatformError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.answer_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        if self.untrusted {
            return Err(PlatformError::Untrusted {
                host: "h".into(),
                reason: "unable to get local issuer certificate".into(),
            });
        }
        Ok(Listing::default())
    }

    async fn set(&self, _: &str, _: &str, _: &SecretValue) -> Result<(), PlatformError> {
        Ok(())
    }

    async fn delete(&self, _: &str, _: &str) -> Result<(), PlatformError> {
        Ok(())
    }

    async fn redeploy(&self, _: &str) -> Result<(), PlatformError> {
        Ok(())
    }
}

fn slow(answer_after: Option<Duration>) -> Arc<Slow> {
    Arc::new(Slow {
        answer_after,
        untrusted: false,
        calls: AtomicUsize::new(0),
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_is_cancelled_when_the_deadline_passes_and_later_calls_fail_at_once() {
    let inner = slow(None);
    let deadline = Deadline::start(RunTimeout::Fixed(secs(2)));
    let platform = Bounded::wrap(inner.clone(), deadline.clone());
    let start = Instant::now();
    let err = platform.list("a").await.unwrap_err();
    assert_eq!(Instant::now() - start, secs(2));
    assert_eq!(err, PlatformError::DeadlineExceeded { after: secs(2) });
    assert!(err.is_transient());
    assert_eq!(err.kind(), "deadline-exceeded");
    assert!(err.to_string().contains("deadline (2s)"), "{err}");

    let err = platform.list("b").await.unwrap_err();
    assert_eq!(
        Instant::now() - start,
        secs(2),
        "no wait after the deadline"
    );
    assert!(matches!(err, PlatformError::DeadlineExceeded { .. }));
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        1,
        "nothing sent after it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_that_answers_in_time_is_untouched() {
    let deadline = Deadline::start(RunTimeout::Fixed(secs(2)));
    let platform = Bounded::wrap(slow(Some(secs(1))), deadline.clone());
    assert!(platform.list("a").await.is_ok());
    assert!(!deadline.passed());
}

#[tokio::test(start_paused = true)]
async fn the_default_deadline_grows_with_the_requests_a_run_needs() {
    let deadline = Deadline::start(RunTimeout::Auto);
    assert_eq!(deadline.allowed(), DEFAULT_BASE);
    deadline.allow_requests(100);
    assert_eq!(deadline.allowed(), DEFAULT_BASE + secs(60));
    let platform = Bounded::wrap(slow(None), deadline.clone());
    let start = Instant::now();
    let _ = platform.list("a").await;
    assert_eq!(Instant::now() - start, DEFAULT_BASE + secs(60));

    // A fixed deadline stays as it was given.
    let fixed = Deadline::start(RunTimeout::Fixed(secs(5)));
    fixed.allow_requests(1_000);
    assert_eq!(fixed.allowed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_extension_reaches_a_call_already_waiting() {
    let deadline = Deadline::start(RunTimeout::Auto);
    let platform = Bounded::wrap(slow(None), deadline.clone());
    let start = Instant::now();
    let call = tokio::spawn({
        let platform = platform.clone();
        async move { platform.list("a").await }
    });
    tokio::time::sleep(secs(1)).await;
    deadline.allow_requests(10);
    let _ = call.await.unwrap();
    assert_eq!(Instant::now() - start, DEFAULT_BASE + secs(6));
}

#[tokio::test(start_paused = true)]
async fn time_at_the_prompt_does_not_count() {
    let deadline = Deadline::start(RunTimeout::Fixed(secs(10)));
    tokio::time::sleep(secs(4)).await;
    {
        let _paused = deadline.pause();
        tokio::time::sleep(secs(3_600)).await;
        assert!(!deadline.passed());
    }
    let start = Instant::now();
    let platform = Bounded::wrap(slow(None), deadline.clone());
    let _ = platform.list("a").await;
    assert_eq!(
        Instant::now() - start,
        secs(6),
        "the 6 s left before the pause"
    );
}

#[test]
fn a_timeout_too_large_for_the_clock_means_never() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = Deadline::start(RunTimeout::Fixed(Duration::MAX));
        deadline.allow_requests(usize::MAX);
        assert!(!deadline.passed());
    });
}

#[test]
fn timed_out_agents_are_found_with_the_step_they_did_not_finish() {
    let cut = PlatformError::DeadlineExceeded { after: secs(2) };
    let other = PlatformError::Transient {
        detail: "HTTP 503".into(),
    };
    let plan = Plan {
        coverage: Default::default(),
        agents: vec![
            AgentPlan {
                skipped: Some(SkipReason::ListFailed { error: cut.clone() }),
                ..AgentPlan::new("a")
            },
            AgentPlan {
                skipped: Some(SkipReason::ListFailed {
                    error: other.clone(),
                }),
                ..AgentPlan::new("b")
            },
            AgentPlan::new("c"),
            AgentPlan::new("d"),
        ],
    };
    assert_eq!(
        TimedOut::find(&plan, None).unwrap().unfinished(),
        "listing a"
    );

    let change = Change::new("K", Action::Create);
    let report = ApplyReport {
        agents: vec![
            AgentResult {
                agent: "c".into(),
                failed: vec![Failed {
                    change: change.clone(),
                    reason: FailReason::Platform(cut.clone()),
                }],
                ..AgentResult::default()
            },
            AgentResult {
                agent: "d".into(),
                failed: vec![Failed {
                    change,
                    reason: FailReason::Platform(other),
                }],
                ..AgentResult::default()
            },
        ],
    };
    let timed_out = TimedOut::find(&plan, Some(&report)).unwrap();
    assert_eq!(timed_out.after, secs(2));
    assert_eq!(timed_out.unfinished(), "listing a; applying c");
    let message = timed_out.message("--timeout");
    assert!(message.contains("deadline (2s, --timeout)"), "{message}");
    assert_eq!(
        timed_out.json()["agents"],
        serde_json::json!([{"agent": "a", "step": "list"}, {"agent": "c", "step": "apply"}])
    );

    let nothing_cut = Plan {
        coverage: Default::default(),
        agents: vec![AgentPlan::new("c")],
    };
    assert_eq!(TimedOut::find(&nothing_cut, None), None);
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_that_ends_the_run_is_the_only_call_made() {
    let inner = Arc::new(Slow {
        answer_after: Some(Duration::from_millis(50)),
        untrusted: true,
        calls: AtomicUsize::new(0),
    });
    let platform = Bounded::wrap(inner.clone(), Deadline::start(RunTimeout::Fixed(secs(60))));
    let calls = (0..8).map(|i| {
        let platform = platform.clone();
        tokio::spawn(async move { platform.list(&format!("agent-{i}")).await })
    });
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(err.ends_run(), "{err}");
    }
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_first_call_holds_the_others_back_only_for_the_probes_patience() {
    let inner = slow(None);
    let platform = Bounded::wrap(inner.clone(), Deadline::start(RunTimeout::Fixed(secs(60))));
    for i in 0..4 {
        let platform = platform.clone();
        tokio::spawn(async move { platform.list(&format!("a{i}")).await });
    }
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
}
