//! `castsync validate [AGENT…]`: check the repository offline, as reconcile would judge it.
//!
//! The config first (a config error is reported like any other problem), then every agent
//! through `load::load_all`: the very code reconcile uses, so a manifest that
//! validates is a manifest reconcile accepts. One line per problem on stdout, `error:` or
//! `warning:` with the file (and a `hint:` line under it when the fix is known), then a
//! summary (or the same as versioned JSON, or Markdown, with `-o`); exit 1 on any error. Findings never carry a value, so no output format can print one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Exit, Repo};
use crate::audit;
use crate::cli::{GlobalArgs, OutputFormat, ValidateArgs};
use crate::config::{self, Config};
use crate::crypto;
use crate::environment::Environment;
use crate::finding::Finding;
use crate::load::load_all;
use crate::source::{Checkout, CheckoutError};

pub(super) fn run(global: &GlobalArgs, args: &ValidateArgs) -> anyhow::Result<Exit> {
    let root = Repo::locate(global)?;
    let config_shown = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::FILE_NAME));
    let checkout = match Checkout::worktree(&root, global.config.as_deref()) {
        Ok(checkout) => checkout,
        Err(CheckoutError::Config(e)) => {
            let finding = Finding::located_error(&config_shown, &e);
            return report(&[finding], None, args.output);
        }
        Err(e) => return Err(e.into()),
    };
    let mut findings = recipient_findings(&checkout.config, &config_shown);

    let repo = Repo::with_checkout(root, checkout, global);
    let identities = repo.identities()?;
    let only: BTreeSet<String> = args.agents.iter().cloned().collect();
    let envs = repo.config().environments_in_run(&args.envs)?;
    let mut per_env = Vec::new();
    let mut agents = 0;
    let mut rotation = repo.config().has_rotation_policy();
    for env in &envs {
        let loaded = load_all(repo.checkout.tree(), repo.config(), env, &identities, &only)?;
        agents = loaded.agents.len();
        rotation |= loaded.agents.values().any(|a| a.rotation_annotated);
        per_env.push((env, loaded.findings().cloned().collect::<Vec<_>>()));
    }
    findings.extend(across_environments(per_env));
    if rotation {
        findings.extend(rotation_findings(&repo, global, &identities, &only));
    }
    report(&findings, Some(agents), args.output)
}

/// The findings of each environment, as one list: a finding every environment has (about
/// the file they share, say) once as it is, the others each with the environment named
/// after the message. With one environment (the implicit one included), its findings as
/// they are.
fn across_environments(per_env: Vec<(&Environment, Vec<Finding>)>) -> Vec<Finding> {
    if per_env.len() == 1 {
        return per_env.into_iter().flat_map(|(_, f)| f).collect();
    }
    let identity = |f: &Finding| (f.path.clone(), f.line, f.message.clone());
    let mut count: BTreeMap<_, usize> = BTreeMap::new();
    for (_, findings) in &per_env {
        for f in findings.iter().map(identity).collect::<BTreeSet<_>>() {
            *count.entry(f).or_default() += 1;
        }
    }
    let everywhere = per_env.len();
    let mut said = BTreeSet::new();
    let mut out = Vec::new();
    for (env, findings) in per_env {
        for mut finding in findings {
            let id = identity(&finding);
            if count.get(&id) == Some(&everywhere) {
                if said.insert(id) {
                    out.push(finding);
                }
                continue;
            }
            finding.message.push_str(&format!(" (environment {env})"));
            out.push(finding);
        }
    }
    out
}

