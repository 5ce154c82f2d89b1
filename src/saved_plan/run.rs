//! The I/O around saved plans: the git blob ids of what a checkout holds, reading and writing
//! plan files, and `reconcile --plan FILE` itself.
//!
//! Applying a plan checks, in this order and before any write: the target, the tree (config,
//! every agent's files, the agent set), then — after decrypting and listing only the agents
//! the plan changes — their key lists and the changes themselves, then the tree once more (a
//! working tree can change under a run). Any difference refuses the whole plan, naming each.
//! The apply then goes through `apply::apply` like any other, so the state and the history
//! record it. It must never send a request for an agent the plan does not change, nor write
//! anything after a refusal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{Inputs, Mismatch, SavedPlan};
use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::atomic_write::{self, Mode, Replace};
use crate::crypto::Identities;
use crate::deadline::{Bounded, Deadline, RunTimeout, TimedOut};
use crate::fsread::{self, ReadError};
use crate::load::{self, LoadError};
use crate::observe;
use crate::platform::Platform;
use crate::platform::types::{Listing, PlatformError};
use crate::reconcile::{self, Observer, Outcome};
use crate::source::inputs;
use crate::source::{Checkout, MANIFEST_FILE, SCHEMA_FILE, SourceError};
use crate::state::State;

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

/// The git blob id of `bytes`, as `git hash-object` prints it.
pub fn blob_id(bytes: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, bytes)
        // Hashing a buffer cannot fail: libgit2 only reports an invalid object type.
        .map(|oid| oid.to_string())
        .unwrap_or_default()
}

