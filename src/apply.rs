//! Executes a [`Plan`]: per agent, every set, then every delete, then one list to verify,
//! then (when the plan says so) one redeploy.
//!
//! Apply decides nothing: the plan did. It records state only for writes that landed *and*
//! were seen by the verifying list, and it saves the state after each agent so a run killed
//! half-way loses at most the agent in flight (whose keys are then re-set next time, which is
//! safe: sets are idempotent). One agent failing never stops the others. Failures keep their
//! [`PlatformError`] and so their class (transient or terminal) up to the report.

mod converged;
mod record;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use converged::{converged_from, forget_before_writing, record_converged};

use crate::history;
use crate::load::Loaded;
use crate::plan::{Action, AgentPlan, Change, DesiredSecrets, Plan};
use crate::platform::batch::{Batch, BatchResult, Written};
use crate::platform::{ErrorClass, Platform, PlatformError, RemoteKey};
use crate::secret::SecretValue;
use crate::source::inputs::RunInputs;
use crate::state::{AppliedFrom, State};

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Agents applied at once (they share the platform client and its rate limiter).
    pub concurrency: usize,
    /// The source revision recorded with each write (a commit id, or `worktree`).
    pub revision: Option<String>,
    /// What each agent is being applied from: recorded in the state, in the same save as its
    /// verified writes (or its redeploy), once every part of the agent's work has landed.
    pub converged: BTreeMap<String, AppliedFrom>,
}

/// Why a change did not land.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FailReason {
    /// The platform refused or failed the call.
    #[error(transparent)]
    Platform(PlatformError),
    /// Shutdown came first.
    #[error("not attempted: shutting down")]
    ShuttingDown,
    /// A delete waits because a set of the same agent failed (a renamed key must never go
    /// missing).
    #[error("not attempted: a set for this agent failed, so deletes wait for the next run")]
    AfterFailedSet,
    /// The call succeeded but the verifying list failed.
    #[error("not verified")]
    NotVerified,
    /// A delete succeeded but the key is still listed.
    #[error("still present after delete")]
    StillPresent,
    /// A set succeeded but the key is not listed.
    #[error("not listed after set")]
    NotListed,
    /// A bug: the plan sets a key the desired state does not hold.
    #[error("internal error: no desired value")]
    NoDesiredValue,
}

impl FailReason {
    /// The class of this failure alone; `None` for changes that were merely not attempted
    /// (their agent's other failures carry the class).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            FailReason::Platform(e) => Some(e.class()),
            FailReason::ShuttingDown | FailReason::AfterFailedSet => None,
            // The platform may be slow to show a write: looking again may settle it.
            FailReason::NotVerified | FailReason::StillPresent | FailReason::NotListed => {
                Some(ErrorClass::Transient)
            }
            FailReason::NoDesiredValue => Some(ErrorClass::Terminal),
        }
    }

    pub fn platform_error(&self) -> Option<&PlatformError> {
        match self {
            FailReason::Platform(e) => Some(e),
            _ => None,
        }
    }
}

/// A change that did not land, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub change: Change,
    pub reason: FailReason,
}

/// An agent-level failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The verifying list failed.
    #[error("could not verify {pending} change(s): {error}; they will be checked again next run")]
    Verify {
        pending: usize,
        error: PlatformError,
    },
    /// The state file could not be written (its message names the file).
    #[error("changes landed but the state was not saved: {message}")]
    StateNotSaved { message: String },
    /// The agent's task panicked (a bug).
    #[error("internal error while applying: {message}")]
    Internal { message: String },
    /// The apply history could not be appended to (its message names the file).
    #[error("changes were sent but not recorded in the history: {message}")]
    HistoryNotWritten { message: String },
}

