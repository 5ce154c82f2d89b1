//! The real [`Engine`]: refreshes the [`Origin`] and runs `reconcile::reconcile` — the same
//! function `castsync reconcile` calls — on the last good snapshot. It translates the
//! outcome into the daemon's terms (per-agent errors, counts, retryable or not) and nothing
//! else: every decision about keys stays in the plan.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{AgentFailure, ApiStats, ChangeCounts, Engine, Refreshed, RunReport, Scope};
use crate::apply::{AgentResult, Redeployed};
use crate::daemon::schedule::RateBudget;
use crate::deadline::TimedOut;
use crate::hint::Explained;
use crate::plan::{Action, AgentPlan, UpdateReason};
use crate::platform::{OpenError, Platform};
use crate::reconcile::{self, Outcome, Tally};
use crate::request::{ApplySettings, ChangedSince, Request};
use crate::source::Checkout;
use crate::source::inputs::Remembered;
use crate::source::remote::origin::{Fetched, Origin, Snapshot};
use crate::state::State;
use crate::target::Target;

/// Agents loaded, listed, planned and applied together in one cycle: the cycle holds the
/// decrypted values of this many agents at most, whatever the size of the repository (a
/// first apply of ten thousand agents would otherwise hold them all). Large enough that the
/// pause between batches (the last lists and writes of one finishing before the next is
/// decrypted) costs little.
const AGENTS_PER_BATCH: usize = 250;

pub struct LiveEngine {
    origin: Origin,
    explicit_config: Option<PathBuf>,
    target: Target,
    settings: ApplySettings,
    state: Arc<Mutex<State>>,
    current: Option<Snapshot>,
    /// The open platform and what it was opened for (URL and, for `local://`, the agents).
    platform: Option<(String, Arc<dyn Platform>)>,
    /// What the last run found in each agent directory: a commit's run reads only the
    /// directories it changed.
    remembered: Arc<std::sync::Mutex<Remembered>>,
}

impl LiveEngine {
    pub fn new(
        origin: Origin,
        explicit_config: Option<PathBuf>,
        target: Target,
        settings: ApplySettings,
        state: State,
    ) -> LiveEngine {
        LiveEngine {
            origin,
            explicit_config,
            target,
            settings,
            state: Arc::new(Mutex::new(state)),
            current: None,
            platform: None,
            remembered: Arc::default(),
        }
    }

    /// The platform for a checkout's config, reopened only when the URL (or, for the
    /// embedded store, the agent list) changes.
    fn platform_for(&mut self, checkout: &Checkout) -> Result<Arc<dyn Platform>, OpenError> {
        let target = self.target.platform(&checkout.config)?;
        let cache_key = if target.is_local() {
            format!("{}\n{}", target.url, checkout.agents.join(","))
        } else {
            target.url.clone()
        };
        if let Some((key, p)) = &self.platform
            && *key == cache_key
        {
            return Ok(p.clone());
        }
        // Drop the old client first: an embedded store must not be open twice.
        self.platform = None;
        let opened = target.open(checkout.agents.clone())?;
        self.platform = Some((cache_key, opened.clone()));
        Ok(opened)
    }
}

fn failed_run(revision: &str, error: impl Into<Explained>) -> RunReport {
    RunReport {
        revision: revision.to_owned(),
        error: Some(error.into()),
        ..RunReport::default()
    }
}

/// A cycle's outcomes in the daemon's terms, added up as they land: of each agent, its
/// counts and its error, nothing of its plan. The cycle runs in batches, and a first cycle
/// of ten thousand agents would otherwise keep every agent's changes until its end.
#[derive(Default)]
pub struct CycleTally {
    report: RunReport,
    timed_out: Option<TimedOut>,
}

impl Tally for CycleTally {
    fn add(&mut self, outcome: Outcome) {
        if let Some(warning) = &outcome.state_warning {
            tracing::warn!(%warning, "state not saved");
        }
        let report = &mut self.report;
        if report.revision.is_empty() {
            report.revision = outcome.revision;
        }
        report.unrefreshed += outcome.plan.coverage.unrefreshed.len();
        if report.full_reason.is_none() {
            report.full_reason = outcome.plan.coverage.full_reason;
        }
        add_plan(report, &outcome.plan.agents);
        if let Some(apply) = &outcome.report {
            add_applied(report, &apply.agents);
        }
        TimedOut::absorb(&mut self.timed_out, outcome.timed_out);
    }
}

