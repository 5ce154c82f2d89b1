//! One reconcile: load (source → desired) → observe (list the platform) → plan → apply. The
//! CLI's `reconcile` and the daemon both call [`reconcile`]; they differ only in *when* they
//! call it and how they report.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, AgentResult, ApplyOptions, ApplyReport};
use crate::config::Config;
use crate::crypto::Identities;
use crate::observe;
use crate::plan::{self, LastApplied, Plan, Policy, RevisionBaseline};
use crate::platform::Platform;
use crate::source::Checkout;
use crate::source::load::{self, LoadError, Loaded};
use crate::state::State;

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
    let checkout = req.checkout;
    let loaded = load::load_all(checkout.tree(), &checkout.config, req.identities, &req.only)?;
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
    let plan = {
        let state = req.state.lock().await;
        let view = state.view(req.platform.id());
        let last: &dyn LastApplied = match &baseline {
            Some(b) => b,
            None => &view,
        };
        plan::plan(&desired, &actual, last, &req.policy)
    };

    let revision = checkout.label();
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
