//! The values to look for: every value the manifests of a tree declare (agents' and shared
//! groups'), decrypted with the user's identities, with the manifests and keys that declare
//! each. Values shorter than [`MIN_LEN`] bytes, and values equal to their key's `.env.example`
//! placeholder, are left out and counted: the first would match everywhere, the second is
//! meant to be written down.
//!
//! Values are held in zeroizing buffers and never leave this module but as patterns for the
//! matcher.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::iter::{IntoParallelIterator, ParallelIterator};
use zeroize::Zeroizing;

use super::model::Owner;
use crate::audit::SourceKind;
use crate::config::Config;
use crate::crypto::Identities;
use crate::schema::EnvSchema;
use crate::source::{
    MANIFEST_FILE, SCHEMA_FILE, SourceError, Tree, agent_slugs, group_manifest_path, group_names,
    slashed,
};

/// Values shorter than this many bytes are not searched.
pub const MIN_LEN: usize = 8;

/// The distinct values to search, each with who declares it, and what was left out.
#[derive(Default)]
pub struct Needles {
    /// Distinct values (the matcher's patterns, by index).
    pub patterns: Vec<Zeroizing<Vec<u8>>>,
    /// For each pattern, the manifests and keys that declare it.
    pub owners: Vec<Vec<Owner>>,
    /// Keys whose value is searched.
    pub keys_searched: usize,
    /// Keys whose value is shorter than [`MIN_LEN`] bytes.
    pub keys_too_short: usize,
    /// Keys whose value equals their `.env.example` placeholder (`agent NAME's KEY`).
    pub keys_placeholder: Vec<String>,
    /// Manifests found.
    pub manifests: usize,
    /// Manifests that could not be read: (file, why), the why in words only.
    pub unreadable: Vec<(String, String)>,
}

/// One manifest file to read.
struct Job {
    kind: SourceKind,
    name: String,
    file: String,
    ciphertext: Vec<u8>,
}

/// The `.env.example` placeholders of a tree: per agent and key, and per key for the shared
/// groups (a group's key may be declared, with a placeholder, by every agent that uses it).
#[derive(Default)]
pub struct Placeholders {
    agents: BTreeMap<(String, String), String>,
    by_key: BTreeMap<String, BTreeSet<String>>,
}

impl Placeholders {
    /// Every agent's `.env.example` of `tree` (one that does not parse is `validate`'s
    /// business: its keys have no placeholder here, so their values are searched).
    pub fn read(tree: &dyn Tree, config: &Config) -> Result<Placeholders, SourceError> {
        let mut out = Placeholders::default();
        for agent in agent_slugs(tree, config)? {
            let path = config.agents_dir.join(&agent).join(SCHEMA_FILE);
            let Some(schema) = schema_of(tree, &path) else {
                continue;
            };
            for entry in schema.entries {
                out.by_key
                    .entry(entry.key.clone())
                    .or_default()
                    .insert(entry.placeholder.clone());
                out.agents
                    .insert((agent.clone(), entry.key), entry.placeholder);
            }
        }
        Ok(out)
    }

    /// These placeholders where a key has one, else `newer`'s: the placeholders of the last
    /// commit take precedence over the staged ones, so a value pasted over an existing
    /// placeholder is searched (and found), while a new key's default is not.
    pub fn over(mut self, newer: Placeholders) -> Placeholders {
        for (at, placeholder) in newer.agents {
            self.agents.entry(at).or_insert(placeholder);
        }
        for (key, placeholders) in newer.by_key {
            self.by_key.entry(key).or_insert(placeholders);
        }
        self
    }

    fn is_placeholder(&self, kind: SourceKind, name: &str, key: &str, value: &str) -> bool {
        match kind {
            SourceKind::Agent => self
                .agents
                .get(&(name.to_owned(), key.to_owned()))
                .is_some_and(|p| p == value),
            SourceKind::Group => self.by_key.get(key).is_some_and(|p| p.contains(value)),
        }
    }
}

