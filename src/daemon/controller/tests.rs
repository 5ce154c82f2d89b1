//! The loop against a scripted engine on a paused clock.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::daemon::engine::AgentFailure;
use crate::daemon::schedule::Timing;
use crate::hint::Explained;
use crate::platform::ErrorClass;

#[derive(Debug, Clone)]
struct Run {
    scope: Scope,
    revision: String,
    at: Instant,
}

#[derive(Default)]
struct Script {
    /// Results of the next refreshes; when empty, the last ready revision again.
    refreshes: VecDeque<Result<Refreshed, Explained>>,
    current: Option<String>,
    fetched_at: Vec<Instant>,
    runs: Vec<Run>,
    /// Agent errors of the next runs (default: clean).
    outcomes: VecDeque<BTreeMap<String, AgentFailure>>,
    /// Times `reload` was called (SIGHUP).
    reloads: usize,
    /// How many runs had ended when each `idle` came.
    idles: Vec<usize>,
    run_time: Duration,
    ignore_cancel: bool,
    agents: Vec<String>,
    /// What a [`Scope::Changed`] run covers (default: every agent, as with no state).
    changed: Option<Vec<String>>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.0.lock().unwrap()
    }
    fn push(&self, r: Result<Refreshed, Explained>) {
        self.script().refreshes.push_back(r);
    }
    fn runs(&self) -> Vec<Run> {
        self.script().runs.clone()
    }
    fn fetches(&self) -> usize {
        self.script().fetched_at.len()
    }
}

fn ready(rev: &str) -> Result<Refreshed, Explained> {
    Ok(Refreshed::Ready {
        revision: rev.into(),
        commit_time: Some(1_700_000_000),
    })
}

impl Engine for Fake {
    async fn refresh(&mut self) -> Result<Refreshed, Explained> {
        let mut s = self.script();
        s.fetched_at.push(Instant::now());
        let next = match s.refreshes.pop_front() {
            Some(r) => r,
            None => match &s.current {
                Some(c) => ready(c),
                None => Err("no revision scripted".into()),
            },
        };
        if let Ok(Refreshed::Ready { revision, .. }) = &next {
            s.current = Some(revision.clone());
        }
        next
    }

    async fn reconcile(&mut self, scope: Scope, cancel: CancellationToken) -> RunReport {
        let (revision, run_time, ignore_cancel, outcome, agents, changed) = {
            let mut s = self.script();
            let revision = s.current.clone().unwrap_or_default();
            s.runs.push(Run {
                scope: scope.clone(),
                revision: revision.clone(),
                at: Instant::now(),
            });
            let outcome = s.outcomes.pop_front().unwrap_or_default();
            (
                revision,
                s.run_time,
                s.ignore_cancel,
                outcome,
                s.agents.clone(),
                s.changed.clone(),
            )
        };
        let mut cancelled = false;
        if ignore_cancel {
            tokio::time::sleep(run_time).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(run_time) => {}
                _ = cancel.cancelled() => {
                    // The request in flight finishes; the rest is not attempted.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    cancelled = true;
                }
            }
        }
        let total = agents.len();
        let is_changed = scope == Scope::Changed;
        let checked = match scope {
            Scope::All => agents,
            Scope::Changed => changed.unwrap_or(agents),
            Scope::Agents(a) => a,
        };
        let unrefreshed = if is_changed { total - checked.len() } else { 0 };
        RunReport {
            revision,
            checked,
            unrefreshed,
            skipped: outcome.keys().cloned().collect(),
            agent_errors: outcome,
            cancelled,
            ..RunReport::default()
        }
    }

    fn agents(&self) -> Vec<String> {
        self.script().agents.clone()
    }

    fn reload(&mut self) {
        self.script().reloads += 1;
    }

    fn idle(&mut self) {
        let mut s = self.script();
        let runs = s.runs.len();
        s.idles.push(runs);
    }
}

fn failing(agent: &str, message: &str, class: ErrorClass) -> BTreeMap<String, AgentFailure> {
    BTreeMap::from([(agent.to_owned(), AgentFailure::new(message, class))])
}

const MIN: Duration = Duration::from_secs(60);

