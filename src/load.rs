//! Turns a [`Tree`] into desired state: for every agent directory, decrypt the manifest,
//! parse it, add the keys it takes from shared groups (`shared`), check the result against its
//! `.env.example`. Used by `validate`, `reconcile` (worktree, `--ref`, `--base`) and the
//! daemon, so they all judge a manifest the same way.
//!
//! An agent that fails any step (its own file, or a group it uses) is returned as an error
//! (with its findings), never as an empty manifest: the plan skips it whole.

pub mod layers;
pub mod shared;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::iter::{IntoParallelIterator, ParallelIterator};

use crate::config::Config;
use crate::crypto::Identities;
use crate::environment::Environment;
use crate::finding::Finding;
use crate::manifest::{self, Kind, Manifest, ManifestContext};
use crate::names::validate_slug;
use crate::plan::{DesiredSecrets, NotLoaded, SharedOrigin};
use crate::schema::{self, EnvSchema};
use crate::source::{MANIFEST_FILE, SCHEMA_FILE, SourceError, Tree, agent_slugs};
use layers::Overlay;
use shared::{Effective, GroupLoad, SharedGroups};

/// One agent's manifest and the findings about it.
#[derive(Debug)]
pub struct AgentLoad {
    /// The agent's own manifest, when it decrypted, parsed and passed every check (its
    /// shared groups' included) with no error.
    pub manifest: Option<Manifest>,
    /// Its own keys plus those it takes from shared groups, when `manifest` is set.
    pub effective: Option<Effective>,
    /// The shared groups its `uses:` names (known once the manifest parsed, even when a
    /// later check failed): what its desired state depends on besides its own files.
    pub uses: Vec<String>,
    /// Every problem found, errors and warnings.
    pub findings: Vec<Finding>,
    /// The manifest decrypted and parsed, so `uses` is known.
    parsed: bool,
    /// Its `.env.example` gives a key a rotation period (`# rotate:`): what `validate` asks
    /// before it reads the history for overdue keys.
    pub rotation_annotated: bool,
}

impl AgentLoad {
    fn failed(finding: Finding) -> AgentLoad {
        AgentLoad {
            manifest: None,
            effective: None,
            uses: Vec::new(),
            findings: vec![finding],
            parsed: false,
            rotation_annotated: false,
        }
    }

    /// The effective secrets (own and shared), when the agent loaded cleanly.
    pub fn secrets(&self) -> Option<&DesiredSecrets> {
        self.effective.as_ref().map(|e| &e.secrets)
    }

    /// The reason the agent cannot be used: its first error (plus how many more), and that
    /// error's hint.
    pub fn failure(&self) -> Option<NotLoaded> {
        let errors: Vec<&Finding> = self.findings.iter().filter(|f| f.is_error()).collect();
        let first = errors.first()?;
        let text = first.text();
        Some(NotLoaded {
            message: if errors.len() > 1 {
                format!("{text} (and {} more error(s))", errors.len() - 1)
            } else {
                text
            },
            hint: first.hint.clone(),
        })
    }
}

/// Every agent of a tree (narrowed by a filter), loaded, and the shared groups they use.
#[derive(Debug, Default)]
pub struct Loaded {
    pub agents: BTreeMap<String, AgentLoad>,
    /// The shared groups that were loaded: every group of the tree for a full run, the ones
    /// the selected agents use otherwise.
    pub groups: BTreeMap<String, GroupLoad>,
    /// Findings about the repository as a whole (a group no agent uses).
    pub notes: Vec<Finding>,
}

impl Loaded {
    /// Each agent whose manifest loaded, with the shared groups it uses (what
    /// `source::inputs::RunInputs::with_groups_used` records with its inputs).
    pub fn groups_used(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.agents
            .iter()
            .filter(|(_, load)| load.manifest.is_some())
            .map(|(slug, load)| (slug.as_str(), load.uses.as_slice()))
    }

    /// For the plan: each agent's effective secrets, or why it failed to load.
    pub fn desired_or_reasons(&self) -> BTreeMap<String, Result<DesiredSecrets, NotLoaded>> {
        self.agents
            .iter()
            .map(|(slug, load)| {
                let wanted = match (load.secrets(), load.failure()) {
                    (Some(secrets), None) => Ok(secrets.clone()),
                    (_, Some(reason)) => Err(reason),
                    (None, None) => Err("manifest not loaded".into()),
                };
                (slug.clone(), wanted)
            })
            .collect()
    }

