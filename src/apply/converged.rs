//! What each agent converged from (`state::AppliedFrom`), kept in the state for runs that
//! refresh only changed agents: forgotten before an agent's first write, recorded with its
//! verified writes (by [`super::apply`]) or, for an agent listed without work, after the run.
//! Together with `apply` itself this is the only code that writes the state during a run.

use std::collections::BTreeMap;

use tokio::sync::Mutex;

use crate::plan::Plan;
use crate::source::inputs::AgentInputs;
use crate::state::{AppliedFrom, State};

/// Before the first write to an agent, forgets what it converged from: should the run die
/// half-way, the next run must not take the agent for unchanged (the platform may then hold
/// a mix of old and new values even if the source goes back to the old inputs). Returns why
/// the state could not be saved, if it could not.
pub async fn forget_before_writing(
    plan: &Plan,
    state: &Mutex<State>,
    platform: &str,
) -> Option<String> {
    let mut state = state.lock().await;
    let mut forgot = false;
    for agent in plan.agents.iter().filter(|a| a.has_work()) {
        forgot |= state.applied_from(platform, &agent.agent).is_some();
        state.forget_applied_from(platform, &agent.agent);
    }
    if !forgot {
        return None;
    }
    state.save().err().map(|e| e.to_string())
}

/// What each agent with work converges from once its work lands, for apply to record with
/// its verified writes ([`super::ApplyOptions::converged`]).
pub fn converged_from(
    plan: &Plan,
    current: &BTreeMap<String, AgentInputs>,
    revision: &str,
) -> BTreeMap<String, AppliedFrom> {
    let at = crate::state::now_rfc3339();
    plan.agents
        .iter()
        .filter(|a| a.has_work())
        .filter_map(|a| {
            let record = current.get(&a.agent)?.record(revision, &at)?;
            Some((a.agent.clone(), record))
        })
        .collect()
}

/// After a run: records what each agent without work converged from (it matched), and
/// forgets it for an agent that was skipped. Agents with work were recorded by apply when
/// all of it landed, and forgotten before it began otherwise. Saves only when a record
/// changed; returns why the state could not be saved, if it could not.
pub async fn record_converged(
    plan: &Plan,
    current: &BTreeMap<String, AgentInputs>,
    state: &Mutex<State>,
    platform: &str,
    revision: &str,
) -> Option<String> {
    let at = crate::state::now_rfc3339();
    let mut state = state.lock().await;
    let mut changed = false;
    for agent in &plan.agents {
        let name = agent.agent.as_str();
        let before = state.applied_from(platform, name);
        if agent.skipped.is_some() {
            if before.is_some() {
                state.forget_applied_from(platform, name);
                changed = true;
            }
            continue;
        }
        if agent.has_work() {
            continue;
        }
        match current.get(name).and_then(|i| i.record(revision, &at)) {
            Some(record) if before.as_ref().is_none_or(|b| !b.same_inputs(&record)) => {
                state.record_applied_from(platform, name, record);
                changed = true;
            }
            Some(_) => {}
            None if before.is_some() => {
                state.forget_applied_from(platform, name);
                changed = true;
            }
            None => {}
        }
    }
    if !changed {
        return None;
    }
    state.save().err().map(|e| e.to_string())
}