impl CycleTally {
    /// The cycle's report; `cancelled` when a shutdown stopped it.
    pub fn finish(self, cancelled: bool) -> RunReport {
        RunReport {
            cancelled,
            timed_out: self.timed_out.map(|t| {
                format!(
                    "the cycle's deadline ({}) passed; not finished: {}",
                    crate::platform::types::whole_seconds(&t.after),
                    t.unfinished()
                )
            }),
            ..self.report
        }
    }
}

/// The agents a plan looked at: drift found, and each skipped agent's error.
fn add_plan(report: &mut RunReport, agents: &[AgentPlan]) {
    for agent in agents {
        report.checked.push(agent.agent.clone());
        report.drift += agent.drift_ignored.len() as u64;
        report.drift += agent
            .changes
            .iter()
            .filter(|c| c.action == Action::Update(UpdateReason::Drifted))
            .count() as u64;
        if let Some(skip) = &agent.skipped {
            report.skipped.insert(agent.agent.clone());
            // A failed list keeps its class (a 429 is retried, a 401 is not); a bad manifest
            // or a refused mass delete will not get better by retrying the same commit.
            report.agent_errors.insert(
                agent.agent.clone(),
                AgentFailure {
                    message: skip.to_string(),
                    class: skip.class(),
                    hint: skip.hint(),
                },
            );
        }
    }
}

/// What an apply landed, per agent, and each agent's failure.
fn add_applied(report: &mut RunReport, results: &[AgentResult]) {
    for result in results {
        let mut counts = ChangeCounts::default();
        for change in &result.applied {
            match change.action {
                Action::Create => counts.create += 1,
                Action::Update(_) | Action::Replace => counts.update += 1,
                Action::Delete => counts.delete += 1,
            }
            if change.action == Action::Update(UpdateReason::Drifted) {
                report.drift_healed += 1;
            }
        }
        report.applied.create += counts.create;
        report.applied.update += counts.update;
        report.applied.delete += counts.delete;
        if counts.total() > 0 {
            report.changed_agents.insert(result.agent.clone(), counts);
        }
        if result.redeploy == Some(Redeployed::Done) {
            report.redeployed += 1;
        }
        let Some(class) = result.class() else {
            continue;
        };
        let message = match (&result.error, result.failed.first(), &result.redeploy) {
            (Some(e), _, _) => e.to_string(),
            (None, Some(first), _) => format!(
                "{} change(s) did not land; first: {} ({})",
                result.failed.len(),
                first.change.key,
                first.reason
            ),
            (None, None, Some(Redeployed::Failed(e))) => {
                format!("redeploy failed: {e}; its secrets are applied and the redeploy is retried")
            }
            _ => "apply failed".to_owned(),
        };
        report.agent_errors.insert(
            result.agent.clone(),
            AgentFailure {
                message,
                class,
                hint: result.hint(),
            },
        );
    }
}

impl Engine for LiveEngine {
    async fn refresh(&mut self) -> Result<Refreshed, Explained> {
        match self.origin.refresh(self.explicit_config.as_deref()).await? {
            Fetched::Ready {
                snapshot,
                commit_time,
            } => {
                let revision = snapshot.revision.clone();
                self.current = Some(*snapshot);
                Ok(Refreshed::Ready {
                    revision,
                    commit_time,
                })
            }
            Fetched::Rejected { revision, reason } => Ok(Refreshed::Rejected { revision, reason }),
        }
    }

    async fn reconcile(&mut self, scope: Scope, cancel: CancellationToken) -> RunReport {
        let Some(snapshot) = self.current.take() else {
            return failed_run("", "nothing fetched yet");
        };
        // A resync batch (a few agents) keeps the repository open for the next one; the
        // controller lets go of it once the resync is over.
        let cycle = !matches!(scope, Scope::Agents(_));
        let report = self.reconcile_snapshot(&snapshot, scope, cancel).await;
        self.current = Some(snapshot);
        // Given back here, before the report goes out, as well as once it is published
        // (`idle`): measured at 10,000 agents, an idle daemon holds 13 MB less after a first
        // cycle than with the second alone. It costs a commit a few milliseconds.
        if cycle {
            self.idle();
        }
        report
    }

