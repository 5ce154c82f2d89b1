//! The I/O around saved plans: the git blob ids of what a checkout holds, reading and writing
//! plan files, and `reconcile --plan FILE` itself.
//!
//! Applying a plan checks, in this order and before any write: the target, the tree (config,
//! every agent's files, the agent set), then — after decrypting the plan's agents and listing
//! only those it changes — their key lists and the changes themselves, then the tree once
//! more (a working tree can change under a run). Any difference refuses the whole plan,
//! naming each. The plan then lands through `reconcile::land`, the path every plan takes, so
//! the state (what was written, and what each agent converged from) and the history record
//! it as they record any apply. It must never send a request for an agent the plan does not
//! change, nor write anything after a refusal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::{FileBlob, Inputs, Mismatch, SavedPlan};
use crate::atomic_write::{self, Mode, Replace};
use crate::fsread::{self, ReadError};
use crate::load::{self, LoadError, Loaded};
use crate::observe;
use crate::platform::types::{Listing, PlatformError};
use crate::reconcile::{self, Observer, Outcome, Planned, Run};
use crate::request::Request;
use crate::source::inputs;
use crate::source::{Checkout, SourceError};

/// A saved plan could not be read, checked or applied.
#[derive(Debug, Error)]
pub enum SavedPlanError {
    /// The plan file cannot be read (missing, not a regular file, too large).
    #[error("cannot read the saved plan: {0}")]
    Read(#[source] ReadError),
    /// Not a castsync plan, or a damaged one.
    #[error("{path} is not a castsync plan file: {detail}")]
    Parse { path: PathBuf, detail: String },
    /// Written by a castsync with another plan format.
    #[error(
        "{path} has plan format version {found}, but this castsync reads version {}",
        super::FORMAT_VERSION
    )]
    Version {
        path: PathBuf,
        found: u64,
        version: String,
    },
    /// The plan file cannot be written.
    #[error("cannot write the plan to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The tree or the config cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `--config FILE` cannot be read.
    #[error("cannot read the config: {0}")]
    Config(#[source] ReadError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An agent the plan changes does not load (a key that cannot decrypt it, say).
    #[error("agent {agent} cannot be applied from the saved plan: {message}")]
    NotLoaded {
        agent: String,
        message: String,
        hint: Option<String>,
    },
    /// An agent's key list could not be read to check it.
    #[error("cannot list the keys of agent {agent} to check the saved plan: {error}")]
    List { agent: String, error: PlatformError },
    /// Something the plan was made from moved, or the plan asks for what a fresh plan could
    /// never do: nothing was sent.
    #[error(
        "the saved plan {} does not match, so nothing was applied:\n{}",
        path.display(),
        list(mismatches)
    )]
    Refused {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
}

impl crate::hint::Hinted for SavedPlanError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            SavedPlanError::Parse { .. } => {
                "save one with `castsync reconcile --dry-run --save-plan FILE`".into()
            }
            SavedPlanError::Version { version, .. } => {
                format!("apply it with the castsync that saved it ({version}), or plan afresh")
                    .into()
            }
            SavedPlanError::Refused { mismatches, .. }
                if mismatches
                    .iter()
                    .any(|m| matches!(m, Mismatch::MassDelete { .. })) =>
            {
                "add --allow-mass-delete if those deletes are intended, or plan afresh: castsync reconcile --dry-run --save-plan FILE".into()
            }
            SavedPlanError::Refused { .. } => {
                "plan afresh: castsync reconcile --dry-run --save-plan FILE".into()
            }
            SavedPlanError::Load(e) => return e.hint(),
            SavedPlanError::NotLoaded { hint, .. } => return hint.as_deref().map(Into::into),
            SavedPlanError::List { error, .. } => return error.hint(),
            _ => return None,
        })
    }
}

/// How many mismatches a refusal names; a forged plan can hold any number of them.
const SHOWN: usize = 20;

fn list(mismatches: &[Mismatch]) -> String {
    let mut lines: Vec<String> = mismatches
        .iter()
        .take(SHOWN)
        .map(|m| format!("  - {}", crate::escape::terminal(&m.to_string())))
        .collect();
    if mismatches.len() > SHOWN {
        lines.push(format!(
            "  - and {} more",
            thousands(mismatches.len() - SHOWN)
        ));
    }
    lines.join("\n")
}

