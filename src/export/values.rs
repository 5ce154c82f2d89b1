//! The values `castsync export` writes and `castsync run` passes on: one agent's effective
//! values in one environment (its own, its shared groups', the environment's overlay),
//! loaded exactly as `reconcile` would load them. An agent that would not be applied (a
//! required key missing, a file nobody here can decrypt) is refused with its findings, before
//! anything is written or run.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::crypto::Identities;
use crate::environment::Environment;
use crate::escape::terminal;
use crate::finding::Finding;
use crate::load::{LoadError, load_all};
use crate::plan::DesiredSecrets;
use crate::source::Tree;

/// Whose values, and which.
pub struct Request<'a> {
    pub tree: &'a dyn Tree,
    pub config: &'a Config,
    pub env: &'a Environment,
    pub identities: &'a Identities,
    pub agent: &'a str,
    /// `--only KEY…`: only these keys (each must be among them); empty for all.
    pub only: &'a [String],
    /// The command, for messages: `export` or `run`.
    pub command: &'static str,
}

/// Why an agent's values cannot be given out.
#[derive(Debug, thiserror::Error)]
pub enum NotExported {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The agent's manifest does not pass validation: `findings` say why.
    #[error(
        "{command} {agent}: the agent's manifest{} does not pass validation (above): nothing was {}",
        .env.suffix(),
        if *.command == "run" { "run" } else { "written" }
    )]
    Invalid {
        command: &'static str,
        agent: String,
        env: Environment,
        findings: Vec<Finding>,
    },
    /// `--only` names a key the agent does not have.
    #[error("--only {}: agent {agent}{} has no such key", terminal(.key), .env.suffix())]
    NoSuchKey {
        key: String,
        agent: String,
        env: Environment,
        known: Vec<String>,
    },
}

impl crate::hint::Hinted for NotExported {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            NotExported::Load(e) => e.hint(),
            NotExported::Invalid { env, .. } => Some(
                format!(
                    "fix it, then check with `castsync validate{}`",
                    env.name()
                        .map(|n| format!(" --env {n}"))
                        .unwrap_or_default()
                )
                .into(),
            ),
            NotExported::NoSuchKey { known, .. } => {
                Some(format!("its keys: {}", known.join(", ")).into())
            }
        }
    }
}

/// The effective values of `req.agent` in `req.env`, as `reconcile` would apply them; only
/// the keys `req.only` names, when it names any.
pub fn effective(req: &Request<'_>) -> Result<DesiredSecrets, NotExported> {
    let agent = req.agent;
    let selected = BTreeSet::from([agent.to_owned()]);
    let mut loaded = load_all(req.tree, req.config, req.env, req.identities, &selected)?;
    // `load_all` refuses an agent that is not declared, so it is there.
    let (effective, findings) = match loaded.agents.remove(agent) {
        Some(load) => (load.effective, load.findings),
        None => (None, Vec::new()),
    };
    let Some(mut secrets) = effective.map(|e| e.secrets) else {
        return Err(NotExported::Invalid {
            command: req.command,
            agent: agent.to_owned(),
            env: req.env.clone(),
            findings,
        });
    };
    if let Some(missing) = req.only.iter().find(|k| !secrets.contains_key(*k)) {
        return Err(NotExported::NoSuchKey {
            key: missing.clone(),
            agent: agent.to_owned(),
            env: req.env.clone(),
            known: secrets.keys().cloned().collect(),
        });
    }
    if !req.only.is_empty() {
        secrets.retain(|k, _| req.only.contains(k));
    }
    Ok(secrets)
}