struct Harness {
    fake: Fake,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl Harness {
    fn new(interval: Duration, resync: Duration) -> (Harness, Controller<Fake>) {
        let fake = Fake::default();
        let shared = Arc::new(Shared::new(Status::new("test".into(), interval)));
        let shutdown = CancellationToken::new();
        let controller = Controller::new(
            fake.clone(),
            Schedule::new(Timing::new(interval, resync), Some(3)),
            shared.clone(),
            shutdown.clone(),
            Duration::from_secs(9),
        );
        (
            Harness {
                fake,
                shared,
                shutdown,
            },
            controller,
        )
    }

    fn readiness(&self) -> (bool, serde_json::Value) {
        self.shared.status().readiness()
    }

    /// After shutdown the only thing keeping the daemon from ready is the shutdown itself.
    fn assert_ready_but_stopped(&self) {
        let (_, body) = self.readiness();
        assert_eq!(
            body["reasons"],
            serde_json::json!(["shutting down"]),
            "{body}"
        );
    }

    /// Commit c1 of `agents`, whose first run fails agent `a` for good with `message`.
    fn c1_where_a_fails(&self, agents: &[&str], message: &str) {
        self.fake.script().agents = agents.iter().map(|a| a.to_string()).collect();
        self.fake.push(ready("c1"));
        let failure = failing("a", message, ErrorClass::Terminal);
        self.fake.script().outcomes.push_back(failure);
    }

    /// Agent `a`'s terminal error, as the metrics show it.
    fn metrics_show_a_failing(&self) -> bool {
        let metrics = self.shared.metrics.encode();
        metrics.contains("castsync_agent_error{agent=\"a\",class=\"terminal\"} 1")
    }
}

async fn sleep(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_ten_webhooks_causes_one_fetch_and_one_reconcile() {
    let (h, controller) = Harness::new(60 * MIN, 600 * MIN);
    h.fake.push(ready("c1"));
    let script = async {
        sleep(1.0).await;
        assert_eq!((h.fake.fetches(), h.fake.runs().len()), (1, 1));
        h.fake.push(ready("c2"));
        for _ in 0..10 {
            h.shared.triggers.fire(Reason::Webhook);
            sleep(0.1).await;
        }
        sleep(5.0).await;
        h.shutdown.cancel();
    };
    let (stopped, ()) = tokio::join!(controller.run(), script);
    assert_eq!(stopped, Stopped::Clean);
    assert_eq!(h.fake.fetches(), 2);
    let runs = h.fake.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].revision, "c2");
    h.assert_ready_but_stopped();
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_revision_is_not_reconciled_again_but_sighup_forces_it() {
    let (h, controller) = Harness::new(MIN, 600 * MIN);
    h.fake.push(ready("c1"));
    let script = async {
        sleep(5.0 * 66.0).await;
        assert!(h.fake.fetches() >= 6, "polled every interval");
        assert_eq!(h.fake.runs().len(), 1);
        h.shared.triggers.fire(Reason::Hangup);
        sleep(1.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let runs = h.fake.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].revision, "c1");
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_keeps_the_last_revision_and_retries_with_backoff() {
    let (h, controller) = Harness::new(MIN, 600 * MIN);
    h.fake.push(ready("c1"));
    let script = async {
        sleep(1.0).await;
        h.fake.push(Err("connection refused".into()));
        h.fake.push(Err("connection refused".into()));
        h.fake.push(ready("c2"));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(0.5).await;
        let (is_ready, body) = h.readiness();
        assert!(!is_ready);
        assert_eq!(body["last_fetch"]["error"], "connection refused");
        assert_eq!(body["applied_revision"], "c1");
        sleep(10.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let times = h.fake.script().fetched_at.clone();
    assert_eq!(times.len(), 4);
    // Retries after ~1 s, then ~2 s (±10%).
    let gaps = [times[2] - times[1], times[3] - times[2]];
    assert!(gaps[0] >= Duration::from_millis(900) && gaps[0] <= Duration::from_millis(1101));
    assert!(gaps[1] >= Duration::from_millis(1800) && gaps[1] <= Duration::from_millis(2201));
    assert_eq!(h.fake.runs().last().unwrap().revision, "c2");
    h.assert_ready_but_stopped();
}

#[tokio::test(start_paused = true)]
async fn a_rejected_commit_is_not_reconciled_and_readyz_names_it_until_a_good_one() {
    let (h, controller) = Harness::new(MIN, 600 * MIN);
    h.fake.push(ready("c1"));
    let script = async {
        sleep(1.0).await;
        h.fake.push(Ok(Refreshed::Rejected {
            revision: "c2".into(),
            reason: "commit c2 is not signed".into(),
        }));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(1.0).await;
        let (is_ready, body) = h.readiness();
        assert!(!is_ready);
        assert_eq!(body["rejected_commit"]["commit"], "c2");
        assert_eq!(body["applied_revision"], "c1");
        assert_eq!(h.shared.metrics.commit_rejected.get(), 1);
        h.fake.push(ready("c3"));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(1.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let revs: Vec<String> = h.fake.runs().into_iter().map(|r| r.revision).collect();
    assert_eq!(revs, ["c1", "c3"]);
    h.assert_ready_but_stopped();
    assert_eq!(h.shared.metrics.commit_rejected.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_agent_error_stays_in_readyz_and_metrics_until_a_later_commit_fixes_it() {
    let (h, controller) = Harness::new(MIN, 600 * MIN);
    h.c1_where_a_fails(&["a", "b"], "manifest does not decrypt");
    let script = async {
        sleep(1.0).await;
        let (is_ready, body) = h.readiness();
        assert!(!is_ready);
        assert_eq!(body["agents"]["a"], "manifest does not decrypt");
        assert!(h.metrics_show_a_failing());
        // Polls of the same commit do not reconcile (a bad file will not get better).
        sleep(130.0).await;
        assert_eq!(h.fake.runs().len(), 1);
        assert!(!h.readiness().0);
        h.fake.push(ready("c2"));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(1.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    h.assert_ready_but_stopped();
    assert!(!h.shared.metrics.encode().contains("agent=\"a\""));
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_reconciles_the_same_commit_again_after_backoff() {
    let (h, controller) = Harness::new(60 * MIN, 600 * MIN);
    h.fake.push(ready("c1"));
    h.fake
        .script()
        .outcomes
        .push_back(failing("b", "rate limited (429)", ErrorClass::Transient));
    let script = async {
        sleep(5.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let runs = h.fake.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].revision, "c1");
    let gap = runs[1].at - runs[0].at;
    assert!(gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1101));
}

#[tokio::test(start_paused = true)]
async fn a_terminal_failure_is_never_retried_or_resynced_until_sighup() {
    let (h, controller) = Harness::new(MIN, 10 * MIN);
    h.c1_where_a_fails(
        &["a", "b"],
        "the platform refused the API key (401): Invalid API key",
    );
    let script = async {
        // Polls and a drift resync pass; nothing reconciles `a` again.
        sleep(12.0 * 60.0).await;
        let runs = h.fake.runs();
        assert_eq!(runs.iter().filter(|r| r.scope == Scope::Changed).count(), 1);
        assert_eq!(runs.iter().filter(|r| r.scope == Scope::All).count(), 0);
        for r in runs.iter().filter(|r| matches!(r.scope, Scope::Agents(_))) {
            assert_eq!(r.scope, Scope::Agents(vec!["b".into()]), "{runs:?}");
        }
        let (is_ready, body) = h.readiness();
        assert!(!is_ready);
        assert_eq!(body["agent_errors"]["a"]["class"], "terminal");
        assert!(h.metrics_show_a_failing());
        // SIGHUP: the client is reopened (a fixed key is read) and the commit runs again.
        h.shared.triggers.fire(Reason::Hangup);
        sleep(1.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let full: Vec<Run> = h
        .fake
        .runs()
        .into_iter()
        .filter(|r| r.scope == Scope::All)
        .collect();
    assert_eq!(full.len(), 1, "SIGHUP refreshes every agent");
    assert_eq!(h.fake.script().reloads, 1);
    h.assert_ready_but_stopped();
}

#[tokio::test(start_paused = true)]
async fn resync_lists_the_agents_in_paced_batches_of_the_reconciled_revision() {
    let (h, controller) = Harness::new(60 * MIN, 10 * MIN);
    h.fake.script().agents = (0..6).map(|i| format!("a{i}")).collect();
    h.fake.push(ready("c1"));
    let script = async {
        sleep(12.0 * 60.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let runs = h.fake.runs();
    let batches: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.scope, Scope::Agents(_)))
        .collect();
    assert_eq!(batches.len(), 2, "{runs:?}");
    assert_eq!(
        batches[0].scope,
        Scope::Agents((0..4).map(|i| format!("a{i}")).collect())
    );
    assert_eq!(
        batches[1].scope,
        Scope::Agents(vec!["a4".into(), "a5".into()])
    );
    assert_eq!(batches[1].at - batches[0].at, Duration::from_millis(4800));
    assert!(batches.iter().all(|b| b.revision == "c1"));
    // Memory is given back after the cycle and once the resync is over, not per batch
    // (the next batch would open the repository and parse the agents' directory again).
    assert_eq!(h.fake.script().idles, vec![1, 3], "{runs:?}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_request_in_flight_finish_and_stops_cleanly() {
    let (h, stopped, took) = shut_down_mid_run(Duration::from_secs(60), false).await;
    assert_eq!(stopped, Stopped::Clean);
    assert_eq!(took, Duration::from_millis(2300));
    let (is_ready, body) = h.readiness();
    assert!(!is_ready);
    assert!(
        body["reasons"].to_string().contains("shutting down"),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_ignores_shutdown_is_abandoned_after_the_grace_period() {
    let (_, stopped, took) = shut_down_mid_run(Duration::from_secs(600), true).await;
    assert_eq!(stopped, Stopped::Abandoned);
    assert_eq!(took, Duration::from_secs(11));
}

/// Runs c1 with reconciles that take `run_time` (and ignore cancellation when
/// `ignore_cancel`), shut down 2 s in: how the controller stopped, and after how long.
async fn shut_down_mid_run(
    run_time: Duration,
    ignore_cancel: bool,
) -> (Harness, Stopped, Duration) {
    let (h, controller) = Harness::new(MIN, 600 * MIN);
    {
        let mut s = h.fake.script();
        s.run_time = run_time;
        s.ignore_cancel = ignore_cancel;
    }
    h.fake.push(ready("c1"));
    let script = async {
        sleep(2.0).await;
        h.shutdown.cancel();
    };
    let start = Instant::now();
    let (stopped, ()) = tokio::join!(controller.run(), script);
    (h, stopped, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_new_commit_refreshes_only_what_changed_and_the_rest_waits_for_the_resync() {
    let (h, controller) = Harness::new(60 * MIN, 10 * MIN);
    h.fake.script().agents = (0..6).map(|i| format!("a{i}")).collect();
    h.fake.push(ready("c1"));
    let script = async {
        // Startup with no state: every agent, which counts as a drift check.
        sleep(5.0 * 60.0).await;
        h.fake.script().changed = Some(vec!["a3".into()]);
        h.fake.push(ready("c2"));
        h.shared.triggers.fire(Reason::Webhook);
        // The partial run does not postpone the resync: it comes about ten minutes after
        // startup (±10%), not ten minutes after c2.
        sleep(7.0 * 60.0).await;
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    let runs = h.fake.runs();
    let scopes: Vec<&Scope> = runs.iter().map(|r| &r.scope).collect();
    assert_eq!(scopes[..2], [&Scope::Changed, &Scope::Changed], "{runs:?}");
    assert_eq!(runs[1].revision, "c2");
    assert!(
        runs[2..]
            .iter()
            .all(|r| matches!(r.scope, Scope::Agents(_)) && r.revision == "c2"),
        "{runs:?}"
    );
    assert_eq!(runs.len(), 4, "two resync batches: {runs:?}");
}

#[tokio::test(start_paused = true)]
async fn a_partial_run_keeps_the_errors_and_skips_of_the_agents_it_did_not_look_at() {
    let (h, controller) = Harness::new(60 * MIN, 600 * MIN);
    h.c1_where_a_fails(&["a", "b", "c"], "manifest does not decrypt");
    let script = async {
        sleep(1.0).await;
        assert_eq!(h.shared.metrics.agents_skipped.get(), 1);
        // c2 changes b only; a is still broken but was not looked at again.
        h.fake.script().changed = Some(vec!["b".into()]);
        h.fake.push(ready("c2"));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(1.0).await;
        let (is_ready, body) = h.readiness();
        assert!(!is_ready);
        assert_eq!(body["agents"]["a"], "manifest does not decrypt");
        assert_eq!(body["applied_revision"], "c2");
        assert_eq!(h.shared.metrics.agents_skipped.get(), 1);
        // c3 looks at a again and it is fixed.
        h.fake.script().changed = Some(vec!["a".into()]);
        h.fake.push(ready("c3"));
        h.shared.triggers.fire(Reason::Webhook);
        sleep(1.0).await;
        assert_eq!(h.shared.metrics.agents_skipped.get(), 0);
        h.shutdown.cancel();
    };
    tokio::join!(controller.run(), script);
    h.assert_ready_but_stopped();
}
