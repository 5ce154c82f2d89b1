//! Executes a [`Plan`]: per agent, every set, then every delete, then one list to verify.
//!
//! Apply decides nothing: the plan did. It records state only for writes that landed *and*
//! were seen by the verifying list, and it saves the state after each agent so a run killed
//! half-way loses at most the agent in flight (whose keys are then re-set next time, which is
//! safe: sets are idempotent). One agent failing never stops the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::plan::{Action, AgentPlan, Change, DesiredSecrets, Plan};
use crate::platform::{Platform, RemoteKey};
use crate::state::State;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Agents applied at once (they share the platform client and its rate limiter).
    pub concurrency: usize,
    /// The source revision recorded with each write (a commit id, or `worktree`).
    pub revision: Option<String>,
}

/// A change that did not land, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub change: Change,
    pub reason: String,
}

/// What happened to one agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentResult {
    pub agent: String,
    /// Changes that landed and were verified.
    pub applied: Vec<Change>,
    /// Changes that failed, were not verified, or were not attempted.
    pub failed: Vec<Failed>,
    /// An agent-level error (verification list failed, state not saved, cancelled).
    pub error: Option<String>,
}

impl AgentResult {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.error.is_none()
    }
}

/// The outcome of an apply, one entry per agent that had changes, in slug order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyReport {
    pub agents: Vec<AgentResult>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.agents.iter().all(AgentResult::ok)
    }
}

/// What apply tells its caller as it goes (a progress bar, one line per agent). Every method
/// has a no-op default; they are called from the apply tasks, so they must be quick and must
/// never block. They see key names and counts only, never a value.
pub trait Progress: Send + Sync {
    /// Before the plan: this many agents' keys are about to be listed.
    fn listing(&self, _agents: usize) {}
    /// One agent's list ended, listed or not.
    fn listed(&self) {}
    /// Before the first write: the agents with changes and the requests they take (each
    /// set and delete, and one verifying list per agent).
    fn started(&self, _agents: usize, _requests: usize) {}
    /// One of those requests ended, landed or not.
    fn request_done(&self) {}
    /// One agent is finished.
    fn agent_done(&self, _result: &AgentResult) {}
}

/// Progress that nobody watches (the daemon, tests).
pub struct NoProgress;

impl Progress for NoProgress {}

/// The requests applying `plan` takes: every set and delete, and one verifying list per
/// agent with changes.
pub fn request_count(plan: &Plan) -> usize {
    plan.agents
        .iter()
        .filter(|a| a.has_changes())
        .map(|a| a.changes.len() + 1)
        .sum()
}

/// Applies every agent of `plan` that has changes. `desired` must hold the values of every
/// key the plan sets. `progress` hears of each request and agent as it finishes.
pub async fn apply(
    plan: &Plan,
    desired: &BTreeMap<String, DesiredSecrets>,
    platform: Arc<dyn Platform>,
    state: Arc<Mutex<State>>,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    progress: Arc<dyn Progress>,
) -> ApplyReport {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    progress.started(
        plan.agents.iter().filter(|a| a.has_changes()).count(),
        request_count(plan),
    );
    for agent_plan in plan.agents.iter().filter(|a| a.has_changes()) {
        let agent_plan = agent_plan.clone();
        let values = desired.get(&agent_plan.agent).cloned().unwrap_or_default();
        let platform = platform.clone();
        let state = state.clone();
        let permits = permits.clone();
        let revision = options.revision.clone();
        let cancel = cancel.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquire cannot fail.
            let _permit = permits.acquire_owned().await;
            apply_agent(
                &agent_plan,
                &values,
                platform.as_ref(),
                &state,
                revision.as_deref(),
                &cancel,
                progress.as_ref(),
            )
            .await
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let result = match joined {
            Ok(r) => r,
            // A panic inside an agent task is a bug; report it as that agent's failure
            // rather than taking the other agents down.
            Err(e) => AgentResult {
                agent: "<unknown>".into(),
                error: Some(format!("internal error while applying: {e}")),
                ..AgentResult::default()
            },
        };
        progress.agent_done(&result);
        results.push(result);
    }
    results.sort_by(|a, b| a.agent.cmp(&b.agent));
    ApplyReport { agents: results }
}

async fn apply_agent(
    plan: &AgentPlan,
    values: &DesiredSecrets,
    platform: &dyn Platform,
    state: &Mutex<State>,
    revision: Option<&str>,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> AgentResult {
    let agent = plan.agent.as_str();
    let mut result = AgentResult {
        agent: agent.to_owned(),
        ..AgentResult::default()
    };
    let mut landed: Vec<Change> = Vec::new();
    let fail = |result: &mut AgentResult, change: &Change, reason: String| {
        result.failed.push(Failed {
            change: change.clone(),
            reason,
        })
    };

    for change in plan.sets() {
        if cancel.is_cancelled() {
            fail(&mut result, change, "not attempted: shutting down".into());
            continue;
        }
        let Some(value) = values.get(&change.key) else {
            fail(
                &mut result,
                change,
                "internal error: no desired value".into(),
            );
            continue;
        };
        let set = platform.set(agent, &change.key, value).await;
        progress.request_done();
        match set {
            Ok(()) => landed.push(change.clone()),
            Err(e) => fail(&mut result, change, e.to_string()),
        }
    }
    // A delete after a failed set could leave a renamed key missing altogether.
    let sets_ok = result.failed.is_empty();
    for change in plan.deletes() {
        if !sets_ok {
            fail(
                &mut result,
                change,
                "not attempted: a set for this agent failed, so deletes wait for the next run"
                    .into(),
            );
            continue;
        }
        if cancel.is_cancelled() {
            fail(&mut result, change, "not attempted: shutting down".into());
            continue;
        }
        let deleted = platform.delete(agent, &change.key).await;
        progress.request_done();
        match deleted {
            Ok(()) => landed.push(change.clone()),
            Err(e) => fail(&mut result, change, e.to_string()),
        }
    }
    if landed.is_empty() {
        return result;
    }

    let listed = platform.list(agent).await;
    progress.request_done();
    let listed = match listed {
        Ok(keys) => keys,
        Err(e) => {
            result.error = Some(format!(
                "could not verify {} change(s): {e}; they will be checked again next run",
                landed.len()
            ));
            for change in landed {
                fail(&mut result, &change, "not verified".into());
            }
            return result;
        }
    };
    let present: BTreeMap<&str, &RemoteKey> = listed.iter().map(|k| (k.key.as_str(), k)).collect();

    let mut state = state.lock().await;
    let platform_id = platform.id().to_owned();
    for change in landed {
        match (change.action, present.get(change.key.as_str())) {
            (Action::Delete, None) => {
                state.record_delete(&platform_id, agent, &change.key);
                result.applied.push(change);
            }
            (Action::Delete, Some(_)) => {
                fail(&mut result, &change, "still present after delete".into())
            }
            (_, Some(remote)) => {
                if let Some(value) = values.get(&change.key) {
                    state.record_set(
                        &platform_id,
                        agent,
                        &change.key,
                        value,
                        Some(remote.last_write().to_owned()),
                        revision,
                    );
                }
                result.applied.push(change);
            }
            (_, None) => fail(&mut result, &change, "not listed after set".into()),
        }
    }
    if let Err(e) = state.save() {
        result.error = Some(format!("changes landed but the state was not saved: {e}"));
    }
    result
}
