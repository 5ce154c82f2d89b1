//! Authoring: the write path of `new`, `set`, `unset`, `import`, `rekey` and `edit`. Each
//! operation decrypts an agent's (or a shared group's) manifest, changes it, judges the result
//! by the very rules `validate` and `reconcile` apply, and encrypts it back to the recipients
//! the config assigns; the commands around it only read input and print. A change to a shared
//! group is also judged from the side of every agent that uses it (`dependents`): a change
//! that would break one of them is refused. [`merge`] is the git merge
//! driver's part: two branches' versions of a manifest merged key by key.
//!
//! [`editor`] runs the user's editor on a private scratch copy for `edit`: the one place
//! plaintext touches the disk, in a 0600 file of a 0700 directory removed on every way out.
//!
//! Otherwise it must never write plaintext to disk, never write a manifest that breaks the
//! rules (missing required keys excepted, so a manifest can be filled one `set` at a time),
//! and never put a value in an error or a note: they name files, agents and keys only.

mod dependents;
pub mod edit;
pub mod editor;
mod files;
pub mod init;
pub mod merge;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use files::{
    AgentFiles, Replace, Verdict, create_new_file, read_secret_input, target_recipients,
    target_recipients_of,
};

use crate::config;
use crate::crypto::{CryptoError, Identities};
use crate::environment::Environment;
use crate::load::AgentLoad;
use crate::manifest::{Kind, Manifest, ManifestError};
use crate::names::NameError;
use crate::secret::SecretValue;

/// Why an authoring operation wrote nothing.
#[derive(Debug, Error)]
pub enum AuthoringError {
    /// The agent slug or the key name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A shared group name that is not valid.
    #[error(
        "invalid shared group name {name:?}: group names follow the agent slug rules (1-63 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit, without '..')"
    )]
    GroupName { name: String },
    /// Decryption or encryption failed (no identity, not a recipient, no recipients).
    #[error(transparent)]
    Crypto(Box<CryptoError>),
    /// The manifest exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not a regular file inside the repository, or is too large.
    #[error(transparent)]
    Unreadable(crate::fsread::ReadError),
    /// The manifest decrypts to bytes that are not text.
    #[error("{}: the decrypted manifest is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// The manifest decrypts but breaks the manifest rules: only `edit` opens it.
    #[error(
        "cannot use {}: it breaks the manifest rules; fix it with `castsync edit {agent}`",
        path.display()
    )]
    Broken {
        path: PathBuf,
        agent: String,
        #[source]
        source: Box<ManifestError>,
    },
    /// The agent (or shared group) has no manifest yet.
    #[error("no manifest: {} does not exist", path.display())]
    NoManifest { agent: String, path: PathBuf },
    /// `new` for an agent that already has a manifest.
    #[error(
        "{} already exists: castsync new never replaces a manifest",
        path.display()
    )]
    Exists { agent: String, path: PathBuf },
    /// The changed manifest breaks the rules: each problem on its own line.
    #[error("{} was not changed:{}", path.display(), problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Refused {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// `unset` of a key the manifest does not hold.
    #[error("key {key} is not in {}", path.display())]
    NoSuchKey {
        key: String,
        agent: String,
        path: PathBuf,
        hint: String,
    },
    /// `import` of keys the manifest holds with other values, without `--overwrite`.
    #[error(
        "{} already holds {} with a different value: nothing was imported",
        path.display(),
        keys.join(", ")
    )]
    Conflicts { path: PathBuf, keys: Vec<String> },
    /// A recipient the config assigns this agent (or group) cannot be encrypted to. `agent`
    /// says which: "agent support-bot" or "shared group openai".
    #[error("{}: recipient {number} for {agent} cannot be used", config::FILE_NAME)]
    Recipient {
        agent: String,
        number: usize,
        #[source]
        source: Box<CryptoError>,
    },
    /// The repository's folders cannot be listed (while checking a shared group's users).
    #[error(transparent)]
    Source(Box<crate::source::SourceError>),
    /// A directory or a new file cannot be created.
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `init` where castsync's files exist already.
    #[error(
        "{} already exist(s) in {}: castsync init never overwrites, so nothing was written",
        paths.join(", "),
        root.display()
    )]
    Taken { root: PathBuf, paths: Vec<String> },
    /// A file cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::hint::Hinted for AuthoringError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(match self {
            AuthoringError::Crypto(e) => return e.hint(),
            AuthoringError::NoManifest { agent, .. } => {
                format!("create it with `castsync new {agent}`").into()
            }
            AuthoringError::Exists { agent, .. } => {
                format!("change it with `castsync edit {agent}` or `castsync set {agent} KEY`")
                    .into()
            }
            AuthoringError::NoSuchKey { hint, .. } => hint.as_str().into(),
            AuthoringError::Conflicts { .. } => "pass --overwrite to replace them".into(),
            AuthoringError::Taken { .. } => "move them aside and run it again, or write castsync.yaml yourself (see castsync's docs/config.md)".into(),
            _ => return None,
        })
    }
}

