//! The plan: a pure function of (desired, actual, last applied, policy).
//!
//! Every decision of a reconcile is made here and nowhere else, so `--dry-run` and apply can
//! never disagree. This module does no I/O and never sees where its inputs came from; a plan
//! test needs no tempdir and no server. It must never schedule a delete for an agent whose
//! desired state failed to load or whose key list failed: such an agent is skipped whole.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::platform::types::{ErrorClass, Listing, PlatformError, RemoteKey};
use crate::secret::SecretValue;

/// What the repository wants for one agent: key → value.
pub type DesiredSecrets = BTreeMap<String, SecretValue>;

/// What castsync remembers of its last write of one key, as seen by the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The value last written equals the value desired now.
    pub same_value: bool,
    /// The platform's timestamp for the key right after that write, when known. `None`
    /// (e.g. with `--base`, where the baseline is a git revision) disables drift detection.
    pub observed_at: Option<String>,
}

/// The last-applied baseline: the state file, or a git revision with `--base`.
pub trait LastApplied {
    /// The record for `agent`/`key` compared against `value`, or `None` when there is none.
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied>;

    /// A redeploy of `agent` is still owed from an earlier run (it failed, or the changes
    /// before it did not all land).
    fn redeploy_pending(&self, _agent: &str) -> bool {
        false
    }
}

/// No baseline at all: every present key is `unverified`.
pub struct NoBaseline;

impl LastApplied for NoBaseline {
    fn applied(&self, _: &str, _: &str, _: &SecretValue) -> Option<Applied> {
        None
    }
}

/// `--base REF`: the values at a git revision count as last applied, so a key whose value is
/// the same there and in the source is in sync. There are no timestamps, so no drift.
pub struct RevisionBaseline(pub BTreeMap<String, DesiredSecrets>);

impl LastApplied for RevisionBaseline {
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied> {
        let old = self.0.get(agent)?.get(key)?;
        Some(Applied {
            same_value: old == value,
            observed_at: None,
        })
    }
}

/// The rules a plan follows, from the config and the command line.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Delete platform keys that the manifest does not declare (`prune`, off with `--no-prune`).
    pub prune: bool,
    /// Keys never created, updated or deleted (`unmanaged_keys`).
    pub unmanaged_keys: BTreeSet<String>,
    /// Largest share of an agent's managed platform keys one plan may delete.
    pub max_delete_fraction: f64,
    /// `--allow-mass-delete`.
    pub allow_mass_delete: bool,
    /// Fix drift (`self_heal`); when false, drift is only reported.
    pub self_heal: bool,
    /// `--replace AGENT/KEY` and `--replace-all [AGENT…]`.
    pub replace: Replace,
    /// Agents redeployed once their changes land (`redeploy: on-change`, resolved per agent
    /// from the config's rules and `--redeploy`/`--no-redeploy`).
    pub redeploy: BTreeSet<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prune: true,
            unmanaged_keys: BTreeSet::from(["ANTHROPIC_API_KEY".to_owned()]),
            max_delete_fraction: 0.5,
            allow_mass_delete: false,
            self_heal: true,
            replace: Replace::default(),
            redeploy: BTreeSet::new(),
        }
    }
}

/// Keys whose values are rewritten whatever the state says (as `terraform apply -replace`):
/// the way to heal value drift on a platform that lists no timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replace {
    /// `--replace AGENT/KEY`.
    pub keys: BTreeSet<(String, String)>,
    /// `--replace-all AGENT…`.
    pub agents: BTreeSet<String>,
    /// `--replace-all` without agents: every agent of the run.
    pub all: bool,
}

impl Replace {
    pub fn covers(&self, agent: &str, key: &str) -> bool {
        self.all
            || self.agents.contains(agent)
            || self.keys.contains(&(agent.to_owned(), key.to_owned()))
    }
}

