//! One reconcile: inputs (source) → select (incremental) → load → observe (list the
//! platform) → plan → [`land`] (confirm, apply, verify, record). The CLI's `reconcile` and
//! the daemon both call [`reconcile`] with a [`Request`] built by `request`; they differ only
//! in *when* they call it and how they report. A saved plan (`saved_plan`) is made another
//! way and lands through the same [`land`]. Every platform call of a run is bounded by one
//! deadline ([`crate::deadline`]).
//!
//! Asked to refresh only what changed ([`Request::changed`]), it first compares each agent's
//! inputs with a baseline (`incremental`) and loads, lists and plans only the agents that
//! changed; the plan's coverage names the rest. After an apply it records, per agent that
//! converged, what it converged from, and forgets that record for an agent that failed, so
//! the next run refreshes it.

mod batches;
mod land;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use thiserror::Error;

use crate::apply::{ApplyReport, Progress};
use crate::config::Config;
use crate::deadline::TimedOut;
use crate::environment::Environment;
use crate::incremental::{self, Baseline, Selection};
use crate::load::{self, LoadError, Loaded};
use crate::observe;
use crate::plan::{self, CoverageMode, Plan, Policy, Replace, RevisionBaseline};
use crate::platform::types::{Listing, PlatformError};
use crate::request::{ChangedSince, Request};
use crate::source::Checkout;
use crate::source::inputs::{self, RunInputs};

pub use land::{Planned, Run, land};

/// What one reconcile found and did.
pub struct Outcome {
    /// The agents loaded and their findings; a run in batches ([`Request::batch`]) keeps
    /// only the findings and the groups each agent uses, not the values.
    pub loaded: Loaded,
    pub plan: Plan,
    /// `None` for a dry run.
    pub report: Option<ApplyReport>,
    pub revision: String,
    /// The plan had changes but [`Observer::confirm`] said no: nothing was written.
    pub declined: bool,
    /// Each listed agent's key list (or list error) as the plan saw it: what a saved plan
    /// records (`saved_plan`). Empty after a run in batches.
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
    /// Called with the plan (and the warnings found while loading, which go with it) when it
    /// has changes and this is not a dry run, before the first write; false stops the run
    /// with nothing written. The CLI shows the plan here, so that it comes before the apply's
    /// progress in a log.
    fn confirm(&self, _plan: &Plan, _warnings: &[String]) -> bool {
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

/// Runs one reconcile: its phases, in order, then [`land`]. `observer` confirms the plan
/// before any write and follows the apply. A run in batches ([`Request::batch`]) returns
/// what [`Tally`] keeps of its batches, put together.
pub async fn reconcile(
    req: Request<'_>,
    observer: Arc<dyn Observer>,
) -> Result<Outcome, ReconcileError> {
    let mut whole = None;
    reconcile_into(req, observer, &mut whole).await?;
    // `reconcile_into` hands the tally at least one outcome whenever it returns Ok: the
    // whole run's, or the frame of a run in batches.
    Ok(whole.expect("a reconcile that ends well hands over at least one outcome"))
}

/// What a caller keeps of a run's outcomes. A run in one pass hands over its one outcome;
/// a run in batches hands over first its frame (revision and coverage, no agent) and then
/// each batch's outcome as soon as it has landed, so a caller that keeps only counts (the
/// daemon) holds nothing of an agent once its batch is done.
pub trait Tally: Send {
    fn add(&mut self, outcome: Outcome);
}

/// The whole outcome: a run in one pass kept as it is; the batches of a run put together
/// without their values and key lists ([`Outcome::loaded`], [`Outcome::observed`]).
impl Tally for Option<Outcome> {
    fn add(&mut self, outcome: Outcome) {
        match self {
            None => *self = Some(outcome),
            Some(merged) => batches::absorb(merged, outcome),
        }
    }
}

/// [`reconcile`], handing its outcomes to `tally` (see [`Tally`]) instead of returning them.
pub async fn reconcile_into(
    req: Request<'_>,
    observer: Arc<dyn Observer>,
    tally: &mut dyn Tally,
) -> Result<(), ReconcileError> {
    let run = Run::start(&req);
    let checkout = req.checkout;
    let candidates = candidates(checkout, &req.only)?;
    let overrides = req.settings.overrides();
    let env = &req.environment;
    let inputs = {
        // Poisoned or not, what it holds is by content id: still true.
        let mut remembered = req
            .remembered
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()));
        inputs::of_run(
            checkout.tree(),
            &checkout.config,
            env,
            overrides,
            &candidates,
            remembered.as_deref_mut(),
        )
    };
    let selection = select(&req, &candidates, &inputs).await;
    if let Some(size) = batches::size(&req) {
        return batches::reconcile(&req, run, selection, inputs, observer, size, tally).await;
    }
    let loaded = load_selected(&req, &selection)?;
    check_replace(&req.replace, &loaded)?;
    let baseline = base_baseline(&req)?;
    let observed = observe_loaded(&req, &run, &loaded, observer.as_ref()).await;
    if let Some(error) = run_ending(&observed) {
        return Err(ReconcileError::Unreachable(error));
    }
    let mut plan = plan_loaded(&req, &loaded, &observed, baseline.as_ref()).await;
    plan.coverage = selection.coverage;
    let planned = Planned {
        loaded,
        plan,
        observed,
        inputs,
    };
    tally.add(land(&req, run, planned, observer).await);
    Ok(())
}

