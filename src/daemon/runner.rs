//! The real [`Engine`]: refreshes the [`Origin`] and runs `reconcile::reconcile` — the same
//! function `castsync reconcile` calls — on the last good snapshot. It translates the
//! outcome into the daemon's terms (per-agent errors, counts, retryable or not) and nothing
//! else: every decision about keys stays in the plan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::engine::{AgentFailure, ApiStats, Engine, Refreshed, RunReport, Scope};
use super::schedule::RateBudget;
use super::source::{Origin, Snapshot};
use crate::apply::Redeployed;
use crate::cli::PlatformArgs;
use crate::crypto::Identities;
use crate::plan::{Action, UpdateReason};
use crate::platform::{self, OpenError, Platform, PlatformOptions};
use crate::reconcile::{self, Outcome, Request};
use crate::state::State;

/// How the runner applies (the `watch` flags that `reconcile` also has).
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub no_prune: bool,
    pub allow_mass_delete: bool,
    pub concurrency: usize,
    /// `--redeploy` / `--no-redeploy` over the config's `redeploy`.
    pub redeploy: Option<bool>,
}

pub struct Runner {
    origin: Origin,
    explicit_config: Option<PathBuf>,
    identities: Identities,
    platform_args: PlatformArgs,
    settings: ApplySettings,
    state: Arc<Mutex<State>>,
    current: Option<Snapshot>,
    /// The open platform and what it was opened for (URL and, for `local://`, the agents).
    platform: Option<(String, Arc<dyn Platform>)>,
}

impl Runner {
    pub fn new(
        origin: Origin,
        explicit_config: Option<PathBuf>,
        identities: Identities,
        platform_args: PlatformArgs,
        settings: ApplySettings,
        state: State,
    ) -> Runner {
        Runner {
            origin,
            explicit_config,
            identities,
            platform_args,
            settings,
            state: Arc::new(Mutex::new(state)),
            current: None,
            platform: None,
        }
    }

    /// The platform for `url`, reopened only when the URL (or, for the embedded store, the
    /// agent list) changes.
    fn platform_for(
        &mut self,
        url: String,
        agents: &[String],
    ) -> Result<Arc<dyn Platform>, OpenError> {
        let mut url = url;
        if let Some(path) = url.strip_prefix(platform::LOCAL_SCHEME)
            && Path::new(path).is_relative()
        {
            url = format!(
                "{}{}",
                platform::LOCAL_SCHEME,
                self.origin.base_dir().join(path).display()
            );
        }
        let local = url.starts_with(platform::LOCAL_SCHEME);
        let cache_key = if local {
            format!("{url}\n{}", agents.join(","))
        } else {
            url.clone()
        };
        if let Some((key, p)) = &self.platform
            && *key == cache_key
        {
            return Ok(p.clone());
        }
        // Drop the old client first: an embedded store must not be open twice.
        self.platform = None;
        let api_key = if local {
            None
        } else {
            platform::read_api_key(self.platform_args.api_key_file.as_deref())?
        };
        let opened = platform::open(PlatformOptions {
            url,
            api_key,
            allow_insecure_http: self.platform_args.allow_insecure_http,
            declared_agents: agents.to_vec(),
            ..PlatformOptions::default()
        })?;
        self.platform = Some((cache_key, opened.clone()));
        Ok(opened)
    }
}

fn failed_run(revision: &str, error: String) -> RunReport {
    RunReport {
        revision: revision.to_owned(),
        error: Some(error),
        ..RunReport::default()
    }
}

/// The outcome of `reconcile::reconcile` in the daemon's terms.
pub fn report_of(outcome: &Outcome, cancelled: bool) -> RunReport {
    let mut report = RunReport {
        revision: outcome.revision.clone(),
        cancelled,
        ..RunReport::default()
    };
    for agent in &outcome.plan.agents {
        report.checked.push(agent.agent.clone());
        report.drift += agent.drift_ignored.len() as u64;
        report.drift += agent
            .changes
            .iter()
            .filter(|c| c.action == Action::Update(UpdateReason::Drifted))
            .count() as u64;
        if let Some(skip) = &agent.skipped {
            report.skipped += 1;
            // A failed list keeps its class (a 429 is retried, a 401 is not); a bad manifest
            // or a refused mass delete will not get better by retrying the same commit.
            report.agent_errors.insert(
                agent.agent.clone(),
                AgentFailure {
                    message: skip.to_string(),
                    class: skip.class(),
                    hint: skip.platform_error().and_then(|e| e.hint()),
                },
            );
        }
    }
    if let Some(apply) = &outcome.report {
        for result in &apply.agents {
            for change in &result.applied {
                match change.action {
                    Action::Create => report.applied.create += 1,
                    Action::Update(_) | Action::Replace => report.applied.update += 1,
                    Action::Delete => report.applied.delete += 1,
                }
            }
            if result.redeploy == Some(Redeployed::Done) {
                report.redeployed += 1;
            }
            let Some(class) = result.class() else {
                continue;
            };
            let message = match (&result.error, result.failed.first(), &result.redeploy) {
                (Some(e), _, _) => e.to_string(),
                (None, Some(first), _) => format!(
                    "{} change(s) did not land; first: {} ({})",
                    result.failed.len(),
                    first.change.key,
                    first.reason
                ),
                (None, None, Some(Redeployed::Failed(e))) => format!(
                    "redeploy failed: {e}; its secrets are applied and the redeploy is retried"
                ),
                _ => "apply failed".to_owned(),
            };
            report.agent_errors.insert(
                result.agent.clone(),
                AgentFailure {
                    message,
                    class,
                    hint: result.first_platform_error().and_then(|e| e.hint()),
                },
            );
        }
    }
    report
}