impl From<CryptoError> for AuthoringError {
    fn from(e: CryptoError) -> Self {
        AuthoringError::Crypto(Box::new(e))
    }
}

/// What an operation did, and the warnings for the author (for stderr, in order).
#[derive(Debug)]
pub struct Written<T> {
    pub outcome: T,
    pub notes: Vec<String>,
}

/// Judges the changed manifest and writes it over the existing one, or refuses with the
/// reasons. Returns the notes (warnings, keys still missing, a recipient warning).
pub fn commit(
    files: &AgentFiles<'_>,
    mut manifest: Manifest,
    identities: &Identities,
) -> Result<Vec<String>, AuthoringError> {
    let verdict = files.judge(&manifest.to_yaml(), identities);
    if !verdict.blocking.is_empty() {
        return Err(verdict.refusal(files));
    }
    let mut notes = verdict.notes(files);
    if files.kind == Kind::Group {
        notes.extend(dependents::check(files, &manifest, identities)?);
    }
    notes.extend(files.save(&mut manifest, identities, Replace::Existing)?);
    Ok(notes)
}

/// What `new` created besides the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// A commented `.env.example` was written (the agent had none).
    pub wrote_schema: bool,
}

/// `new`: an empty manifest (encrypted, like every manifest) and, when the agent has none, a
/// commented `.env.example` to fill in (a shared group has no schema: each agent's lists the
/// keys it takes). Never replaces a manifest.
pub fn create(
    files: &AgentFiles<'_>,
    identities: &Identities,
) -> Result<Written<Created>, AuthoringError> {
    if files.exists() {
        return Err(AuthoringError::Exists {
            agent: files.arg(),
            path: files.shown.clone(),
        });
    }
    // An overlay lays keys over the file every environment shares: that file comes first.
    if files.is_overlay() && !files.base().exists() {
        return Err(files.base().missing());
    }
    let notes = files
        .save(&mut files.empty_manifest(), identities, Replace::Never)?
        .into_iter()
        .collect();
    if files.kind == Kind::Group {
        return Ok(Written {
            outcome: Created {
                wrote_schema: false,
            },
            notes,
        });
    }
    let wrote_schema = !files.schema.exists();
    if wrote_schema {
        create_new_file(&files.schema, &schema_template(&files.slug))?;
    }
    Ok(Written {
        outcome: Created { wrote_schema },
        notes,
    })
}

fn schema_template(agent: &str) -> String {
    format!(
        "# The keys agent {agent} needs, one KEY=placeholder per line. This file is committed in\n\
         # clear: placeholders only, never real values. castsync checks the manifest against it:\n\
         # every key listed here is required unless marked `# optional`, and (with strict: true)\n\
         # the manifest may hold no key that is not listed here.\n\
         #\n\
         # OPENAI_API_KEY=sk-your-key-here\n\
         # SLACK_WEBHOOK_URL=https://hooks.slack.com/services/...  # optional\n"
    )
}

/// What `set` did to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Added,
    Updated,
    /// The manifest already held this value: nothing was rewritten.
    Unchanged,
}