    /// For the plan: per agent, the keys it takes from shared groups and where each comes
    /// from (see [`crate::plan::Plan::with_origins`]).
    pub fn origins(&self, config: &Config) -> BTreeMap<String, BTreeMap<String, SharedOrigin>> {
        self.agents
            .iter()
            .filter_map(|(slug, load)| {
                let e = load.effective.as_ref()?;
                let keys: BTreeMap<String, SharedOrigin> = e
                    .origins
                    .iter()
                    .map(|(key, group)| {
                        let origin = SharedOrigin {
                            group: group.clone(),
                            path: config.shared_dir.join(group).display().to_string(),
                        };
                        (key.clone(), origin)
                    })
                    .collect();
                (!keys.is_empty()).then(|| (slug.clone(), keys))
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

    /// Adds `more`'s agents, groups and notes to these, without the agents' values: what a
    /// run that loads its agents in batches keeps of each batch once it has landed (the
    /// findings, and the shared groups each agent uses).
    pub fn absorb_without_values(&mut self, more: Loaded) {
        for (slug, load) in more.agents {
            let load = AgentLoad {
                manifest: None,
                effective: None,
                ..load
            };
            self.agents.insert(slug, load);
        }
        for (name, group) in more.groups {
            self.groups.entry(name).or_insert(group);
        }
        self.notes.extend(more.notes);
    }

    /// Warnings of agents that loaded (for the plan's header), without their severity.
    /// Also the errors of shared groups no agent of the run uses: nothing is skipped for
    /// them, but they must not pass unseen.
    pub fn warnings(&self) -> Vec<String> {
        let unused_group_errors = self
            .groups
            .iter()
            .filter(|(name, _)| !self.agents.values().any(|a| a.uses.contains(name)))
            .flat_map(|(_, g)| g.findings.iter().filter(|f| f.is_error()))
            .map(|f| format!("{} (no agent of this run uses this shared group)", f.text()));
        self.findings()
            .filter(|f| !f.is_error())
            .map(Finding::text)
            .chain(unused_group_errors)
            .collect()
    }

    /// Every finding: the groups' first, then each agent's, then the repository's.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.groups
            .values()
            .flat_map(|g| g.findings.iter())
            .chain(self.agents.values().flat_map(|a| a.findings.iter()))
            .chain(self.notes.iter())
    }
}

/// Loads every agent of `tree` as environment `env` sees it (each agent's file with `env`'s
/// overlay laid over it), or only those in `only` (each must exist).
pub fn load_all(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    identities: &Identities,
    only: &BTreeSet<String>,
) -> Result<Loaded, LoadError> {
    let slugs = named_agents(tree, config, agent_slugs(tree, config)?, only)?;
    let every = only.is_empty();
    let groups = SharedGroups::read(tree, config, env, identities)?;
    let agents = judge_agents(tree, config, env, identities, &groups, slugs);
    let mut notes = Vec::new();
    if every {
        // A full run checks every group, used or not, and names the unused ones (when every
        // agent could be read: an unreadable agent's `uses:` is unknown).
        let names: Vec<String> = groups.names().map(str::to_owned).collect();
        let all_read = agents.values().all(|a| a.parsed);
        for name in &names {
            let Some(group) = groups.get(name) else {
                continue;
            };
            if all_read && !agents.values().any(|a| a.uses.contains(name)) {
                notes.push(Finding::warning(
                    group.shown.clone(),
                    format!(
                        "shared group {name} is used by no agent (no agent's `uses:` names it): add it to the `uses:` of the agents that need it, or remove {}",
                        config.shared_dir.join(name).display()
                    ),
                ));
            }
        }
    }
    Ok(Loaded {
        agents,
        groups: groups.into_loaded(),
        notes,
    })
}

/// Loads the agents `slugs` (directories `tree` declares, as [`load_all`] lists them) as
/// environment `env` sees them, and the shared groups they use: a part of a run, so the
/// groups no agent of it uses are neither checked nor named.
pub fn load_agents(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    identities: &Identities,
    slugs: impl IntoIterator<Item = String>,
) -> Result<Loaded, LoadError> {
    let groups = SharedGroups::read(tree, config, env, identities)?;
    let agents = judge_agents(tree, config, env, identities, &groups, slugs);
    Ok(Loaded {
        agents,
        groups: groups.into_loaded(),
        notes: Vec::new(),
    })
}

/// Each agent of `slugs`, loaded, on every core. A tree that threads may share (the working
/// tree) is read by the thread that judges each agent; a git tree is read from this thread
/// first, one file after the other (its objects cannot be shared between threads, and
/// reading them is the cheap part). The result is keyed by slug, so its order never depends
/// on which thread finished first. Each shared group is decrypted once, by the first thread
/// whose agent uses it.
fn judge_agents(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    identities: &Identities,
    groups: &SharedGroups<'_>,
    slugs: impl IntoIterator<Item = String>,
) -> BTreeMap<String, AgentLoad> {
    let slugs: Vec<String> = slugs.into_iter().collect();
    let judge = |files: AgentFiles| {
        let slug = files.names.slug.clone();
        (slug, files.judge(config, identities, groups))
    };
    match tree.shared() {
        Some(tree) => slugs
            .into_par_iter()
            .map(|slug| judge(AgentFiles::read(tree, config, env, slug)))
            .collect(),
        None => {
            let files: Vec<AgentFiles> = slugs
                .into_iter()
                .map(|slug| AgentFiles::read(tree, config, env, slug))
                .collect();
            files.into_par_iter().map(judge).collect()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The tree itself cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `--agent` (or an argument) names an agent the repository does not declare.
    #[error("agent {agent:?} is not declared: there is no directory {agents_dir}/{agent}")]
    UnknownAgent {
        agent: String,
        agents_dir: String,
        known: String,
    },
    /// An argument names a shared group the repository does not declare.
    #[error("shared group {group:?} is not declared: there is no directory {shared_dir}/{group}")]
    UnknownGroup {
        group: String,
        shared_dir: String,
        known: Vec<String>,
    },
}

impl crate::hint::Hinted for LoadError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            LoadError::Source(_) => None,
            LoadError::UnknownAgent { agent, known, .. } => Some(
                format!("declared agents: {known}; create one with `castsync new {agent}`").into(),
            ),
            LoadError::UnknownGroup { group, known, .. } => Some(
                format!(
                    "declared groups: {}; create one with `castsync new --shared {group}`",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
                .into(),
            ),
        }
    }
}

/// The agents of `declared` (the agent directories of `tree`) that `only` names, each of
/// which must be declared; every declared agent when `only` is empty.
pub fn named_agents(
    tree: &dyn Tree,
    config: &Config,
    declared: Vec<String>,
    only: &BTreeSet<String>,
) -> Result<Vec<String>, LoadError> {
    narrowed(declared, only, |agent, declared| LoadError::UnknownAgent {
        agent,
        agents_dir: tree.display(&config.agents_dir),
        known: declared.join(", "),
    })
}

/// The shared groups of `tree` that `only` names, each of which must be declared; every
/// declared group when `only` is empty.
pub fn named_groups(
    tree: &dyn Tree,
    config: &Config,
    only: &BTreeSet<String>,
) -> Result<Vec<String>, LoadError> {
    let declared = crate::source::group_names(tree, config)?;
    narrowed(declared, only, |group, known| LoadError::UnknownGroup {
        group,
        shared_dir: config.shared_dir.display().to_string(),
        known,
    })
}

/// The names of `declared` that `only` names, or `unknown` of the first it names that is not
/// declared (and of every declared name); all of `declared` when `only` is empty.
fn narrowed(
    declared: Vec<String>,
    only: &BTreeSet<String>,
    unknown: impl FnOnce(String, Vec<String>) -> LoadError,
) -> Result<Vec<String>, LoadError> {
    // `declared` is sorted (a tree lists its directories sorted).
    if let Some(missing) = only.iter().find(|n| declared.binary_search(n).is_err()) {
        return Err(unknown(missing.clone(), declared));
    }
    Ok(if only.is_empty() {
        declared
    } else {
        declared.into_iter().filter(|n| only.contains(n)).collect()
    })
}

/// Loads one agent as `env` sees it: decrypt, parse, lay the overlay over it, resolve its
/// shared groups, check. Never fails as a whole; problems are findings.
pub fn load_agent(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    identities: &Identities,
    slug: &str,
    groups: &SharedGroups<'_>,
) -> AgentLoad {
    AgentFiles::read(tree, config, env, slug.to_owned()).judge(config, identities, groups)
}

/// What one agent's directory holds, read from the tree: everything the CPU-bound steps need,
/// so they can run on any thread.
struct AgentFiles {
    names: Names,
    /// Why the slug itself is refused, if it is.
    bad_slug: Option<String>,
    manifest: Result<Option<Vec<u8>>, SourceError>,
    /// The environment's overlay (`None` for the implicit environment).
    overlay: Option<Overlay>,
    schema: Result<Option<Vec<u8>>, SourceError>,
}

impl AgentFiles {
    fn read(tree: &dyn Tree, config: &Config, env: &Environment, slug: String) -> AgentFiles {
        let names = Names::new(tree, config, env, slug);
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
                overlay: None,
                schema: Ok(None),
            };
        }
        let dir = config.agents_dir.join(&names.slug);
        AgentFiles {
            bad_slug: None,
            manifest: tree.read(&dir.join(MANIFEST_FILE)),
            overlay: Overlay::read(tree, &dir, env),
            schema: tree.read(&dir.join(SCHEMA_FILE)),
            names,
        }
    }

