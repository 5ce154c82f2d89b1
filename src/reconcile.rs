//! One reconcile: load (source → desired) → observe (list the platform) → plan → apply. The
//! CLI's `reconcile` and the daemon both call [`reconcile`]; they differ only in *when* they
//! call it and how they report. Every platform call of a run is bounded by one deadline
//! ([`crate::deadline`]).
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

use crate::apply::{self, ApplyOptions, ApplyReport, Progress};
use crate::config::Config;
use crate::crypto::Identities;
use crate::deadline::{Bounded, Deadline, RunTimeout, TimedOut};
use crate::incremental::{self, Baseline, Selection};
use crate::load::{self, LoadError, Loaded};
use crate::observe;
use crate::plan::{self, CoverageMode, LastApplied, Plan, Policy, Replace, RevisionBaseline};
use crate::platform::Platform;
use crate::platform::types::{Listing, PlatformError};
use crate::source::Checkout;
use crate::source::inputs::{self, AgentInputs, GroupDigests, Overrides};
use crate::state::{AppliedFrom, State};

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
    /// The run's deadline: every platform call is bounded by it (see [`crate::deadline`]).
    pub timeout: RunTimeout,
}

/// What one reconcile found and did.
pub struct Outcome {
    pub loaded: Loaded,
    pub plan: Plan,
    /// `None` for a dry run.
    pub report: Option<ApplyReport>,
    pub revision: String,
    /// The plan had changes but [`Observer::confirm`] said no: nothing was written.
    pub declined: bool,
    /// Each listed agent's key list (or list error) as the plan saw it: what a saved plan
    /// records (`saved_plan`).
    pub observed: BTreeMap<String, Result<Listing, PlatformError>>,
    /// The agents the run's deadline cut off, if it passed.
    pub timed_out: Option<TimedOut>,
    /// The state could not be saved after the run (what each agent converged from is then
    /// not remembered, and the next `--changed` run refreshes those agents again).
    pub state_warning: Option<String>,
}

impl Outcome {
    /// True when every agent loaded, listed and applied without error.
    pub fn ok(&self) -> bool {
        !self.declined && !self.plan.has_skips() && self.report.as_ref().is_none_or(ApplyReport::ok)
    }
}

/// Whoever started the reconcile: asked once before anything is written, then told how the
/// apply goes. The CLI asks the person at the terminal and draws progress; the daemon uses
/// [`Unattended`].
pub trait Observer: Progress {
    /// Called with the plan when it has changes and this is not a dry run, before the first
    /// write; false stops the run with nothing written.
    fn confirm(&self, _plan: &Plan) -> bool {
        true
    }
}

/// Never asks, reports nothing.
pub struct Unattended;

impl Progress for Unattended {}
impl Observer for Unattended {}

/// A reconcile that could not start, or found the platform unreachable; nothing was written.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The platform cannot be reached at all (an untrusted certificate, https to a plain
    /// port, a dead proxy): the run stopped at its first request.
    #[error(transparent)]
    Unreachable(PlatformError),
    /// `--replace AGENT/KEY` or `--replace-all AGENT` names something the source lacks.
    #[error("{flag} {target}: {problem}")]
    ReplaceTarget {
        flag: &'static str,
        target: String,
        problem: String,
        fix: String,
    },
}

impl crate::hint::Hinted for ReconcileError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            ReconcileError::Load(e) => e.hint(),
            ReconcileError::Unreachable(e) => e.hint(),
            ReconcileError::ReplaceTarget { fix, .. } => Some(fix.as_str().into()),
        }
    }
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
        if let Some(secrets) = load.secrets()
            && !secrets.contains_key(key)
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

