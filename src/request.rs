//! What one reconcile is asked to do, built once from resolved options. The CLI's
//! `reconcile`, the daemon and the saved-plan path all start from
//! [`ApplySettings::request`]: the flags the two commands share are resolved into
//! [`ApplySettings`] once, and each reaches the plan through one field, so the paths cannot
//! disagree about what `--no-prune` or `--redeploy` mean.
//!
//! Nothing here reads a file or sends a request: it only holds what `target` and the command
//! line resolved.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::crypto::Identities;
use crate::deadline::RunTimeout;
use crate::environment::Environment;
use crate::plan::{Policy, Replace};
use crate::platform::Platform;
use crate::source::Checkout;
use crate::source::inputs::{Overrides, Remembered};
use crate::state::State;

/// How a run applies: the flags `reconcile` and `watch` share.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    /// `--no-prune`: never delete, whatever the config's `prune` says.
    pub no_prune: bool,
    /// `--allow-mass-delete`.
    pub allow_mass_delete: bool,
    /// Agents applied in parallel.
    pub concurrency: usize,
    /// `--redeploy` (true) / `--no-redeploy` (false) over the config's `redeploy`.
    pub redeploy: Option<bool>,
    /// The run's deadline (`--timeout`, else the default that grows with the run's
    /// requests): every platform call is bounded by it (see [`crate::deadline`]).
    pub timeout: RunTimeout,
}

impl Default for ApplySettings {
    /// What a run does without flags: the config decides, four agents at a time.
    fn default() -> ApplySettings {
        ApplySettings {
            no_prune: false,
            allow_mass_delete: false,
            concurrency: 4,
            redeploy: None,
            timeout: RunTimeout::Auto,
        }
    }
}

impl ApplySettings {
    /// The plan's rules for `config` under these settings. Its per-agent `redeploy` set is
    /// filled once the agents are known (`reconcile`).
    pub fn policy(&self, config: &Config, replace: Replace) -> Policy {
        Policy {
            prune: config.prune && !self.no_prune,
            unmanaged_keys: config.unmanaged_keys.iter().cloned().collect(),
            max_delete_fraction: config.max_delete_fraction,
            allow_mass_delete: self.allow_mass_delete,
            self_heal: config.self_heal,
            replace,
            redeploy: BTreeSet::new(),
        }
    }

    /// What these settings change about each agent's inputs (recorded with them).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            no_prune: self.no_prune,
            redeploy: self.redeploy,
        }
    }

    /// A request to reconcile every agent of `checkout` with these settings; the caller
    /// narrows it with struct update syntax (`Request { dry_run: true, ..settings.request(…) }`).
    pub fn request<'a>(
        &self,
        checkout: &'a Checkout,
        identities: &'a Identities,
        platform: Arc<dyn Platform>,
        state: Arc<Mutex<State>>,
    ) -> Request<'a> {
        Request {
            checkout,
            base: None,
            identities,
            platform,
            state,
            settings: self.clone(),
            replace: Replace::default(),
            only: BTreeSet::new(),
            changed: None,
            dry_run: false,
            cancel: CancellationToken::new(),
            environment: Environment::IMPLICIT,
            batch: None,
            remembered: None,
        }
    }
}

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
    pub settings: ApplySettings,
    /// `--replace AGENT/KEY`, `--replace-all [AGENT]`.
    pub replace: Replace,
    /// Only these agents (empty: all declared agents).
    pub only: BTreeSet<String>,
    /// Refresh only the agents whose inputs changed since this baseline (`--changed`);
    /// `None` refreshes every agent of the run.
    pub changed: Option<ChangedSince<'a>>,
    pub dry_run: bool,
    pub cancel: CancellationToken,
    /// Which environment's values, overlays and platform this run is about (the caller
    /// opened the platform and the state for it).
    pub environment: Environment,
    /// Load, list, plan and land this many agents at a time (see `reconcile`), for a run
    /// that writes without showing its plan first: the daemon, which must not hold every
    /// agent's values at once. `None`: every agent in one pass.
    pub batch: Option<usize>,
    /// What the previous run of this process found in each agent directory (the daemon's):
    /// the directories that did not change since are not read again.
    pub remembered: Option<Arc<std::sync::Mutex<Remembered>>>,
}

impl Request<'_> {
    /// The plan's rules for this run (see [`ApplySettings::policy`]).
    pub fn policy(&self) -> Policy {
        self.settings
            .policy(&self.checkout.config, self.replace.clone())
    }
}