/// `set`: puts `value` under `key` in `manifest` (the agent's current one) and writes it.
pub fn set_key(
    files: &AgentFiles<'_>,
    mut manifest: Manifest,
    identities: &Identities,
    key: &str,
    value: SecretValue,
) -> Result<Written<SetOutcome>, AuthoringError> {
    let previous = manifest.secrets.insert(key.to_owned(), value.clone());
    if previous.as_ref() == Some(&value) {
        return Ok(Written {
            outcome: SetOutcome::Unchanged,
            notes: Vec::new(),
        });
    }
    let notes = commit(files, manifest, identities)?;
    let outcome = if previous.is_some() {
        SetOutcome::Updated
    } else {
        SetOutcome::Added
    };
    Ok(Written { outcome, notes })
}

/// What `unset` did to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsetOutcome {
    Removed,
    /// The key was not there and `idempotent` was asked: nothing was rewritten.
    Absent,
}

/// `unset`: removes `key` from the agent's manifest. An absent key is an error naming the
/// nearest key, unless `idempotent`.
pub fn unset_key(
    files: &AgentFiles<'_>,
    identities: &Identities,
    key: &str,
    idempotent: bool,
) -> Result<Written<UnsetOutcome>, AuthoringError> {
    let mut manifest = files.require(identities)?;
    if manifest.secrets.remove(key).is_none() {
        if idempotent {
            return Ok(Written {
                outcome: UnsetOutcome::Absent,
                notes: Vec::new(),
            });
        }
        let known: Vec<&str> = manifest.secrets.keys().map(String::as_str).collect();
        let hint = match crate::suggest::nearest(key, &known) {
            Some(near) => format!("did you mean {near}?"),
            None => "pass --idempotent to accept an absent key".to_owned(),
        };
        return Err(AuthoringError::NoSuchKey {
            key: key.to_owned(),
            agent: files.arg(),
            path: files.shown.clone(),
            hint,
        });
    }
    let notes = commit(files, manifest, identities)?;
    Ok(Written {
        outcome: UnsetOutcome::Removed,
        notes,
    })
}

/// What `import` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// The manifest did not exist and was created.
    pub created: bool,
    pub added: usize,
    pub updated: usize,
    /// Keys left out because the platform injects them itself (`unmanaged_keys`).
    pub skipped: Vec<String>,
    /// False when the manifest already held every value: nothing was rewritten.
    pub written: bool,
}

