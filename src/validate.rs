//! The checks of `castsync validate`: the repository judged offline, as reconcile would judge
//! it, into one list of findings ([`render`] prints them).
//!
//! The config first (a config that cannot be read is a finding like any other, see
//! [`Validation::unreadable_config`]), then the recipients castsync cannot encrypt to, then
//! every agent through `load::load_all` in each environment of the run (the very code
//! reconcile uses, so a manifest that validates is a manifest reconcile accepts), then the
//! keys overdue for rotation when a period is set (in the config, or by a `# rotate:`
//! comment the load read). Findings never carry a value.

pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::audit;
use crate::config::{self, Config};
use crate::crypto::{self, Identities};
use crate::environment::Environment;
use crate::finding::Finding;
use crate::hint::Hinted as _;
use crate::load::{LoadError, load_all};
use crate::source::Checkout;

/// What one `castsync validate` checks.
pub struct Request<'a> {
    pub root: &'a Path,
    /// The worktree, its config read.
    pub checkout: &'a Checkout,
    /// The config as the user names it (`-c FILE`, else `castsync.yaml`), for findings.
    pub config_shown: &'a Path,
    /// The `-c FILE` given, for the history the rotation check reads.
    pub explicit_config: Option<&'a Path>,
    pub identities: &'a Identities,
    /// The environments of the run (`--env`, else every one castsync.yaml declares).
    pub envs: &'a [Environment],
    /// The agents asked for; empty for all.
    pub only: &'a BTreeSet<String>,
}

/// The findings, and how many agents were checked (`None`: the config could not be read).
#[derive(Debug)]
pub struct Validation {
    pub findings: Vec<Finding>,
    pub agents: Option<usize>,
}

impl Validation {
    /// A config that cannot be read: its one finding, and no agent checked.
    pub fn unreadable_config<E>(config_shown: &Path, error: &E) -> Validation
    where
        E: std::error::Error + crate::hint::Hinted,
    {
        Validation {
            findings: vec![Finding::located_error(config_shown, error)],
            agents: None,
        }
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// Runs every check on the worktree of `req`.
pub fn validate(req: &Request<'_>) -> Result<Validation, LoadError> {
    let config = &req.checkout.config;
    let mut findings = recipient_findings(config, req.config_shown);
    let mut per_env = Vec::new();
    let mut agents = 0;
    let mut rotation = config.has_rotation_policy();
    for env in req.envs {
        let tree = req.checkout.tree();
        let loaded = load_all(tree, config, env, req.identities, req.only)?;
        agents = loaded.agents.len();
        rotation |= loaded.agents.values().any(|a| a.rotation_annotated);
        per_env.push((env, loaded.findings().cloned().collect::<Vec<_>>()));
    }
    findings.extend(across_environments(per_env));
    if rotation {
        findings.extend(rotation_findings(req));
    }
    Ok(Validation {
        findings,
        agents: Some(agents),
    })
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
fn rotation_findings(req: &Request<'_>) -> Vec<Finding> {
    let request = audit::Request {
        root: req.root.to_owned(),
        config: req.explicit_config.map(PathBuf::from),
        identities: req.identities,
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let only = req.only;
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
            finding.hint = e.hint().map(Into::into);
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
                finding.hint = e.hint().map(Into::into);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Environment {
        Environment::named(name.to_owned())
    }

    #[test]
    fn a_finding_every_environment_has_is_said_once_and_the_others_name_theirs() {
        let shared = Finding::error("agents/a/secrets.yaml.age", "broken");
        let staging_only = Finding::warning("agents/a/secrets.staging.yaml.age", "odd");
        let (staging, production) = (env("staging"), env("production"));
        let findings = across_environments(vec![
            (&staging, vec![shared.clone(), staging_only.clone()]),
            (&production, vec![shared.clone()]),
        ]);
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages, ["broken", "odd (environment staging)"]);
    }

    #[test]
    fn one_environments_findings_are_kept_as_they_are() {
        let finding = Finding::error("agents/a/.env.example", "missing KEY");
        let findings = across_environments(vec![(&Environment::IMPLICIT, vec![finding.clone()])]);
        assert_eq!(findings, [finding]);
    }

    #[test]
    fn a_config_without_recipients_is_a_warning() {
        let findings = recipient_findings(&Config::default(), Path::new("castsync.yaml"));
        assert_eq!(findings.len(), 1);
        assert!(!findings[0].is_error(), "{findings:?}");
        assert!(findings[0].message.starts_with("lists no recipients"));
    }
}