    fn idle(&mut self) {
        // The run's manifests, listings and plan are dropped by now (the state is on disk).
        // Close the snapshot's repository (its pack files stay mapped while it is open) and
        // give the rest back.
        if let Some(Ok(checkout)) = self.current.as_mut().map(|s| s.checkout.as_mut()) {
            checkout.release();
        }
        // SQLite's page cache of the state (up to 2 MiB) is refilled by the next run. The
        // state is not in use between runs; were it, its page cache is simply kept.
        if let Ok(state) = self.state.try_lock() {
            state.release_memory();
        }
        let released = crate::daemon::memory::release_free();
        tracing::debug!(released, "freed memory returned to the system");
    }

    fn agents(&self) -> Vec<String> {
        self.current
            .as_ref()
            .map(|s| s.agents().to_vec())
            .unwrap_or_default()
    }

    fn budget(&self) -> RateBudget {
        let limit = self
            .platform
            .as_ref()
            .and_then(|(_, p)| p.stats())
            .and_then(|s| s.rate_limit);
        match limit {
            Some(limit) if limit > 0 => RateBudget {
                limit,
                ..RateBudget::default()
            },
            _ => RateBudget::default(),
        }
    }

    fn reload(&mut self) {
        self.platform = None;
    }

    fn notify_entries(&self) -> Option<Vec<crate::config::NotifyEntry>> {
        let checkout = self.current.as_ref()?.checkout.as_ref().ok()?;
        Some(checkout.config.notify.clone())
    }

    fn api_stats(&self) -> Option<ApiStats> {
        let stats = self.platform.as_ref()?.1.stats()?;
        Some(ApiStats {
            responses: stats.responses,
            rate_limit: stats.rate_limit,
            rate_limit_remaining: stats.rate_limit_remaining,
        })
    }
}

impl LiveEngine {
    async fn reconcile_snapshot(
        &mut self,
        snapshot: &Snapshot,
        scope: Scope,
        cancel: CancellationToken,
    ) -> RunReport {
        let revision = snapshot.revision.as_str();
        let checkout = match &snapshot.checkout {
            Ok(c) => c,
            Err(e) => return failed_run(revision, e.clone()),
        };
        let (only, changed): (BTreeSet<String>, _) = match scope {
            Scope::All => (BTreeSet::new(), None),
            Scope::Changed => (BTreeSet::new(), Some(ChangedSince::State)),
            Scope::Agents(agents) => {
                // Agents removed since the resync started are simply not listed.
                let wanted: BTreeSet<String> = agents
                    .into_iter()
                    .filter(|a| checkout.declares(a))
                    .collect();
                if wanted.is_empty() {
                    return RunReport {
                        revision: revision.to_owned(),
                        ..RunReport::default()
                    };
                }
                (wanted, None)
            }
        };
        // The environment this daemon follows must be declared at this commit (and one must
        // be named when the config declares any): otherwise it would apply another
        // environment's platform, or values without their overlays.
        let env = self.target.environment.clone();
        if let Err(e) = checkout.config.one_environment("watch", env.name(), true) {
            return failed_run(revision, Explained::of(&e));
        }
        let platform = match self.platform_for(checkout) {
            Ok(p) => p,
            // Not retried: a missing key or a bad URL needs a new config or SIGHUP.
            Err(e) => return failed_run(revision, Explained::of(&e)),
        };
        // A run of a few agents (a resync batch) reads their directories: what is remembered
        // is of every agent, and finding the rest unchanged would cost a look at each.
        let remembered = only.is_empty().then(|| self.remembered.clone());
        let request = Request {
            only,
            changed,
            cancel: cancel.clone(),
            environment: env,
            batch: Some(AGENTS_PER_BATCH),
            remembered,
            ..self.settings.request(
                checkout,
                &self.target.identities,
                platform,
                self.state.clone(),
            )
        };
        let mut tally = CycleTally::default();
        let observer = Arc::new(reconcile::Unattended);
        match reconcile::reconcile_into(request, observer, &mut tally).await {
            Ok(()) => tally.finish(cancel.is_cancelled()),
            Err(e) => failed_run(revision, Explained::of(&e)),
        }
    }
}
