//! Shared groups: `SHARED_DIR/GROUP/secrets.yaml.age` manifests whose keys agents take with
//! `uses:`, and the resolution of an agent's effective secrets (its own keys plus the keys it
//! uses).
//!
//! A tree's group files are read up front (reading is cheap and a git tree cannot be shared
//! between threads) and each is decrypted the first time an agent needs it, at most once per
//! run, whichever thread asks first: with a hardware-backed identity, a decryption may be a
//! touch. A group that fails to decrypt, parse or pass its rules fails every agent that uses
//! it (never treated as empty); an agent that names a group or a key that is not there, or
//! defines a key it also takes from a group, fails with an error naming both places.
//!
//! Like the rest of `source`, it never puts a value in a finding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::layers::{self, Overlay};
use crate::config::Config;
use crate::crypto::Identities;
use crate::environment::Environment;
use crate::finding::Finding;
use crate::manifest::{self, Kind, Manifest, ManifestContext, UsedKeys};
use crate::names::validate_slug;
use crate::plan::{DesiredSecrets, NotLoaded};
use crate::source::{MANIFEST_FILE, SourceError, Tree, group_manifest_path, group_names};

/// A group's manifest and the findings about it.
#[derive(Debug)]
pub struct GroupLoad {
    /// The manifest, when it decrypted, parsed and passed every rule.
    pub manifest: Option<Manifest>,
    pub findings: Vec<Finding>,
    /// The manifest's path as the tree shows it.
    pub shown: PathBuf,
}

impl GroupLoad {
    /// The first error and its hint, for the agents that use the group.
    fn failure(&self) -> Option<NotLoaded> {
        let first = self.findings.iter().find(|f| f.is_error())?;
        Some(NotLoaded {
            message: first.text(),
            hint: first.hint.clone(),
        })
    }
}

/// One group's file (and the environment's overlay of it) as read from the tree, decrypted
/// on first use.
struct Entry {
    shown: PathBuf,
    ciphertext: Result<Option<Vec<u8>>, SourceError>,
    overlay: Option<Overlay>,
    loaded: OnceLock<GroupLoad>,
}

/// The shared groups of one tree as one environment sees them, decrypted lazily with one set
/// of identities.
pub struct SharedGroups<'a> {
    config: &'a Config,
    env: Environment,
    identities: &'a Identities,
    entries: BTreeMap<String, Entry>,
    /// Groups replaced by an author's new version (authoring checks the agents that use a
    /// group against its new content before writing it).
    overrides: BTreeMap<String, GroupLoad>,
}

impl std::fmt::Debug for SharedGroups<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGroups")
            .field("groups", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> SharedGroups<'a> {
    /// Reads every group file of `tree`, and `env`'s overlay of each (no decryption yet).
    pub fn read(
        tree: &dyn Tree,
        config: &'a Config,
        env: &Environment,
        identities: &'a Identities,
    ) -> Result<SharedGroups<'a>, SourceError> {
        let mut entries = BTreeMap::new();
        for name in group_names(tree, config)? {
            let path = group_manifest_path(config, &name);
            let valid = validate_slug(&name).is_ok();
            let entry = Entry {
                shown: PathBuf::from(tree.display(&path)),
                ciphertext: if valid { tree.read(&path) } else { Ok(None) },
                overlay: valid
                    .then(|| Overlay::read(tree, &config.shared_dir.join(&name), env))
                    .flatten(),
                loaded: OnceLock::new(),
            };
            entries.insert(name, entry);
        }
        Ok(SharedGroups {
            config,
            env: env.clone(),
            identities,
            entries,
            overrides: BTreeMap::new(),
        })
    }

    /// Replaces `group`'s manifest by `manifest` (not yet written) for every later lookup.
    pub fn with_override(mut self, group: &str, manifest: Manifest, shown: PathBuf) -> Self {
        self.overrides.insert(
            group.to_owned(),
            GroupLoad {
                manifest: Some(manifest),
                findings: Vec::new(),
                shown,
            },
        );
        self
    }

    /// The names of the groups the tree declares.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `group` loaded (decrypted on first use), or `None` when the tree has no such folder.
    pub fn get(&self, group: &str) -> Option<&GroupLoad> {
        if let Some(over) = self.overrides.get(group) {
            return Some(over);
        }
        let entry = self.entries.get(group)?;
        Some(entry.loaded.get_or_init(|| load_group(self, group, entry)))
    }

    /// Every group that was loaded so far (overrides excepted), by name.
    pub fn into_loaded(self) -> BTreeMap<String, GroupLoad> {
        self.entries
            .into_iter()
            .filter_map(|(name, entry)| entry.loaded.into_inner().map(|load| (name, load)))
            .collect()
    }
}

