//! `castsync doctor`: the one command a user runs with the real API key before trusting
//! castsync. It walks the setup in the order a reconcile needs it — repository and config,
//! identities and every manifest, recipients that need a rekey, the platform URL and TLS, the
//! API key, the rate-limit headers, and per agent how the list route answers and what that
//! means for drift — and says for each problem how to fix it.
//!
//! It must never write: no state file is opened for writing, no manifest is re-encrypted, and
//! the only requests are the `GET`s of a dry run (at most one list per agent after a 401).
//! The platform checks stop at the first agent the platform does not answer for, and at the
//! deadline (`--timeout`).
//! Exit 0 when nothing failed, 1 otherwise; `-o json` for machines (schemas/doctor.schema.json).

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::Serialize;

use std::path::Path;
use std::sync::Arc;

use super::rekey::describe;
use super::{Exit, Repo};
use crate::authoring::{self, AgentFiles, Drift};
use crate::cli::{DoctorArgs, DoctorFormat, GlobalArgs};
use crate::config::{self, Config, Redeploy};
use crate::crypto::Identities;
use crate::deadline::{Bounded, Deadline, RunTimeout};
use crate::hint::Hinted as _;
use crate::load;
use crate::platform::{self, Listing, Paging, Platform, PlatformError, Timestamps};
use crate::source::Checkout;

/// The `doctor -o json` format version (schemas/doctor.schema.json); bump on incompatible
/// changes.
pub const DOCTOR_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Worth knowing; not a failure.
    Note,
    Warn,
    Fail,
}

/// One finding of the doctor.
#[derive(Debug, Clone, Serialize)]
struct Check {
    /// What was checked: `repository`, `identities`, `manifest`, `platform`, …
    check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    status: Status,
    message: String,
    /// What to do about it.
    fix: Option<String>,
}

