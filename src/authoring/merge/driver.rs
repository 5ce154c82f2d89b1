//! The three versions git hands a merge driver, merged into one: decrypt and check each, merge
//! them key by key ([`super::merge`]), and encrypt the result to the recipients the config
//! assigns the agent (the rule `rekey` uses). No file is read or written here: the command
//! reads the versions and writes the result, so a failure leaves every file as it was.
//!
//! Each version is judged by the manifest rules, not by the agent's `.env.example`: during a
//! merge the schema on disk is our side's, which may not know a key their side added; the
//! merged tree is checked by `castsync validate` like any other commit.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{Conflicts, merge};
use crate::authoring::{AgentFiles, AuthoringError, target_recipients_of};
use crate::config::Config;
use crate::crypto::{CryptoError, Identities};
use crate::manifest::{self, Kind, Manifest, ManifestError, Metadata};
use crate::source::MANIFEST_FILE;

/// Which of the three versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The common ancestor (git's `%O`).
    Base,
    /// Our version (git's `%A`): the branch being merged into.
    Ours,
    /// Their version (git's `%B`): the branch being merged.
    Theirs,
}

impl Side {
    /// The short label put after the manifest's path in messages.
    fn label(self) -> &'static str {
        match self {
            Side::Base => "common ancestor",
            Side::Ours => "ours",
            Side::Theirs => "theirs",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Base => "the common ancestor's version",
            Side::Ours => "our version",
            Side::Theirs => "their version",
        })
    }
}

/// Why a merge wrote nothing. No variant holds a value.
#[derive(Debug, Error)]
pub enum MergeError {
    /// The merged path is not `AGENTS_DIR/AGENT/secrets.yaml.age` nor
    /// `SHARED_DIR/GROUP/secrets.yaml.age`.
    #[error(
        "{}: not a manifest: castsync merges only {agents_dir}/AGENT/{MANIFEST_FILE} and {shared_dir}/GROUP/{MANIFEST_FILE}",
        path.display()
    )]
    NotAManifest {
        path: PathBuf,
        agents_dir: String,
        shared_dir: String,
    },
    /// A version does not decrypt with the user's identities.
    #[error("cannot merge {} (agent {agent}): {side} does not decrypt; the file was left as it was", path.display())]
    Decrypt {
        path: PathBuf,
        agent: String,
        side: Side,
        #[source]
        source: Box<CryptoError>,
    },
    /// A version decrypts to bytes that are not text.
    #[error("cannot merge {} (agent {agent}): {side} decrypts to bytes that are not UTF-8 text; the file was left as it was", path.display())]
    NotUtf8 {
        path: PathBuf,
        agent: String,
        side: Side,
    },
    /// A version breaks the manifest rules.
    #[error("cannot merge {} (agent {agent}): {side} breaks the manifest rules; the file was left as it was", path.display())]
    Invalid {
        path: PathBuf,
        agent: String,
        side: Side,
        #[source]
        source: Box<ManifestError>,
    },
    /// The versions conflict: the file keeps our version.
    #[error(
        "{}: cannot merge agent {agent} key by key: {conflicts}\n  the file was left as our version{}",
        path.display(),
        unapplied(&conflicts.unapplied),
    )]
    Conflict {
        path: PathBuf,
        agent: String,
        conflicts: Box<Conflicts>,
    },
    /// The merge result breaks the manifest rules (e.g. the union is over the size limit).
    #[error("cannot merge {} (agent {agent}): the merged manifest breaks the manifest rules; the file was left as it was", path.display())]
    MergedInvalid {
        path: PathBuf,
        agent: String,
        #[source]
        source: Box<ManifestError>,
    },
    /// The result cannot be encrypted (no recipients, a bad recipient in the config).
    #[error(transparent)]
    Authoring(#[from] AuthoringError),
}

impl crate::hint::Hinted for MergeError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            MergeError::NotAManifest { .. } => Some(
                "route only those files to it in .gitattributes (`*.yaml.age merge=castsync`)"
                    .into(),
            ),
            MergeError::Conflict { path, agent, .. } => Some(
                format!(
                    "settle it with `castsync edit {agent}`, then `git add {}` and commit (see \"Merging branches\" in castsync's docs/git.md)",
                    path.display()
                )
                .into(),
            ),
            MergeError::Authoring(e) => e.hint(),
            MergeError::Decrypt { .. }
            | MergeError::NotUtf8 { .. }
            | MergeError::Invalid { .. }
            | MergeError::MergedInvalid { .. } => None,
        }
    }
}

fn unapplied(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            ", without their changes to {} either (those would have merged)",
            keys.join(", ")
        )
    }
}

/// The agent whose manifest is at `rel`, a path relative to the repository root: it must be
/// `AGENTS_DIR/AGENT/secrets.yaml.age`. The slug itself is checked by [`AgentFiles::new`].
pub fn agent_of(config: &Config, rel: &Path) -> Result<String, MergeError> {
    match manifest_of(config, rel)? {
        (Kind::Agent, slug) => Ok(slug),
        (Kind::Group, _) => Err(not_a_manifest(config, rel)),
    }
}

fn not_a_manifest(config: &Config, rel: &Path) -> MergeError {
    MergeError::NotAManifest {
        path: rel.to_owned(),
        agents_dir: config.agents_dir.display().to_string(),
        shared_dir: config.shared_dir.display().to_string(),
    }
}