impl AgentError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AgentError::Verify { error, .. } => error.class(),
            // A full disk or a busy file may be fine next time.
            AgentError::StateNotSaved { .. } | AgentError::HistoryNotWritten { .. } => {
                ErrorClass::Transient
            }
            AgentError::Internal { .. } => ErrorClass::Terminal,
        }
    }

    pub fn platform_error(&self) -> Option<&PlatformError> {
        match self {
            AgentError::Verify { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What became of an agent's redeploy.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeployed {
    /// `POST …/redeploy` succeeded.
    Done,
    /// It failed; the secrets stay applied and the next run redeploys again.
    Failed(PlatformError),
    /// Not sent because some of the agent's changes did not land; owed to the next run.
    Postponed,
}

/// What happened to one agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentResult {
    pub agent: String,
    /// Changes that landed and were verified.
    pub applied: Vec<Change>,
    /// Changes that failed, were not verified, or were not attempted.
    pub failed: Vec<Failed>,
    /// An agent-level error (verification list failed, state not saved, internal).
    pub error: Option<AgentError>,
    /// The redeploy, when the plan asked for one.
    pub redeploy: Option<Redeployed>,
}

impl AgentResult {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
            && self.error.is_none()
            && !matches!(
                self.redeploy,
                Some(Redeployed::Failed(_) | Redeployed::Postponed)
            )
    }

    /// The class of this agent's failure: transient when any part of it is, so a retry is
    /// scheduled; terminal when every failure needs a person; `None` when nothing failed.
    pub fn class(&self) -> Option<ErrorClass> {
        if self.ok() {
            return None;
        }
        let classes = self
            .failed
            .iter()
            .filter_map(|f| f.reason.class())
            .chain(self.error.iter().map(AgentError::class))
            .chain(match &self.redeploy {
                Some(Redeployed::Failed(e)) => Some(e.class()),
                _ => None,
            });
        // Only "not attempted" entries (shutdown): the next run will try them.
        Some(classes.min().unwrap_or(ErrorClass::Transient))
    }

    /// What to do about this agent's failure: the hint of its first platform error.
    pub fn hint(&self) -> Option<String> {
        use crate::hint::Hinted as _;
        self.first_platform_error()
            .and_then(|e| e.hint())
            .map(Into::into)
    }

    /// The first platform error behind this agent's failure, for its hint.
    pub fn first_platform_error(&self) -> Option<&PlatformError> {
        self.failed
            .iter()
            .find_map(|f| f.reason.platform_error())
            .or_else(|| self.error.as_ref().and_then(AgentError::platform_error))
            .or(match &self.redeploy {
                Some(Redeployed::Failed(e)) => Some(e),
                _ => None,
            })
    }
}

/// The outcome of an apply, one entry per agent that had work, in slug order.
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
    /// Before the first write: the agents with work and the requests they take (see
    /// [`request_count`]).
    fn started(&self, _agents: usize, _requests: usize) {}
    /// One of those requests ended, landed or not.
    fn request_done(&self) {}
    /// One agent is finished; `requests` is how many of the requests announced by
    /// [`Progress::started`] were its own (they have all ended now, landed or not).
    fn agent_done(&self, _result: &AgentResult, _requests: usize) {}
}

/// Progress that nobody watches (the daemon, tests).
pub struct NoProgress;

impl Progress for NoProgress {}

/// The requests applying `plan` takes when everything lands: per agent with work, every set
/// and delete, one verifying list when it has key changes, and one redeploy when the plan
/// asks for it. (Requests that are not attempted, such as deletes after a failed set, leave
/// the count short; the rate limiter's retries are not counted.)
pub fn request_count(plan: &Plan) -> usize {
    plan.agents.iter().map(agent_requests).sum()
}

/// The requests one agent's apply takes: its writes, a verifying list when it has changes,
/// and its redeploy; none when it has no work.
fn agent_requests(agent: &AgentPlan) -> usize {
    if !agent.has_work() {
        return 0;
    }
    let verify = usize::from(agent.has_changes());
    let redeploy = usize::from(agent.redeploy.is_some());
    agent.changes.len() + verify + redeploy
}

/// Where a landing is recorded: the run's inputs and the agents it loaded (for what each agent
/// converges from), the revision and the platform's id (the state's key).
pub struct Recording<'a> {
    pub inputs: &'a RunInputs,
    pub loaded: &'a Loaded,
    pub revision: &'a str,
    pub platform: &'a str,
}

