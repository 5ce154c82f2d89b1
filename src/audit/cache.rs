//! `.castsync/audit-cache.json`: what the last audit learnt that is not secret, so the next
//! one reads only new commits and decrypts only new blobs. It holds commit and blob ids,
//! dates, key names, public recipients and keyed fingerprints (`facts`), never a value. It
//! is written 0600 and atomically, in the `.castsync/` folder git is told to ignore.
//!
//! A cache made with another identity (its check does not match), by another format, or
//! that does not parse is ignored and rebuilt: it only ever saves time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use git2::Oid;
use serde::{Deserialize, Serialize};

use super::facts::{Facts, Readable};
use super::walk::{Chains, Version};
use crate::atomic_write::{self, Mode, Replace};

/// The file, relative to the repository root.
pub const FILE: &str = ".castsync/audit-cache.json";
const FORMAT: u32 = 1;
/// Larger files are ignored (and rebuilt).
const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The cache in memory.
#[derive(Default)]
pub struct Cache {
    pub salt: Vec<u8>,
    /// The head and chains of the last walk, when they were for the same tracked paths.
    pub head: Option<Oid>,
    pub chains: Chains,
    pub facts: HashMap<Oid, Facts>,
    /// Set when something was added: only then is the file written again.
    pub dirty: bool,
}

/// One cached version: [commit, time, blob, castsync.yaml blob].
type CachedVersion = (String, i64, String, Option<String>);

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    /// Base64 of the random salt of the fingerprint key.
    salt: String,
    /// [`super::facts::Fingerprints::check`] of the key that made the fingerprints.
    check: String,
    /// Which identities read it: unreadable blobs are tried again under others.
    identities: String,
    head: Option<String>,
    /// Path → versions, newest first: [commit, time, blob, castsync.yaml blob].
    chains: BTreeMap<String, Vec<CachedVersion>>,
    blobs: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Recorded recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<Vec<String>>,
    /// Shared groups used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    u: Vec<String>,
    /// Key → fingerprint (16 hex digits).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    k: BTreeMap<String, String>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
}

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// The cache at `root` if it was made with the key `check` names; `fresh_salt` else. Blobs
/// that could not be read are forgotten when `identities` differs.
pub fn load(
    root: &Path,
    check: impl Fn(&[u8]) -> Option<String>,
    identities: &str,
) -> Option<Cache> {
    let bytes = crate::fsread::read_file(&path(root), MAX_BYTES).ok()?;
    let file: File = serde_json::from_slice(&bytes).ok()?;
    if file.format != FORMAT {
        return None;
    }
    use base64::Engine as _;
    let salt = base64::engine::general_purpose::STANDARD
        .decode(&file.salt)
        .ok()?;
    if check(&salt)? != file.check {
        return None;
    }
    let same_ids = file.identities == identities;
    let mut facts = HashMap::with_capacity(file.blobs.len());
    for (blob, entry) in file.blobs {
        let Ok(blob) = Oid::from_str(&blob) else {
            continue;
        };
        match entry.x {
            Some(why) if same_ids => {
                facts.insert(blob, Facts::Unreadable(why));
            }
            Some(_) => {}
            None => {
                let keys = entry
                    .k
                    .into_iter()
                    .filter_map(|(k, fp)| Some((k, u64::from_str_radix(&fp, 16).ok()?)))
                    .collect();
                let readable = Readable {
                    recipients: entry.r,
                    uses: entry.u,
                    keys,
                };
                facts.insert(blob, Facts::Readable(readable));
            }
        }
    }
    let chains = file
        .chains
        .into_iter()
        .map(|(path, versions)| {
            Some((
                path,
                versions.into_iter().map(version).collect::<Option<_>>()?,
            ))
        })
        .collect::<Option<Chains>>()
        .unwrap_or_default();
    let head = file.head.and_then(|h| Oid::from_str(&h).ok());
    Some(Cache {
        salt,
        head: if chains.is_empty() { None } else { head },
        chains,
        facts,
        dirty: !same_ids,
    })
}

fn version((commit, time, blob, config): CachedVersion) -> Option<Version> {
    Some(Version {
        commit: Oid::from_str(&commit).ok()?,
        time,
        blob: Oid::from_str(&blob).ok()?,
        config: match config {
            Some(c) => Some(Oid::from_str(&c).ok()?),
            None => None,
        },
    })
}

/// Writes the cache (creating `.castsync/`, 0700, when needed).
pub fn save(root: &Path, cache: &Cache, check: &str, identities: &str) -> std::io::Result<()> {
    use base64::Engine as _;
    let blobs = cache
        .facts
        .iter()
        .map(|(blob, facts)| {
            let entry = match facts {
                Facts::Unreadable(why) => Entry {
                    r: None,
                    u: Vec::new(),
                    k: BTreeMap::new(),
                    x: Some(why.clone()),
                },
                Facts::Readable(r) => Entry {
                    r: r.recipients.clone(),
                    u: r.uses.clone(),
                    k: r.keys
                        .iter()
                        .map(|(k, fp)| (k.clone(), format!("{fp:016x}")))
                        .collect(),
                    x: None,
                },
            };
            (blob.to_string(), entry)
        })
        .collect();
    let chains = cache
        .chains
        .iter()
        .map(|(path, versions)| {
            let versions = versions
                .iter()
                .map(|v| {
                    (
                        v.commit.to_string(),
                        v.time,
                        v.blob.to_string(),
                        v.config.map(|c| c.to_string()),
                    )
                })
                .collect();
            (path.clone(), versions)
        })
        .collect();
    let file = File {
        format: FORMAT,
        salt: base64::engine::general_purpose::STANDARD.encode(&cache.salt),
        check: check.to_owned(),
        identities: identities.to_owned(),
        head: cache.head.map(|h| h.to_string()),
        chains,
        blobs,
    };
    let target = path(root);
    if let Some(dir) = target.parent() {
        atomic_write::create_private_dir(dir)?;
    }
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    atomic_write::write(&target, &bytes, Replace::Existing, Mode::Private)
}

/// A random salt for a new cache.
pub fn fresh_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut salt[..]);
    salt
}
