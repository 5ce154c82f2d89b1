//! One reconcile: source → desired → plan → apply. The CLI's `reconcile` and the daemon both
//! call [`reconcile`]; they differ only in *when* they call it and how they report.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, AgentResult, ApplyOptions, ApplyReport};
use crate::config::Config;
use crate::crypto::Identities;
use crate::plan::{self, LastApplied, Plan, Policy, RevisionBaseline};
use crate::platform::Platform;
use crate::source::Tree;
use crate::source::load::{self, LoadError, Loaded};
use crate::state::State;

/// Everything one reconcile needs.
pub struct Request<'a> {
    pub tree: &'a dyn Tree,
    /// `--base`: the tree whose values count as last applied (instead of the state).
    pub base: Option<&'a dyn Tree>,
    pub config: &'a Config,
    pub identities: &'a Identities,
    pub platform: Arc<dyn Platform>,
    /// The state, shared with apply (which saves it after each agent).
    pub state: Arc<Mutex<State>>,
    pub policy: Policy,
    /// Only these agents (empty: all declared agents).
    pub only: BTreeSet<String>,
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
}

impl Outcome {
    /// True when every agent loaded, listed and applied without error.
    pub fn ok(&self) -> bool {
        !self.plan.has_skips() && self.report.as_ref().is_none_or(ApplyReport::ok)
    }
}

/// Runs one reconcile. `on_done` is called as each agent's apply finishes.
pub async fn reconcile(
    req: Request<'_>,
    on_done: &(dyn Fn(&AgentResult) + Send + Sync),
) -> Result<Outcome, LoadError> {
    let loaded = load::load_all(req.tree, req.config, req.identities, &req.only)?;
    let baseline = match req.base {
        Some(base) => {
            // An agent that fails to load at the base has no baseline: its keys show as
            // `unverified`, never as in sync.
            let base = load::load_all(base, req.config, req.identities, &req.only)?;
            Some(RevisionBaseline(base.ok_secrets()))
        }
        None => None,
    };

    let listable = loaded
        .agents
        .iter()
        .filter(|(_, a)| a.failure().is_none())
        .map(|(slug, _)| slug.clone());
    let actual = apply::list_agents(req.platform.clone(), listable, req.concurrency).await;

    let desired = loaded.desired_or_reasons();
    let plan = {
        let state = req.state.lock().await;
        let view = state.view(req.platform.id());
        let last: &dyn LastApplied = match &baseline {
            Some(b) => b,
            None => &view,
        };
        plan::plan(&desired, &actual, last, &req.policy)
    };

    let revision = req.tree.revision();
    let report = if req.dry_run {
        None
    } else if !plan.has_changes() {
        Some(ApplyReport::default())
    } else {
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
    Ok(Outcome {
        loaded,
        plan,
        report,
        revision,
    })
}

/// Why a `--base` plan refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The revision under review points the platform elsewhere than its base.
    #[error(
        "platform.url in castsync.yaml differs between the base revision ({base}) and this revision ({head}): a pull request must not change where the API key is sent, so this plan is refused\n  hint: merge the change of platform.url on its own first (its own pull request fails this check: review it by hand), and pin the URL in CI with CASTARI_API_URL"
    )]
    Changed { base: String, head: String },
    /// The base's config cannot be read, so the URL cannot be compared.
    #[error(
        "cannot compare platform.url with the base revision: castsync.yaml there cannot be used: {0}"
    )]
    BaseConfig(String),
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
pub fn check_platform_pinned(head: &Config, base: &dyn Tree) -> Result<(), PinError> {
    let name = std::path::Path::new(crate::config::FILE_NAME);
    let base_config = match base.read(name) {
        Ok(None) => Config::default(),
        Ok(Some(bytes)) => {
            let text = crate::fsread::text(bytes)
                .map_err(|_| PinError::BaseConfig("not UTF-8 text".to_owned()))?;
            Config::from_yaml(&text, std::path::Path::new(&base.display(name)))
                .map_err(|e| PinError::BaseConfig(e.to_string()))?
        }
        Err(e) => return Err(PinError::BaseConfig(e.to_string())),
    };
    let (base_url, head_url) = (configured_url(&base_config), configured_url(head));
    if base_url != head_url {
        return Err(PinError::Changed {
            base: crate::escape::terminal(&base_url).into_owned(),
            head: crate::escape::terminal(&head_url).into_owned(),
        });
    }
    Ok(())
}

/// The plan policy from the config and the command line.
pub fn policy(config: &Config, no_prune: bool, allow_mass_delete: bool) -> Policy {
    Policy {
        prune: config.prune && !no_prune,
        unmanaged_keys: config.unmanaged_keys.iter().cloned().collect(),
        max_delete_fraction: config.max_delete_fraction,
        allow_mass_delete,
        self_heal: config.self_heal,
    }
}
