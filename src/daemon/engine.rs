//! The seam between the daemon's loop (which decides *when*) and the work itself (fetch a
//! source, reconcile it). The real engine drives git and `reconcile::reconcile`; the loop's
//! tests drive a fake one on a paused clock.

pub mod live;

use std::collections::{BTreeMap, BTreeSet};

use tokio_util::sync::CancellationToken;

use super::schedule::RateBudget;
use crate::hint::Explained;
use crate::platform::ErrorClass;

/// What a refresh of the source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// A revision the engine will reconcile from now on.
    Ready {
        /// A commit id, or a digest of the working tree's inputs.
        revision: String,
        /// The commit's committer time (unix seconds), for git sources.
        commit_time: Option<i64>,
    },
    /// A revision that must not be applied (e.g. its signature does not verify); the engine
    /// keeps the last ready one.
    Rejected { revision: String, reason: String },
}

/// Which agents one reconcile covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every agent the revision declares.
    All,
    /// The agents whose inputs changed since they last converged, and those the state
    /// knows nothing about (new, or failed last time); every agent when the state cannot
    /// tell.
    Changed,
    /// Only these (a paced resync batch).
    Agents(Vec<String>),
}

/// Changes that landed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
}

impl ChangeCounts {
    pub fn total(&self) -> u64 {
        self.create + self.update + self.delete
    }
}

/// Why one agent did not converge, and whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFailure {
    pub message: String,
    pub class: ErrorClass,
    /// What a person can do about it, when known.
    pub hint: Option<String>,
}

impl AgentFailure {
    #[cfg(test)]
    pub fn new(message: impl Into<String>, class: ErrorClass) -> AgentFailure {
        AgentFailure {
            message: message.into(),
            class,
            hint: None,
        }
    }
}

/// What one reconcile did, in the terms the daemon reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The revision reconciled.
    pub revision: String,
    /// The run could not start at all (config unreadable, tree unreadable, platform
    /// cannot be opened): nothing was applied.
    pub error: Option<Explained>,
    /// Agents this run looked at (their previous errors are replaced by this run's).
    pub checked: Vec<String>,
    /// Agents of the revision this run left alone because their inputs did not change
    /// ([`Scope::Changed`]); 0 when it looked at every one.
    pub unrefreshed: usize,
    /// Why a [`Scope::Changed`] run looked at every agent anyway (no state, a config change
    /// that bears on every agent, …).
    pub full_reason: Option<String>,
    /// Per-agent problems: a manifest that failed to load, a list, a write or a redeploy
    /// that failed, each with its class.
    pub agent_errors: BTreeMap<String, AgentFailure>,
    pub applied: ChangeCounts,
    /// The changes that landed, per agent that had any.
    pub changed_agents: BTreeMap<String, ChangeCounts>,
    /// Keys found changed on the platform behind castsync's back that this run set back.
    pub drift_healed: u64,
    /// Agents redeployed.
    pub redeployed: u64,
    /// Keys found changed on the platform behind castsync's back.
    pub drift: u64,
    /// Agents skipped whole (bad manifest, failed list, mass delete).
    pub skipped: BTreeSet<String>,
    /// Shutdown stopped the apply between requests.
    pub cancelled: bool,
    /// The cycle's deadline passed: which one, and what did not finish (the agents cut off
    /// are also in `agent_errors`, as transient).
    pub timed_out: Option<String>,
}

impl RunReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.agent_errors.is_empty()
            && !self.cancelled
            && self.timed_out.is_none()
    }

    /// Something failed that may succeed on retry (a 429, a 5xx, a timeout). Terminal
    /// failures alone (a bad manifest, a wrong key, an unknown agent) wait for a new commit,
    /// a config change or SIGHUP instead.
    pub fn retryable(&self) -> bool {
        self.agent_errors
            .values()
            .any(|f| f.class == ErrorClass::Transient)
    }
}

/// What the platform client has seen (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Responses by HTTP status code, since the client was created.
    pub responses: BTreeMap<u16, u64>,
    pub rate_limit: Option<u64>,
    pub rate_limit_remaining: Option<u64>,
}

/// The work the daemon schedules. Futures need not be `Send`: the loop runs on the main
/// task, and git objects are not thread-safe.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Fetches (git) or re-reads (working tree) the source. An error is transient: the
    /// loop keeps the last revision and retries with backoff.
    async fn refresh(&mut self) -> Result<Refreshed, Explained>;

    /// Reconciles the last ready revision. `cancel` stops the apply between requests.
    async fn reconcile(&mut self, scope: Scope, cancel: CancellationToken) -> RunReport;

    /// The agents of the last ready revision (for a resync).
    fn agents(&self) -> Vec<String>;

    /// The platform's request budget, as far as it is known.
    fn budget(&self) -> RateBudget {
        RateBudget::default()
    }

    /// Request counters of the platform client, if it makes HTTP requests.
    fn api_stats(&self) -> Option<ApiStats> {
        None
    }

    /// The `notify:` entries of the last ready revision's config; `None` when it has none
    /// that could be read (the targets in use then stay).
    fn notify_entries(&self) -> Option<Vec<crate::config::NotifyEntry>> {
        None
    }

    /// SIGHUP: forget what was opened from outside input (the platform client and the API
    /// key it read), so the next run picks up a fixed key or URL.
    fn reload(&mut self) {}

    /// A run's report is published: let go of what the run opened or cached (again), so an
    /// idle daemon holds what it keeps, not what its last run peaked at.
    fn idle(&mut self) {}
}