    fn judge(
        self,
        config: &Config,
        identities: &Identities,
        groups: &SharedGroups<'_>,
    ) -> AgentLoad {
        let at = &self.names;
        let fail = AgentLoad::failed;
        if let Some(message) = self.bad_slug {
            return fail(at.error(&at.dir, message));
        }
        let ciphertext = match self.manifest {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let slug = &at.slug;
                return fail(
                    at.error(
                        &at.manifest,
                        format!("missing: the agent directory has no {MANIFEST_FILE}"),
                    )
                    .with_hint(format!(
                        "create it with `castsync new {slug}`, or remove the directory"
                    )),
                );
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
        let overlay = match &self.overlay {
            None => None,
            Some(overlay) => {
                let recipients = config.overlay_recipients_for(&at.env, &at.slug);
                match overlay.decrypt(identities, &at.env, recipients) {
                    Ok(text) => text,
                    Err(finding) => return fail(finding.for_agent(&at.slug)),
                }
            }
        };
        let texts = Texts {
            base: text,
            overlay: overlay.as_deref().map(String::as_str),
        };
        let mut judged = judge(config, at, texts, self.schema, groups);
        // Here a group that did not load fails the agent: it is skipped whole, never pruned.
        judged.findings.append(&mut judged.references);
        judged.findings.append(&mut judged.unavailable);
        let ok = !judged.findings.iter().any(Finding::is_error);
        AgentLoad {
            parsed: judged.manifest.is_some(),
            uses: judged
                .manifest
                .as_ref()
                .map(|m| m.uses.keys().cloned().collect())
                .unwrap_or_default(),
            manifest: judged.manifest.filter(|_| ok),
            effective: judged.effective.filter(|_| ok),
            findings: judged.findings,
            rotation_annotated: judged.rotation_annotated,
        }
    }
}

/// Decrypts and parses one manifest without judging it against its schema or resolving its
/// groups, and with no key refused as unmanaged: for the reports that read every value
/// (`audit` over past versions, `guard`). The error says why in words only, never with a
/// value.
pub fn open_manifest(
    identities: &Identities,
    ciphertext: &[u8],
    path: &Path,
    name: &str,
    kind: Kind,
) -> Result<Manifest, &'static str> {
    let plaintext = match identities.decrypt(ciphertext, path) {
        Ok(p) => p,
        Err(crate::crypto::CryptoError::NoMatchingIdentity { .. }) => {
            return Err("not encrypted to your identities");
        }
        Err(crate::crypto::CryptoError::NotAnAgeFile { .. }) => return Err("not an age file"),
        Err(_) => return Err("could not be decrypted"),
    };
    let text = std::str::from_utf8(&plaintext).map_err(|_| "not UTF-8 text once decrypted")?;
    let ctx = ManifestContext {
        path: path.to_owned(),
        expected_agent: name.to_owned(),
        kind,
        unmanaged_keys: Vec::new(),
    };
    manifest::parse(text, &ctx)
        .map(|parsed| parsed.manifest)
        .map_err(|_| "not a valid manifest")
}

