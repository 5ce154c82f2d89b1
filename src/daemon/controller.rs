//! The daemon's loop: wait for work (the schedule), fetch, decide whether to reconcile,
//! report. It decides *when* and *for which agents*; what changes is `reconcile`'s alone.
//!
//! Rules it keeps:
//! - a revision is reconciled when it is new, on SIGHUP, or to retry a transient failure;
//!   otherwise a cycle only confirms that nothing changed;
//! - a new revision (or a retry) refreshes only the agents whose inputs changed, and those
//!   whose last run failed ([`Scope::Changed`]); the rest wait for the paced drift resync.
//!   SIGHUP refreshes every agent;
//! - a terminal failure (a bad manifest, a wrong API key, an unknown agent) is never retried
//!   with backoff: it stays on `/readyz` and in the metrics, its agents are left out of drift
//!   resyncs, and the daemon waits for a new commit, a config change or SIGHUP;
//! - a failed fetch keeps the last revision and retries with backoff;
//! - a rejected commit (signature) is never reconciled; the last good one stays;
//! - each agent error is logged once per revision and stays in `/readyz` and the metrics
//!   until a later run clears it;
//! - on shutdown the reconcile in flight gets `grace` to stop between requests, then the
//!   loop returns.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::engine::{Engine, Refreshed, RunReport, Scope};
use super::metrics::Metrics;
use super::missed::Missed;
use super::notifier::Notifier;
use super::schedule::{Schedule, Wake};
use super::status::Status;
use super::triggers::{Batch, Reason, Triggers};

/// What the loop shares with the HTTP endpoints and the signal handlers.
#[derive(Debug)]
pub struct Shared {
    pub status: Mutex<Status>,
    pub metrics: Metrics,
    pub triggers: Triggers,
    /// Webhook deliveries refused unread, each owing a fetch.
    pub missed: Missed,
}

impl Shared {
    pub fn new(status: Status) -> Shared {
        Shared {
            status: Mutex::new(status),
            metrics: Metrics::new(),
            triggers: Triggers::new(),
            missed: Missed::new(),
        }
    }

    pub fn status(&self) -> MutexGuard<'_, Status> {
        // Status updates are plain field writes; a poisoned lock still holds usable data.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested and the work in flight finished.
    Clean,
    /// The work in flight did not finish within the grace period and was abandoned.
    Abandoned,
}