fn load_group(groups: &SharedGroups<'_>, group: &str, entry: &Entry) -> GroupLoad {
    let (config, identities, env) = (groups.config, groups.identities, &groups.env);
    let shown = entry.shown.clone();
    let fail_with = |finding: Finding| GroupLoad {
        manifest: None,
        findings: vec![finding],
        shown: shown.clone(),
    };
    let fail = |message: String| fail_with(Finding::error(shown.clone(), message));
    if let Err(e) = validate_slug(group) {
        return fail(format!(
            "{e} (the folder name under {} is the group name)",
            config.shared_dir.display()
        ));
    }
    let ciphertext = match &entry.ciphertext {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return fail_with(
                Finding::error(
                    shown.clone(),
                    format!("missing: the shared group folder has no {MANIFEST_FILE}"),
                )
                .with_hint(format!(
                    "create it with `castsync new --shared {group}`, or remove the folder"
                )),
            );
        }
        Err(e) => return fail(e.to_string()),
    };
    let located = |finding: Finding| GroupLoad {
        manifest: None,
        findings: vec![finding],
        shown: shown.clone(),
    };
    let plaintext = match identities.decrypt(ciphertext, &shown) {
        Ok(p) => p,
        Err(e) => return located(Finding::located_error(shown.clone(), &e)),
    };
    let Ok(text) = std::str::from_utf8(&plaintext) else {
        return fail("the decrypted manifest is not UTF-8 text".to_owned());
    };
    let ctx = group_context(config, group, shown.clone());
    let mut parsed = match manifest::parse(text, &ctx) {
        Ok(parsed) => parsed,
        Err(e) => return located(Finding::located_error(shown.clone(), &e)),
    };
    if let Some(overlay) = &entry.overlay {
        let recipients = config.overlay_recipients_for_group(env, group);
        let text = match overlay.decrypt(identities, env, recipients) {
            Ok(text) => text,
            Err(finding) => return located(*finding),
        };
        if let Some(text) = text {
            let ctx = layers::context(&ctx, &overlay.shown);
            match layers::apply(&mut parsed.manifest, &text, &ctx) {
                Ok((warnings, _)) => parsed.warnings.extend(warnings),
                Err(e) => return located(Finding::located_error(overlay.shown.clone(), &e)),
            }
        }
    }
    GroupLoad {
        manifest: Some(parsed.manifest),
        findings: parsed.warnings,
        shown: shown.clone(),
    }
}

/// How `parse` sees the manifest of group `group`, shown as `shown`.
pub fn group_context(config: &Config, group: &str, shown: PathBuf) -> ManifestContext {
    ManifestContext {
        path: shown,
        expected_agent: group.to_owned(),
        kind: Kind::Group,
        unmanaged_keys: config.unmanaged_keys.clone(),
    }
}

/// An agent's effective secrets: its own keys plus the keys it takes from groups.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub secrets: DesiredSecrets,
    /// Key → the group it comes from, for keys taken from a group.
    pub origins: BTreeMap<String, String>,
}

/// The outcome of resolving an agent's `uses:`.
#[derive(Debug, Default)]
pub struct Resolution {
    /// The effective secrets, when every reference resolved.
    pub effective: Option<Effective>,
    /// Bad references (a missing group or key, a key defined twice): errors.
    pub errors: Vec<Finding>,
    /// Groups that did not load: errors when loading the repository; authoring, which may
    /// be done by someone who cannot decrypt every group, reports them as warnings.
    pub unavailable: Vec<Finding>,
}

/// Resolves `manifest`'s `uses:` against `groups`. `shown` is the agent's manifest path as
/// the tree shows it: every error names it and the group's file.
pub fn resolve(manifest: &Manifest, groups: &SharedGroups<'_>, shown: &Path) -> Resolution {
    let agent = manifest.agent.as_str();
    let mut out = Resolution::default();
    let mut effective = Effective {
        secrets: manifest.secrets.clone(),
        origins: BTreeMap::new(),
    };
    let error = |key: Option<&str>, message: String| {
        let f = Finding::error(shown, message).for_agent(agent);
        match key {
            Some(k) => f.for_key(k),
            None => f,
        }
    };
    let config = groups.config;
    for (group, used) in &manifest.uses {
        let group_path = group_manifest_path(config, group);
        let Some(load) = groups.get(group) else {
            out.errors.push(error(
                None,
                format!(
                    "`uses:` names shared group {group}, but there is no {}: create it with `castsync new --shared {group}`, or remove {group} from `uses:`",
                    group_path.display()
                ),
            ));
            continue;
        };
        let Some(shared) = &load.manifest else {
            let why = load.failure().unwrap_or_else(|| "it did not load".into());
            let mut finding = error(
                None,
                format!(
                    "uses shared group {group}, which did not load, so this agent is skipped: {}",
                    why.message
                ),
            );
            finding.hint = why.hint;
            out.unavailable.push(finding);
            continue;
        };
        let keys: BTreeSet<&String> = match used {
            UsedKeys::All => shared.secrets.keys().collect(),
            UsedKeys::Keys(keys) => keys.iter().collect(),
        };
        for key in keys {
            let Some(value) = shared.secrets.get(key) else {
                out.errors.push(error(
                    Some(key),
                    format!(
                        "`uses: {group}` takes {key} from shared group {group}, but {} has no such key: add it with `castsync set --shared {group} {key}`, or remove it from `uses: {group}`",
                        load.shown.display()
                    ),
                ));
                continue;
            };
            if manifest.secrets.contains_key(key) {
                out.errors.push(error(
                    Some(key),
                    format!(
                        "{key} is defined both in this manifest's secrets and in shared group {group} ({}), which it uses: remove one (`castsync unset {agent} {key}`, or leave it out of `uses: {group}`)",
                        load.shown.display()
                    ),
                ));
                continue;
            }
            if let Some(first) = effective.origins.get(key) {
                out.errors.push(error(
                    Some(key),
                    format!(
                        "{key} comes from two shared groups it uses, {first} ({}) and {group} ({}): take it from one of them (list keys explicitly, e.g. `uses: {{{group}: [..]}}`)",
                        group_manifest_path(config, first).display(),
                        load.shown.display()
                    ),
                ));
                continue;
            }
            effective.secrets.insert(key.clone(), value.clone());
            effective.origins.insert(key.clone(), group.clone());
        }
    }
    if out.errors.is_empty() && out.unavailable.is_empty() {
        out.effective = Some(effective);
    }
    out
}