/// How `parse` sees the manifest of agent `slug` in `tree` (or, for a named `env`, its
/// overlay): its shown path, the agent (and environment) it must name, and the keys it may
/// not declare.
pub fn manifest_context(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    slug: &str,
) -> ManifestContext {
    let names = Names::new(tree, config, env, slug.to_owned());
    match &names.overlay {
        Some(shown) => layers::context(&names.context(config), shown),
        None => names.context(config),
    }
}

/// An agent's decrypted texts: the file every environment shares, and the environment's
/// overlay when there is one.
#[derive(Clone, Copy)]
pub struct Texts<'a> {
    pub base: &'a str,
    pub overlay: Option<&'a str>,
}

/// A decrypted manifest text, judged.
#[derive(Debug)]
pub struct Judged {
    /// The manifest when the text parsed, even if a later check then found errors.
    pub manifest: Option<Manifest>,
    /// Its own keys plus the shared ones, when every `uses:` reference resolved.
    pub effective: Option<Effective>,
    /// Every problem found with the text and against the schema, errors and warnings.
    pub findings: Vec<Finding>,
    /// Bad `uses:` references: a missing group or key, a key defined twice (errors).
    pub references: Vec<Finding>,
    /// The keys the schema was checked against: the agent's own and the shared ones that
    /// resolved. A schema error about a key not among them can only be "required but missing".
    pub keys: std::collections::BTreeSet<String>,
    /// Shared groups it uses that did not load (errors, kept apart: see
    /// [`shared::Resolution::unavailable`]). Keys the schema requires are not reported missing
    /// while a group is unavailable: they may be in it.
    pub unavailable: Vec<Finding>,
    /// The schema gives a key a rotation period (`# rotate:`).
    pub rotation_annotated: bool,
}

