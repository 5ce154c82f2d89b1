//! Saved plans: `reconcile --dry-run --save-plan FILE` writes down the plan a pull request
//! showed, and `reconcile --plan FILE` applies exactly those changes, as Terraform's plan
//! files do, so what lands is what was reviewed.
//!
//! A plan records what it was made from: the git blob id of `castsync.yaml` and of each
//! agent's manifest and `.env.example`, the platform it targets, and per agent a digest of the
//! key list it observed. Before anything is sent, an apply compares all of it with the tree
//! and the platform it would apply to, and refuses, naming each difference, when anything
//! moved. It also refuses a change that a fresh plan of the same tree could never make (a set
//! of an undeclared key, a delete of a declared or unmanaged key, a delete with prune off, a
//! mass delete without `--allow-mass-delete`, a redeploy the config does not call for), and a
//! plan no castsync could write (an agent listed twice, a key changed twice, a file list that
//! leaves out a file of the tree): a plan file is an artifact that passed through CI storage,
//! reviewed but not authenticated, so it narrows what an apply does and never widens it.
//!
//! This module is pure (the I/O is in [`run`]). A plan never holds a value, a fingerprint or
//! any hash of a value: key names, actions and blob ids of ciphertexts only.

pub mod run;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::plan::{Action, AgentPlan, Change, DesiredSecrets, Plan, Policy, RedeployReason};
use crate::platform::types::{Listing, PlatformError};

/// The plan file format this build writes and reads (schemas/saved-plan.schema.json).
pub const FORMAT_VERSION: u32 = 1;

/// The `kind` of a plan file, so another JSON file is never taken for one.
pub const KIND: &str = "castsync-plan";

/// The largest plan file read: about 100 bytes per change, so room for 100,000 changes.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A file a plan was made from, by its git blob id (`None`: the file did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBlob {
    /// Relative to the repository root, as the tree names it (or a `--config` path).
    pub path: String,
    /// The git blob id of the file's bytes (`git hash-object`), or null when absent.
    pub blob: Option<String>,
}

/// One agent of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedAgent {
    pub agent: String,
    /// Its manifest and `.env.example`.
    pub files: Vec<FileBlob>,
    /// How many keys the platform listed for it.
    pub key_count: usize,
    /// [`key_list_digest`] of that listing.
    pub key_list: String,
    /// Sets first, then deletes: the order apply follows.
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeploy: Option<RedeployReason>,
}

impl SavedAgent {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// A plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format_version: u32,
    pub kind: String,
    /// The castsync that wrote it.
    pub castsync_version: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// The revision it was made from: a commit id, or `worktree`.
    pub revision: String,
    /// The platform it targets (its base URL, or `local://PATH`).
    pub platform: String,
    /// `castsync.yaml` (or the `--config` file).
    pub config: FileBlob,
    /// It covers every agent of the tree (no `--agent`): an agent added since is a change.
    pub all_agents: bool,
    /// Every agent of the run, changed or not, in slug order.
    pub agents: Vec<SavedAgent>,
}

/// What a tree holds now, in the terms of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub config: FileBlob,
    /// Every agent of the tree (or of `--agent`), with its files.
    pub agents: BTreeMap<String, Vec<FileBlob>>,
}

/// A digest of an agent's key list as the platform returned it: the key names and, where the
/// platform lists them, their timestamps (so a value rewritten behind castsync's back moves
/// it too). Names and timestamps are not secrets; no value is ever listed.
pub fn key_list_digest(listing: &Listing) -> String {
    let mut lines: Vec<String> = listing
        .keys
        .iter()
        .map(|k| {
            format!(
                "{}\0{}\0{}",
                k.key,
                k.created_at.as_deref().unwrap_or(""),
                k.updated_at.as_deref().unwrap_or("")
            )
        })
        .collect();
    lines.sort();
    let mut hash = Sha256::new();
    hash.update(b"castsync key list v1\n");
    for line in lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Why a plan cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSaved {
    /// Agents were skipped: a plan must cover every agent it was made for.
    #[error(
        "the plan skips agent(s) {agents}, so it was not saved: a saved plan must cover every agent it was made for"
    )]
    Skipped { agents: String },
    /// The plan names an agent whose files were not read (a bug).
    #[error("internal error: no inputs recorded for agent {agent}")]
    NoInputs { agent: String },
}