/// Why an existing key is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateReason {
    /// The desired value differs from the value castsync last wrote.
    ValueChanged,
    /// The platform's timestamp moved since castsync's last write: someone else wrote it.
    Drifted,
    /// castsync has no record of writing this key, so it cannot know the value matches.
    Unverified,
}

impl UpdateReason {
    pub fn describe(self) -> &'static str {
        match self {
            UpdateReason::ValueChanged => "value changed",
            UpdateReason::Drifted => "drifted",
            UpdateReason::Unverified => "unverified",
        }
    }
}

/// One planned call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "action", content = "reason", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update(UpdateReason),
    /// A present key rewritten because `--replace`/`--replace-all` asked for it.
    Replace,
    Delete,
}

/// Why an agent is redeployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedeployReason {
    /// Its secrets change in this run (`redeploy: on-change`).
    Changes,
    /// An earlier run changed its secrets but the redeploy did not succeed.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    #[serde(flatten)]
    pub action: Action,
    /// The shared group the key's value comes from (the agent takes it with `uses:`), so
    /// that a plan shows a group's change as the cause of each agent's update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<SharedOrigin>,
}

impl Change {
    pub fn new(key: impl Into<String>, action: Action) -> Change {
        Change {
            key: key.into(),
            action,
            from: None,
        }
    }
}

/// Where a key an agent takes from a shared group comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedOrigin {
    /// The group's name.
    pub group: String,
    /// Its folder in the repository (`shared/openai`), for messages.
    pub path: String,
}

/// Why an agent's manifest cannot be used: its first error, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoaded {
    pub message: String,
    pub hint: Option<String>,
}

impl From<String> for NotLoaded {
    fn from(message: String) -> Self {
        NotLoaded {
            message,
            hint: None,
        }
    }
}

impl From<&str> for NotLoaded {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Why an agent is left exactly as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SkipReason {
    /// Its manifest could not be decrypted, parsed or validated.
    LoadFailed {
        message: String,
        /// Rendered apart from the message (see [`SkipReason::hint`]).
        #[serde(skip)]
        hint: Option<String>,
    },
    /// The platform's key list failed.
    ListFailed { error: PlatformError },
    /// The plan would delete too much; `--allow-mass-delete` overrides.
    MassDelete {
        deletes: usize,
        managed: usize,
        max_fraction: f64,
    },
}

impl SkipReason {
    /// A failed list keeps its error's class; a bad manifest or a refused mass delete needs
    /// a new commit (or an override) before a retry can help.
    pub fn class(&self) -> ErrorClass {
        match self {
            SkipReason::ListFailed { error } => error.class(),
            SkipReason::LoadFailed { .. } | SkipReason::MassDelete { .. } => ErrorClass::Terminal,
        }
    }

    pub fn platform_error(&self) -> Option<&PlatformError> {
        match self {
            SkipReason::ListFailed { error } => Some(error),
            _ => None,
        }
    }

    /// What to do about it, when castsync knows.
    pub fn hint(&self) -> Option<String> {
        use crate::hint::Hinted as _;
        match self {
            SkipReason::LoadFailed { hint, .. } => hint.clone(),
            SkipReason::ListFailed { error } => error.hint().map(Into::into),
            SkipReason::MassDelete { .. } => {
                Some("rerun with --allow-mass-delete if that is intended".to_owned())
            }
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::LoadFailed { message, .. } => {
                write!(f, "manifest not loaded: {message}")
            }
            SkipReason::ListFailed { error } => write!(f, "cannot list platform keys: {error}"),
            SkipReason::MassDelete {
                deletes,
                managed,
                max_fraction,
            } => {
                if deletes == managed {
                    write!(
                        f,
                        "refusing to delete all {managed} managed keys of this agent"
                    )
                } else {
                    write!(
                        f,
                        "refusing to delete {deletes} of {managed} managed keys (more than max_delete_fraction {max_fraction})"
                    )
                }
            }
        }
    }
}

/// The plan for one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentPlan {
    pub agent: String,
    /// Set when the agent is skipped whole; `changes` is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
    /// Sets first (in key order), then deletes: the order apply follows.
    pub changes: Vec<Change>,
    /// Declared keys that are in sync.
    pub unchanged: Vec<String>,
    /// Keys whose drift is reported but not fixed (`self_heal: false`).
    pub drift_ignored: Vec<String>,
    /// Undeclared platform keys kept because pruning is off.
    pub kept: Vec<String>,
    /// `unmanaged_keys` present on the platform: never touched.
    pub unmanaged: Vec<String>,
    /// Redeploy the agent once its changes land and are verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redeploy: Option<RedeployReason>,
    /// The platform listed keys of this agent without timestamps: a value changed behind
    /// castsync's back cannot be seen (a key added or deleted still is).
    pub drift_blind: bool,
}

