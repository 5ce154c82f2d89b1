//! The checks of `castsync doctor`, the one command a user runs with the real API key before
//! trusting castsync. They walk the setup in the order a reconcile needs it — repository and config,
//! identities and every manifest, recipients that need a rekey, the platform URL and TLS, the
//! API key, the rate-limit headers, and per agent how the list route answers and what that
//! means for drift — and return a [`Report`]: for each problem, how to fix it. The command
//! renders it (`render::doctor`).
//!
//! It must never write: no state file is opened for writing, no manifest is re-encrypted, and
//! the only requests are the `GET`s of a dry run (at most one list per agent after a 401).
//! The platform checks stop at the first agent the platform does not answer for, and at the
//! deadline (`--timeout`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::authoring::{self, AgentFiles, Drift};
use crate::config::{self, Config, Redeploy};
use crate::crypto::Identities;
use crate::deadline::{Bounded, Deadline, RunTimeout};
use crate::environment::Environment;
use crate::hint::Hinted as _;
use crate::load;
use crate::platform::{self, Listing, Paging, Platform, PlatformError, Timestamps};
use crate::source::Checkout;
use crate::target::PlatformChoice;

/// The `doctor -o json` format version (schemas/doctor.schema.json); bump on incompatible
/// changes.
pub const DOCTOR_FORMAT_VERSION: u32 = 1;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing; not a failure.
    Note,
    Warn,
    Fail,
}

/// One finding of the doctor.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `repository`, `identities`, `manifest`, `platform`, …
    pub check: &'static str,
    /// The environment the finding is about (castsync.yaml `environments:`), when it is about
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub status: Status,
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// What one agent's key list showed.
#[derive(Debug, Clone, Serialize)]
pub struct AgentList {
    pub agent: String,
    pub keys: usize,
    pub requests: u32,
    pub paging: Paging,
    pub timestamps: Timestamps,
    /// `detected`, `invisible` or `unknown` (no keys yet).
    pub value_drift: &'static str,
}

