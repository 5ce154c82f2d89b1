//! One deadline per run: `reconcile --timeout`, `doctor --timeout`, and each cycle of the
//! daemon. It exists because per-request timeouts alone do not bound a run: a platform that
//! accepts connections and never answers costs every call its timeout and its retries.
//!
//! The deadline acts at the platform edge only: [`Bounded`] wraps a [`Platform`] and races
//! each call against it; when it passes, the calls in flight are dropped (reqwest aborts the
//! request) and every later call fails at once, each with the typed, transient
//! [`PlatformError::DeadlineExceeded`]. The rest of the run goes on with those errors as with
//! any other: an agent whose list was cut is skipped, a write that was cut is not recorded,
//! and apply records state only after a verifying list that finished — so the deadline must
//! never, and cannot, leave a half-recorded agent in the state.
//!
//! By default the deadline grows with the work: [`DEFAULT_BASE`] plus [`PER_REQUEST`] for every
//! request the run needs (one list per agent, then the plan's writes, verifying lists and
//! redeploys), because a large first apply is paced by the platform's rate budget, not hung.
//! `--timeout` fixes it instead. Time spent at the confirmation prompt does not count.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

use crate::apply::{AgentError, ApplyReport, FailReason, Redeployed};
use crate::plan::Plan;
use crate::platform::limiter::PROBE_PATIENCE;
use crate::platform::types::whole_seconds;
use crate::platform::{ClientStats, Listing, Platform, PlatformError};
use crate::secret::SecretValue;

/// The default deadline before any request is counted. A healthy run of a few agents takes
/// seconds; five minutes leaves room for a slow platform and a few retries with backoff,
/// and is still short enough for a CI job or a daemon cycle to report a silent platform
/// instead of hanging.
pub const DEFAULT_BASE: Duration = Duration::from_secs(300);

/// What the default deadline adds per request: Castari allows 100 requests a minute per key
/// (the API docs; docs/platform.md), so a run of N requests needs at least N × 0.6 s whatever the
/// deadline says.
pub const PER_REQUEST: Duration = Duration::from_millis(600);

/// How long a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunTimeout {
    /// [`DEFAULT_BASE`] plus [`PER_REQUEST`] for each request the run needs.
    #[default]
    Auto,
    /// `--timeout`: exactly this long, however much work there is.
    Fixed(Duration),
}

impl RunTimeout {
    /// `--timeout` when given, else the default.
    pub fn from_flag(flag: Option<Duration>) -> RunTimeout {
        flag.map_or(RunTimeout::Auto, RunTimeout::Fixed)
    }
}

#[derive(Debug)]
struct Inner {
    /// When the deadline passes (pauses push it back).
    ends: Instant,
    /// The time the run is allowed, pauses left out (for messages).
    allowed: Duration,
    /// Since when the clock is stopped (the confirmation prompt).
    paused: Option<Instant>,
}

/// A run's deadline, shared by every call of the run.
#[derive(Debug)]
pub struct Deadline {
    timeout: RunTimeout,
    inner: Mutex<Inner>,
    changed: Notify,
}

/// `at + by`, or a time far enough away to mean "never" when that overflows the clock.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 86_400))
}

impl Deadline {
    /// Starts the clock now.
    pub fn start(timeout: RunTimeout) -> Arc<Deadline> {
        let allowed = match timeout {
            RunTimeout::Auto => DEFAULT_BASE,
            RunTimeout::Fixed(d) => d,
        };
        Arc::new(Deadline {
            timeout,
            inner: Mutex::new(Inner {
                ends: later(Instant::now(), allowed),
                allowed,
                paused: None,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain field updates: a poisoned lock still holds usable times.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allows for `requests` more requests: the default deadline grows by [`PER_REQUEST`]
    /// each; a fixed one does not move.
    pub fn allow_requests(&self, requests: usize) {
        if self.timeout != RunTimeout::Auto || requests == 0 {
            return;
        }
        let more = PER_REQUEST.saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX));
        {
            let mut inner = self.lock();
            inner.ends = later(inner.ends, more);
            inner.allowed = inner.allowed.saturating_add(more);
        }
        self.changed.notify_waiters();
    }

    /// Stops the clock until the guard is dropped (while a person reads the plan).
    pub fn pause(&self) -> Paused<'_> {
        let mut inner = self.lock();
        if inner.paused.is_none() {
            inner.paused = Some(Instant::now());
        }
        Paused(self)
    }

    /// The time the run is allowed so far.
    pub fn allowed(&self) -> Duration {
        self.lock().allowed
    }

    /// True once the deadline has passed.
    pub fn passed(&self) -> bool {
        let inner = self.lock();
        inner.paused.is_none() && Instant::now() >= inner.ends
    }

    /// Resolves when the deadline passes.
    pub async fn expired(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (ends, paused) = {
                let inner = self.lock();
                (inner.ends, inner.paused.is_some())
            };
            if paused {
                notified.await;
                continue;
            }
            if Instant::now() >= ends {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(ends) => {}
            }
        }
    }

    /// The error a call cut by this deadline fails with.
    pub fn error(&self) -> PlatformError {
        PlatformError::DeadlineExceeded {
            after: self.allowed(),
        }
    }

    /// Runs `call` unless the deadline has passed, and cancels it (drops it) when the deadline
    /// passes first.
    pub async fn bound<T>(
        &self,
        call: impl Future<Output = Result<T, PlatformError>>,
    ) -> Result<T, PlatformError> {
        if self.passed() {
            return Err(self.error());
        }
        tokio::select! {
            biased;
            done = call => done,
            () = self.expired() => Err(self.error()),
        }
    }
}

/// The clock of a [`Deadline`] is stopped while this lives.
pub struct Paused<'a>(&'a Deadline);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        {
            let mut inner = self.0.lock();
            if let Some(since) = inner.paused.take() {
                let ends = inner.ends;
                inner.ends = later(ends, since.elapsed());
            }
        }
        self.0.changed.notify_waiters();
    }
}

