//! Turns a [`Tree`] into desired state: for every agent directory, decrypt the manifest,
//! parse it, check it against its `.env.example`. Used by `validate`, `reconcile` (worktree,
//! `--ref`, `--base`) and the daemon, so they all judge a manifest the same way.
//!
//! An agent that fails any step is returned as an error (with its findings), never as an
//! empty manifest: the plan skips it whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::iter::{IntoParallelIterator, ParallelIterator};

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
///
/// The files are read through the tree one after the other (a git tree cannot be shared
/// between threads, and reading is the cheap part); decrypting, parsing and checking them
/// runs on every core. The result is keyed by slug, so its order never depends on which
/// thread finished first.
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
    let files: Vec<AgentFiles> = slugs
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(s))
        .map(|slug| AgentFiles::read(tree, config, slug))
        .collect();
    let agents = files
        .into_par_iter()
        .map(|files| (files.names.slug.clone(), files.judge(config, identities)))
        .collect::<Vec<_>>()
        .into_iter()
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
    AgentFiles::read(tree, config, slug.to_owned()).judge(config, identities)
}

/// What one agent's directory holds, read from the tree: everything the CPU-bound steps need,
/// so they can run on any thread.
struct AgentFiles {
    names: Names,
    /// Why the slug itself is refused, if it is.
    bad_slug: Option<String>,
    manifest: Result<Option<Vec<u8>>, SourceError>,
    schema: Result<Option<Vec<u8>>, SourceError>,
}

impl AgentFiles {
    fn read(tree: &dyn Tree, config: &Config, slug: String) -> AgentFiles {
        let names = Names::new(tree, config, slug);
        let bad_slug = if names.slug.contains('\u{fffd}') {
            Some(format!(
                "the agent directory name is not valid UTF-8 (the bytes that are not are shown as \u{fffd}): {}; rename it to a slug of a-z, 0-9, '.', '_' and '-'",
                crate::escape::terminal(&names.slug)
            ))
        } else {
            validate_slug(&names.slug).err().map(|e| e.to_string())
        };
        if bad_slug.is_some() {
            return AgentFiles {
                names,
                bad_slug,
                manifest: Ok(None),
                schema: Ok(None),
            };
        }
        let dir = config.agents_dir.join(&names.slug);
        AgentFiles {
            bad_slug: None,
            manifest: tree.read(&dir.join(MANIFEST_FILE)),
            schema: tree.read(&dir.join(SCHEMA_FILE)),
            names,
        }
    }

    fn judge(self, config: &Config, identities: &Identities) -> AgentLoad {
        let at = &self.names;
        let fail = |finding: Finding| AgentLoad {
            manifest: None,
            findings: vec![finding],
        };
        if let Some(message) = self.bad_slug {
            return fail(at.error(&at.dir, message));
        }
        let ciphertext = match self.manifest {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let slug = &at.slug;
                return fail(at.error(
                    &at.manifest,
                    format!(
                        "missing: the agent directory has no {MANIFEST_FILE}\n  hint: create it with `castsync new {slug}`, or remove the directory"
                    ),
                ));
            }
            Err(e) => return fail(at.error(&at.manifest, e.to_string())),
        };
        let plaintext = match identities.decrypt(&ciphertext, &at.manifest) {
            Ok(p) => p,
            Err(e) => return fail(at.located(&at.manifest, &e)),
        };
        let Ok(text) = std::str::from_utf8(&plaintext) else {
            return fail(at.error(
                &at.manifest,
                "the decrypted manifest is not UTF-8 text".to_owned(),
            ));
        };
        let judged = judge(config, at, text, self.schema);
        let ok = !judged.findings.iter().any(Finding::is_error);
        AgentLoad {
            manifest: judged.manifest.filter(|_| ok),
            findings: judged.findings,
        }
    }
}

/// How `parse` sees the manifest of agent `slug` in `tree`: its shown path, the agent it must
/// name, and the keys it may not declare.
pub fn manifest_context(tree: &dyn Tree, config: &Config, slug: &str) -> ManifestContext {
    Names::new(tree, config, slug.to_owned()).context(config)
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
    let names = Names::new(tree, config, slug.to_owned());
    let schema = tree.read(&config.agents_dir.join(slug).join(SCHEMA_FILE));
    judge(config, &names, text, schema)
}

/// [`judge_text`] with the schema file already read (no tree: it runs on any thread).
fn judge(
    config: &Config,
    at: &Names,
    text: &str,
    schema_file: Result<Option<Vec<u8>>, SourceError>,
) -> Judged {
    let parsed = match manifest::parse(text, &at.context(config)) {
        Ok(p) => p,
        Err(e) => {
            return Judged {
                manifest: None,
                findings: vec![at.located(&at.manifest, &e)],
            };
        }
    };
    let slug = at.slug.as_str();
    let mut findings: Vec<Finding> = parsed
        .warnings
        .into_iter()
        .map(|f| f.for_agent(slug))
        .collect();
    let schema = match schema_file {
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => match EnvSchema::parse(&text, &at.schema) {
                Ok(s) => Ok(Some(s)),
                Err(e) => Err(at.located(&at.schema, &e)),
            },
            Err(_) => Err(at.error(&at.schema, "not UTF-8 text".to_owned())),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(at.error(&at.schema, e.to_string())),
    };
    match schema {
        Ok(schema) => findings.extend(
            schema::check(
                schema.as_ref(),
                &parsed.manifest,
                config.strict,
                &config.unmanaged_keys,
                &at.schema,
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

/// An agent's slug and its paths as the tree shows them, for findings about it.
struct Names {
    slug: String,
    dir: PathBuf,
    manifest: PathBuf,
    schema: PathBuf,
}

impl Names {
    fn new(tree: &dyn Tree, config: &Config, slug: String) -> Names {
        let dir = config.agents_dir.join(&slug);
        let shown = |path: &Path| PathBuf::from(tree.display(path));
        Names {
            manifest: shown(&dir.join(MANIFEST_FILE)),
            schema: shown(&dir.join(SCHEMA_FILE)),
            dir: shown(&dir),
            slug,
        }
    }

    fn context(&self, config: &Config) -> ManifestContext {
        ManifestContext {
            path: self.manifest.clone(),
            expected_agent: self.slug.clone(),
            unmanaged_keys: config.unmanaged_keys.clone(),
        }
    }

    fn error(&self, shown: &Path, message: String) -> Finding {
        Finding::error(shown.to_owned(), message).for_agent(&self.slug)
    }

    /// An error whose message already names its file.
    fn located(&self, shown: &Path, e: &dyn std::error::Error) -> Finding {
        Finding::located_error(shown.to_owned(), e).for_agent(&self.slug)
    }
}