impl AgentPlan {
    /// An agent with nothing to do yet.
    pub fn new(agent: &str) -> Self {
        AgentPlan {
            agent: agent.to_owned(),
            skipped: None,
            changes: Vec::new(),
            unchanged: Vec::new(),
            drift_ignored: Vec::new(),
            kept: Vec::new(),
            unmanaged: Vec::new(),
            redeploy: None,
            drift_blind: false,
        }
    }

    fn skipped(agent: &str, reason: SkipReason) -> Self {
        AgentPlan {
            skipped: Some(reason),
            ..AgentPlan::new(agent)
        }
    }

    /// Key changes (creates, updates, replaces, deletes).
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Anything to apply: key changes or a redeploy.
    pub fn has_work(&self) -> bool {
        self.has_changes() || self.redeploy.is_some()
    }

    pub fn sets(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::Delete)
    }

    pub fn deletes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action == Action::Delete)
    }
}

/// Totals over a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub skipped_agents: usize,
    /// Agents to redeploy.
    pub redeploy: usize,
}

/// Whether a plan refreshed every agent of the run, or only those whose inputs changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoverageMode {
    /// Every agent of the run was listed and planned.
    #[default]
    Full,
    /// Only agents whose inputs changed (`reconcile --changed`, the daemon on a new commit).
    Changed,
}

/// Since when the agents a plan left out are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Since {
    /// The revision (a commit id, or `worktree`) of the oldest last refresh among them, or
    /// the `--since` revision.
    pub revision: String,
    /// When that refresh happened (RFC 3339), when known.
    pub at: Option<String>,
    /// Every one of them was last refreshed at that same revision.
    pub uniform: bool,
}

/// Which agents of the run the plan covers. A plan never drops an agent silently: the
/// agents it did not refresh are named here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub mode: CoverageMode,
    /// Why a run asked to refresh only changed agents refreshed every one (no state, a
    /// state for another platform, a config change that bears on every agent, a record that
    /// cannot be read).
    pub full_reason: Option<String>,
    /// Agents whose inputs did not change, left unrefreshed (not listed, not planned).
    pub unrefreshed: Vec<String>,
    pub since: Option<Since>,
}

/// The whole plan: one entry per declared agent in the run, in slug order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub agents: Vec<AgentPlan>,
    /// Which agents were left out, and why (the run's business, not the plan's: [`plan`]
    /// always covers every agent it is given).
    pub coverage: Coverage,
}

