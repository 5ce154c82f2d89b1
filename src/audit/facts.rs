//! What one version of a manifest says, kept without its values: each key with a keyed
//! fingerprint of its value, the recipients its `castsync:` block records, and the shared
//! groups it uses. Decrypting is the expensive part of an audit, so these facts are
//! computed once per blob id and cached (`cache`); the values themselves are dropped (and
//! zeroized) as soon as they are fingerprinted.
//!
//! The fingerprint key is derived from the user's identity and a random salt kept with the
//! cache: the same value gives the same fingerprint run after run, but the cache file alone
//! lets nobody test a guess. It is never an unkeyed hash of a value.

use std::collections::BTreeMap;
use std::path::Path;

use hmac::{Hmac, Mac};
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::model::SourceKind;
use crate::crypto::Identities;

/// The purpose string of the key derived from the user's identity.
const PURPOSE: &str = "castsync audit fingerprint v1";

/// What a version says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facts {
    Readable(Readable),
    /// Why it could not be read (words only: never a value).
    Unreadable(String),
}

/// A version that decrypted and parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readable {
    /// The recipients its `castsync:` block records (`None`: written without one).
    pub recipients: Option<Vec<String>>,
    /// The shared groups it uses (agents only).
    pub uses: Vec<String>,
    /// Key → keyed fingerprint of its value.
    pub keys: BTreeMap<String, u64>,
}

/// The keyed fingerprints of one audit.
pub struct Fingerprints {
    key: Zeroizing<[u8; 32]>,
}

impl Fingerprints {
    /// The key for `salt`, derived from the first identity; `None` without one.
    pub fn new(identities: &Identities, salt: &[u8]) -> Option<Fingerprints> {
        let root = identities.derive_key(PURPOSE)?;
        let mut mac = hmac_with(&root[..]);
        mac.update(salt);
        Some(Fingerprints {
            key: Zeroizing::new(mac.finalize().into_bytes().into()),
        })
    }

    /// Proves to a later run that it derives the same key (the cache is usable), revealing
    /// nothing about the key.
    pub fn check(&self) -> String {
        let mut mac = hmac_with(&self.key[..]);
        mac.update(b"castsync audit cache check");
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// 64 bits of HMAC-SHA256(key, name ‖ 0 ‖ key name ‖ 0 ‖ value): enough to tell a
    /// change from none; bound to the manifest and the key, so equal values elsewhere do not
    /// show as equal.
    fn of(&self, name: &str, key: &str, value: &str) -> u64 {
        let mut mac = hmac_with(&self.key[..]);
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }
}

fn hmac_with(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// One blob to read: its ciphertext, and the manifest it belongs to.
pub struct Job {
    pub blob: git2::Oid,
    pub ciphertext: Vec<u8>,
    pub kind: SourceKind,
    pub name: String,
    pub path: String,
}

/// The facts of every job, decrypted and parsed on every core.
pub fn gather(
    jobs: Vec<Job>,
    identities: &Identities,
    fingerprints: &Fingerprints,
) -> Vec<(git2::Oid, Facts)> {
    jobs.into_par_iter()
        .map(|job| (job.blob, read(&job, identities, fingerprints)))
        .collect()
}

fn read(job: &Job, identities: &Identities, fingerprints: &Fingerprints) -> Facts {
    // Past versions are read, not judged: a key the platform injects is just a key.
    let opened = crate::load::open_manifest(
        identities,
        &job.ciphertext,
        Path::new(&job.path),
        &job.name,
        job.kind.manifest_kind(),
    );
    let parsed = match opened {
        Ok(manifest) => manifest,
        Err(why) => return Facts::Unreadable(why.to_owned()),
    };
    Facts::Readable(Readable {
        recipients: parsed.meta.map(|m| m.recipients),
        uses: parsed.uses.keys().cloned().collect(),
        keys: parsed
            .secrets
            .iter()
            .map(|(key, value)| (key.clone(), fingerprints.of(&job.name, key, value.expose())))
            .collect(),
    })
}
