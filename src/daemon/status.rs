//! What the daemon knows about itself, for `/readyz`: the revision it follows, when it last
//! fetched and reconciled, and every error that still stands.
//!
//! Ready means: the last fetch and the last reconcile succeeded, both within twice the poll
//! interval, no agent is failing and no fetched commit is refused. Messages here are the
//! same as in the logs: agent slugs, file names, key names, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::{Duration, Instant};

use super::engine::{AgentFailure, RunReport};
use crate::hint::Explained;
use crate::platform::ErrorClass;

#[derive(Debug, Clone, Copy)]
struct Stamp {
    at: Instant,
    wall: SystemTime,
}

impl Stamp {
    fn now() -> Stamp {
        Stamp {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn rfc3339(&self) -> String {
        OffsetDateTime::from(self.wall)
            .format(&Rfc3339)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    stamp: Stamp,
    error: Option<Explained>,
}

impl Attempt {
    fn json(&self) -> Value {
        json!({
            "at": self.stamp.rfc3339(),
            "ok": self.error.is_none(),
            "error": self.error.as_ref().map(|e| &e.message),
            "hint": self.error.as_ref().and_then(|e| e.hint.as_ref()),
        })
    }
}

/// The `/readyz` body's format version (schemas/readyz.schema.json); bump on incompatible
/// changes.
pub const READYZ_FORMAT_VERSION: u32 = 1;

/// The daemon's state as `/readyz` shows it.
#[derive(Debug)]
pub struct Status {
    interval: Duration,
    source: String,
    /// The newest revision fetched (applied or not).
    fetched: Option<String>,
    /// The revision last reconciled.
    applied: Option<String>,
    last_fetch: Option<Attempt>,
    last_fetch_ok: Option<Stamp>,
    last_reconcile: Option<Attempt>,
    last_reconcile_ok: Option<Stamp>,
    /// Errors of the applied revision's last full run (run-level, e.g. a broken config).
    run_error: Option<Explained>,
    agent_errors: BTreeMap<String, AgentFailure>,
    /// A fetched commit that is not applied, and why.
    rejected: Option<(String, String)>,
    /// The last reconcile (full or resync batch) ran out of its deadline.
    timed_out: Option<String>,
    shutting_down: bool,
    /// For the status page: the applied revision's agents, those skipped whole by their last
    /// run, and when the next poll and drift resync are due.
    agents: Vec<String>,
    skipped: BTreeSet<String>,
    next_poll: Option<SystemTime>,
    next_resync: Option<SystemTime>,
}

/// One agent as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Its last run left it as git says (or it did not need one).
    Converged,
    /// Its last run failed.
    Failed(AgentFailure),
    /// Its last run left it out whole (a bad manifest, a failed list, a refused mass delete).
    Skipped(AgentFailure),
}

/// What the status page shows, copied out under the lock.
#[derive(Debug, Clone)]
pub struct PageView {
    pub source: String,
    pub ready: bool,
    pub reasons: Vec<String>,
    pub fetched: Option<String>,
    pub applied: Option<String>,
    /// (when, error) of the last fetch and the last reconcile.
    pub last_fetch: Option<(String, Option<String>)>,
    pub last_reconcile: Option<(String, Option<String>)>,
    pub agents: Vec<(String, AgentState)>,
    pub next_poll: Option<String>,
    pub next_resync: Option<String>,
    pub rejected: Option<(String, String)>,
}

impl Status {
    pub fn new(source: String, interval: Duration) -> Status {
        Status {
            interval,
            source,
            fetched: None,
            applied: None,
            last_fetch: None,
            last_fetch_ok: None,
            last_reconcile: None,
            last_reconcile_ok: None,
            run_error: None,
            agent_errors: BTreeMap::new(),
            rejected: None,
            timed_out: None,
            shutting_down: false,
            agents: Vec::new(),
            skipped: BTreeSet::new(),
            next_poll: None,
            next_resync: None,
        }
    }

    /// The agents of the applied revision, and which of them were skipped whole.
    pub fn set_agents(&mut self, agents: Vec<String>, skipped: &BTreeSet<String>) {
        self.agents = agents;
        self.set_skipped(skipped);
    }

    /// The skipped agents, the declared ones unchanged.
    pub fn set_skipped(&mut self, skipped: &BTreeSet<String>) {
        self.skipped = skipped.clone();
    }

    /// When the next poll and drift resync are due, from now.
    pub fn set_schedule(&mut self, next_poll: Duration, next_resync: Duration) {
        let now = SystemTime::now();
        self.next_poll = Some(now + next_poll);
        self.next_resync = Some(now + next_resync);
    }

    /// Everything the status page shows.
    pub fn page(&self) -> PageView {
        let (ready, body) = self.readiness();
        let reasons = body["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let attempt = |a: &Option<Attempt>| {
            a.as_ref().map(|a| {
                (
                    a.stamp.rfc3339(),
                    a.error.as_ref().map(|e| e.message.clone()),
                )
            })
        };
        let mut names: BTreeSet<&String> = self.agents.iter().collect();
        names.extend(self.agent_errors.keys());
        let agents = names
            .into_iter()
            .map(|agent| {
                let state = match self.agent_errors.get(agent) {
                    Some(f) if self.skipped.contains(agent) => AgentState::Skipped(f.clone()),
                    Some(f) => AgentState::Failed(f.clone()),
                    None => AgentState::Converged,
                };
                (agent.clone(), state)
            })
            .collect();
        let wall = |t: &Option<SystemTime>| {
            t.map(|t| {
                Stamp {
                    at: Instant::now(),
                    wall: t,
                }
                .rfc3339()
            })
        };
        PageView {
            source: self.source.clone(),
            ready,
            reasons,
            fetched: self.fetched.clone(),
            applied: self.applied.clone(),
            last_fetch: attempt(&self.last_fetch),
            last_reconcile: attempt(&self.last_reconcile),
            agents,
            next_poll: wall(&self.next_poll),
            next_resync: wall(&self.next_resync),
            rejected: self.rejected.clone(),
        }
    }

    pub fn fetch_ok(&mut self, revision: &str) {
        let stamp = Stamp::now();
        self.fetched = Some(revision.to_owned());
        self.last_fetch = Some(Attempt { stamp, error: None });
        self.last_fetch_ok = Some(stamp);
    }

    pub fn fetch_failed(&mut self, error: &Explained) {
        self.last_fetch = Some(Attempt {
            stamp: Stamp::now(),
            error: Some(error.clone()),
        });
    }

    /// The fetched commit is refused; the applied one stays.
    pub fn rejected(&mut self, revision: &str, reason: &str) {
        self.rejected = Some((revision.to_owned(), reason.to_owned()));
    }

    pub fn accepted(&mut self) {
        self.rejected = None;
    }

    /// Records a reconcile. A cycle (not a resync batch) replaces the run's error; a cycle
    /// that looked at every agent replaces every agent's error, any other run only the
    /// errors of the agents it checked.
    pub fn reconciled(&mut self, report: &RunReport, cycle: bool) {
        let stamp = Stamp::now();
        if cycle {
            self.run_error = report.error.clone();
        }
        if cycle && report.unrefreshed == 0 {
            self.agent_errors.clear();
        } else {
            for agent in &report.checked {
                self.agent_errors.remove(agent);
            }
        }
        self.agent_errors.extend(
            report
                .agent_errors
                .iter()
                .map(|(a, e)| (a.clone(), e.clone())),
        );
        self.applied = Some(report.revision.clone());
        self.timed_out = report.timed_out.clone();
        let error = if report.ok() {
            None
        } else {
            Some(summary(report))
        };
        if error.is_none() {
            self.last_reconcile_ok = Some(stamp);
        }
        self.last_reconcile = Some(Attempt { stamp, error });
    }

    /// A cycle found nothing new to apply: the last reconcile's result still holds, now.
    pub fn up_to_date(&mut self) {
        if let Some(last) = &mut self.last_reconcile {
            let stamp = Stamp::now();
            last.stamp = stamp;
            if last.error.is_none() {
                self.last_reconcile_ok = Some(stamp);
            }
        }
    }

    pub fn shutting_down(&mut self) {
        self.shutting_down = true;
    }

    pub fn agent_errors(&self) -> &BTreeMap<String, AgentFailure> {
        &self.agent_errors
    }

    /// Agents whose standing error is terminal: they wait for a new commit, a config change
    /// or SIGHUP, and are left out of drift resyncs until then.
    pub fn terminal_agents(&self) -> impl Iterator<Item = &String> {
        self.agent_errors
            .iter()
            .filter(|(_, f)| f.class == ErrorClass::Terminal)
            .map(|(a, _)| a)
    }

    /// Whether the daemon is ready, and the JSON body of `/readyz`.
    pub fn readiness(&self) -> (bool, Value) {
        let now = Instant::now();
        let window = self.interval.saturating_mul(2);
        let fresh =
            |s: &Option<Stamp>| s.is_some_and(|s| now.saturating_duration_since(s.at) <= window);
        let mut reasons: Vec<String> = Vec::new();
        if self.shutting_down {
            reasons.push("shutting down".into());
        }
        match &self.last_fetch {
            None => reasons.push("no fetch yet".into()),
            Some(Attempt { error: Some(e), .. }) => reasons.push(format!("last fetch failed: {e}")),
            Some(_) if !fresh(&self.last_fetch_ok) => {
                reasons.push("no successful fetch within twice the interval".into())
            }
            Some(_) => {}
        }
        match &self.last_reconcile {
            None => reasons.push("no reconcile yet".into()),
            Some(Attempt { error: Some(_), .. }) => {}
            Some(_) if !fresh(&self.last_reconcile_ok) => {
                reasons.push("no successful reconcile within twice the interval".into())
            }
            Some(_) => {}
        }
        if let Some(e) = &self.run_error {
            reasons.push(format!("reconcile failed: {e}"));
        }
        if let Some(t) = &self.timed_out {
            reasons.push(format!("last reconcile timed out: {t}"));
        }
        for (agent, failure) in &self.agent_errors {
            let waiting = match failure.class {
                ErrorClass::Terminal => {
                    " (terminal: waiting for a new commit, a config change or SIGHUP)"
                }
                ErrorClass::Transient => " (transient: retrying with backoff)",
            };
            reasons.push(format!("agent {agent}{waiting}: {}", failure.message));
        }
        if let Some((commit, reason)) = &self.rejected {
            reasons.push(format!("commit {commit} not applied: {reason}"));
        }
        let ready = reasons.is_empty();
        let body = json!({
            "format_version": READYZ_FORMAT_VERSION,
            "ready": ready,
            "reasons": reasons,
            "source": self.source,
            "fetched_revision": self.fetched,
            "applied_revision": self.applied,
            "last_fetch": self.last_fetch.as_ref().map(Attempt::json),
            "last_successful_fetch": self.last_fetch_ok.as_ref().map(Stamp::rfc3339),
            "last_reconcile": self.last_reconcile.as_ref().map(Attempt::json),
            "last_successful_reconcile": self.last_reconcile_ok.as_ref().map(Stamp::rfc3339),
            "agents": self
                .agent_errors
                .iter()
                .map(|(a, f)| (a.clone(), f.message.clone()))
                .collect::<BTreeMap<_, _>>(),
            "agent_errors": self
                .agent_errors
                .iter()
                .map(|(a, f)| (a.clone(), json!({ "message": f.message, "class": f.class, "hint": f.hint })))
                .collect::<serde_json::Map<_, _>>(),
            "rejected_commit": self.rejected.as_ref().map(|(c, r)| json!({"commit": c, "reason": r})),
        });
        (ready, body)
    }
}

fn summary(report: &RunReport) -> Explained {
    if let Some(e) = &report.error {
        return e.clone();
    }
    if report.cancelled {
        return "interrupted by shutdown".into();
    }
    if let Some(t) = &report.timed_out {
        return format!("timed out: {t}").into();
    }
    let agents: Vec<&str> = report.agent_errors.keys().map(String::as_str).collect();
    format!("{} agent(s) failed: {}", agents.len(), agents.join(", ")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(errors: &[(&str, &str)]) -> RunReport {
        RunReport {
            revision: "c1".into(),
            checked: vec!["a".into(), "b".into()],
            agent_errors: errors
                .iter()
                .map(|(a, e)| (a.to_string(), AgentFailure::new(*e, ErrorClass::Terminal)))
                .collect(),
            ..RunReport::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_after_a_good_fetch_and_reconcile_until_twice_the_interval_passes() {
        let mut s = Status::new("file:///x".into(), Duration::from_secs(60));
        assert!(!s.readiness().0);
        s.fetch_ok("c1");
        s.reconciled(&report(&[]), true);
        let (ready, body) = s.readiness();
        assert!(ready, "{body}");
        assert_eq!(body["applied_revision"], "c1");
        tokio::time::advance(Duration::from_secs(121)).await;
        let (ready, body) = s.readiness();
        assert!(!ready);
        assert!(
            body["reasons"].to_string().contains("twice the interval"),
            "{body}"
        );
        // A cycle that finds nothing new refreshes both.
        s.fetch_ok("c1");
        s.up_to_date();
        assert!(s.readiness().0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_agent_makes_it_unready_and_names_the_agent_until_fixed() {
        let mut s = Status::new("x".into(), Duration::from_secs(60));
        s.fetch_ok("c1");
        s.reconciled(&report(&[("a", "manifest does not decrypt")]), true);
        let (ready, body) = s.readiness();
        assert!(!ready);
        assert_eq!(body["agents"]["a"], "manifest does not decrypt");
        assert_eq!(body["agent_errors"]["a"]["class"], "terminal");
        assert!(
            body["reasons"][0]
                .as_str()
                .unwrap()
                .contains("waiting for a new commit, a config change or SIGHUP"),
            "{body}"
        );
        assert_eq!(s.terminal_agents().collect::<Vec<_>>(), ["a"]);
        // A cycle that finds the same commit keeps the error.
        s.up_to_date();
        assert!(!s.readiness().0);
        s.fetch_ok("c2");
        s.reconciled(&report(&[]), true);
        assert!(s.readiness().0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resync_batch_replaces_only_the_errors_of_the_agents_it_checked() {
        let mut s = Status::new("x".into(), Duration::from_secs(60));
        s.fetch_ok("c1");
        s.reconciled(&report(&[("a", "bad"), ("z", "bad too")]), true);
        let batch = RunReport {
            revision: "c1".into(),
            checked: vec!["a".into()],
            ..RunReport::default()
        };
        s.reconciled(&batch, false);
        let (_, body) = s.readiness();
        assert!(body["agents"].get("a").is_none(), "{body}");
        assert_eq!(body["agents"]["z"], "bad too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_cycle_makes_it_unready_until_a_run_finishes_in_time() {
        let mut s = Status::new("x".into(), Duration::from_secs(60));
        s.fetch_ok("c1");
        let cut = RunReport {
            timed_out: Some("the cycle's deadline (2s) passed; not finished: listing a".into()),
            agent_errors: [(
                "a".to_owned(),
                AgentFailure::new(
                    "cancelled: the run's deadline (2s) passed",
                    ErrorClass::Transient,
                ),
            )]
            .into(),
            ..report(&[])
        };
        s.reconciled(&cut, true);
        let (ready, body) = s.readiness();
        assert!(!ready);
        assert!(
            body["reasons"]
                .to_string()
                .contains("last reconcile timed out: the cycle's deadline (2s) passed"),
            "{body}"
        );
        assert_eq!(body["agent_errors"]["a"]["class"], "transient");
        assert!(
            body["last_reconcile"]["error"]
                .as_str()
                .unwrap()
                .starts_with("timed out"),
            "{body}"
        );
        s.reconciled(&report(&[]), true);
        assert!(s.readiness().0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_commit_or_a_failed_fetch_makes_it_unready() {
        let mut s = Status::new("x".into(), Duration::from_secs(60));
        s.fetch_ok("c1");
        s.reconciled(&report(&[]), true);
        s.rejected("c2", "commit c2 is not signed");
        let (ready, body) = s.readiness();
        assert!(!ready);
        assert_eq!(body["rejected_commit"]["commit"], "c2");
        s.accepted();
        assert!(s.readiness().0);
        s.fetch_failed(&"connection refused".into());
        let (ready, body) = s.readiness();
        assert!(!ready);
        assert_eq!(body["last_fetch"]["error"], "connection refused");
    }
}
