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
use crate::platform::batch::{Batch, BatchResult, Written};
use crate::platform::{Platform, RemoteKey};
use crate::secret::SecretValue;
use crate::state::State;

/// Why a delete was not sent.
const HELD_BACK: &str =
    "not attempted: a set for this agent failed, so deletes wait for the next run";

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

/// Applies every agent of `plan` that has changes. `desired` must hold the values of every
/// key the plan sets. `on_done` is called as each agent finishes (for progress output).
pub async fn apply(
    plan: &Plan,
    desired: &BTreeMap<String, DesiredSecrets>,
    platform: Arc<dyn Platform>,
    state: Arc<Mutex<State>>,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    on_done: &(dyn Fn(&AgentResult) + Send + Sync),
) -> ApplyReport {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for agent_plan in plan.agents.iter().filter(|a| a.has_changes()) {
        let agent_plan = agent_plan.clone();
        let values = desired.get(&agent_plan.agent).cloned().unwrap_or_default();
        let platform = platform.clone();
        let state = state.clone();
        let permits = permits.clone();
        let revision = options.revision.clone();
        let cancel = cancel.clone();
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
        on_done(&result);
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

    // Sets without a desired value fail here; the rest go to the platform as one batch.
    let mut sets: Vec<(&Change, &SecretValue)> = Vec::new();
    for change in plan.sets() {
        match values.get(&change.key) {
            Some(value) => sets.push((change, value)),
            None => fail(
                &mut result,
                change,
                "internal error: no desired value".into(),
            ),
        }
    }
    // A delete after a failed set could leave a renamed key missing altogether.
    let deletes: Vec<&Change> = if result.failed.is_empty() {
        plan.deletes().collect()
    } else {
        for change in plan.deletes() {
            fail(&mut result, change, HELD_BACK.into());
        }
        Vec::new()
    };
    let set_keys: Vec<(&str, &SecretValue)> =
        sets.iter().map(|(c, v)| (c.key.as_str(), *v)).collect();
    let delete_keys: Vec<&str> = deletes.iter().map(|c| c.key.as_str()).collect();
    let batch = Batch {
        sets: &set_keys,
        deletes: &delete_keys,
    };
    let written = if set_keys.is_empty() && delete_keys.is_empty() {
        BatchResult::default()
    } else {
        platform.write_batch(agent, batch, cancel).await
    };
    // A platform that reports fewer outcomes than writes leaves the rest unconfirmed.
    let pad = |w: Vec<Written>| w.into_iter().map(Some).chain(std::iter::repeat(None));
    let outcomes = (sets.iter().map(|(c, _)| *c).zip(pad(written.sets)))
        .chain(deletes.iter().copied().zip(pad(written.deletes)));
    for (change, outcome) in outcomes {
        match outcome {
            Some(Written::Landed) => landed.push(change.clone()),
            Some(Written::Failed(e)) => fail(&mut result, change, e.to_string()),
            Some(Written::Cancelled) => {
                fail(&mut result, change, "not attempted: shutting down".into())
            }
            Some(Written::HeldBack) => fail(&mut result, change, HELD_BACK.into()),
            None => fail(
                &mut result,
                change,
                "internal error: the platform reported no outcome".into(),
            ),
        }
    }
    if landed.is_empty() {
        return result;
    }

    let listed = match platform.list(agent).await {
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