impl crate::hint::Hinted for NotSaved {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            NotSaved::Skipped { .. } => {
                Some("fix what the plan says about them, or leave them out with --agent".into())
            }
            NotSaved::NoInputs { .. } => None,
        }
    }
}

/// The facts a plan file records besides the plan itself.
pub struct Origin<'a> {
    pub inputs: &'a Inputs,
    pub observed: &'a BTreeMap<String, Result<Listing, PlatformError>>,
    pub platform: &'a str,
    pub revision: &'a str,
    pub all_agents: bool,
    pub created_at: &'a str,
}

/// The plan file of `plan`.
pub fn save(plan: &Plan, origin: &Origin<'_>) -> Result<SavedPlan, NotSaved> {
    let skipped: Vec<&str> = plan
        .agents
        .iter()
        .filter(|a| a.skipped.is_some())
        .map(|a| a.agent.as_str())
        .collect();
    if !skipped.is_empty() {
        return Err(NotSaved::Skipped {
            agents: skipped.join(", "),
        });
    }
    let mut agents = Vec::new();
    for a in &plan.agents {
        let files =
            origin
                .inputs
                .agents
                .get(&a.agent)
                .cloned()
                .ok_or_else(|| NotSaved::NoInputs {
                    agent: a.agent.clone(),
                })?;
        // Not skipped, so its list succeeded.
        let (key_count, key_list) = match origin.observed.get(&a.agent) {
            Some(Ok(listing)) => (listing.keys.len(), key_list_digest(listing)),
            _ => {
                return Err(NotSaved::Skipped {
                    agents: a.agent.clone(),
                });
            }
        };
        agents.push(SavedAgent {
            agent: a.agent.clone(),
            files,
            key_count,
            key_list,
            changes: a.changes.clone(),
            redeploy: a.redeploy,
        });
    }
    Ok(SavedPlan {
        format_version: FORMAT_VERSION,
        kind: KIND.to_owned(),
        castsync_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: origin.created_at.to_owned(),
        revision: origin.revision.to_owned(),
        platform: origin.platform.to_owned(),
        config: origin.inputs.config.clone(),
        all_agents: origin.all_agents,
        agents,
    })
}

/// One reason a saved plan does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the target differs: the plan is for platform {planned}, this run targets {now}")]
    Platform { planned: String, now: String },
    #[error("{}", config_moved(planned, now))]
    Config { planned: FileBlob, now: FileBlob },
    #[error("{path} (agent {agent}) {}", moved(planned, now))]
    File {
        agent: String,
        path: String,
        planned: Option<String>,
        now: Option<String>,
    },
    #[error("agent {agent} was added since the plan: the plan would leave it unreconciled")]
    AgentAdded { agent: String },
    #[error("agent {agent} was removed since the plan")]
    AgentRemoved { agent: String },
    #[error(
        "the platform's key list for agent {agent} changed since the plan ({planned} key(s) then, {now} now)"
    )]
    KeyList {
        agent: String,
        planned: usize,
        now: usize,
    },
    #[error(
        "the plan sets {key} of agent {agent}, which its manifest does not declare: a fresh plan could never do that"
    )]
    SetsUndeclared { agent: String, key: String },
    #[error(
        "the plan deletes {key} of agent {agent}, which {why}: a fresh plan could never do that"
    )]
    DeleteRefused {
        agent: String,
        key: String,
        why: &'static str,
    },
    #[error(
        "the plan deletes {deletes} of the {managed} managed keys of agent {agent}, more than max_delete_fraction allows"
    )]
    MassDelete {
        agent: String,
        deletes: usize,
        managed: usize,
    },
    #[error(
        "the plan lists agent {agent} {times} times: a fresh plan lists each agent once, and its guards hold for the whole agent"
    )]
    DuplicateAgent { agent: String, times: usize },
    #[error(
        "the plan changes {key} of agent {agent} {times} times: a fresh plan changes a key once"
    )]
    RepeatedChange {
        agent: String,
        key: String,
        times: usize,
    },
    #[error("the plan redeploys agent {agent}, which {why}: a fresh plan would not")]
    RedeployRefused { agent: String, why: &'static str },
    #[error("the plan does not record {path} (agent {agent}), which this tree has")]
    FileNotRecorded { agent: String, path: String },
}