/// Keys overdue for rotation (asked only when a period is set somewhere: in the config or
/// by a `# rotate:` comment the load read; else no history is read): the audit of the
/// committed history, narrowed to the agents asked for.
fn rotation_findings(
    repo: &Repo,
    global: &GlobalArgs,
    identities: &crypto::Identities,
    only: &BTreeSet<String>,
) -> Vec<Finding> {
    let request = audit::Request {
        root: repo.root.clone(),
        config: global.config.clone(),
        identities,
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    match audit::audit(&request) {
        Ok(report) => audit::overdue_findings(&report)
            .into_iter()
            .filter(|f| only.is_empty() || f.agent.as_ref().is_some_and(|a| only.contains(a)))
            .collect(),
        Err(e) => {
            let mut finding = Finding::warning(
                config::FILE_NAME,
                format!("rotation periods are set, but the values' ages could not be read: {e}"),
            );
            finding.hint = crate::hint::Hinted::hint(&e).map(Into::into);
            vec![finding]
        }
    }
}

/// Recipients that pass the config's syntax check but that castsync cannot encrypt to (a
/// bad checksum, a post-quantum key, a short RSA key), and a config with none at all.
fn recipient_findings(config: &Config, path: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (field, recipients) in config.recipient_lists() {
        for (i, text) in recipients.keys().enumerate() {
            if let Err(e) = crypto::parse_recipient(text) {
                let mut finding = Finding::error(path, format!("{field}[{i}]: {e}"));
                finding.hint = crate::hint::Hinted::hint(&e).map(Into::into);
                findings.push(finding);
            }
        }
    }
    if config.recipients.is_empty() {
        findings.push(Finding::warning(
            path,
            "lists no recipients: castsync cannot encrypt a manifest that no access rule covers; add your public key (`castsync keygen` prints one)",
        ));
    }
    findings
}

/// The `validate -o json` format version (schemas/validate.schema.json); bump on
/// incompatible changes.
pub const VALIDATE_FORMAT_VERSION: u32 = 1;

/// Prints the findings and a summary; the exit code follows the errors.
fn report(
    findings: &[Finding],
    agents: Option<usize>,
    output: OutputFormat,
) -> anyhow::Result<Exit> {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let scope = match agents {
        Some(1) => "1 agent".to_owned(),
        Some(n) => format!("{n} agents"),
        None => "the config".to_owned(),
    };
    let summary = if errors == 0 {
        format!("ok: {scope} valid, {warnings} warning(s)")
    } else {
        format!("failed: {scope} checked, {errors} error(s), {warnings} warning(s)")
    };
    match output {
        OutputFormat::Text => {
            for finding in findings {
                super::print_out(format_args!("{finding}\n"))?;
                if let Some(hint) = &finding.hint {
                    super::print_out(format_args!("{}\n", crate::hint::line("  ", hint)))?;
                }
            }
            super::print_out(format_args!("{summary}\n"))?;
        }
        OutputFormat::Json => {
            let doc = json!({
                "format_version": VALIDATE_FORMAT_VERSION,
                "ok": errors == 0,
                "agents_checked": agents,
                "errors": errors,
                "warnings": warnings,
                "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
            });
            super::print_out(format_args!("{doc:#}\n"))?;
        }
        OutputFormat::Markdown => super::print_out(markdown(findings, &summary))?,
    }
    Ok(if errors == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "severity": f.severity.to_string(),
        "file": f.path.display().to_string(),
        "line": f.line,
        "agent": f.agent,
        "key": f.key,
        "message": f.message,
        "hint": f.hint,
    })
}

/// A heading with the summary and one table row per finding.
fn markdown(findings: &[Finding], summary: &str) -> String {
    use crate::render::md_escape;
    let mut out = format!("### castsync validate: {}\n", md_escape(summary));
    if !findings.is_empty() {
        out.push_str("\n| | file | key | problem | hint |\n|---|---|---|---|---|\n");
        for f in findings {
            let file = match f.line {
                Some(line) => format!("{}:{line}", f.path.display()),
                None => f.path.display().to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                f.severity,
                md_escape(&file),
                md_escape(f.key.as_deref().unwrap_or("")),
                md_escape(&f.message),
                md_escape(f.hint.as_deref().unwrap_or("")),
            ));
        }
    }
    out
}
