//! The plan: a pure function of (desired, actual, last applied, policy).
//!
//! Every decision of a reconcile is made here and nowhere else, so `--dry-run` and apply can
//! never disagree. This module does no I/O and never sees where its inputs came from; a plan
//! test needs no tempdir and no server. It must never schedule a delete for an agent whose
//! desired state failed to load or whose key list failed: such an agent is skipped whole.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::platform::types::RemoteKey;
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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prune: true,
            unmanaged_keys: BTreeSet::from(["ANTHROPIC_API_KEY".to_owned()]),
            max_delete_fraction: 0.5,
            allow_mass_delete: false,
            self_heal: true,
        }
    }
}

/// Why an existing key is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update(UpdateReason),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    #[serde(flatten)]
    pub action: Action,
}

/// Why an agent is left exactly as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SkipReason {
    /// Its manifest could not be decrypted, parsed or validated.
    LoadFailed { message: String },
    /// The platform's key list failed.
    ListFailed { message: String },
    /// The plan would delete too much; `--allow-mass-delete` overrides.
    MassDelete {
        deletes: usize,
        managed: usize,
        max_fraction: f64,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::LoadFailed { message } => write!(f, "manifest not loaded: {message}"),
            SkipReason::ListFailed { message } => write!(f, "cannot list platform keys: {message}"),
            SkipReason::MassDelete {
                deletes,
                managed,
                max_fraction,
            } => {
                if deletes == managed {
                    write!(
                        f,
                        "refusing to delete all {managed} managed keys of this agent; rerun with --allow-mass-delete if that is intended"
                    )
                } else {
                    write!(
                        f,
                        "refusing to delete {deletes} of {managed} managed keys (more than max_delete_fraction {max_fraction}); rerun with --allow-mass-delete if that is intended"
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
}

impl AgentPlan {
    fn new(agent: &str) -> Self {
        AgentPlan {
            agent: agent.to_owned(),
            skipped: None,
            changes: Vec::new(),
            unchanged: Vec::new(),
            drift_ignored: Vec::new(),
            kept: Vec::new(),
            unmanaged: Vec::new(),
        }
    }

    fn skipped(agent: &str, reason: SkipReason) -> Self {
        AgentPlan {
            skipped: Some(reason),
            ..AgentPlan::new(agent)
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
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
    pub delete: usize,
    pub unchanged: usize,
    pub skipped_agents: usize,
}

/// The whole plan: one entry per declared agent in the run, in slug order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub agents: Vec<AgentPlan>,
}

impl Plan {
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for a in &self.agents {
            if a.skipped.is_some() {
                t.skipped_agents += 1;
            }
            t.unchanged += a.unchanged.len();
            for c in &a.changes {
                match c.action {
                    Action::Create => t.create += 1,
                    Action::Update(_) => t.update += 1,
                    Action::Delete => t.delete += 1,
                }
            }
        }
        t
    }

    pub fn has_changes(&self) -> bool {
        self.agents.iter().any(AgentPlan::has_changes)
    }

    pub fn has_skips(&self) -> bool {
        self.agents.iter().any(|a| a.skipped.is_some())
    }
}

/// Builds the plan. `desired` holds every agent of the run (already narrowed by `--agent`)
/// with its secrets or the reason it failed to load; `actual` holds each agent's key list or
/// the list error. An agent missing from `actual` is treated as a list failure, never as
/// "no keys".
pub fn plan(
    desired: &BTreeMap<String, Result<DesiredSecrets, String>>,
    actual: &BTreeMap<String, Result<Vec<RemoteKey>, String>>,
    last: &dyn LastApplied,
    policy: &Policy,
) -> Plan {
    let agents = desired
        .iter()
        .map(|(agent, wanted)| plan_agent(agent, wanted, actual.get(agent), last, policy))
        .collect();
    Plan { agents }
}

fn plan_agent(
    agent: &str,
    wanted: &Result<DesiredSecrets, String>,
    listed: Option<&Result<Vec<RemoteKey>, String>>,
    last: &dyn LastApplied,
    policy: &Policy,
) -> AgentPlan {
    let wanted = match wanted {
        Ok(w) => w,
        Err(message) => {
            return AgentPlan::skipped(
                agent,
                SkipReason::LoadFailed {
                    message: message.clone(),
                },
            );
        }
    };
    let remote = match listed {
        Some(Ok(keys)) => keys,
        Some(Err(message)) => {
            return AgentPlan::skipped(
                agent,
                SkipReason::ListFailed {
                    message: message.clone(),
                },
            );
        }
        None => {
            return AgentPlan::skipped(
                agent,
                SkipReason::ListFailed {
                    message: "no key list was fetched for this agent".to_owned(),
                },
            );
        }
    };
    let remote: BTreeMap<&str, &RemoteKey> = remote.iter().map(|k| (k.key.as_str(), k)).collect();

    let mut p = AgentPlan::new(agent);
    for (key, value) in wanted {
        if policy.unmanaged_keys.contains(key) {
            // The manifest loader refuses these; a plan never touches them regardless.
            continue;
        }
        let Some(present) = remote.get(key.as_str()) else {
            p.changes.push(Change {
                key: key.clone(),
                action: Action::Create,
            });
            continue;
        };
        let reason = match last.applied(agent, key, value) {
            None => Some(UpdateReason::Unverified),
            Some(a) if !a.same_value => Some(UpdateReason::ValueChanged),
            Some(Applied {
                observed_at: Some(seen),
                ..
            }) if seen != present.last_write() => Some(UpdateReason::Drifted),
            Some(_) => None,
        };
        match reason {
            Some(UpdateReason::Drifted) if !policy.self_heal => p.drift_ignored.push(key.clone()),
            Some(reason) => p.changes.push(Change {
                key: key.clone(),
                action: Action::Update(reason),
            }),
            None => p.unchanged.push(key.clone()),
        }
    }

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
            p.changes.push(Change {
                key: (*key).to_owned(),
                action: Action::Delete,
            });
        } else {
            p.kept.push((*key).to_owned());
        }
    }

    // The guard: a plan may not leave an agent that had managed keys with none, and may not
    // delete more than `max_delete_fraction` of them. A single delete is never "mass" (it
    // would make renaming the only key of a small agent need an override), unless it empties
    // the agent.
    let deletes = p.deletes().count();
    if deletes > 0 && !policy.allow_mass_delete {
        let keeps_none = deletes == managed_present
            && !wanted.keys().any(|k| !policy.unmanaged_keys.contains(k));
        let too_many =
            deletes > 1 && deletes as f64 > policy.max_delete_fraction * managed_present as f64;
        if keeps_none || too_many {
            return AgentPlan::skipped(
                agent,
                SkipReason::MassDelete {
                    deletes,
                    managed: managed_present,
                    max_fraction: policy.max_delete_fraction,
                },
            );
        }
    }
    p
}

#[cfg(test)]
mod tests;