/// Runs one reconcile. `observer` confirms the plan before any write and follows the apply.
pub async fn reconcile(
    req: Request<'_>,
    observer: Arc<dyn Observer>,
) -> Result<Outcome, ReconcileError> {
    let checkout = req.checkout;
    let deadline = Deadline::start(req.timeout);
    let platform = Bounded::wrap(req.platform.clone(), deadline.clone());
    let overrides = Overrides {
        no_prune: req.no_prune,
        redeploy: req.redeploy,
    };
    let candidates = candidates(checkout, &req.only)?;
    let mut current = inputs::of_agents(checkout.tree(), &checkout.config, overrides, &candidates);
    let groups = inputs::of_groups(checkout.tree(), &checkout.config);
    let selection = select(&req, &candidates, &current, &groups, overrides).await;
    let loaded = match selection.coverage.mode {
        CoverageMode::Full => {
            load::load_all(checkout.tree(), &checkout.config, req.identities, &req.only)?
        }
        // Only the changed agents are decrypted; none changed, nothing is read.
        CoverageMode::Changed if selection.refresh.is_empty() => Loaded {
            agents: BTreeMap::new(),
            groups: BTreeMap::new(),
            notes: Vec::new(),
        },
        CoverageMode::Changed => load::load_all(
            checkout.tree(),
            &checkout.config,
            req.identities,
            &selection.refresh,
        )?,
    };
    check_replace(&req.policy.replace, &loaded)?;
    inputs::with_groups(&mut current, loaded.groups_used(), &groups);
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
        .map(|(slug, _)| slug.clone())
        .collect::<Vec<_>>();
    deadline.allow_requests(listable.len());
    let actual = observe::list_agents(
        platform.clone(),
        listable,
        req.concurrency,
        observer.as_ref(),
    )
    .await;
    if let Some(error) = actual
        .values()
        .find_map(|r| r.as_ref().err().filter(|e| e.ends_run()))
    {
        return Err(ReconcileError::Unreachable(error.clone()));
    }

    let desired = loaded.desired_or_reasons();
    let mut plan = {
        let mut state = req.state.lock().await;
        state.prepare(req.platform.id(), desired.keys());
        let view = state.view(req.platform.id());
        let last: &dyn LastApplied = match &baseline {
            Some(b) => b,
            None => &view,
        };
        plan::plan(&desired, &actual, last, &policy).with_origins(&loaded.origins(&checkout.config))
    };
    plan.coverage = selection.coverage;

    let revision = checkout.label();
    let mut state_warning = None;
    let declined = !req.dry_run && plan.has_changes() && {
        // The person reading the plan is not the platform being slow.
        let _paused = deadline.pause();
        !observer.confirm(&plan)
    };
    let report = if req.dry_run || declined {
        None
    } else if !plan.has_changes() {
        Some(ApplyReport::default())
    } else {
        state_warning = forget_before_writing(&plan, &req.state, req.platform.id()).await;
        let options = ApplyOptions {
            concurrency: req.concurrency,
            revision: Some(revision.clone()),
            converged: converged_from(&plan, &current, &revision),
        };
        deadline.allow_requests(apply::request_count(&plan));
        Some(
            apply::apply(
                &plan,
                &loaded.ok_secrets(),
                platform,
                req.state.clone(),
                &options,
                &req.cancel,
                observer,
            )
            .await,
        )
    };
    if report.is_some() {
        let recorded =
            record_converged(&plan, &current, &req.state, req.platform.id(), &revision).await;
        state_warning = recorded.or(state_warning);
    }
    // The records parsed for the plan stay parsed: a command exits now, and the daemon packs
    // everything once the cycle is over (`State::repack`).
    let timed_out = TimedOut::find(&plan, report.as_ref());
    Ok(Outcome {
        loaded,
        plan,
        report,
        revision,
        declined,
        observed: actual,
        timed_out,
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
    groups: &Result<GroupDigests, String>,
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
                    groups: groups.as_ref().ok(),
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
            let groups_then = inputs::of_groups(since.tree(), &since.config);
            incremental::select(
                candidates,
                current,
                Baseline::Revision {
                    label: &since.label(),
                    inputs: &then,
                    groups: groups.as_ref(),
                    groups_then: groups_then.as_ref(),
                },
            )
        }
    };
    // Every agent a `--replace`/`--replace-all` names is refreshed.
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
pub(crate) async fn forget_before_writing(
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
/// its verified writes ([`ApplyOptions::converged`]).
pub(crate) fn converged_from(
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

/// After a run: records what each agent without work converged from (it was listed and
/// matched), and forgets it for an agent that was skipped. Agents with work were recorded by
/// apply when all of it landed, and forgotten before it began otherwise. Saves only when a
/// record changed.
pub(crate) async fn record_converged(
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
            Some(record) if before.is_none_or(|b| !b.same_inputs(&record)) => {
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

/// Why a `--base` plan refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The revision under review points the platform elsewhere than its base.
    #[error(
        "platform.url in castsync.yaml differs between the base revision ({base}) and this revision ({head}): a pull request must not change where the API key is sent, so this plan is refused"
    )]
    Changed { base: String, head: String },
}

impl crate::hint::Hinted for PinError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            PinError::Changed { .. } => Some(
                "merge the change of platform.url on its own first (its own pull request fails this check: review it by hand), and pin the URL in CI with CASTARI_API_URL".into(),
            ),
        }
    }
}

/// The platform URL a config names (the default when it names none), as compared by
/// [`check_platform_pinned`]: trimmed, without a trailing `/`.
fn configured_url(config: &Config) -> String {
    let url = config
        .platform
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(crate::platform::DEFAULT_URL);
    url.trim_end_matches('/').to_owned()
}

/// With `--base`, the config under review (`head`) must name the same `platform.url` as the
/// base revision's `castsync.yaml`: otherwise a one-line change in a pull request would send
/// the CI's `Bearer` key to any host it likes.
pub fn check_platform_pinned(head: &Config, base: &Config) -> Result<(), PinError> {
    let (base_url, head_url) = (configured_url(base), configured_url(head));
    if base_url != head_url {
        return Err(PinError::Changed {
            base: crate::escape::terminal(&base_url).into_owned(),
            head: crate::escape::terminal(&head_url).into_owned(),
        });
    }
    Ok(())
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