/// The list error that ends the whole run (the platform cannot be reached at all), if any.
fn run_ending(
    observed: &BTreeMap<String, Result<Listing, PlatformError>>,
) -> Option<PlatformError> {
    observed
        .values()
        .find_map(|r| r.as_ref().err().filter(|e| e.ends_run()))
        .cloned()
}

/// The agents of the run: `only` (each must be declared), else every declared agent.
fn candidates(checkout: &Checkout, only: &BTreeSet<String>) -> Result<Vec<String>, LoadError> {
    if only.is_empty() {
        return Ok(checkout.agents.clone());
    }
    if let Some(missing) = only.iter().find(|a| !checkout.declares(a)) {
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
async fn select(req: &Request<'_>, candidates: &[String], now: &RunInputs) -> Selection {
    let (current, groups) = (&now.agents, &now.groups);
    let mut selection = match &req.changed {
        None => return Selection::all(candidates),
        Some(ChangedSince::State) => {
            let state = req.state.lock().await;
            let platform = req.platform.id();
            let gap = state.change_tracking_gap(platform);
            let records = state.applied_from_all(platform);
            incremental::select(
                candidates,
                current,
                Baseline::State {
                    records: records.as_ref(),
                    gap: gap.as_deref(),
                    groups: groups.as_ref().ok(),
                },
            )
        }
        Some(ChangedSince::Revision(Err(reason))) => {
            incremental::select(candidates, current, Baseline::Unreadable { reason })
        }
        Some(ChangedSince::Revision(Ok(since))) => {
            let there: Vec<&String> = candidates.iter().filter(|a| since.declares(a)).collect();
            let overrides = req.settings.overrides();
            let env = &req.environment;
            let then = inputs::of_run(since.tree(), &since.config, env, overrides, there, None);
            incremental::select(
                candidates,
                current,
                Baseline::Revision {
                    label: &since.label(),
                    inputs: &then.agents,
                    groups: groups.as_ref(),
                    groups_then: then.groups.as_ref(),
                },
            )
        }
    };
    // Every agent a `--replace`/`--replace-all` names is refreshed.
    let replace = &req.replace;
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

/// Loads the agents the selection refreshes: every candidate for a full run, only the
/// changed ones otherwise (none changed: nothing is decrypted).
fn load_selected(req: &Request<'_>, selection: &Selection) -> Result<Loaded, LoadError> {
    let checkout = req.checkout;
    let only = match selection.coverage.mode {
        CoverageMode::Full => &req.only,
        CoverageMode::Changed if selection.refresh.is_empty() => return Ok(Loaded::default()),
        CoverageMode::Changed => &selection.refresh,
    };
    let env = &req.environment;
    load::load_all(checkout.tree(), &checkout.config, env, req.identities, only)
}

/// With `--base`, the base revision's values as last applied. An agent that fails to load at
/// the base has no baseline: its keys show as `unverified`, never as in sync.
fn base_baseline(req: &Request<'_>) -> Result<Option<RevisionBaseline>, LoadError> {
    let Some(base) = req.base else {
        return Ok(None);
    };
    let env = &req.environment;
    let loaded = load::load_all(base.tree(), &base.config, env, req.identities, &req.only)?;
    Ok(Some(RevisionBaseline(loaded.ok_secrets())))
}

/// Lists every agent that loaded (GET only).
async fn observe_loaded(
    req: &Request<'_>,
    run: &Run,
    loaded: &Loaded,
    observer: &dyn Observer,
) -> BTreeMap<String, Result<Listing, PlatformError>> {
    let listable = loaded
        .agents
        .iter()
        .filter(|(_, a)| a.failure().is_none())
        .map(|(slug, _)| slug.clone())
        .collect::<Vec<_>>();
    run.deadline.allow_requests(listable.len());
    observe::list_agents(
        run.platform.clone(),
        listable,
        req.settings.concurrency,
        observer,
    )
    .await
}

/// The plan: desired × listed × last applied (the state, or the `--base` revision) under
/// the run's policy, with each agent's redeploy rule.
async fn plan_loaded(
    req: &Request<'_>,
    loaded: &Loaded,
    observed: &BTreeMap<String, Result<Listing, PlatformError>>,
    baseline: Option<&RevisionBaseline>,
) -> Plan {
    let config = &req.checkout.config;
    let overrides = req.settings.overrides();
    let mut policy: Policy = req.policy();
    policy.redeploy = loaded
        .agents
        .keys()
        .filter(|agent| config.redeploys(agent, overrides.redeploy))
        .cloned()
        .collect();
    let desired = loaded.desired_or_reasons();
    let plan = match baseline {
        Some(base) => plan::plan(&desired, observed, base, &policy),
        None => {
            let state = req.state.lock().await;
            state.plan(req.platform.id(), &desired, observed, &policy)
        }
    };
    plan.with_origins(&loaded.origins(config))
}

/// Why a `--base` plan refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The revision under review points the platform elsewhere than its base.
    #[error(
        "platform.url in castsync.yaml differs between the base revision ({base}) and this revision ({head}): a pull request must not change where the API key is sent, so this plan is refused"
    )]
    Changed { base: String, head: String },
    /// The revision under review sends an environment's platform another variable's key.
    #[error(
        "the API key variable of environment {env} differs between the base revision ({base}) and this revision ({head}): a pull request must not change which key is sent where, so this plan is refused"
    )]
    KeyVariable {
        env: String,
        base: String,
        head: String,
    },
}