fn short(blob: &str) -> &str {
    blob.get(..12).unwrap_or(blob)
}

fn moved(planned: &Option<String>, now: &Option<String>) -> String {
    match (planned, now) {
        (Some(p), Some(n)) => format!(
            "changed since the plan (blob {} then, {} now)",
            short(p),
            short(n)
        ),
        (Some(_), None) => "was removed since the plan".to_owned(),
        (None, Some(_)) => "was added since the plan".to_owned(),
        (None, None) => "is unchanged".to_owned(),
    }
}

fn config_moved(planned: &FileBlob, now: &FileBlob) -> String {
    if planned.path != now.path {
        format!(
            "the config is {} now, {} in the plan",
            now.path, planned.path
        )
    } else {
        format!("{} {}", now.path, moved(&planned.blob, &now.blob))
    }
}

/// What no plan castsync writes can hold, whatever the tree: an agent listed twice (each
/// entry would pass the mass-delete guard on its own), a key changed more than once (each
/// copy is a request), a redeploy "for its changes" of an agent without any. Checked before
/// anything is read.
pub fn check_shape(saved: &SavedPlan) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut agents: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &saved.agents {
        *agents.entry(&a.agent).or_default() += 1;
    }
    for (agent, times) in agents.into_iter().filter(|(_, n)| *n > 1) {
        out.push(Mismatch::DuplicateAgent {
            agent: agent.to_owned(),
            times,
        });
    }
    for a in &saved.agents {
        let mut keys: BTreeMap<&str, usize> = BTreeMap::new();
        for change in &a.changes {
            *keys.entry(&change.key).or_default() += 1;
        }
        for (key, times) in keys.into_iter().filter(|(_, n)| *n > 1) {
            out.push(Mismatch::RepeatedChange {
                agent: a.agent.clone(),
                key: key.to_owned(),
                times,
            });
        }
        if a.redeploy == Some(RedeployReason::Changes) && !a.has_changes() {
            out.push(Mismatch::RedeployRefused {
                agent: a.agent.clone(),
                why: "has no changes in the plan",
            });
        }
    }
    out
}

/// Refuses a redeploy a fresh plan would not make: of an agent the config does not redeploy
/// (`redeploy`, resolved per agent), or, for one without changes, unless the state owes it
/// one (`pending`).
pub fn check_redeploys(
    saved: &SavedPlan,
    redeploys: impl Fn(&str) -> bool,
    pending: impl Fn(&str) -> bool,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for a in saved.agents.iter().filter(|a| a.redeploy.is_some()) {
        let why = if !redeploys(&a.agent) {
            Some("the config does not redeploy")
        } else if !a.has_changes() && !pending(&a.agent) {
            Some("has no changes and no redeploy owed")
        } else {
            None
        };
        if let Some(why) = why {
            out.push(Mismatch::RedeployRefused {
                agent: a.agent.clone(),
                why,
            });
        }
    }
    out
}

/// The target the run would write to, against the plan's.
pub fn check_target(saved: &SavedPlan, platform: &str) -> Option<Mismatch> {
    (saved.platform != platform).then(|| Mismatch::Platform {
        planned: saved.platform.clone(),
        now: platform.to_owned(),
    })
}

