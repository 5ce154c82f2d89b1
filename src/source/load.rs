//! Turns a [`Tree`] into desired state: for every agent directory, decrypt the manifest,
//! parse it, check it against its `.env.example`. Used by `validate`, `reconcile` (worktree,
//! `--ref`, `--base`) and the daemon, so they all judge a manifest the same way.
//!
//! An agent that fails any step is returned as an error (with its findings), never as an
//! empty manifest: the plan skips it whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{SourceError, Tree};
use crate::config::Config;
use crate::crypto::Identities;
use crate::finding::Finding;
use crate::manifest::{self, Manifest, ManifestContext};
use crate::names::validate_slug;
use crate::plan::DesiredSecrets;
use crate::schema::{self, EnvSchema};

/// File names inside an agent directory.
pub const MANIFEST_FILE: &str = "secrets.yaml.age";
pub const SCHEMA_FILE: &str = ".env.example";

/// One agent's manifest and the findings about it.
#[derive(Debug)]
pub struct AgentLoad {
    /// The manifest, when it decrypted, parsed and passed every check with no error.
    pub manifest: Option<Manifest>,
    /// Every problem found, errors and warnings.
    pub findings: Vec<Finding>,
}

impl AgentLoad {
    /// The reason the agent cannot be used: its first error, plus how many more.
    pub fn failure(&self) -> Option<String> {
        let errors: Vec<&Finding> = self.findings.iter().filter(|f| f.is_error()).collect();
        let first = errors.first()?.to_string();
        let first = first.strip_prefix("error: ").unwrap_or(&first);
        Some(if errors.len() > 1 {
            format!("{first} (and {} more error(s))", errors.len() - 1)
        } else {
            first.to_owned()
        })
    }
}

/// Every agent of a tree (narrowed by a filter), loaded.
#[derive(Debug)]
pub struct Loaded {
    pub agents: BTreeMap<String, AgentLoad>,
}

impl Loaded {
    /// For the plan: each agent's secrets, or why it failed to load.
    pub fn desired_or_reasons(&self) -> BTreeMap<String, Result<DesiredSecrets, String>> {
        self.agents
            .iter()
            .map(|(slug, load)| {
                let wanted = match (&load.manifest, load.failure()) {
                    (Some(m), None) => Ok(m.secrets.clone()),
                    (_, Some(reason)) => Err(reason),
                    (None, None) => Err("manifest not loaded".to_owned()),
                };
                (slug.clone(), wanted)
            })
            .collect()
    }

    /// The secrets of every agent that loaded cleanly.
    pub fn ok_secrets(&self) -> BTreeMap<String, DesiredSecrets> {
        self.desired_or_reasons()
            .into_iter()
            .filter_map(|(slug, r)| r.ok().map(|s| (slug, s)))
            .collect()
    }

    /// Warnings of agents that loaded (for the plan's header).
    pub fn warnings(&self) -> Vec<String> {
        self.findings()
            .filter(|f| !f.is_error())
            .map(|f| f.to_string().trim_start_matches("warning: ").to_owned())
            .collect()
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.agents.values().flat_map(|a| a.findings.iter())
    }

    pub fn has_errors(&self) -> bool {
        self.findings().any(Finding::is_error)
    }
}

/// The agent slugs a tree declares (directories under `agents_dir`), sorted.
pub fn agent_slugs(tree: &dyn Tree, config: &Config) -> Result<Vec<String>, SourceError> {
    tree.dirs(&config.agents_dir)
}

/// Loads every agent of `tree`, or only those in `only` (each must exist).
pub fn load_all(
    tree: &dyn Tree,
    config: &Config,
    identities: &Identities,
    only: &BTreeSet<String>,
) -> Result<Loaded, LoadError> {
    let slugs = agent_slugs(tree, config)?;
    if let Some(missing) = only.iter().find(|a| !slugs.contains(a)) {
        return Err(LoadError::UnknownAgent {
            agent: missing.clone(),
            agents_dir: tree.display(&config.agents_dir),
            known: slugs.join(", "),
        });
    }
    let agents = slugs
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(s))
        .map(|slug| {
            let load = load_agent(tree, config, identities, &slug);
            (slug, load)
        })
        .collect();
    Ok(Loaded { agents })
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The tree itself cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `--agent` (or an argument) names an agent the repository does not declare.
    #[error(
        "agent {agent:?} is not declared: there is no directory {agents_dir}/{agent}\n  hint: declared agents: {known}; create one with `castsync new {agent}`"
    )]
    UnknownAgent {
        agent: String,
        agents_dir: String,
        known: String,
    },
}