impl Engine for Runner {
    async fn refresh(&mut self) -> Result<Refreshed, String> {
        let (refreshed, snapshot) = self.origin.refresh(self.explicit_config.as_deref()).await?;
        if let Some(snapshot) = snapshot {
            self.current = Some(snapshot);
        }
        Ok(refreshed)
    }

    async fn reconcile(&mut self, scope: Scope, cancel: CancellationToken) -> RunReport {
        let Some(snapshot) = self.current.take() else {
            return failed_run("", "nothing fetched yet".to_owned());
        };
        let report = self.reconcile_snapshot(&snapshot, scope, cancel).await;
        self.current = Some(snapshot);
        report
    }

    fn agents(&self) -> Vec<String> {
        self.current
            .as_ref()
            .map(|s| s.agents.clone())
            .unwrap_or_default()
    }

    fn budget(&self) -> RateBudget {
        let limit = self
            .platform
            .as_ref()
            .and_then(|(_, p)| p.stats())
            .and_then(|s| s.rate_limit);
        match limit {
            Some(limit) if limit > 0 => RateBudget {
                limit,
                ..RateBudget::default()
            },
            _ => RateBudget::default(),
        }
    }

    fn reload(&mut self) {
        self.platform = None;
    }

    fn api_stats(&self) -> Option<ApiStats> {
        let stats = self.platform.as_ref()?.1.stats()?;
        Some(ApiStats {
            responses: stats.responses,
            rate_limit: stats.rate_limit,
            rate_limit_remaining: stats.rate_limit_remaining,
        })
    }
}

impl Runner {
    async fn reconcile_snapshot(
        &mut self,
        snapshot: &Snapshot,
        scope: Scope,
        cancel: CancellationToken,
    ) -> RunReport {
        let revision = snapshot.revision.as_str();
        let config = match &snapshot.config {
            Ok(c) => c.clone(),
            Err(e) => return failed_run(revision, e.clone()),
        };
        let only: BTreeSet<String> = match scope {
            Scope::All => BTreeSet::new(),
            Scope::Agents(agents) => {
                // Agents removed since the resync started are simply not listed.
                let wanted: BTreeSet<String> = agents
                    .into_iter()
                    .filter(|a| snapshot.agents.contains(a))
                    .collect();
                if wanted.is_empty() {
                    return RunReport {
                        revision: revision.to_owned(),
                        ..RunReport::default()
                    };
                }
                wanted
            }
        };
        let tree = match self.origin.tree(snapshot) {
            Ok(t) => t,
            Err(e) => return failed_run(revision, e),
        };
        let url = platform::resolve_url(
            self.platform_args.api_url.as_deref(),
            config.platform.url.as_deref(),
        );
        let platform = match self.platform_for(url, &snapshot.agents) {
            Ok(p) => p,
            // Not retried: a missing key or a bad URL needs a new config or SIGHUP.
            Err(e) => return failed_run(revision, e.to_string()),
        };
        let request = Request {
            tree: tree.as_ref(),
            base: None,
            config: &config,
            identities: &self.identities,
            platform,
            state: self.state.clone(),
            policy: reconcile::policy(
                &config,
                self.settings.no_prune,
                self.settings.allow_mass_delete,
            ),
            redeploy: self.settings.redeploy,
            only,
            dry_run: false,
            concurrency: self.settings.concurrency,
            cancel: cancel.clone(),
        };
        match reconcile::reconcile(request, &|_| {}).await {
            Ok(outcome) => report_of(&outcome, cancel.is_cancelled()),
            Err(e) => failed_run(revision, e.to_string()),
        }
    }
}