/// Applies `plan` with the state kept in step: forgets what the agents with work converged
/// from (a run killed half-way must not take them for unchanged), applies (recording each
/// agent's verified writes and what it converged from), then records what the agents without
/// work converged from. Returns the report and why the state could not be saved, if it could
/// not.
pub async fn apply_recorded(
    plan: &Plan,
    recording: Recording<'_>,
    platform: Arc<dyn Platform>,
    state: Arc<Mutex<State>>,
    concurrency: usize,
    cancel: &CancellationToken,
    progress: Arc<dyn Progress>,
) -> (ApplyReport, Option<String>) {
    let Recording {
        inputs,
        loaded,
        revision,
        platform: platform_id,
    } = recording;
    let current = inputs.with_groups_used(loaded.groups_used());
    let mut warning = None;
    let report = if plan.has_changes() {
        warning = forget_before_writing(plan, &state, platform_id).await;
        let options = ApplyOptions {
            concurrency,
            revision: Some(revision.to_owned()),
            converged: converged_from(plan, &current, revision),
        };
        let desired = loaded.ok_secrets();
        apply(
            plan,
            &desired,
            platform,
            state.clone(),
            &options,
            cancel,
            progress,
        )
        .await
    } else {
        ApplyReport::default()
    };
    let recorded = record_converged(plan, &current, &state, platform_id, revision).await;
    (report, recorded.or(warning))
}

/// Applies every agent of `plan` that has work (changes or a redeploy). `desired` must hold
/// the values of every key the plan sets. `progress` hears of each request and agent as it
/// finishes. Each agent's changes and redeploy are appended to the history next to the state
/// as soon as the agent is done (`history`).
pub async fn apply(
    plan: &Plan,
    desired: &BTreeMap<String, DesiredSecrets>,
    platform: Arc<dyn Platform>,
    state: Arc<Mutex<State>>,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    progress: Arc<dyn Progress>,
) -> ApplyReport {
    progress.started(
        plan.agents.iter().filter(|a| a.has_work()).count(),
        request_count(plan),
    );
    let history_path = history::path_for_state(state.lock().await.path());
    let history_ctx = history::Context {
        commit: options.revision.clone(),
        platform: platform.id().to_owned(),
    };
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for agent_plan in plan.agents.iter().filter(|a| a.has_work()) {
        let agent_plan = agent_plan.clone();
        let values = desired.get(&agent_plan.agent).cloned().unwrap_or_default();
        let platform = platform.clone();
        let state = state.clone();
        let permits = permits.clone();
        let revision = options.revision.clone();
        let converged = options.converged.get(&agent_plan.agent).cloned();
        let cancel = cancel.clone();
        let progress = progress.clone();
        let requests = agent_requests(&agent_plan);
        tasks.spawn(async move {
            // The semaphore is never closed, so acquire cannot fail.
            let _permit = permits.acquire_owned().await;
            let sent = Sent {
                platform: platform.as_ref(),
                progress: progress.as_ref(),
            };
            let record = Record {
                state: &state,
                revision: revision.as_deref(),
                converged: converged.as_ref(),
            };
            let result = apply_agent(&agent_plan, &values, sent, record, &cancel).await;
            (result, requests)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (result, requests) = match joined {
            Ok((mut r, requests)) => {
                // Appended here, one agent at a time, by the process that holds the state
                // lock: no two batches interleave.
                let entries = record::entries(&r, &history_ctx, &history::now());
                if let Err(e) = history::append(&history_path, &entries) {
                    r.error.get_or_insert(AgentError::HistoryNotWritten {
                        message: e.to_string(),
                    });
                }
                (r, requests)
            }
            // A panic inside an agent task is a bug; report it as that agent's failure
            // rather than taking the other agents down.
            Err(e) => {
                let result = AgentResult {
                    agent: "<unknown>".into(),
                    error: Some(AgentError::Internal {
                        message: e.to_string(),
                    }),
                    ..AgentResult::default()
                };
                (result, 0)
            }
        };
        progress.agent_done(&result, requests);
        results.push(result);
    }
    results.sort_by(|a, b| a.agent.cmp(&b.agent));
    ApplyReport { agents: results }
}

/// Where an agent's outcome is recorded.
#[derive(Clone, Copy)]
struct Record<'a> {
    state: &'a Mutex<State>,
    revision: Option<&'a str>,
    /// What the agent converges from once all its work lands ([`ApplyOptions::converged`]).
    converged: Option<&'a AppliedFrom>,
}

impl Record<'_> {
    /// Records what the agent converged from, when all of its work has landed.
    fn converged(&self, state: &mut State, platform_id: &str, agent: &str, result: &AgentResult) {
        if let Some(from) = self.converged
            && result.failed.is_empty()
            && result.error.is_none()
        {
            state.record_applied_from(platform_id, agent, from.clone());
        }
    }
}