/// What `checkout` holds for the config and for `agents`, as blob ids. `explicit_config` is
/// `--config FILE` (read from disk, named by its path).
pub fn inputs(
    checkout: &Checkout,
    explicit_config: Option<&Path>,
    agents: &[String],
) -> Result<Inputs, SavedPlanError> {
    let tree = checkout.tree();
    let config = match explicit_config {
        Some(path) => super::FileBlob {
            path: path.display().to_string(),
            blob: Some(blob_id(
                &fsread::read_file(path, fsread::MAX_REPO_FILE).map_err(SavedPlanError::Config)?,
            )),
        },
        None => super::FileBlob {
            path: crate::config::FILE_NAME.to_owned(),
            blob: tree
                .read(Path::new(crate::config::FILE_NAME))?
                .map(|b| blob_id(&b)),
        },
    };
    // Every shared group's manifest counts as an input of every agent: which groups an
    // agent uses is only known once its manifest is decrypted, and the comparison must work
    // without. A group changed since the plan was made refuses the plan (for every agent,
    // even one that does not use it: narrower, never wider).
    let mut groups = Vec::new();
    for group in crate::source::group_names(tree, &checkout.config)? {
        let path = crate::source::group_manifest_path(&checkout.config, &group);
        groups.push(super::FileBlob {
            path: path.display().to_string(),
            blob: tree.read(&path)?.map(|b| blob_id(&b)),
        });
    }
    let mut out = BTreeMap::new();
    for agent in agents {
        let dir = checkout.config.agents_dir.join(agent);
        let mut files = Vec::new();
        for name in [MANIFEST_FILE, SCHEMA_FILE] {
            let path = dir.join(name);
            files.push(super::FileBlob {
                path: path.display().to_string(),
                blob: tree.read(&path)?.map(|b| blob_id(&b)),
            });
        }
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

/// Everything `reconcile --plan FILE` needs.
pub struct SavedRequest<'a> {
    pub saved: &'a SavedPlan,
    /// The plan file, for messages.
    pub file: &'a Path,
    /// The tree to apply from (the worktree, or `--ref`).
    pub checkout: &'a Checkout,
    pub explicit_config: Option<&'a Path>,
    pub identities: &'a Identities,
    pub platform: Arc<dyn Platform>,
    pub state: Arc<Mutex<State>>,
    /// `--allow-mass-delete`: the plan's deletes pass the guard again at apply time.
    pub allow_mass_delete: bool,
    /// `--dry-run`: check that the plan still applies, write nothing.
    pub dry_run: bool,
    pub concurrency: usize,
    pub cancel: CancellationToken,
    /// The run's deadline (`--timeout`), as for any reconcile.
    pub timeout: RunTimeout,
}

/// Checks the saved plan against the tree and the platform, then applies exactly its changes
/// (see the module doc). A dry run stops after the checks.
pub async fn apply_saved(
    req: SavedRequest<'_>,
    observer: Arc<dyn Observer>,
) -> Result<Outcome, SavedPlanError> {
    let saved = req.saved;
    let checkout = req.checkout;
    let deadline = Deadline::start(req.timeout);
    let platform = Bounded::wrap(req.platform.clone(), deadline.clone());
    let refused = |mismatches: Vec<Mismatch>| SavedPlanError::Refused {
        path: req.file.to_owned(),
        mismatches,
    };
    let scope: Vec<String> = if saved.all_agents {
        checkout.agents.clone()
    } else {
        saved
            .agents
            .iter()
            .map(|a| a.agent.clone())
            .filter(|a| checkout.agents.contains(a))
            .collect()
    };
    let check_tree = || -> Result<Vec<Mismatch>, SavedPlanError> {
        let now = inputs(checkout, req.explicit_config, &scope)?;
        let mut mismatches: Vec<Mismatch> = super::check_target(saved, req.platform.id())
            .into_iter()
            .collect();
        mismatches.extend(super::check_inputs(saved, &now));
        Ok(mismatches)
    };
    let mut mismatches = super::check_shape(saved);
    if mismatches.is_empty() {
        mismatches = check_tree()?;
    }
    if !mismatches.is_empty() {
        return Err(refused(mismatches));
    }

    let changing: BTreeSet<String> = saved
        .agents
        .iter()
        .filter(|a| a.has_changes())
        .map(|a| a.agent.clone())
        .collect();
    let loaded = if changing.is_empty() {
        load::Loaded {
            agents: BTreeMap::new(),
            groups: BTreeMap::new(),
            notes: Vec::new(),
        }
    } else {
        load::load_all(checkout.tree(), &checkout.config, req.identities, &changing)?
    };
    if let Some((agent, failure)) = loaded
        .agents
        .iter()
        .find_map(|(a, l)| l.failure().map(|m| (a.clone(), m)))
    {
        return Err(SavedPlanError::NotLoaded {
            agent,
            message: failure.message,
            hint: failure.hint,
        });
    }
    let desired = loaded.ok_secrets();

    deadline.allow_requests(changing.len());
    let observed = observe::list_agents(
        platform.clone(),
        changing.iter().cloned(),
        req.concurrency,
        observer.as_ref(),
    )
    .await;
    let mut listed: BTreeMap<String, Listing> = BTreeMap::new();
    for agent in &changing {
        match observed.get(agent) {
            Some(Ok(listing)) => {
                listed.insert(agent.clone(), listing.clone());
            }
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
        }
    }
    let policy = reconcile::policy(&checkout.config, false, req.allow_mass_delete);
    let mut mismatches = super::check_key_lists(saved, &listed);
    mismatches.extend(super::check_changes(saved, &desired, &listed, &policy));
    {
        // A saved plan takes no --redeploy / --no-redeploy: the config decides.
        let state = req.state.lock().await;
        let platform_id = req.platform.id();
        mismatches.extend(super::check_redeploys(
            saved,
            |agent| inputs::redeploys(&checkout.config, inputs::Overrides::default(), agent),
            |agent| state.redeploy_pending(platform_id, agent),
        ));
    }
    // A working tree may have changed while the agents were decrypted and listed.
    mismatches.extend(check_tree()?);
    if !mismatches.is_empty() {
        return Err(refused(mismatches));
    }

    let plan = super::to_plan(saved);
    let revision = checkout.label();
    let declined = !req.dry_run && plan.has_changes() && {
        // The person reading the plan is not the platform being slow.
        let _paused = deadline.pause();
        !observer.confirm(&plan)
    };
    let mut state_warning = None;
    let report = if req.dry_run || declined {
        None
    } else if !plan.has_changes() {
        Some(ApplyReport::default())
    } else {
        let platform_id = req.platform.id();
        state_warning = reconcile::forget_before_writing(&plan, &req.state, platform_id).await;
        // A saved plan takes no flag that bears on the settings.
        let mut now = inputs::of_agents(
            checkout.tree(),
            &checkout.config,
            inputs::Overrides::default(),
            &changing,
        );
        let groups = inputs::of_groups(checkout.tree(), &checkout.config);
        inputs::with_groups(&mut now, loaded.groups_used(), &groups);
        let options = ApplyOptions {
            concurrency: req.concurrency,
            revision: Some(revision.clone()),
            converged: reconcile::converged_from(&plan, &now, &revision),
        };
        deadline.allow_requests(apply::request_count(&plan));
        Some(
            apply::apply(
                &plan,
                &desired,
                platform,
                req.state.clone(),
                &options,
                &req.cancel,
                observer,
            )
            .await,
        )
    };
    let timed_out = TimedOut::find(&plan, report.as_ref());
    Ok(Outcome {
        loaded,
        plan,
        report,
        revision,
        declined,
        observed,
        timed_out,
        state_warning,
    })
}