/// Judges the decrypted texts of agent `slug` as environment `env` sees them: parse, lay
/// the overlay over the shared file, take the keys it uses from `groups`, then check the
/// result against the agent's `.env.example` in `tree`. The one place these rules are
/// applied, whether the texts came from files (`load_agent`) or from an author (`castsync
/// edit`, `set`, `import`).
pub fn judge_text(
    tree: &dyn Tree,
    config: &Config,
    env: &Environment,
    slug: &str,
    texts: Texts<'_>,
    groups: &SharedGroups<'_>,
) -> Judged {
    let names = Names::new(tree, config, env, slug.to_owned());
    let schema = tree.read(&config.agents_dir.join(slug).join(SCHEMA_FILE));
    judge(config, &names, texts, schema, groups)
}

/// The texts parsed, the overlay laid over the shared file: the agent's own keys for the
/// environment, or the finding that says why not.
fn parse_layers(
    config: &Config,
    at: &Names,
    texts: Texts<'_>,
) -> Result<manifest::Parsed, Box<Finding>> {
    let base_ctx = at.context(config);
    let mut parsed = manifest::parse(texts.base, &base_ctx)
        .map_err(|e| Box::new(at.located(&at.manifest, &e)))?;
    if let (Some(text), Some(shown)) = (texts.overlay, &at.overlay) {
        let ctx = layers::context(&base_ctx, shown);
        let (warnings, _) = layers::apply(&mut parsed.manifest, text, &ctx)
            .map_err(|e| Box::new(at.located(shown, &e)))?;
        let slug = at.slug.as_str();
        parsed
            .warnings
            .extend(warnings.into_iter().map(|f| f.for_agent(slug)));
    }
    Ok(parsed)
}