async fn apply_agent(
    plan: &AgentPlan,
    values: &DesiredSecrets,
    sent: Sent<'_>,
    record: Record<'_>,
    cancel: &CancellationToken,
) -> AgentResult {
    let Sent { platform, progress } = sent;
    let agent = plan.agent.as_str();
    let mut result = AgentResult {
        agent: agent.to_owned(),
        ..AgentResult::default()
    };
    let landed = write_changes(plan, values, platform, cancel, progress, &mut result).await;
    if !landed.is_empty() {
        verify(plan, values, sent, record, landed, &mut result).await;
    }
    if plan.redeploy.is_some() {
        redeploy(agent, sent, record, cancel, &mut result).await;
    }
    result
}

/// The platform and who hears of each request sent to it.
#[derive(Clone, Copy)]
struct Sent<'a> {
    platform: &'a dyn Platform,
    progress: &'a dyn Progress,
}

/// Sends the sets, then the deletes; returns the changes the platform accepted.
async fn write_changes(
    plan: &AgentPlan,
    values: &DesiredSecrets,
    platform: &dyn Platform,
    cancel: &CancellationToken,
    progress: &dyn Progress,
    result: &mut AgentResult,
) -> Vec<Change> {
    let agent = plan.agent.as_str();
    let mut landed: Vec<Change> = Vec::new();
    let fail = |result: &mut AgentResult, change: &Change, reason: FailReason| {
        result.failed.push(Failed {
            change: change.clone(),
            reason,
        })
    };
    // Sets without a desired value fail here; the rest go to the platform as one batch
    // (one call per key over HTTP, one transaction in the embedded store).
    let mut sets: Vec<(&Change, &SecretValue)> = Vec::new();
    for change in plan.sets() {
        match values.get(&change.key) {
            Some(value) => sets.push((change, value)),
            None => fail(result, change, FailReason::NoDesiredValue),
        }
    }
    // A delete after a failed set could leave a renamed key missing altogether.
    let deletes: Vec<&Change> = if result.failed.is_empty() {
        plan.deletes().collect()
    } else {
        for change in plan.deletes() {
            fail(result, change, FailReason::AfterFailedSet);
        }
        Vec::new()
    };
    let set_keys: Vec<(&str, &SecretValue)> =
        sets.iter().map(|(c, v)| (c.key.as_str(), *v)).collect();
    let delete_keys: Vec<&str> = deletes.iter().map(|c| c.key.as_str()).collect();
    let sent = || progress.request_done();
    let batch = Batch {
        sets: &set_keys,
        deletes: &delete_keys,
        sent: &sent,
    };
    let written = if set_keys.is_empty() && delete_keys.is_empty() {
        BatchResult::default()
    } else {
        platform.write_batch(agent, batch, cancel).await
    };
    // Every write gets an outcome; one a platform did not report is unknown, so it is
    // treated as a reply castsync could not read (checked again next run).
    let unknown = || {
        Written::Failed(PlatformError::Protocol {
            detail: "the platform reported no outcome for this write".to_owned(),
        })
    };
    let pad = |w: Vec<Written>| w.into_iter().chain(std::iter::repeat_with(unknown));
    let outcomes = (sets.iter().map(|(c, _)| *c).zip(pad(written.sets)))
        .chain(deletes.iter().copied().zip(pad(written.deletes)));
    for (change, outcome) in outcomes {
        match outcome {
            Written::Landed => landed.push(change.clone()),
            Written::Failed(e) => fail(result, change, FailReason::Platform(e)),
            Written::Cancelled => fail(result, change, FailReason::ShuttingDown),
            Written::HeldBack => fail(result, change, FailReason::AfterFailedSet),
        }
    }
    landed
}