/// Whose manifest is at `rel`: an agent's (`AGENTS_DIR/AGENT/secrets.yaml.age`) or a shared
/// group's (`SHARED_DIR/GROUP/secrets.yaml.age`). The name itself is checked by
/// [`AgentFiles::of_kind`].
pub fn manifest_of(config: &Config, rel: &Path) -> Result<(Kind, String), MergeError> {
    let not_a_manifest = || not_a_manifest(config, rel);
    let normal = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_owned())
            .collect()
    };
    let parts = normal(rel);
    let agents_dir = normal(&config.agents_dir);
    let shared_dir = normal(&config.shared_dir);
    match parts.split_last() {
        Some((file, [dir @ .., slug])) if file == MANIFEST_FILE && dir == agents_dir.as_slice() => {
            let slug = slug
                .to_str()
                .map(str::to_owned)
                .ok_or_else(not_a_manifest)?;
            Ok((Kind::Agent, slug))
        }
        Some((file, [dir @ .., group]))
            if file == MANIFEST_FILE && dir == shared_dir.as_slice() =>
        {
            let group = group
                .to_str()
                .map(str::to_owned)
                .ok_or_else(not_a_manifest)?;
            Ok((Kind::Group, group))
        }
        _ => Err(not_a_manifest()),
    }
}

/// The three versions, as git handed them over. An empty (or blank) `base` means there is no
/// common ancestor: both sides added the file.
#[derive(Debug, Clone, Copy)]
pub struct Versions<'a> {
    pub base: &'a [u8],
    pub ours: &'a [u8],
    pub theirs: &'a [u8],
}

/// A clean merge.
#[derive(Debug)]
pub struct Merged {
    /// What to put in place of our version; `None` when our version already is the result
    /// (same keys and values, recipient record current), so it stays byte for byte.
    pub ciphertext: Option<Vec<u8>>,
    /// Keys whose result is a change only our side made.
    pub from_ours: Vec<String>,
    /// Keys whose result is a change only their side made.
    pub from_theirs: Vec<String>,
    /// Warnings for the author (the result is not encrypted to any of their identities).
    pub notes: Vec<String>,
}

/// Merges three versions of `files`' manifest (see the module doc).
pub fn merge_versions(
    files: &AgentFiles<'_>,
    ids: &Identities,
    versions: Versions<'_>,
) -> Result<Merged, MergeError> {
    let base = if versions.base.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(open(files, ids, Side::Base, versions.base)?)
    };
    let ours = open(files, ids, Side::Ours, versions.ours)?;
    let theirs = open(files, ids, Side::Theirs, versions.theirs)?;

    let three_way =
        merge(base.as_ref(), &ours, &theirs).map_err(|conflicts| MergeError::Conflict {
            path: files.shown.clone(),
            // As commands name it: `bot`, or `--shared openai` (the hint is `castsync edit …`).
            agent: files.arg(),
            conflicts: Box::new(conflicts),
        })?;
    let mut merged = Merged {
        ciphertext: None,
        from_ours: three_way.from_ours,
        from_theirs: three_way.from_theirs,
        notes: Vec::new(),
    };
    let mut result = three_way.manifest;

    // A side that already is the result, recipient record included, is taken byte for byte:
    // encrypting again would change the file without changing anything in it.
    let record = Metadata {
        recipients: target_recipients_of(files.config, files.kind, &files.slug)?
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
    };
    let is_result = |side: &Manifest| {
        side.agent == files.slug
            && side.uses == result.uses
            && side.secrets == result.secrets
            && side.meta.as_ref() == Some(&record)
    };
    if is_result(&ours) {
        return Ok(merged);
    }
    if is_result(&theirs) {
        merged.ciphertext = Some(versions.theirs.to_vec());
        return Ok(merged);
    }

    // Made of checked parts, the result is checked whole anyway: bound to this agent's
    // folder, and within the size limit although it holds both sides' keys.
    files
        .parse(&result.to_yaml())
        .map_err(|source| MergeError::MergedInvalid {
            path: files.shown.clone(),
            agent: files.slug.clone(),
            source: Box::new(source),
        })?;
    let (ciphertext, recipients) = files.seal(&mut result)?;
    merged
        .notes
        .extend(files.recipient_warning(&recipients, ids));
    merged.ciphertext = Some(ciphertext);
    Ok(merged)
}

/// Decrypts and parses one version. A version whose `agent:` names another (valid) slug is
/// parsed against that slug, so that [`merge`] reports the two bindings side by side; the
/// result is checked against this agent's folder at the end.
fn open(
    files: &AgentFiles<'_>,
    ids: &Identities,
    side: Side,
    ciphertext: &[u8],
) -> Result<Manifest, MergeError> {
    let shown = PathBuf::from(format!("{} ({})", files.shown.display(), side.label()));
    let plaintext = ids
        .decrypt(ciphertext, &shown)
        .map_err(|source| MergeError::Decrypt {
            path: files.shown.clone(),
            agent: files.slug.clone(),
            side,
            source: Box::new(source),
        })?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| MergeError::NotUtf8 {
        path: files.shown.clone(),
        agent: files.slug.clone(),
        side,
    })?;
    let invalid = |source: ManifestError| MergeError::Invalid {
        path: files.shown.clone(),
        agent: files.slug.clone(),
        side,
        source: Box::new(source),
    };
    let mut ctx = files.context();
    ctx.path = shown;
    match manifest::parse(text, &ctx) {
        Ok(parsed) => Ok(parsed.manifest),
        Err(
            ManifestError::AgentMismatch {
                found: Some(other), ..
            }
            | ManifestError::GroupMismatch {
                found: Some(other), ..
            },
        ) => {
            ctx.expected_agent = other;
            manifest::parse(text, &ctx)
                .map(|parsed| parsed.manifest)
                .map_err(invalid)
        }
        Err(e) => Err(invalid(e)),
    }
}

#[cfg(test)]
mod tests;
