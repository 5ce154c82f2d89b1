//! One reconcile: load (source → desired) → observe (list the platform) → plan → apply. The
//! CLI's `reconcile` and the daemon both call [`reconcile`]; they differ only in *when* they
//! call it and how they report.
//!
//! Asked to refresh only what changed ([`Request::changed`]), it first compares each agent's
//! inputs with a baseline (`incremental`) and loads, lists and plans only the agents that
//! changed; the plan's coverage names the rest. After an apply it records, per agent that
//! converged, what it converged from, and forgets that record for an agent that failed, so
//! the next run refreshes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, AgentResult, ApplyOptions, ApplyReport};
use crate::config::Config;
use crate::crypto::Identities;
use crate::incremental::{self, Baseline, Selection};
use crate::observe;
use crate::plan::{self, CoverageMode, LastApplied, Plan, Policy, Replace, RevisionBaseline};
use crate::platform::Platform;
use crate::source::Checkout;
use crate::source::inputs::{self, AgentInputs, Overrides};
use crate::source::load::{self, LoadError, Loaded};
use crate::state::State;

/// What a run that refreshes only changed agents compares with.
pub enum ChangedSince<'a> {
    /// What the state recorded for each agent when it last converged.
    State,
    /// The inputs at another revision (`--since REF`): its checkout, or why its
    /// `castsync.yaml` cannot be read (then every agent is refreshed).
    Revision(Result<&'a Checkout, String>),
}

/// Everything one reconcile needs.
pub struct Request<'a> {
    /// The manifests, and the config they are judged by.
    pub checkout: &'a Checkout,
    /// `--base`: the checkout whose values count as last applied (instead of the state),
    /// judged by its own config.
    pub base: Option<&'a Checkout>,
    pub identities: &'a Identities,
    pub platform: Arc<dyn Platform>,
    /// The state, shared with apply (which saves it after each agent).
    pub state: Arc<Mutex<State>>,
    /// The plan's rules. Its `redeploy` set is filled here from the config and
    /// [`Request::redeploy`], once the agents are known.
    pub policy: Policy,
    /// `--redeploy` (true) / `--no-redeploy` (false) over the config's `redeploy`.
    pub redeploy: Option<bool>,
    /// `--no-prune` (already applied to `policy`; recorded with each agent's inputs).
    pub no_prune: bool,
    /// Only these agents (empty: all declared agents).
    pub only: BTreeSet<String>,
    /// Refresh only the agents whose inputs changed since this baseline (`--changed`);
    /// `None` refreshes every agent of the run.
    pub changed: Option<ChangedSince<'a>>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub cancel: CancellationToken,
}

/// What one reconcile found and did.
pub struct Outcome {
    pub loaded: Loaded,
    pub plan: Plan,
    /// `None` for a dry run.
    pub report: Option<ApplyReport>,
    pub revision: String,
    /// The state could not be saved after the run (what each agent converged from is then
    /// not remembered, and the next `--changed` run refreshes those agents again).
    pub state_warning: Option<String>,
}

impl Outcome {
    /// True when every agent loaded, listed and applied without error.
    pub fn ok(&self) -> bool {
        !self.plan.has_skips() && self.report.as_ref().is_none_or(ApplyReport::ok)
    }
}

/// A reconcile that could not start; nothing was sent.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `--replace AGENT/KEY` or `--replace-all AGENT` names something the source lacks.
    #[error("{flag} {target}: {problem}\n  hint: {fix}")]
    ReplaceTarget {
        flag: &'static str,
        target: String,
        problem: String,
        fix: String,
    },
}