/// `49980` as `49,980`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What `checkout` holds for the config and for `agents`, as blob ids: the files of each
/// agent's inputs (`source::inputs`) and every shared group's manifest. `explicit_config` is
/// `--config FILE` (read from disk, named by its path).
pub fn inputs(
    checkout: &Checkout,
    explicit_config: Option<&Path>,
    env: &crate::environment::Environment,
    agents: &[String],
) -> Result<Inputs, SavedPlanError> {
    let tree = checkout.tree();
    let config = match explicit_config {
        Some(path) => FileBlob {
            path: path.display().to_string(),
            blob: Some(crate::source::blob_id(
                &fsread::read_file(path, fsread::MAX_REPO_FILE).map_err(SavedPlanError::Config)?,
            )),
        },
        None => FileBlob {
            path: crate::config::FILE_NAME.to_owned(),
            blob: tree.blob_id(Path::new(crate::config::FILE_NAME))?,
        },
    };
    let blob = |path: &PathBuf| -> Result<FileBlob, SourceError> {
        Ok(FileBlob {
            path: path.display().to_string(),
            blob: tree.blob_id(path)?,
        })
    };
    // Every shared group's manifest counts as an input of every agent: which groups an
    // agent uses is only known once its manifest is decrypted, and the comparison must work
    // without. A group changed since the plan was made refuses the plan (for every agent,
    // even one that does not use it: narrower, never wider).
    let groups = inputs::group_files(tree, &checkout.config, env)?
        .iter()
        .map(blob)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for agent in agents {
        let mut files = inputs::agent_files(&checkout.config, env, agent)
            .iter()
            .map(blob)
            .collect::<Result<Vec<_>, _>>()?;
        files.extend(groups.iter().cloned());
        out.insert(agent.clone(), files);
    }
    Ok(Inputs {
        config,
        agents: out,
    })
}

/// Reads a plan file (bounded to [`super::MAX_FILE`]).
pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
    let bytes = fsread::read_file(path, super::MAX_FILE).map_err(SavedPlanError::Read)?;
    let parse = |detail: String| SavedPlanError::Parse {
        path: path.to_owned(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| parse(e.to_string()))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(super::KIND) {
        return Err(parse(format!("no \"kind\": \"{}\"", super::KIND)));
    }
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| parse("no numeric format_version".to_owned()))?;
    if found != u64::from(super::FORMAT_VERSION) {
        return Err(SavedPlanError::Version {
            path: path.to_owned(),
            found,
            version: value
                .get("castsync_version")
                .and_then(|v| v.as_str())
                .map(|v| crate::escape::terminal(v).into_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
        });
    }
    serde_json::from_value(value).map_err(|e| parse(e.to_string()))
}