/// One list to confirm the changes that landed; records the confirmed ones and saves the
/// state.
async fn verify(
    plan: &AgentPlan,
    values: &DesiredSecrets,
    sent: Sent<'_>,
    record: Record<'_>,
    landed: Vec<Change>,
    result: &mut AgentResult,
) {
    let Sent { platform, progress } = sent;
    let revision = record.revision;
    let agent = plan.agent.as_str();
    let listed = platform.list(agent).await;
    progress.request_done();
    let listed = match listed {
        Ok(listing) => listing.keys,
        Err(error) => {
            result.error = Some(AgentError::Verify {
                pending: landed.len(),
                error,
            });
            for change in landed {
                result.failed.push(Failed {
                    change,
                    reason: FailReason::NotVerified,
                });
            }
            return;
        }
    };
    let present: BTreeMap<&str, &RemoteKey> = listed.iter().map(|k| (k.key.as_str(), k)).collect();

    let mut state = record.state.lock().await;
    let platform_id = platform.id().to_owned();
    for change in landed {
        match (change.action, present.get(change.key.as_str())) {
            (Action::Delete, None) => {
                state.record_delete(&platform_id, agent, &change.key);
                result.applied.push(change);
            }
            (Action::Delete, Some(_)) => result.failed.push(Failed {
                change,
                reason: FailReason::StillPresent,
            }),
            (_, Some(remote)) => {
                if let Some(value) = values.get(&change.key) {
                    // Without a listed timestamp (the SDK's shape) there is nothing to
                    // compare later: value drift is then invisible, and the plan says so.
                    state.record_set(
                        &platform_id,
                        agent,
                        &change.key,
                        value,
                        remote.last_write().map(str::to_owned),
                        revision,
                    );
                }
                result.applied.push(change);
            }
            (_, None) => result.failed.push(Failed {
                change,
                reason: FailReason::NotListed,
            }),
        }
    }
    if plan.redeploy.is_some() && !result.applied.is_empty() {
        // Owed until a redeploy succeeds, even if this process dies before sending it.
        state.mark_redeploy_pending(&platform_id, agent);
    } else if plan.redeploy.is_none() {
        record.converged(&mut state, &platform_id, agent, result);
    }
    if let Err(e) = state.save() {
        result.error = Some(AgentError::StateNotSaved {
            message: e.to_string(),
        });
    }
}

/// The redeploy the plan asked for: sent only when every change of the agent landed and was
/// verified; otherwise owed to the next run. The outcome is kept in the state.
async fn redeploy(
    agent: &str,
    sent: Sent<'_>,
    record: Record<'_>,
    cancel: &CancellationToken,
    result: &mut AgentResult,
) {
    let Sent { platform, progress } = sent;
    let state = record.state;
    let platform_id = platform.id().to_owned();
    if !result.failed.is_empty() || result.error.is_some() || cancel.is_cancelled() {
        if !result.applied.is_empty() {
            let mut state = state.lock().await;
            state.mark_redeploy_pending(&platform_id, agent);
            if let Err(e) = state.save() {
                result.error.get_or_insert(AgentError::StateNotSaved {
                    message: e.to_string(),
                });
            }
        }
        result.redeploy = Some(Redeployed::Postponed);
        return;
    }
    let outcome = platform.redeploy(agent).await;
    progress.request_done();
    let mut state = state.lock().await;
    result.redeploy = Some(match outcome {
        Ok(()) => {
            state.clear_redeploy_pending(&platform_id, agent);
            record.converged(&mut state, &platform_id, agent, result);
            Redeployed::Done
        }
        Err(e) => {
            state.mark_redeploy_pending(&platform_id, agent);
            Redeployed::Failed(e)
        }
    });
    if let Err(e) = state.save() {
        result.error = Some(AgentError::StateNotSaved {
            message: e.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RedeployReason;

    fn agent(
        name: &str,
        changes: &[(&str, Action)],
        redeploy: Option<RedeployReason>,
    ) -> AgentPlan {
        AgentPlan {
            agent: name.to_owned(),
            skipped: None,
            changes: changes
                .iter()
                .map(|(key, action)| Change::new(*key, *action))
                .collect(),
            unchanged: Vec::new(),
            drift_ignored: Vec::new(),
            kept: Vec::new(),
            unmanaged: Vec::new(),
            redeploy,
            drift_blind: false,
        }
    }

    #[test]
    fn the_request_count_covers_sets_deletes_verifying_lists_and_redeploys() {
        let plan = Plan {
            coverage: Default::default(),
            agents: vec![
                // 2 sets + 1 delete + 1 verifying list + 1 redeploy.
                agent(
                    "a",
                    &[
                        ("A1", Action::Create),
                        ("A2", Action::Replace),
                        ("A3", Action::Delete),
                    ],
                    Some(RedeployReason::Changes),
                ),
                // An owed redeploy alone: no write, so no verifying list either.
                agent("b", &[], Some(RedeployReason::Pending)),
                // 1 set + 1 verifying list.
                agent("c", &[("C1", Action::Create)], None),
                // Nothing to do: no request.
                agent("d", &[], None),
            ],
        };
        assert_eq!(request_count(&plan), 5 + 1 + 2);
    }
}