/// Runs `fut` to completion, unless `shutdown` fires: then it gets `grace` more.
async fn guarded<F: Future>(
    fut: F,
    shutdown: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(fut);
    tokio::select! {
        out = &mut fut => return Some(out),
        _ = shutdown.cancelled() => {}
    }
    tokio::time::timeout(grace, fut).await.ok()
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

pub struct Controller<E: Engine> {
    engine: E,
    schedule: Schedule,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    grace: Duration,
    /// The revision last reconciled (every agent of it, or those that changed).
    reconciled: Option<String>,
    /// Agents skipped whole (bad manifest, failed list, mass delete) by their last run.
    skipped: BTreeSet<String>,
    /// That reconcile failed in a way a retry may fix.
    retry_pending: bool,
    /// (revision, agent or "", message) already logged, so each error is logged once per
    /// revision.
    logged: BTreeSet<(String, String, String)>,
    abandoned: bool,
    /// Commit statuses, webhooks and chat (`notify:`); none in the loop's own tests.
    notifier: Option<Notifier>,
}

impl<E: Engine> Controller<E> {
    pub fn new(
        engine: E,
        schedule: Schedule,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Controller<E> {
        Controller {
            engine,
            schedule,
            shared,
            shutdown,
            grace,
            reconciled: None,
            skipped: BTreeSet::new(),
            retry_pending: false,
            logged: BTreeSet::new(),
            abandoned: false,
            notifier: None,
        }
    }

    /// Reports to the `notify:` targets of the applied revision's config.
    pub fn with_notifier(mut self, notifier: Notifier) -> Controller<E> {
        self.notifier = Some(notifier);
        self
    }

    /// Runs `f` on the notifier, if there is one; it only queues messages.
    fn notify(&mut self, f: impl FnOnce(&mut Notifier)) {
        if let Some(notifier) = &mut self.notifier {
            f(notifier);
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) -> Stopped {
        let triggers = self.shared.triggers.clone();
        triggers.fire(Reason::Startup);
        while let Some(wake) = self.schedule.next(&triggers, &self.shutdown).await {
            match wake {
                Wake::Cycle(batch) => self.cycle(&batch).await,
                Wake::ResyncDue => {
                    let agents = if self.reconciled.is_some() {
                        // Agents with a terminal error would only fail the same way again.
                        let stuck: BTreeSet<String> =
                            self.shared.status().terminal_agents().cloned().collect();
                        let mut agents = self.engine.agents();
                        agents.retain(|a| !stuck.contains(a));
                        agents
                    } else {
                        Vec::new()
                    };
                    tracing::debug!(agents = agents.len(), "drift resync starting");
                    self.schedule.start_resync(agents);
                }
                Wake::ResyncBatch(agents) => self.resync_batch(agents).await,
            }
            if self.shutdown.is_cancelled() {
                break;
            }
            let (poll, resync) = self.schedule.due_in();
            self.shared.status().set_schedule(poll, resync);
        }
        self.shared.status().shutting_down();
        if self.abandoned {
            Stopped::Abandoned
        } else {
            Stopped::Clean
        }
    }

    fn log_once(&mut self, revision: &str, agent: &str, message: &str) -> bool {
        self.logged
            .insert((revision.to_owned(), agent.to_owned(), message.to_owned()))
    }

    async fn cycle(&mut self, batch: &Batch) {
        let refreshed = guarded(self.engine.refresh(), &self.shutdown, self.grace).await;
        self.schedule.polled();
        let Some(refreshed) = refreshed else {
            return;
        };
        let (revision, commit_time) = match refreshed {
            Err(error) => {
                self.shared.metrics.fetch(false);
                self.shared.status().fetch_failed(&error);
                let delay = self.schedule.failed();
                let hint = error.hint.as_deref().unwrap_or("");
                tracing::warn!(
                    %error,
                    hint,
                    retry_in = ?delay,
                    "fetch failed; keeping the last fetched revision"
                );
                return;
            }
            Ok(Refreshed::Rejected { revision, reason }) => {
                self.shared.metrics.fetch(true);
                self.shared.metrics.commit_rejected.set(1);
                {
                    let mut status = self.shared.status();
                    status.fetch_ok(&revision);
                    status.rejected(&revision, &reason);
                }
                self.schedule.succeeded();
                self.notify(|n| n.rejected(&revision, &reason));
                if self.log_once(&revision, "", &reason) {
                    tracing::error!(
                        commit = %revision,
                        reason = %reason,
                        "commit not applied; the last applied commit stays"
                    );
                }
                return;
            }
            Ok(Refreshed::Ready {
                revision,
                commit_time,
            }) => (revision, commit_time),
        };
        self.shared.metrics.fetch(true);
        self.shared.metrics.commit_rejected.set(0);
        {
            let mut status = self.shared.status();
            status.fetch_ok(&revision);
            status.accepted();
        }
        let changed = self.reconciled.as_deref() != Some(revision.as_str());
        let forced = batch.contains(Reason::Hangup);
        if forced {
            // A fixed API key file or platform setting is read again.
            self.engine.reload();
        }
        if !changed && !forced && !self.retry_pending {
            self.shared.status().up_to_date();
            self.schedule.succeeded();
            tracing::debug!(revision = %short(&revision), trigger = %batch.label(), "up to date");
            return;
        }
        // SIGHUP asks for everything; otherwise only what changed (or failed) is refreshed.
        let scope = if forced { Scope::All } else { Scope::Changed };
        if let Some(entries) = self.engine.notify_entries() {
            self.notify(|n| n.configure(&entries));
        }
        self.notify(|n| n.applying(&revision));
        let Some(report) = self.reconcile(scope, &batch.label(), &revision).await else {
            return;
        };
        self.shared.status().reconciled(&report, true);
        self.notify(|n| n.finished(&report, true));
        self.engine.idle();
        self.after_run(&report, true);
        self.reconciled = Some(revision);
        self.retry_pending = report.retryable();
        if report.retryable() {
            let delay = self.schedule.failed();
            tracing::info!(retry_in = ?delay, "some changes did not land; retrying");
        } else {
            self.schedule.succeeded();
            if !report.agent_errors.is_empty() {
                tracing::warn!(
                    "terminal errors: not retrying until a new commit, a config change or SIGHUP"
                );
            }
        }
        if report.error.is_none() {
            if report.unrefreshed == 0 {
                // Every agent was just listed: that was a drift check too.
                self.schedule.resynced();
            }
            if let Some(t) = commit_time {
                self.shared.metrics.last_applied_commit_time.set(t);
            }
        }
    }

    async fn resync_batch(&mut self, agents: Vec<String>) {
        let Some(revision) = self.reconciled.clone() else {
            self.schedule.batch_done(0, self.engine.budget());
            return;
        };
        let n = agents.len();
        let report = self
            .reconcile(Scope::Agents(agents), "resync", &revision)
            .await;
        if let Some(report) = report {
            self.shared.status().reconciled(&report, false);
            self.notify(|n| n.finished(&report, false));
            self.after_run(&report, false);
        }
        self.schedule.batch_done(n, self.engine.budget());
        // Once per resync, not per batch: letting go of the snapshot's repository makes the
        // next batch open it and parse the agents' directory again, a cost that grows with
        // the repository and would make a whole resync grow with its square.
        if !self.schedule.resync_in_progress() {
            self.engine.idle();
        }
    }

    /// One reconcile inside its span; `None` when shutdown abandoned it.
    async fn reconcile(
        &mut self,
        scope: Scope,
        trigger: &str,
        revision: &str,
    ) -> Option<RunReport> {
        let scope_label = match &scope {
            Scope::All => "all".to_owned(),
            Scope::Changed => "changed".to_owned(),
            Scope::Agents(a) => a.join(","),
        };
        let span = tracing::info_span!(
            "reconcile",
            commit = %short(revision),
            trigger = %trigger,
            agents = %scope_label,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let run = self
            .engine
            .reconcile(scope, self.shutdown.clone())
            .instrument(span.clone());
        let report = guarded(run, &self.shutdown, self.grace).await;
        let elapsed = started.elapsed();
        span.record("duration_ms", elapsed.as_millis() as u64);
        let _entered = span.enter();
        let Some(report) = report else {
            self.abandoned = true;
            tracing::warn!(
                grace = ?self.grace,
                "shutdown: the reconcile in flight did not stop in time and was abandoned; state of finished agents is saved"
            );
            return None;
        };
        self.shared
            .metrics
            .record_run(&report, elapsed.as_secs_f64());
        if let Some(reason) = &report.full_reason {
            tracing::info!("full reconcile: {reason}");
        }
        if let Some(failure) = &report.error
            && self.log_once(&report.revision, "", &failure.message)
        {
            // One event per line: a platform detail may hold line breaks of its own.
            let error = crate::escape::terminal(&failure.message).into_owned();
            let hint = failure.hint.as_deref().unwrap_or("");
            tracing::error!(%error, hint, "reconcile failed; nothing applied");
        }
        for (agent, failure) in &report.agent_errors {
            if self.log_once(&report.revision, agent, &failure.message) {
                let error = crate::escape::terminal(&failure.message);
                let class = match failure.class {
                    crate::platform::ErrorClass::Transient => "transient",
                    crate::platform::ErrorClass::Terminal => "terminal",
                };
                let hint = failure.hint.as_deref().unwrap_or("");
                tracing::error!(%agent, %error, class, hint, "agent not reconciled; it stays as last applied");
            }
        }
        let a = report.applied;
        tracing::info!(
            result = if report.ok() { "success" } else { "failure" },
            created = a.create,
            updated = a.update,
            deleted = a.delete,
            redeployed = report.redeployed,
            drift = report.drift,
            skipped = report.skipped.len(),
            refreshed = report.checked.len(),
            unrefreshed = report.unrefreshed,
            cancelled = report.cancelled,
            "reconcile finished"
        );
        Some(report)
    }

    /// Skipped agents, status and metrics after a run; `cycle` when it was a cycle (a new
    /// revision may declare other agents), not a resync batch (the same agents).
    fn after_run(&mut self, report: &RunReport, cycle: bool) {
        for agent in &report.checked {
            self.skipped.remove(agent);
        }
        self.skipped.extend(report.skipped.iter().cloned());
        if cycle {
            self.shared
                .status()
                .set_agents(self.engine.agents(), &self.skipped);
        } else {
            self.shared.status().set_skipped(&self.skipped);
        }
        let metrics = &self.shared.metrics;
        metrics
            .agents_skipped
            .set(i64::try_from(self.skipped.len()).unwrap_or(i64::MAX));
        metrics.set_agent_errors(self.shared.status().agent_errors());
        if let Some(stats) = self.engine.api_stats() {
            metrics.observe_api(&stats);
        }
    }
}

#[cfg(test)]
mod tests;