impl crate::hint::Hinted for PinError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            PinError::Changed { .. } => Some(
                "merge the change of platform.url on its own first (its own pull request fails this check: review it by hand), and pin the URL in CI with CASTARI_API_URL".into(),
            ),
            PinError::KeyVariable { .. } => Some(
                "merge the change of api_key_env on its own first (its own pull request fails this check: review it by hand)".into(),
            ),
        }
    }
}

/// The platform URL a config names (the default when it names none), as compared by
/// [`check_platform_pinned`]: trimmed, without a trailing `/`.
fn configured_url(config: &Config, env: &Environment) -> String {
    let url = config
        .platform_url(env)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(crate::platform::DEFAULT_URL);
    url.trim_end_matches('/').to_owned()
}

/// With `--base`, the config under review (`head`) must name the same `platform.url` as the
/// base revision's `castsync.yaml`: otherwise a one-line change in a pull request would send
/// the CI's `Bearer` key to any host it likes. In environment `env`, its URL and the
/// variable its key is read from are pinned alike.
pub fn check_platform_pinned(
    head: &Config,
    base: &Config,
    env: &Environment,
) -> Result<(), PinError> {
    let (base_url, head_url) = (configured_url(base, env), configured_url(head, env));
    if base_url != head_url {
        return Err(PinError::Changed {
            base: crate::escape::terminal(&base_url).into_owned(),
            head: crate::escape::terminal(&head_url).into_owned(),
        });
    }
    let (base_var, head_var) = (base.api_key_env(env), head.api_key_env(env));
    if base_var != head_var {
        return Err(PinError::KeyVariable {
            env: env.to_string(),
            base: base_var.to_owned(),
            head: head_var.to_owned(),
        });
    }
    Ok(())
}