/// A platform whose every call is bounded by a [`Deadline`] — the run's view of the
/// platform. It also ends the run at the first failure that says the platform cannot be
/// reached at all ([`PlatformError::ends_run`]: an untrusted certificate, a dead proxy):
/// every later call fails at once with the same error. So that such a run costs one
/// connection, not one per agent in flight, the run's first call goes alone and the others
/// wait for it, at most [`PROBE_PATIENCE`] (as the rate limiter waits for its probe: a silent
/// platform must not hold them for a whole request timeout).
pub struct Bounded {
    inner: Arc<dyn Platform>,
    deadline: Arc<Deadline>,
    contact: Mutex<Contact>,
    contacted: Notify,
}

/// How far the run's first call got.
#[derive(Debug, Clone)]
enum Contact {
    /// No call yet.
    None,
    /// The first call is in flight since then.
    Probing(Instant),
    /// A call finished; when it ended the run, with this error.
    Done(Option<PlatformError>),
}

impl Bounded {
    /// `inner` with every call bounded by `deadline`.
    pub fn wrap(inner: Arc<dyn Platform>, deadline: Arc<Deadline>) -> Arc<dyn Platform> {
        Arc::new(Bounded {
            inner,
            deadline,
            contact: Mutex::new(Contact::None),
            contacted: Notify::new(),
        })
    }

    fn contact(&self) -> MutexGuard<'_, Contact> {
        self.contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until this call may go: at once when it is the run's first or a call has
    /// finished, else until the first finishes or has had [`PROBE_PATIENCE`]. The error
    /// that ended the run, if one did.
    async fn wait_for_contact(&self) -> Result<(), PlatformError> {
        loop {
            let notified = self.contacted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let until = {
                let mut contact = self.contact();
                match &*contact {
                    Contact::None => {
                        *contact = Contact::Probing(Instant::now());
                        return Ok(());
                    }
                    Contact::Done(Some(error)) => return Err(error.clone()),
                    Contact::Done(None) => return Ok(()),
                    Contact::Probing(since) => *since + PROBE_PATIENCE,
                }
            };
            if Instant::now() >= until {
                return Ok(());
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => return Ok(()),
            }
        }
    }

    /// Runs `call` within the deadline, once it may go (see [`Bounded`]).
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, PlatformError>>,
    ) -> Result<T, PlatformError> {
        self.deadline
            .bound(async {
                self.wait_for_contact().await?;
                let result = call.await;
                {
                    let mut contact = self.contact();
                    match (&*contact, &result) {
                        (Contact::Done(Some(_)), _) => {}
                        (_, Err(error)) if error.ends_run() => {
                            *contact = Contact::Done(Some(error.clone()));
                        }
                        _ => *contact = Contact::Done(None),
                    }
                }
                self.contacted.notify_waiters();
                result
            })
            .await
    }
}

#[async_trait]
impl Platform for Bounded {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn list(&self, agent: &str) -> Result<Listing, PlatformError> {
        self.call(self.inner.list(agent)).await
    }

    async fn set(&self, agent: &str, key: &str, value: &SecretValue) -> Result<(), PlatformError> {
        self.call(self.inner.set(agent, key, value)).await
    }