/// What one agent's key list showed.
#[derive(Debug, Clone, Serialize)]
struct AgentList {
    agent: String,
    keys: usize,
    requests: u32,
    paging: Paging,
    timestamps: Timestamps,
    /// `detected`, `invisible` or `unknown` (no keys yet).
    value_drift: &'static str,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    lists: Vec<AgentList>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.push(check, None, status, message.into(), None);
    }

    fn push(
        &mut self,
        check: &'static str,
        agent: Option<&str>,
        status: Status,
        message: String,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            check,
            agent: agent.map(str::to_owned),
            status,
            message,
            fix,
        });
    }

    /// A failure: the error's message, and its hint as the fix.
    fn fail(
        &mut self,
        check: &'static str,
        agent: Option<&str>,
        error: &(dyn std::error::Error + 'static),
    ) {
        let fix = super::report::hint_of_error(error);
        self.push(check, agent, Status::Fail, error.to_string(), fix);
    }

    /// A failure from the command edge: the whole chain, and the first hint in it.
    fn fail_chain(&mut self, check: &'static str, error: &anyhow::Error) {
        let fix = super::hint_of(error);
        self.push(check, None, Status::Fail, format!("{error:#}"), fix);
    }

    fn problems(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

pub(super) async fn run(global: &GlobalArgs, args: &DoctorArgs) -> anyhow::Result<Exit> {
    let mut report = Report::default();
    check_all(global, args, &mut report).await;
    match args.output {
        DoctorFormat::Json => {
            let v = serde_json::json!({
                "format_version": DOCTOR_FORMAT_VERSION,
                "ok": report.problems() == 0,
                "problems": report.problems(),
                "checks": report.checks,
                "agents": report.lists,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        DoctorFormat::Text => print!("{}", text(&report)),
    }
    Ok(if report.problems() == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn text(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for c in &report.checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let subject = match &c.agent {
            Some(agent) => format!("{} {agent}", c.check),
            None => c.check.to_owned(),
        };
        let _ = writeln!(out, "{tag}  {subject}: {}", c.message);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "        fix: {fix}");
        }
    }
    let problems = report.problems();
    let _ = writeln!(
        out,
        "\n{}",
        match problems {
            0 => "castsync doctor: no problems found.".to_owned(),
            1 => "castsync doctor: 1 problem found (see FAIL above).".to_owned(),
            n => format!("castsync doctor: {n} problems found (see FAIL above)."),
        }
    );
    out
}

async fn check_all(global: &GlobalArgs, args: &DoctorArgs, report: &mut Report) {
    // The same discovery every command uses: `-C DIR`, else the nearest castsync.yaml up.
    let root = match Repo::locate(global) {
        Ok(root) => root,
        Err(e) => return report.fail_chain("repository", &e),
    };
    let checkout = match Checkout::worktree(&root, global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return report.fail("config", None, &e),
    };
    let config_file = global
        .config
        .clone()
        .unwrap_or_else(|| root.join(config::FILE_NAME));
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

    if let Some(identities) = check_identities(global, report) {
        check_manifests(&checkout, &identities, report);
        check_recipients(&root, config, &slugs, &identities, report);
    }
    check_redeploy(config, &slugs, report);
    check_platform(&root, config, args, &slugs, report).await;
}

fn check_identities(global: &GlobalArgs, report: &mut Report) -> Option<Identities> {
    match Identities::discover(&global.identity) {
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

fn check_manifests(checkout: &Checkout, ids: &Identities, report: &mut Report) {
    let loaded = match load::load_all(checkout.tree(), &checkout.config, ids, &BTreeSet::new()) {
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
                        describe(&drift)
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
    root: &Path,
    config: &Config,
    args: &DoctorArgs,
    slugs: &[String],
) -> Result<(String, Arc<dyn Platform>), platform::OpenError> {
    let target = super::platform_choice(&args.platform).resolve(config, root)?;
    let opened = target.open(slugs.to_vec())?;
    Ok((target.url, opened))
}

async fn check_platform(
    root: &Path,
    config: &Config,
    args: &DoctorArgs,
    slugs: &[String],
    report: &mut Report,
) {
    let (url, platform) = match open_platform(root, config, args, slugs) {
        Ok(opened) => opened,
        Err(e) => return report.fail("platform", None, &e),
    };
    let deadline = Deadline::start(RunTimeout::from_flag(args.timeout));
    deadline.allow_requests(slugs.len());
    let platform = Bounded::wrap(platform, deadline);
    let transport = if url.starts_with(platform::LOCAL_SCHEME) {
        format!(
            "{}: the embedded store (no network, no API key)",
            platform.id()
        )
    } else if url.starts_with("https://") {
        format!(
            "{}: HTTPS, certificate checked by the system's TLS",
            platform.id()
        )
    } else {
        format!(
            "{}: plain HTTP (allowed to loopback, or with --allow-insecure-http)",
            platform.id()
        )
    };
    let mut listed = 0usize;
    let mut blind = Vec::new();
    for (n, slug) in slugs.iter().enumerate() {
        match platform.list(slug).await {
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
            }
            Err(PlatformError::Unauthorized { detail }) => {
                report.add("platform", Status::Ok, transport.clone());
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
                return;
            }
            Err(error @ PlatformError::DeadlineExceeded { .. }) => {
                let flag = if args.timeout.is_some() {
                    "--timeout"
                } else {
                    "the default"
                };
                report.push(
                    "platform",
                    None,
                    Status::Fail,
                    format!(
                        "timed out ({flag}): {error}; not checked: {}",
                        slugs[n..].join(", ")
                    ),
                    error.hint().map(Cow::into_owned),
                );
                break;
            }
            Err(error @ PlatformError::Timeout { .. }) => {
                // A platform that took the connection and said nothing, twice: the next
                // agents would cost the same minute each.
                let rest = &slugs[n + 1..];
                let message = if rest.is_empty() {
                    error.to_string()
                } else {
                    format!("{error}; not checked: {}", rest.join(", "))
                };
                report.push(
                    "list",
                    Some(slug),
                    Status::Fail,
                    message,
                    error.hint().map(Cow::into_owned),
                );
                break;
            }
            Err(error) if error.ends_run() => {
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
                return;
            }
            Err(error) => {
                report.push(
                    "list",
                    Some(slug),
                    Status::Fail,
                    error.to_string(),
                    error.hint().map(Cow::into_owned),
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_report_a_problem_and_its_hint_the_fix() {
        let mut r = Report::default();
        r.add("repository", Status::Ok, "/x");
        r.fail(
            "api key",
            None,
            &crate::hint::WithHint::new("refused", "check the key"),
        );
        assert_eq!(r.problems(), 1);
        let t = text(&r);
        assert!(t.contains("FAIL  api key: refused"), "{t}");
        assert!(t.contains("        fix: check the key"), "{t}");
        assert!(t.contains("1 problem found"), "{t}");
    }
}