/// Every check's finding, in the order they ran, and what each agent's list showed.
#[derive(Default)]
pub struct Report {
    pub checks: Vec<Check>,
    pub lists: Vec<AgentList>,
    /// The environment the checks now running are about (`None`: every one, or a repository
    /// without environments).
    environment: Option<String>,
    /// How to find the hint of a type-erased error (the binary's edge knows every error type
    /// that has one).
    hint_of: Option<fn(&(dyn Error + 'static)) -> Option<String>>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.push(check, None, status, message.into(), None);
    }

    pub fn push(
        &mut self,
        check: &'static str,
        agent: Option<&str>,
        status: Status,
        message: String,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            check,
            environment: self.environment.clone(),
            agent: agent.map(str::to_owned),
            status,
            message,
            fix,
        });
    }

    /// A failure: the error's message, and its hint as the fix.
    fn fail(&mut self, check: &'static str, agent: Option<&str>, error: &(dyn Error + 'static)) {
        let fix = self.hint_of.and_then(|hint_of| hint_of(error));
        self.push(check, agent, Status::Fail, error.to_string(), fix);
    }

    /// How many checks failed.
    pub fn problems(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

/// What the checks need, resolved by the command.
#[derive(Clone)]
pub struct Setup<'a> {
    /// The repository root (`-C DIR`, else the nearest `castsync.yaml` up).
    pub root: &'a Path,
    /// `--config FILE`.
    pub explicit_config: Option<&'a Path>,
    /// `-i FILE`s, tried before the environment and the default key file.
    pub identity_files: &'a [PathBuf],
    pub platform: &'a PlatformChoice,
    /// `--env`: the environments whose manifests and platform to check (none: every one).
    pub envs: &'a [String],
    /// The one being checked: [`examine`] sets it for each of them in turn.
    pub environment: Environment,
    /// `--timeout` for the platform checks.
    pub timeout: Option<Duration>,
    /// How to find the hint of a type-erased error (see [`Report`]).
    pub hint_of: fn(&(dyn Error + 'static)) -> Option<String>,
}

/// Runs every check on the repository at `setup.root`; never writes anything.
pub async fn examine(setup: &Setup<'_>) -> Report {
    let mut report = Report {
        hint_of: Some(setup.hint_of),
        ..Report::default()
    };
    check_all(setup, &mut report).await;
    report
}

async fn check_all(setup: &Setup<'_>, report: &mut Report) {
    let root = setup.root;
    let checkout = match Checkout::worktree(root, setup.explicit_config) {
        Ok(c) => c,
        Err(e) => return report.fail("config", None, &e),
    };
    let config_file = setup
        .explicit_config
        .map_or_else(|| root.join(config::FILE_NAME), Path::to_path_buf);
    report.add(
        "repository",
        Status::Ok,
        format!("{} ({})", root.display(), config_file.display()),
    );
    let config = &checkout.config;
    let slugs = checkout.agents.clone();
    if slugs.is_empty() {
        report.push(
            "agents",
            None,
            Status::Fail,
            format!(
                "no agent directories under {}: nothing to check or reconcile",
                config.agents_dir.display()
            ),
            Some("create one with `castsync new AGENT`".to_owned()),
        );
        return;
    }
    report.add(
        "agents",
        Status::Ok,
        format!(
            "{} under {}: {}",
            slugs.len(),
            config.agents_dir.display(),
            slugs.join(", ")
        ),
    );

    let identities = check_identities(setup.identity_files, setup.timeout, report);
    if let Some(identities) = &identities {
        check_recipients(root, config, &slugs, identities, report);
    }
    check_redeploy(config, &slugs, report);
    let envs = match config.environments_in_run(setup.envs) {
        Ok(envs) => envs,
        Err(e) => return report.fail("environment", None, &e),
    };
    // Each environment's effective manifests and its own platform and API key.
    for env in &envs {
        report.environment = env.name().map(str::to_owned);
        if let Some(identities) = &identities {
            check_manifests(&checkout, identities, env, report);
        }
        let setup = Setup {
            environment: env.clone(),
            ..setup.clone()
        };
        check_platform(&setup, config, &slugs, report).await;
    }
    report.environment = None;
}

fn check_identities(
    identity_files: &[PathBuf],
    timeout: Option<std::time::Duration>,
    report: &mut Report,
) -> Option<Identities> {
    let env = crate::crypto::Env {
        // A plugin that never answers must not outlast doctor's --timeout.
        age_plugin_timeout: timeout,
        ..crate::crypto::Env::from_process()
    };
    match Identities::discover_with(identity_files, &env) {
        Ok(ids) if ids.is_empty() => {
            let looked: Vec<String> = ids.attempts().iter().map(ToString::to_string).collect();
            report.push(
                "identities",
                None,
                Status::Fail,
                format!("no identity found; looked at: {}", looked.join("; ")),
                Some(
                    "pass -i FILE, or set CASTSYNC_AGE_KEY / CASTSYNC_AGE_KEY_FILE; `castsync keygen` makes one"
                        .to_owned(),
                ),
            );
            None
        }
        Ok(ids) => {
            let loaded: Vec<String> = ids
                .attempts()
                .iter()
                .filter(|a| matches!(a.outcome, crate::crypto::Outcome::Loaded(_)))
                .map(ToString::to_string)
                .collect();
            report.add("identities", Status::Ok, loaded.join("; "));
            for warning in ids.warnings() {
                report.add("identities", Status::Warn, warning.clone());
            }
            Some(ids)
        }
        Err(e) => {
            report.fail("identities", None, &e);
            None
        }
    }
}

fn check_manifests(checkout: &Checkout, ids: &Identities, env: &Environment, report: &mut Report) {
    let loaded = match load::load_all(
        checkout.tree(),
        &checkout.config,
        env,
        ids,
        &BTreeSet::new(),
    ) {
        Ok(l) => l,
        Err(e) => return report.fail("manifest", None, &e),
    };
    for (slug, agent) in &loaded.agents {
        match (agent.secrets(), agent.failure()) {
            (Some(secrets), None) => {
                let warnings = agent.findings.iter().filter(|f| !f.is_error()).count();
                let tail = if warnings > 0 {
                    format!(", {warnings} warning(s): `castsync validate {slug}` shows them")
                } else {
                    String::new()
                };
                report.push(
                    "manifest",
                    Some(slug),
                    if warnings > 0 {
                        Status::Warn
                    } else {
                        Status::Ok
                    },
                    format!(
                        "decrypts and validates ({} key{}){tail}",
                        secrets.len(),
                        if secrets.len() == 1 { "" } else { "s" }
                    ),
                    None,
                );
            }
            (_, failure) => {
                let failure = failure.unwrap_or_else(|| "cannot be used".into());
                report.push(
                    "manifest",
                    Some(slug),
                    Status::Fail,
                    failure.message,
                    failure
                        .hint
                        .or_else(|| Some(format!("`castsync validate {slug}` explains it"))),
                );
            }
        }
    }
}

fn check_recipients(
    root: &Path,
    config: &Config,
    slugs: &[String],
    ids: &Identities,
    report: &mut Report,
) {
    let mut stale = 0usize;
    let names = crate::source::recipient_names(root, config);
    for slug in slugs {
        // `rekey` with `check_only` compares and never writes.
        let drift = AgentFiles::new(root, config, slug)
            .and_then(|files| authoring::rekey(&files, ids, true))
            .map(|written| written.outcome);
        match drift {
            Ok(Drift::Current) => {}
            Ok(Drift::Unrecorded) => {
                stale += 1;
                report.push(
                "recipients",
                Some(slug),
                Status::Warn,
                "the manifest records no recipients (written by hand or another tool), so castsync cannot tell whether it needs a rekey".to_owned(),
                    Some(format!(
                        "`castsync rekey {slug}` re-encrypts it to the configured recipients and records them"
                    )),
                )
            }
            Ok(drift) => {
                stale += 1;
                report.push(
                    "recipients",
                    Some(slug),
                    Status::Fail,
                    format!(
                        "encrypted to other recipients than {} assigns: {}",
                        config::FILE_NAME,
                        drift.describe(&names)
                    ),
                    Some(format!("`castsync rekey {slug}` re-encrypts it")),
                );
            }
            // Unreadable manifests are already reported above.
            Err(_) => {}
        }
    }
    if stale == 0 {
        report.add(
            "recipients",
            Status::Ok,
            format!(
                "every readable manifest is encrypted to the recipients {} assigns",
                config::FILE_NAME
            ),
        );
    }
}

fn check_redeploy(config: &Config, slugs: &[String], report: &mut Report) {
    let on_change: Vec<&str> = slugs
        .iter()
        .filter(|s| config.redeploy_for(s) == Redeploy::OnChange)
        .map(String::as_str)
        .collect();
    let message = if on_change.is_empty() {
        "never: castsync sets and deletes secrets but does not redeploy agents (Castari's docs say changes take effect on the next invocation; `redeploy: on-change` redeploys after each change)".to_owned()
    } else {
        format!(
            "on-change for {}: one POST …/redeploy per changed agent after its changes are verified",
            on_change.join(", ")
        )
    };
    report.add("redeploy", Status::Note, message);
}

/// The platform a reconcile of this repository would use, resolved as reconcile resolves it
/// but without `target::Target`, which also needs working identities.
fn open_platform(
    setup: &Setup<'_>,
    config: &Config,
    slugs: &[String],
) -> Result<(String, Arc<dyn Platform>), platform::OpenError> {
    let target = setup
        .platform
        .resolve_in(config, &setup.environment, setup.root)?;
    let opened = target.open(slugs.to_vec())?;
    Ok((target.url, opened))
}

async fn check_platform(setup: &Setup<'_>, config: &Config, slugs: &[String], report: &mut Report) {
    let (url, platform) = match open_platform(setup, config, slugs) {
        Ok(opened) => opened,
        Err(e) => return report.fail("platform", None, &e),
    };
    let deadline = Deadline::start(RunTimeout::from_flag(setup.timeout));
    deadline.allow_requests(slugs.len());
    let platform = Bounded::wrap(platform, deadline);
    let transport = transport(&url, platform.id());
    let mut listed = 0usize;
    let mut blind = Vec::new();
    for (n, slug) in slugs.iter().enumerate() {
        let error = match platform.list(slug).await {
            Ok(listing) => {
                if listed == 0 {
                    report.add("platform", Status::Ok, transport.clone());
                    if !url.starts_with(platform::LOCAL_SCHEME) {
                        report.add("api key", Status::Ok, "accepted by the platform");
                    }
                }
                listed += 1;
                if listing.shape.timestamps.blind() {
                    blind.push(slug.clone());
                }
                report_list(slug, &listing, report);
                continue;
            }
            Err(error) => error,
        };
        match list_failed(setup, &slugs[n..], error, &transport, report) {
            AfterFailure::Next => {}
            AfterFailure::StopListing => break,
            AfterFailure::StopChecks => return,
        }
    }
    check_rate_limit(platform.as_ref(), &url, report);
    if !blind.is_empty() {
        report.push(
            "drift",
            None,
            Status::Note,
            format!(
                "the platform lists keys without timestamps ({}): a value changed on the platform outside castsync cannot be seen; a key added or deleted there is found and healed",
                blind.join(", ")
            ),
            Some(
                "`castsync reconcile --replace AGENT/KEY` or `--replace-all` rewrites values"
                    .to_owned(),
            ),
        );
    }
}

/// How doctor reaches the platform at `url`, for the `platform` line.
fn transport(url: &str, id: &str) -> String {
    if url.starts_with(platform::LOCAL_SCHEME) {
        format!("{id}: the embedded store (no network, no API key)")
    } else if url.starts_with("https://") {
        format!("{id}: HTTPS, certificate checked by the system's TLS")
    } else {
        format!("{id}: plain HTTP (allowed to loopback, or with --allow-insecure-http)")
    }
}

/// What the platform checks do after an agent's list failed.
enum AfterFailure {
    /// List the next agent.
    Next,
    /// List no more agents; the rate limit and drift checks still run.
    StopListing,
    /// The verdict is in: no further platform check.
    StopChecks,
}

/// Reports the failed list of `rest[0]` (`rest`: the agents not yet listed, this one first).
fn list_failed(
    setup: &Setup<'_>,
    rest: &[String],
    error: PlatformError,
    transport: &str,
    report: &mut Report,
) -> AfterFailure {
    let slug = &rest[0];
    match error {
        PlatformError::Unauthorized { detail } => {
            report.add("platform", Status::Ok, transport.to_owned());
            let error = PlatformError::Unauthorized { detail };
            // The hint points at doctor itself; here that would go in a circle.
            let fix = error.hint().map(|h| {
                h.split("; `castsync doctor`")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            report.push("api key", None, Status::Fail, error.to_string(), fix);
            // Every other agent would answer the same: stop here.
            AfterFailure::StopChecks
        }
        error @ PlatformError::DeadlineExceeded { .. } => {
            let flag = if setup.timeout.is_some() {
                "--timeout"
            } else {
                "the default"
            };
            let message = format!(
                "timed out ({flag}): {error}; not checked: {}",
                rest.join(", ")
            );
            report.push(
                "platform",
                None,
                Status::Fail,
                message,
                error.hint().map(Cow::into_owned),
            );
            AfterFailure::StopListing
        }
        error @ PlatformError::Timeout { .. } => {
            // A platform that took the connection and said nothing, twice: the next
            // agents would cost the same minute each.
            let message = if rest.len() == 1 {
                error.to_string()
            } else {
                format!("{error}; not checked: {}", rest[1..].join(", "))
            };
            report.push(
                "list",
                Some(slug),
                Status::Fail,
                message,
                error.hint().map(Cow::into_owned),
            );
            AfterFailure::StopListing
        }
        error if error.ends_run() => {
            // An untrusted certificate or a dead proxy: the verdict for the platform,
            // and every other agent would fail the same way.
            let check = if matches!(error, PlatformError::Proxy { .. }) {
                "proxy"
            } else {
                "tls"
            };
            report.push(
                check,
                None,
                Status::Fail,
                error.to_string(),
                error.hint().map(Cow::into_owned),
            );
            AfterFailure::StopChecks
        }
        error => {
            report.push(
                "list",
                Some(slug),
                Status::Fail,
                error.to_string(),
                error.hint().map(Cow::into_owned),
            );
            AfterFailure::Next
        }
    }
}

fn report_list(slug: &str, listing: &Listing, report: &mut Report) {
    let shape = listing.shape;
    let paging = match shape.paging {
        Paging::Paged => "the list route pages (limit/offset honoured)",
        Paging::Unpaged => "the list route ignores paging (one response holds every key)",
        Paging::Unknown if shape.requests == 0 => "read from the embedded store",
        Paging::Unknown => "one short response (whether the route pages is unknown)",
    };
    let (timestamps, value_drift) = match shape.timestamps {
        Timestamps::All => ("with timestamps: value drift is detected", "detected"),
        Timestamps::Some => (
            "some keys without timestamps: value drift on those is invisible",
            "invisible",
        ),
        Timestamps::None => (
            "without timestamps: value drift is invisible, presence drift is found",
            "invisible",
        ),
        Timestamps::NoKeys => ("no keys yet", "unknown"),
    };
    let n = listing.keys.len();
    report.push(
        "list",
        Some(slug),
        Status::Ok,
        format!(
            "{n} key{} in {} request{}; {paging}; {timestamps}",
            if n == 1 { "" } else { "s" },
            shape.requests,
            if shape.requests == 1 { "" } else { "s" }
        ),
        None,
    );
    report.lists.push(AgentList {
        agent: slug.to_owned(),
        keys: n,
        requests: shape.requests,
        paging: shape.paging,
        timestamps: shape.timestamps,
        value_drift,
    });
}

fn check_rate_limit(platform: &dyn Platform, url: &str, report: &mut Report) {
    if url.starts_with(platform::LOCAL_SCHEME) {
        return;
    }
    let Some(stats) = platform.stats() else {
        return;
    };
    if stats.responses.is_empty() {
        return;
    }
    match (stats.rate_limit, stats.rate_limit_remaining) {
        (limit, Some(remaining)) => report.add(
            "rate limit",
            Status::Ok,
            format!(
                "X-RateLimit headers present: limit {}, {remaining} remaining; castsync paces itself to them",
                limit.map_or("unknown".to_owned(), |l| l.to_string())
            ),
        ),
        _ => report.push(
            "rate limit",
            None,
            Status::Warn,
            "the platform sent no X-RateLimit-Remaining/-Reset headers: castsync cannot pace itself and relies on 429 with Retry-After".to_owned(),
            None,
        ),
    }
}