    async fn delete(&self, agent: &str, key: &str) -> Result<(), PlatformError> {
        self.call(self.inner.delete(agent, key)).await
    }

    async fn redeploy(&self, agent: &str) -> Result<(), PlatformError> {
        self.call(self.inner.redeploy(agent)).await
    }

    fn stats(&self) -> Option<ClientStats> {
        self.inner.stats()
    }

    fn rate_wait(&self) -> Option<Duration> {
        self.inner.rate_wait()
    }
}

/// The step an agent was in when the deadline cut it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Listing its keys for the plan.
    List,
    /// Setting or deleting keys.
    Apply,
    /// The list that confirms the writes.
    Verify,
    /// The redeploy after its changes.
    Redeploy,
}

impl Step {
    fn doing(self) -> &'static str {
        match self {
            Step::List => "listing",
            Step::Apply => "applying",
            Step::Verify => "verifying",
            Step::Redeploy => "redeploying",
        }
    }
}

/// Which agents a run's deadline cut off, and in which step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// The deadline that passed.
    pub after: Duration,
    /// Agent → the first step it did not finish.
    pub agents: BTreeMap<String, Step>,
}

fn cut(error: &PlatformError) -> Option<Duration> {
    match error {
        PlatformError::DeadlineExceeded { after } => Some(*after),
        _ => None,
    }
}

impl TimedOut {
    /// Finds the calls a deadline cut in a plan and, after an apply, its report. None when
    /// the deadline cut nothing.
    pub fn find(plan: &Plan, report: Option<&ApplyReport>) -> Option<TimedOut> {
        let mut after = None;
        let mut agents = BTreeMap::new();
        let mut note = |agent: &str, step: Step, d: Duration| {
            after = Some(after.map_or(d, |a: Duration| a.max(d)));
            let entry = agents.entry(agent.to_owned()).or_insert(step);
            *entry = (*entry).min(step);
        };
        for a in &plan.agents {
            if let Some(d) = a
                .skipped
                .as_ref()
                .and_then(|s| s.platform_error())
                .and_then(cut)
            {
                note(&a.agent, Step::List, d);
            }
        }
        for r in report.map(|r| r.agents.as_slice()).unwrap_or_default() {
            for failed in &r.failed {
                if let FailReason::Platform(e) = &failed.reason
                    && let Some(d) = cut(e)
                {
                    note(&r.agent, Step::Apply, d);
                }
            }
            if let Some(AgentError::Verify { error, .. }) = &r.error
                && let Some(d) = cut(error)
            {
                note(&r.agent, Step::Verify, d);
            }
            if let Some(Redeployed::Failed(e)) = &r.redeploy
                && let Some(d) = cut(e)
            {
                note(&r.agent, Step::Redeploy, d);
            }
        }
        after.map(|after| TimedOut { after, agents })
    }

    /// Adds what another part of the same run (a later batch) found cut: the later deadline,
    /// and for each agent the earlier step.
    pub fn absorb(mine: &mut Option<TimedOut>, more: Option<TimedOut>) {
        let Some(more) = more else { return };
        let Some(merged) = mine else {
            *mine = Some(more);
            return;
        };
        merged.after = merged.after.max(more.after);
        for (agent, step) in more.agents {
            let entry = merged.agents.entry(agent).or_insert(step);
            *entry = (*entry).min(step);
        }
    }

    /// `listing a, b; applying c`.
    pub fn unfinished(&self) -> String {
        let mut by_step: BTreeMap<Step, Vec<&str>> = BTreeMap::new();
        for (agent, step) in &self.agents {
            by_step.entry(*step).or_default().push(agent);
        }
        let mut out = String::new();
        for (step, agents) in by_step {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(out, "{} {}", step.doing(), agents.join(", "));
        }
        out
    }

    /// The error a command prints: which deadline passed and what did not finish.
    pub fn message(&self, flag: &str) -> String {
        format!(
            "timed out: the run's deadline ({}, {flag}) passed; the requests in flight were cancelled\n  not finished: {}",
            whole_seconds(&self.after),
            self.unfinished(),
        )
    }

    /// What to do about it: the hint of a call the deadline cut.
    pub fn hint(&self) -> Option<String> {
        use crate::hint::Hinted as _;
        PlatformError::DeadlineExceeded { after: self.after }
            .hint()
            .map(Into::into)
    }

    /// `{"seconds": …, "agents": [{"agent", "step"}]}` for `--output json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": self.after.as_secs_f64(),
            "agents": self
                .agents
                .iter()
                .map(|(agent, step)| serde_json::json!({ "agent": agent, "step": step }))
                .collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests;