/// [`judge_text`] with the schema file already read (no tree: it runs on any thread).
fn judge(
    config: &Config,
    at: &Names,
    texts: Texts<'_>,
    schema_file: Result<Option<Vec<u8>>, SourceError>,
    groups: &SharedGroups<'_>,
) -> Judged {
    let parsed = match parse_layers(config, at, texts) {
        Ok(p) => p,
        Err(finding) => {
            return Judged {
                manifest: None,
                effective: None,
                findings: vec![*finding],
                references: Vec::new(),
                keys: Default::default(),
                unavailable: Vec::new(),
                rotation_annotated: false,
            };
        }
    };
    let slug = at.slug.as_str();
    let mut findings: Vec<Finding> = parsed
        .warnings
        .into_iter()
        .map(|f| f.for_agent(slug))
        .collect();
    let resolution = shared::resolve(&parsed.manifest, groups, &at.manifest);
    // The schema is checked against what the agent will get: its keys and the shared ones
    // that resolved.
    let mut effective = resolution.effective.clone().unwrap_or_else(|| Effective {
        secrets: parsed.manifest.secrets.clone(),
        origins: Default::default(),
    });
    if resolution.effective.is_none() {
        // Keys of groups that did resolve still count, so a broken reference is reported
        // once, not again as "required but missing".
        for (group, used) in &parsed.manifest.uses {
            let Some(m) = groups.get(group).and_then(|g| g.manifest.as_ref()) else {
                continue;
            };
            for (key, value) in &m.secrets {
                let taken = match used {
                    manifest::UsedKeys::All => true,
                    manifest::UsedKeys::Keys(keys) => keys.contains(key),
                };
                if taken && !effective.secrets.contains_key(key) {
                    effective.secrets.insert(key.clone(), value.clone());
                    effective.origins.insert(key.clone(), group.clone());
                }
            }
        }
    }
    let schema = at.schema(schema_file, &mut findings);
    let rotation_annotated = schema
        .as_ref()
        .is_ok_and(|s| s.as_ref().is_some_and(EnvSchema::has_rotation));
    let partial = !resolution.unavailable.is_empty() || resolution.effective.is_none();
    match schema {
        Ok(schema) => findings.extend(
            schema::check(
                schema.as_ref(),
                &Manifest {
                    secrets: effective.secrets.clone(),
                    ..parsed.manifest.clone()
                },
                &effective.origins,
                config.strict,
                &config.unmanaged_keys,
                &at.schema,
            )
            .into_iter()
            // While a group is missing, a key "required but missing" may be in it.
            .filter(|f| {
                !partial
                    || f.key
                        .as_ref()
                        .is_none_or(|k| effective.secrets.contains_key(k))
            })
            .map(|f| f.for_agent(slug)),
        ),
        Err(finding) => findings.push(*finding),
    }
    Judged {
        manifest: Some(parsed.manifest),
        effective: resolution.effective,
        findings,
        references: resolution.errors,
        keys: effective.secrets.keys().cloned().collect(),
        unavailable: resolution.unavailable,
        rotation_annotated,
    }
}

/// An agent's slug and its paths as the tree shows them, for findings about it.
struct Names {
    slug: String,
    env: Environment,
    dir: PathBuf,
    manifest: PathBuf,
    /// The environment's overlay (`None` for the implicit environment).
    overlay: Option<PathBuf>,
    schema: PathBuf,
}

impl Names {
    fn new(tree: &dyn Tree, config: &Config, env: &Environment, slug: String) -> Names {
        let dir = config.agents_dir.join(&slug);
        let shown = |path: &Path| PathBuf::from(tree.display(path));
        Names {
            manifest: shown(&dir.join(MANIFEST_FILE)),
            overlay: env.overlay_file().map(|f| shown(&dir.join(f))),
            schema: shown(&dir.join(SCHEMA_FILE)),
            dir: shown(&dir),
            env: env.clone(),
            slug,
        }
    }

    fn context(&self, config: &Config) -> ManifestContext {
        ManifestContext {
            path: self.manifest.clone(),
            expected_agent: self.slug.clone(),
            kind: Kind::Agent,
            unmanaged_keys: config.unmanaged_keys.clone(),
        }
    }

    fn error(&self, shown: &Path, message: String) -> Finding {
        Finding::error(shown.to_owned(), message).for_agent(&self.slug)
    }

    /// The agent's `.env.example` read from `file` (None when there is none), a warning in
    /// `findings` for each key it sets twice; or the error that makes it unusable.
    fn schema(
        &self,
        file: Result<Option<Vec<u8>>, SourceError>,
        findings: &mut Vec<Finding>,
    ) -> Result<Option<EnvSchema>, Box<Finding>> {
        let bytes = match file {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Box::new(self.error(&self.schema, e.to_string()))),
        };
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(Box::new(
                self.error(&self.schema, "not UTF-8 text".to_owned()),
            ));
        };
        let schema = EnvSchema::parse(&text, &self.schema)
            .map_err(|e| Box::new(self.located(&self.schema, &e).at_line(Some(e.line()))))?;
        findings.extend(schema.repeated.iter().map(|r| {
            Finding::warning(&self.schema, r.message())
                .at_line(Some(r.line))
                .for_agent(&self.slug)
                .for_key(&r.key)
        }));
        Ok(Some(schema))
    }

    /// An error whose message already names its file.
    fn located<E>(&self, shown: &Path, e: &E) -> Finding
    where
        E: std::error::Error + crate::hint::Hinted,
    {
        Finding::located_error(shown.to_owned(), e).for_agent(&self.slug)
    }
}