/// Refuses `--replace`/`--replace-all` targets that are not in the run: a mistyped target
/// must fail rather than rewrite nothing. An agent whose manifest failed to load is skipped
/// anyway, so its keys cannot be checked and are accepted.
fn check_replace(replace: &Replace, loaded: &Loaded) -> Result<(), ReconcileError> {
    let known = || loaded.agents.keys().cloned().collect::<Vec<_>>().join(", ");
    for agent in &replace.agents {
        if !loaded.agents.contains_key(agent) {
            return Err(ReconcileError::ReplaceTarget {
                flag: "--replace-all",
                target: agent.clone(),
                problem: "no such agent in this run".to_owned(),
                fix: format!("agents in this run: {}", known()),
            });
        }
    }
    for (agent, key) in &replace.keys {
        let target = format!("{agent}/{key}");
        let Some(load) = loaded.agents.get(agent) else {
            return Err(ReconcileError::ReplaceTarget {
                flag: "--replace",
                target,
                problem: "no such agent in this run".to_owned(),
                fix: format!("agents in this run: {}", known()),
            });
        };
        if let Some(manifest) = &load.manifest
            && !manifest.secrets.contains_key(key)
        {
            return Err(ReconcileError::ReplaceTarget {
                flag: "--replace",
                target,
                problem: format!("agent {agent} declares no key {key}"),
                fix: format!("`castsync show {agent}` lists its keys"),
            });
        }
    }
    Ok(())
}

/// Runs one reconcile. `on_done` is called as each agent's apply finishes.
pub async fn reconcile(
    req: Request<'_>,
    on_done: &(dyn Fn(&AgentResult) + Send + Sync),
) -> Result<Outcome, ReconcileError> {
    let checkout = req.checkout;
    let overrides = Overrides {
        no_prune: req.no_prune,
        redeploy: req.redeploy,
    };
    let candidates = candidates(checkout, &req.only)?;
    let current = inputs::of_agents(checkout.tree(), &checkout.config, overrides, &candidates);
    let selection = select(&req, &candidates, &current, overrides).await;
    let loaded = match selection.coverage.mode {
        CoverageMode::Full => {
            load::load_all(checkout.tree(), &checkout.config, req.identities, &req.only)?
        }
        // Only the changed agents are decrypted; none changed, nothing is read.
        CoverageMode::Changed if selection.refresh.is_empty() => Loaded {
            agents: BTreeMap::new(),
        },
        CoverageMode::Changed => load::load_all(
            checkout.tree(),
            &checkout.config,
            req.identities,
            &selection.refresh,
        )?,
    };
    check_replace(&req.policy.replace, &loaded)?;
    let mut policy = req.policy;
    policy.redeploy = loaded
        .agents
        .keys()
        .filter(|agent| inputs::redeploys(&checkout.config, overrides, agent))
        .cloned()
        .collect();
    let baseline = match req.base {
        Some(base) => {
            // An agent that fails to load at the base has no baseline: its keys show as
            // `unverified`, never as in sync.
            let base = load::load_all(base.tree(), &base.config, req.identities, &req.only)?;
            Some(RevisionBaseline(base.ok_secrets()))
        }
        None => None,
    };

    let listable = loaded
        .agents
        .iter()
        .filter(|(_, a)| a.failure().is_none())
        .map(|(slug, _)| slug.clone());
    let actual = observe::list_agents(req.platform.clone(), listable, req.concurrency).await;

    let desired = loaded.desired_or_reasons();
    let mut plan = {
        let state = req.state.lock().await;
        let view = state.view(req.platform.id());
        let last: &dyn LastApplied = match &baseline {
            Some(b) => b,
            None => &view,
        };
        plan::plan(&desired, &actual, last, &policy)
    };
    plan.coverage = selection.coverage;

    let revision = checkout.label();
    let mut state_warning = None;
    let report = if req.dry_run {
        None
    } else if !plan.has_changes() {
        Some(ApplyReport::default())
    } else {
        state_warning = forget_before_writing(&plan, &req.state, req.platform.id()).await;
        let options = ApplyOptions {
            concurrency: req.concurrency,
            revision: Some(revision.clone()),
        };
        Some(
            apply::apply(
                &plan,
                &loaded.ok_secrets(),
                req.platform.clone(),
                req.state.clone(),
                &options,
                &req.cancel,
                on_done,
            )
            .await,
        )
    };
    if let Some(report) = &report {
        let recorded = record_converged(
            &plan,
            report,
            &current,
            &req.state,
            req.platform.id(),
            &revision,
        )
        .await;
        state_warning = recorded.or(state_warning);
    }
    Ok(Outcome {
        loaded,
        plan,
        report,
        revision,
        state_warning,
    })
}