/// Reads and decrypts every manifest of `tree` (paths in the result are relative to the
/// secrets repository); a value equal to its placeholder in `placeholders` is not searched.
pub fn collect(
    tree: &dyn Tree,
    config: &Config,
    identities: &Identities,
    placeholders: &Placeholders,
) -> Result<Needles, SourceError> {
    let mut jobs = Vec::new();
    // Each environment's overlays hold values too (`secrets.ENV.yaml.age` beside the file
    // every environment shares).
    let overlays: Vec<String> = config
        .all_environments()
        .iter()
        .filter_map(crate::environment::Environment::overlay_file)
        .collect();
    let mut files = |kind: SourceKind, name: String, path: PathBuf| -> Result<(), SourceError> {
        for overlay in &overlays {
            let overlay = path.with_file_name(overlay);
            push_job(tree, &mut jobs, kind, name.clone(), &overlay)?;
        }
        push_job(tree, &mut jobs, kind, name, &path)
    };
    for agent in agent_slugs(tree, config)? {
        let path = config.agents_dir.join(&agent).join(MANIFEST_FILE);
        files(SourceKind::Agent, agent, path)?;
    }
    for group in group_names(tree, config)? {
        let path = group_manifest_path(config, &group);
        files(SourceKind::Group, group, path)?;
    }
    let manifests = jobs.len();
    let read: Vec<(Job, Result<crate::manifest::Manifest, &'static str>)> = jobs
        .into_par_iter()
        .map(|job| {
            let opened = crate::load::open_manifest(
                identities,
                &job.ciphertext,
                Path::new(&job.file),
                &job.name,
                job.kind.manifest_kind(),
            );
            (job, opened)
        })
        .collect();
    let mut needles = Needles {
        manifests,
        ..Needles::default()
    };
    let mut found: Vec<(Zeroizing<Vec<u8>>, Owner)> = Vec::new();
    for (job, opened) in read {
        let manifest = match opened {
            Ok(m) => m,
            Err(why) => {
                needles.unreadable.push((job.file, why.to_owned()));
                continue;
            }
        };
        for (key, value) in &manifest.secrets {
            let value = value.expose();
            if value.len() < MIN_LEN {
                needles.keys_too_short += 1;
            } else if placeholders.is_placeholder(job.kind, &job.name, key, value) {
                needles
                    .keys_placeholder
                    .push(format!("{} {}'s {key}", job.kind.noun(), job.name));
            } else {
                needles.keys_searched += 1;
                let owner = Owner {
                    kind: job.kind,
                    name: job.name.clone(),
                    key: key.clone(),
                    file: job.file.clone(),
                };
                found.push((Zeroizing::new(value.as_bytes().to_vec()), owner));
            }
        }
    }
    // Equal values become one pattern with every owner.
    found.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()).then(a.1.cmp(&b.1)));
    for (value, owner) in found {
        match needles.patterns.last() {
            Some(last) if last.as_slice() == value.as_slice() => {
                if let Some(owners) = needles.owners.last_mut() {
                    owners.push(owner);
                }
            }
            _ => {
                needles.patterns.push(value);
                needles.owners.push(vec![owner]);
            }
        }
    }
    Ok(needles)
}

fn push_job(
    tree: &dyn Tree,
    jobs: &mut Vec<Job>,
    kind: SourceKind,
    name: String,
    path: &Path,
) -> Result<(), SourceError> {
    if crate::names::validate_slug(&name).is_err() {
        return Ok(());
    }
    if let Some(ciphertext) = tree.read(path)? {
        jobs.push(Job {
            kind,
            name,
            file: slashed(path),
            ciphertext,
        });
    }
    Ok(())
}

/// An agent's schema, when it has one that parses (one that does not is `validate`'s
/// business; its placeholders are then unknown and every value is searched).
fn schema_of(tree: &dyn Tree, path: &Path) -> Option<EnvSchema> {
    let bytes = tree.read(path).ok()??;
    let text = std::str::from_utf8(&bytes).ok()?;
    EnvSchema::parse(text, path).ok()
}