/// Loads one agent: decrypt, parse, check. Never fails as a whole; problems are findings.
pub fn load_agent(
    tree: &dyn Tree,
    config: &Config,
    identities: &Identities,
    slug: &str,
) -> AgentLoad {
    let at = Locate { tree, slug };
    let dir = config.agents_dir.join(slug);
    let manifest_path = dir.join(MANIFEST_FILE);
    let fail = |finding: Finding| AgentLoad {
        manifest: None,
        findings: vec![finding],
    };

    if slug.contains('\u{fffd}') {
        return fail(at.error(
            &dir,
            format!(
                "the agent directory name is not valid UTF-8 (the bytes that are not are shown as \u{fffd}): {}; rename it to a slug of a-z, 0-9, '.', '_' and '-'",
                crate::escape::terminal(slug)
            ),
        ));
    }
    if let Err(e) = validate_slug(slug) {
        return fail(at.error(&dir, e.to_string()));
    }
    let ciphertext = match tree.read(&manifest_path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return fail(at.error(
                &manifest_path,
                format!(
                    "missing: the agent directory has no {MANIFEST_FILE}\n  hint: create it with `castsync new {slug}`, or remove the directory"
                ),
            ));
        }
        Err(e) => return fail(at.error(&manifest_path, e.to_string())),
    };
    let plaintext = match identities.decrypt(&ciphertext, &at.shown(&manifest_path)) {
        Ok(p) => p,
        Err(e) => return fail(at.located(&manifest_path, &e)),
    };
    let Ok(text) = std::str::from_utf8(&plaintext) else {
        return fail(at.error(
            &manifest_path,
            "the decrypted manifest is not UTF-8 text".to_owned(),
        ));
    };
    let judged = judge_text(tree, config, slug, text);
    let ok = !judged.findings.iter().any(Finding::is_error);
    AgentLoad {
        manifest: judged.manifest.filter(|_| ok),
        findings: judged.findings,
    }
}

/// How `parse` sees the manifest of agent `slug` in `tree`: its shown path, the agent it must
/// name, and the keys it may not declare.
pub fn manifest_context(tree: &dyn Tree, config: &Config, slug: &str) -> ManifestContext {
    ManifestContext {
        path: Locate { tree, slug }.shown(&config.agents_dir.join(slug).join(MANIFEST_FILE)),
        expected_agent: slug.to_owned(),
        unmanaged_keys: config.unmanaged_keys.clone(),
    }
}

/// A decrypted manifest text, judged.
#[derive(Debug)]
pub struct Judged {
    /// The manifest when the text parsed, even if the schema check then found errors.
    pub manifest: Option<Manifest>,
    /// Every problem found, errors and warnings.
    pub findings: Vec<Finding>,
}

/// Judges a decrypted manifest text of agent `slug`: parse, then check it against the agent's
/// `.env.example` in `tree`. The one place these rules are applied, whether the text came
/// from a file (`load_agent`) or from an author (`castsync edit`, `set`, `import`).
pub fn judge_text(tree: &dyn Tree, config: &Config, slug: &str, text: &str) -> Judged {
    let at = Locate { tree, slug };
    let schema_path = config.agents_dir.join(slug).join(SCHEMA_FILE);
    let parsed = match manifest::parse(text, &manifest_context(tree, config, slug)) {
        Ok(p) => p,
        Err(e) => {
            let manifest_path = config.agents_dir.join(slug).join(MANIFEST_FILE);
            return Judged {
                manifest: None,
                findings: vec![at.located(&manifest_path, &e)],
            };
        }
    };
    let mut findings: Vec<Finding> = parsed
        .warnings
        .into_iter()
        .map(|f| f.for_agent(slug))
        .collect();
    let schema = match tree.read(&schema_path) {
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => match EnvSchema::parse(&text, &at.shown(&schema_path)) {
                Ok(s) => Ok(Some(s)),
                Err(e) => Err(at.located(&schema_path, &e)),
            },
            Err(_) => Err(at.error(&schema_path, "not UTF-8 text".to_owned())),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(at.error(&schema_path, e.to_string())),
    };
    match schema {
        Ok(schema) => findings.extend(
            schema::check(
                schema.as_ref(),
                &parsed.manifest,
                config.strict,
                &config.unmanaged_keys,
                &at.shown(&schema_path),
            )
            .into_iter()
            .map(|f| f.for_agent(slug)),
        ),
        Err(finding) => findings.push(finding),
    }
    Judged {
        manifest: Some(parsed.manifest),
        findings,
    }
}

/// Names paths as the tree shows them, in findings about one agent.
struct Locate<'a> {
    tree: &'a dyn Tree,
    slug: &'a str,
}

impl Locate<'_> {
    fn shown(&self, path: &Path) -> PathBuf {
        PathBuf::from(self.tree.display(path))
    }

    fn error(&self, path: &Path, message: String) -> Finding {
        Finding::error(self.shown(path), message).for_agent(self.slug)
    }

    /// An error whose message already names its file.
    fn located(&self, path: &Path, e: &dyn std::error::Error) -> Finding {
        Finding::located_error(self.shown(path), e).for_agent(self.slug)
    }
}