/// The agents of the run: `only` (each must be declared), else every declared agent.
fn candidates(checkout: &Checkout, only: &BTreeSet<String>) -> Result<Vec<String>, LoadError> {
    if only.is_empty() {
        return Ok(checkout.agents.clone());
    }
    if let Some(missing) = only.iter().find(|a| !checkout.agents.contains(a)) {
        let tree = checkout.tree();
        return Err(LoadError::UnknownAgent {
            agent: missing.clone(),
            agents_dir: tree.display(&checkout.config.agents_dir),
            known: checkout.agents.join(", "),
        });
    }
    Ok(only.iter().cloned().collect())
}

/// Which candidates this run refreshes: all of them, or (with [`Request::changed`]) those
/// whose inputs changed, plus every agent a `--replace`/`--replace-all` names.
async fn select(
    req: &Request<'_>,
    candidates: &[String],
    current: &BTreeMap<String, AgentInputs>,
    overrides: Overrides,
) -> Selection {
    let mut selection = match &req.changed {
        None => return Selection::all(candidates),
        Some(ChangedSince::State) => {
            let state = req.state.lock().await;
            let platform = req.platform.id();
            let gap = state.change_tracking_gap(platform);
            incremental::select(
                candidates,
                current,
                Baseline::State {
                    records: state.applied_from_all(platform),
                    gap: gap.as_deref(),
                },
            )
        }
        Some(ChangedSince::Revision(Err(reason))) => {
            incremental::select(candidates, current, Baseline::Unreadable { reason })
        }
        Some(ChangedSince::Revision(Ok(since))) => {
            let there: Vec<&String> = candidates
                .iter()
                .filter(|a| since.agents.contains(a))
                .collect();
            let then = inputs::of_agents(since.tree(), &since.config, overrides, there);
            incremental::select(
                candidates,
                current,
                Baseline::Revision {
                    label: &since.label(),
                    inputs: &then,
                },
            )
        }
    };
    let replace = &req.policy.replace;
    let named = replace
        .agents
        .iter()
        .chain(replace.keys.iter().map(|(agent, _)| agent));
    for agent in named {
        if candidates.contains(agent) {
            selection.refresh.insert(agent.clone());
        }
    }
    let refresh = &selection.refresh;
    selection
        .coverage
        .unrefreshed
        .retain(|a| !refresh.contains(a));
    selection
}

/// Before the first write to an agent, forgets what it converged from: should the run die
/// half-way, the next run must not take the agent for unchanged (the platform may then hold
/// a mix of old and new values even if the source goes back to the old inputs).
async fn forget_before_writing(
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

/// Records, for each agent of the plan, what it converged from; forgets it for an agent
/// that was skipped or did not fully apply (so the next run refreshes it). Saves once.
async fn record_converged(
    plan: &Plan,
    report: &ApplyReport,
    current: &BTreeMap<String, AgentInputs>,
    state: &Mutex<State>,
    platform: &str,
    revision: &str,
) -> Option<String> {
    if plan.agents.is_empty() {
        return None;
    }
    let results: BTreeMap<&str, &AgentResult> = report
        .agents
        .iter()
        .map(|r| (r.agent.as_str(), r))
        .collect();
    let at = crate::state::now_rfc3339();
    let mut state = state.lock().await;
    for agent in &plan.agents {
        let converged = agent.skipped.is_none()
            && (!agent.has_work() || results.get(agent.agent.as_str()).is_some_and(|r| r.ok()));
        let record = current
            .get(&agent.agent)
            .and_then(|inputs| inputs.record(revision, &at));
        match record {
            Some(record) if converged => state.record_applied_from(platform, &agent.agent, record),
            _ => state.forget_applied_from(platform, &agent.agent),
        }
    }
    state.save().err().map(|e| e.to_string())
}

/// The plan policy from the config and the command line (its per-agent `redeploy` set is
/// filled by [`reconcile`]).
pub fn policy(config: &Config, no_prune: bool, allow_mass_delete: bool) -> Policy {
    Policy {
        prune: config.prune && !no_prune,
        unmanaged_keys: config.unmanaged_keys.iter().cloned().collect(),
        max_delete_fraction: config.max_delete_fraction,
        allow_mass_delete,
        self_heal: config.self_heal,
        replace: Replace::default(),
        redeploy: BTreeSet::new(),
    }
}