/// The tree now, against what the plan was made from: the config, every agent's files, and
/// (for a plan of every agent) the set of agents.
pub fn check_inputs(saved: &SavedPlan, now: &Inputs) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if saved.config != now.config {
        out.push(Mismatch::Config {
            planned: saved.config.clone(),
            now: now.config.clone(),
        });
    }
    for agent in &saved.agents {
        let Some(files) = now.agents.get(&agent.agent) else {
            out.push(Mismatch::AgentRemoved {
                agent: agent.agent.clone(),
            });
            continue;
        };
        for current in files {
            if !agent.files.iter().any(|f| f.path == current.path) {
                out.push(Mismatch::FileNotRecorded {
                    agent: agent.agent.clone(),
                    path: current.path.clone(),
                });
            }
        }
        for planned in &agent.files {
            let current = files.iter().find(|f| f.path == planned.path);
            let current_blob = current.and_then(|f| f.blob.clone());
            if planned.blob != current_blob {
                out.push(Mismatch::File {
                    agent: agent.agent.clone(),
                    path: planned.path.clone(),
                    planned: planned.blob.clone(),
                    now: current_blob,
                });
            }
        }
    }
    if saved.all_agents {
        let planned: BTreeSet<&str> = saved.agents.iter().map(|a| a.agent.as_str()).collect();
        for agent in now.agents.keys() {
            if !planned.contains(agent.as_str()) {
                out.push(Mismatch::AgentAdded {
                    agent: agent.clone(),
                });
            }
        }
    }
    out
}

/// The key lists listed now, against the plan's, for every agent listed.
pub fn check_key_lists(saved: &SavedPlan, listed: &BTreeMap<String, Listing>) -> Vec<Mismatch> {
    saved
        .agents
        .iter()
        .filter_map(|a| {
            let now = listed.get(&a.agent)?;
            (key_list_digest(now) != a.key_list).then(|| Mismatch::KeyList {
                agent: a.agent.clone(),
                planned: a.key_count,
                now: now.keys.len(),
            })
        })
        .collect()
}

/// Refuses the changes a fresh plan of this tree, under this policy, could never make.
/// `desired` holds the secrets of every agent the plan changes; `listed` their key lists.
pub fn check_changes(
    saved: &SavedPlan,
    desired: &BTreeMap<String, DesiredSecrets>,
    listed: &BTreeMap<String, Listing>,
    policy: &Policy,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for agent in saved.agents.iter().filter(|a| a.has_changes()) {
        let name = agent.agent.clone();
        let wanted = desired.get(&agent.agent);
        let declared = |key: &str| wanted.is_some_and(|w| w.contains_key(key));
        let mut deletes = 0usize;
        for change in &agent.changes {
            let key = change.key.clone();
            if change.action != Action::Delete {
                if !declared(&change.key) || policy.unmanaged_keys.contains(&change.key) {
                    out.push(Mismatch::SetsUndeclared {
                        agent: name.clone(),
                        key,
                    });
                }
                continue;
            }
            deletes += 1;
            let why = if declared(&change.key) {
                Some("its manifest declares")
            } else if policy.unmanaged_keys.contains(&change.key) {
                Some("is in unmanaged_keys")
            } else if !policy.prune {
                Some("is kept because prune is off")
            } else {
                None
            };
            if let Some(why) = why {
                out.push(Mismatch::DeleteRefused {
                    agent: name.clone(),
                    key,
                    why,
                });
            }
        }
        // The plan's own guard (`plan::plan_agent`), on the listing the plan was made from.
        let managed = listed.get(&agent.agent).map_or(0, |l| {
            l.keys
                .iter()
                .filter(|k| !policy.unmanaged_keys.contains(&k.key))
                .count()
        });
        if deletes > 0 && !policy.allow_mass_delete {
            let keeps_none = deletes == managed
                && !wanted.is_some_and(|w| w.keys().any(|k| !policy.unmanaged_keys.contains(k)));
            let too_many =
                deletes > 1 && deletes as f64 > policy.max_delete_fraction * managed as f64;
            if keeps_none || too_many {
                out.push(Mismatch::MassDelete {
                    agent: name,
                    deletes,
                    managed,
                });
            }
        }
    }
    out
}

/// The plan to apply: every agent of the saved plan with exactly its changes and redeploy.
pub fn to_plan(saved: &SavedPlan) -> Plan {
    Plan {
        agents: saved
            .agents
            .iter()
            .map(|a| AgentPlan {
                changes: a.changes.clone(),
                redeploy: a.redeploy,
                ..AgentPlan::new(&a.agent)
            })
            .collect(),
        coverage: crate::plan::Coverage::default(),
    }
}

#[cfg(test)]
mod tests;