impl Plan {
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for a in &self.agents {
            if a.skipped.is_some() {
                t.skipped_agents += 1;
            }
            if a.redeploy.is_some() {
                t.redeploy += 1;
            }
            t.unchanged += a.unchanged.len();
            for c in &a.changes {
                match c.action {
                    Action::Create => t.create += 1,
                    Action::Update(_) => t.update += 1,
                    Action::Replace => t.replace += 1,
                    Action::Delete => t.delete += 1,
                }
            }
        }
        t
    }

    /// Anything to apply in any agent: key changes or redeploys.
    pub fn has_changes(&self) -> bool {
        self.agents.iter().any(AgentPlan::has_work)
    }

    /// Agents whose key list came without timestamps (value drift is invisible there).
    pub fn drift_blind(&self) -> Vec<&str> {
        self.agents
            .iter()
            .filter(|a| a.drift_blind)
            .map(|a| a.agent.as_str())
            .collect()
    }

    /// The drift-blind agents for which it matters: those with keys in sync, whose values
    /// could have changed on the platform unseen. Keys this plan writes are rewritten anyway.
    pub fn drift_unseen(&self) -> Vec<&str> {
        self.agents
            .iter()
            .filter(|a| a.drift_blind && !a.unchanged.is_empty())
            .map(|a| a.agent.as_str())
            .collect()
    }

    pub fn has_skips(&self) -> bool {
        self.agents.iter().any(|a| a.skipped.is_some())
    }

    /// Names, on each change of a key an agent takes from a shared group, the group: `origins`
    /// maps agent → key → origin. Decisions are not changed, only annotated.
    pub fn with_origins(
        mut self,
        origins: &BTreeMap<String, BTreeMap<String, SharedOrigin>>,
    ) -> Plan {
        for agent in &mut self.agents {
            let Some(keys) = origins.get(&agent.agent) else {
                continue;
            };
            for change in &mut agent.changes {
                if change.action != Action::Delete {
                    change.from = keys.get(&change.key).cloned();
                }
            }
        }
        self
    }
}

/// Builds the plan. `desired` holds every agent of the run (already narrowed by `--agent`)
/// with its secrets or the reason it failed to load; `actual` holds each agent's key list or
/// the list error. An agent missing from `actual` is treated as a list failure, never as
/// "no keys".
pub fn plan(
    desired: &BTreeMap<String, Result<DesiredSecrets, NotLoaded>>,
    actual: &BTreeMap<String, Result<Listing, PlatformError>>,
    last: &dyn LastApplied,
    policy: &Policy,
) -> Plan {
    let agents = desired
        .iter()
        .map(|(agent, wanted)| plan_agent(agent, wanted, actual.get(agent), last, policy))
        .collect();
    Plan {
        agents,
        coverage: Coverage::default(),
    }
}

/// One agent's plan, in phases: what it needs (loaded, listed), the keys it wants, the keys
/// the platform has that it does not want, the mass-delete guard, the redeploy.
fn plan_agent(
    agent: &str,
    wanted: &Result<DesiredSecrets, NotLoaded>,
    listed: Option<&Result<Listing, PlatformError>>,
    last: &dyn LastApplied,
    policy: &Policy,
) -> AgentPlan {
    let (wanted, listing) = match inputs(wanted, listed) {
        Ok(inputs) => inputs,
        Err(reason) => return AgentPlan::skipped(agent, reason),
    };
    let remote: BTreeMap<&str, &RemoteKey> =
        listing.keys.iter().map(|k| (k.key.as_str(), k)).collect();
    let mut p = AgentPlan::new(agent);
    p.drift_blind = listing.shape.timestamps.blind();
    plan_wanted(&mut p, wanted, &remote, last, policy);
    let managed_present = plan_unwanted(&mut p, wanted, &remote, policy);
    if let Some(refused) = mass_delete(&p, wanted, managed_present, policy) {
        return AgentPlan::skipped(agent, refused);
    }
    if policy.redeploy.contains(agent) {
        p.redeploy = if p.has_changes() {
            Some(RedeployReason::Changes)
        } else if last.redeploy_pending(agent) {
            Some(RedeployReason::Pending)
        } else {
            None
        };
    }
    p
}

/// The agent's desired secrets and key list, or why it is skipped: a manifest that did not
/// load, or a list that failed (or was never made), is never taken for "no keys".
fn inputs<'a>(
    wanted: &'a Result<DesiredSecrets, NotLoaded>,
    listed: Option<&'a Result<Listing, PlatformError>>,
) -> Result<(&'a DesiredSecrets, &'a Listing), SkipReason> {
    let wanted = wanted.as_ref().map_err(|failure| SkipReason::LoadFailed {
        message: failure.message.clone(),
        hint: failure.hint.clone(),
    })?;
    let listing = match listed {
        Some(Ok(listing)) => listing,
        Some(Err(error)) => {
            return Err(SkipReason::ListFailed {
                error: error.clone(),
            });
        }
        None => {
            return Err(SkipReason::ListFailed {
                error: PlatformError::Transient {
                    detail: "no key list was fetched for this agent".to_owned(),
                },
            });
        }
    };
    Ok((wanted, listing))
}