/// `import`: merges dotenv `entries` into `existing` (the agent's manifest, `None` when it
/// has none yet). A key held with another value is refused unless `overwrite`; the refusal
/// names the keys, never the values.
pub fn import(
    files: &AgentFiles<'_>,
    existing: Option<Manifest>,
    identities: &Identities,
    entries: Vec<(String, SecretValue, usize)>,
    overwrite: bool,
) -> Result<Written<Imported>, AuthoringError> {
    let creating = existing.is_none();
    let mut manifest = existing.unwrap_or_else(|| files.empty_manifest());
    let mut done = Imported {
        created: creating,
        ..Imported::default()
    };
    let mut conflicts = Vec::new();
    for (key, value, _line) in entries {
        if files.config.unmanaged_keys.contains(&key) {
            done.skipped.push(key);
            continue;
        }
        match manifest.secrets.get(&key) {
            Some(current) if *current == value => {}
            Some(_) if !overwrite => conflicts.push(key),
            Some(_) => {
                manifest.secrets.insert(key, value);
                done.updated += 1;
            }
            None => {
                manifest.secrets.insert(key, value);
                done.added += 1;
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(AuthoringError::Conflicts {
            path: files.shown.clone(),
            keys: conflicts,
        });
    }
    if done.added + done.updated == 0 && !creating {
        return Ok(Written {
            outcome: done,
            notes: Vec::new(),
        });
    }

    let verdict = files.judge(&manifest.to_yaml(), identities);
    if !verdict.blocking.is_empty() {
        return Err(verdict.refusal(files));
    }
    let mut notes = verdict.notes(files);
    let replace = if creating {
        Replace::Never
    } else {
        Replace::Existing
    };
    notes.extend(files.save(&mut manifest, identities, replace)?);
    done.written = true;
    Ok(Written {
        outcome: done,
        notes,
    })
}

/// How one file's recorded recipients compare with the config's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Current,
    /// No `castsync:` block: written by hand or by another tool.
    Unrecorded,
    Differs {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl Drift {
    /// The difference in words: who the file is now for, and who no longer; each recipient
    /// by its name or short fingerprint once the config names anyone (else by its key, as
    /// always).
    pub fn describe(&self, names: &crate::config::Names) -> String {
        match self {
            Drift::Current => "current".to_owned(),
            Drift::Unrecorded => {
                "no record of its recipients (written by hand or another tool)".to_owned()
            }
            Drift::Differs { added, removed } => {
                let labels = |keys: &[String]| {
                    let shown: Vec<String> = keys
                        .iter()
                        .map(|k| crate::escape::terminal(&names.shown(k)).into_owned())
                        .collect();
                    shown.join(", ")
                };
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("for {}", labels(added)));
                }
                if !removed.is_empty() {
                    parts.push(format!("no longer for {}", labels(removed)));
                }
                parts.join("; ")
            }
        }
    }
}

/// `rekey`: compares the recipients recorded in the manifest with those the config now
/// assigns and, unless `check_only`, re-encrypts a file that differs.
///
/// Which recipients a file was encrypted to is not readable from an age header, so castsync
/// records them inside the plaintext (`castsync:` metadata) and compares that record.
pub fn rekey(
    files: &AgentFiles<'_>,
    identities: &Identities,
    check_only: bool,
) -> Result<Written<Drift>, AuthoringError> {
    let mut manifest = files.require(identities)?;
    let target: BTreeSet<String> =
        files::target_recipients_in(files.config, &files.env, files.kind, &files.slug)?
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
    let drift = match &manifest.meta {
        None => Drift::Unrecorded,
        Some(meta) => {
            let recorded: BTreeSet<String> = meta.recipients.iter().cloned().collect();
            if recorded == target {
                Drift::Current
            } else {
                Drift::Differs {
                    added: target.difference(&recorded).cloned().collect(),
                    removed: recorded.difference(&target).cloned().collect(),
                }
            }
        }
    };
    let mut notes = Vec::new();
    if !check_only && drift != Drift::Current {
        notes.extend(files.save(&mut manifest, identities, Replace::Existing)?);
    }
    Ok(Written {
        outcome: drift,
        notes,
    })
}

/// The keys `env`'s overlays set for each agent that loaded (`castsync diff --env` compares
/// only those values): its own overlay's, and those it takes from a shared group whose
/// overlay sets them.
pub fn overlaid(
    root: &Path,
    config: &config::Config,
    env: &Environment,
    ids: &Identities,
    agents: &BTreeMap<String, AgentLoad>,
) -> BTreeMap<String, BTreeSet<String>> {
    let keys_of = |kind: Kind, name: &str| -> BTreeSet<String> {
        AgentFiles::of_kind(root, config, kind, name)
            .ok()
            .and_then(|files| files.in_env(env).open(ids).ok().flatten())
            .map(|m| m.secrets.into_keys().collect())
            .unwrap_or_default()
    };
    let mut group_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (agent, load) in agents {
        let Some(effective) = &load.effective else {
            continue;
        };
        let mut keys = keys_of(Kind::Agent, agent);
        for (key, group) in &effective.origins {
            let set = group_keys
                .entry(group.clone())
                .or_insert_with(|| keys_of(Kind::Group, group));
            if set.contains(key) {
                keys.insert(key.clone());
            }
        }
        out.insert(agent.clone(), keys);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::schema::EnvSchema;

    #[test]
    fn the_schema_template_declares_no_key() {
        let schema = EnvSchema::parse(&schema_template("support-bot"), Path::new("x")).unwrap();
        assert!(schema.entries.is_empty());
    }
}