/// Writes a plan file atomically. It holds no secret, so it gets the usual permissions.
pub fn write(path: &Path, saved: &SavedPlan) -> Result<(), SavedPlanError> {
    let mut json = serde_json::to_vec_pretty(saved).expect("a plan serializes: strings and lists");
    json.push(b'\n');
    atomic_write::write(path, &json, Replace::Existing, Mode::Default).map_err(|source| {
        SavedPlanError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// A saved plan to apply, and where it came from.
pub struct PlanFile<'a> {
    pub saved: &'a SavedPlan,
    /// The plan file, for messages.
    pub path: &'a Path,
    /// `--config FILE`, whose blob the plan recorded instead of `castsync.yaml`'s.
    pub explicit_config: Option<&'a Path>,
}

/// Checks the saved plan against the tree and the platform, then lands exactly its changes
/// the way every plan lands (`reconcile::land`); see the module doc. A dry run stops after
/// the checks. `req` is the run's request (its tree, target and settings; a saved plan
/// takes no flag that narrows or widens a run).
pub async fn apply_saved(
    req: Request<'_>,
    file: PlanFile<'_>,
    observer: Arc<dyn Observer>,
) -> Result<Outcome, SavedPlanError> {
    let run = Run::start(&req);
    let scope = scope(file.saved, req.checkout);
    let mut mismatches = super::check_shape(file.saved);
    if mismatches.is_empty() {
        mismatches = check_tree(&req, &file, &scope)?;
    }
    refuse_unless_empty(&file, mismatches)?;
    let changing = changing(file.saved);
    let loaded = load_scope(&req, &scope, &changing)?;
    run.deadline.allow_requests(changing.len());
    let observed = observe::list_agents(
        run.platform.clone(),
        changing.iter().cloned(),
        req.settings.concurrency,
        observer.as_ref(),
    )
    .await;
    let listed = listed(&changing, &observed)?;
    let mut mismatches = super::check_key_lists(file.saved, &listed);
    let desired = loaded.ok_secrets();
    mismatches.extend(super::check_changes(
        file.saved,
        &desired,
        &listed,
        &req.policy(),
    ));
    mismatches.extend(check_redeploys(&req, file.saved).await);
    // A working tree may have changed while the agents were decrypted and listed.
    mismatches.extend(check_tree(&req, &file, &scope)?);
    refuse_unless_empty(&file, mismatches)?;

    let checkout = req.checkout;
    let now = inputs::of_run(
        checkout.tree(),
        &checkout.config,
        &req.environment,
        req.settings.overrides(),
        &scope,
        None,
    );
    let planned = Planned {
        loaded,
        plan: super::to_plan(file.saved),
        observed,
        inputs: now,
    };
    Ok(reconcile::land(&req, run, planned, observer).await)
}

/// The agents the plan covers that the tree still declares (a plan of every agent covers
/// every agent of the tree, so one added since is seen as such).
fn scope(saved: &SavedPlan, checkout: &Checkout) -> Vec<String> {
    if saved.all_agents {
        return checkout.agents.clone();
    }
    saved
        .agents
        .iter()
        .map(|a| a.agent.clone())
        .filter(|a| checkout.declares(a))
        .collect()
}

/// The agents the plan changes.
fn changing(saved: &SavedPlan) -> BTreeSet<String> {
    saved
        .agents
        .iter()
        .filter(|a| a.has_changes())
        .map(|a| a.agent.clone())
        .collect()
}

/// The target and the tree now, against what the plan was made from.
fn check_tree(
    req: &Request<'_>,
    file: &PlanFile<'_>,
    scope: &[String],
) -> Result<Vec<Mismatch>, SavedPlanError> {
    let now = inputs(req.checkout, file.explicit_config, &req.environment, scope)?;
    let mut mismatches: Vec<Mismatch> = super::check_target(file.saved, req.platform.id())
        .into_iter()
        .collect();
    mismatches.extend(super::check_inputs(file.saved, &now));
    Ok(mismatches)
}

fn refuse_unless_empty(
    file: &PlanFile<'_>,
    mismatches: Vec<Mismatch>,
) -> Result<(), SavedPlanError> {
    if mismatches.is_empty() {
        return Ok(());
    }
    Err(SavedPlanError::Refused {
        path: file.path.to_owned(),
        mismatches,
    })
}

/// Loads every agent of the plan: an agent it changes must load (its values are what the
/// plan sets), one it leaves alone is loaded only to learn the shared groups it uses, so that
/// what it converged from can be recorded; no request is sent for it.
fn load_scope(
    req: &Request<'_>,
    scope: &[String],
    changing: &BTreeSet<String>,
) -> Result<Loaded, SavedPlanError> {
    let checkout = req.checkout;
    let scope: BTreeSet<String> = scope.iter().cloned().collect();
    let loaded = if scope.is_empty() {
        Loaded::default()
    } else {
        let env = &req.environment;
        load::load_all(
            checkout.tree(),
            &checkout.config,
            env,
            req.identities,
            &scope,
        )?
    };
    let failed = changing.iter().find_map(|agent| {
        let failure = loaded.agents.get(agent)?.failure()?;
        Some((agent.clone(), failure))
    });
    if let Some((agent, failure)) = failed {
        return Err(SavedPlanError::NotLoaded {
            agent,
            message: failure.message,
            hint: failure.hint,
        });
    }
    Ok(loaded)
}

/// The key list of every agent the plan changes; a list that failed stops the apply.
fn listed(
    changing: &BTreeSet<String>,
    observed: &BTreeMap<String, Result<Listing, PlatformError>>,
) -> Result<BTreeMap<String, Listing>, SavedPlanError> {
    let mut listed = BTreeMap::new();
    for agent in changing {
        let listing = match observed.get(agent) {
            Some(Ok(listing)) => listing.clone(),
            Some(Err(error)) => {
                return Err(SavedPlanError::List {
                    agent: agent.clone(),
                    error: error.clone(),
                });
            }
            None => {
                return Err(SavedPlanError::List {
                    agent: agent.clone(),
                    error: PlatformError::Transient {
                        detail: "the list did not finish".to_owned(),
                    },
                });
            }
        };
        listed.insert(agent.clone(), listing);
    }
    Ok(listed)
}

/// The plan's redeploys against what the config calls for, and what the state owes. A saved
/// plan takes no `--redeploy` / `--no-redeploy`: the config decides.
async fn check_redeploys(req: &Request<'_>, saved: &SavedPlan) -> Vec<Mismatch> {
    let state = req.state.lock().await;
    let platform_id = req.platform.id();
    let config = &req.checkout.config;
    let overrides = req.settings.overrides();
    super::check_redeploys(
        saved,
        |agent| config.redeploys(agent, overrides.redeploy),
        |agent| state.redeploy_pending(platform_id, agent),
    )
}