/// Each wanted key: created when absent, replaced when asked, updated when its value
/// changed, is unverified or drifted (ignored without `self_heal`), else unchanged.
fn plan_wanted(
    p: &mut AgentPlan,
    wanted: &DesiredSecrets,
    remote: &BTreeMap<&str, &RemoteKey>,
    last: &dyn LastApplied,
    policy: &Policy,
) {
    let agent = p.agent.clone();
    for (key, value) in wanted {
        if policy.unmanaged_keys.contains(key) {
            // The manifest loader refuses these; a plan never touches them regardless.
            continue;
        }
        let Some(present) = remote.get(key.as_str()) else {
            p.changes.push(Change::new(key.clone(), Action::Create));
            continue;
        };
        if policy.replace.covers(&agent, key) {
            p.changes.push(Change::new(key.clone(), Action::Replace));
            continue;
        }
        // Drift needs a timestamp on both sides: the one seen after castsync's write and the
        // one listed now. Without either (the SDK's shape has none), only presence is
        // compared, and the plan says so.
        let reason = match last.applied(&agent, key, value) {
            None => Some(UpdateReason::Unverified),
            Some(a) if !a.same_value => Some(UpdateReason::ValueChanged),
            Some(Applied {
                observed_at: Some(seen),
                ..
            }) if present.last_write().is_some_and(|now| now != seen) => {
                Some(UpdateReason::Drifted)
            }
            Some(_) => None,
        };
        match reason {
            Some(UpdateReason::Drifted) if !policy.self_heal => p.drift_ignored.push(key.clone()),
            Some(reason) => p
                .changes
                .push(Change::new(key.clone(), Action::Update(reason))),
            None => p.unchanged.push(key.clone()),
        }
    }
}

/// Each key the platform has that the agent does not want: deleted under `prune`, else
/// kept; unmanaged keys are left alone. Returns how many managed keys are present.
fn plan_unwanted(
    p: &mut AgentPlan,
    wanted: &DesiredSecrets,
    remote: &BTreeMap<&str, &RemoteKey>,
    policy: &Policy,
) -> usize {
    let mut managed_present = 0usize;
    for key in remote.keys() {
        if policy.unmanaged_keys.contains(*key) {
            p.unmanaged.push((*key).to_owned());
            continue;
        }
        managed_present += 1;
        if wanted.contains_key(*key) {
            continue;
        }
        if policy.prune {
            p.changes
                .push(Change::new((*key).to_owned(), Action::Delete));
        } else {
            p.kept.push((*key).to_owned());
        }
    }
    managed_present
}

/// The guard: a plan may not leave an agent that had managed keys with none, and may not
/// delete more than `max_delete_fraction` of them. A single delete is never "mass" (it would
/// make renaming the only key of a small agent need an override), unless it empties the
/// agent.
fn mass_delete(
    p: &AgentPlan,
    wanted: &DesiredSecrets,
    managed_present: usize,
    policy: &Policy,
) -> Option<SkipReason> {
    let deletes = p.deletes().count();
    if deletes == 0 || policy.allow_mass_delete {
        return None;
    }
    let keeps_none =
        deletes == managed_present && !wanted.keys().any(|k| !policy.unmanaged_keys.contains(k));
    let too_many =
        deletes > 1 && deletes as f64 > policy.max_delete_fraction * managed_present as f64;
    (keeps_none || too_many).then_some(SkipReason::MassDelete {
        deletes,
        managed: managed_present,
        max_fraction: policy.max_delete_fraction,
    })
}

#[cfg(test)]
mod tests;
