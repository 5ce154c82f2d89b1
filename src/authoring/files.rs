//! One agent's files, as the authoring operations see them: decrypt the manifest for
//! editing, judge a new plaintext by the very rules `validate` and `reconcile` use, and
//! encrypt and write it back atomically.
//!
//! Plaintext never touches the disk here: it lives in zeroize-on-drop buffers, and only
//! ciphertext goes into the temporary file that is renamed over the manifest.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::AuthoringError;
use crate::atomic_write::{self, Mode};
use crate::config::{self, Config};
use crate::crypto::{self, CryptoError, Identities, Recipient};
use crate::finding::Finding;
use crate::manifest::{self, Manifest, ManifestContext, Metadata};
use crate::source::Worktree;
use crate::source::load::{self, MANIFEST_FILE, SCHEMA_FILE};

/// Where an agent's manifest and schema are, absolute and as shown in messages.
pub struct AgentFiles<'r> {
    /// The repository root.
    pub root: &'r Path,
    /// The worktree's config.
    pub config: &'r Config,
    pub slug: String,
    /// `ROOT/agents/SLUG`.
    pub dir: PathBuf,
    /// `ROOT/agents/SLUG/secrets.yaml.age`.
    pub manifest: PathBuf,
    /// `ROOT/agents/SLUG/.env.example`.
    pub schema: PathBuf,
    /// `agents/SLUG/secrets.yaml.age`, for messages.
    pub shown: PathBuf,
}

pub use crate::atomic_write::Replace;

/// A new plaintext, judged by `source::load::judge_text`, split the way authoring needs it.
pub struct Verdict {
    /// The parsed manifest, when the text parsed.
    pub manifest: Option<Manifest>,
    /// Errors that refuse the write.
    pub blocking: Vec<Finding>,
    /// Required keys that are still missing: reported, but not blocking, so a manifest can
    /// be filled one `set` at a time (`validate` still fails until they are there).
    pub missing: Vec<String>,
    /// Warnings (lowercase keys, no `.env.example`, undeclared keys when not strict).
    pub warnings: Vec<Finding>,
}

impl<'r> AgentFiles<'r> {
    /// The files of agent `slug` of the repository at `root` (a valid slug, or an error that
    /// says what one is).
    pub fn new(root: &'r Path, config: &'r Config, slug: &str) -> Result<Self, AuthoringError> {
        crate::names::validate_slug(slug)?;
        let rel_dir = config.agents_dir.join(slug);
        let dir = root.join(&rel_dir);
        Ok(AgentFiles {
            root,
            config,
            slug: slug.to_owned(),
            manifest: dir.join(MANIFEST_FILE),
            schema: dir.join(SCHEMA_FILE),
            shown: rel_dir.join(MANIFEST_FILE),
            dir,
        })
    }

    pub fn exists(&self) -> bool {
        self.manifest.symlink_metadata().is_ok()
    }

    /// The decrypted manifest text, or `None` when the agent has no manifest.
    pub fn decrypt(&self, ids: &Identities) -> Result<Option<Zeroizing<String>>, AuthoringError> {
        // A regular file inside the repository, size-checked (see `fsread`).
        let read =
            crate::fsread::read_in_repo(self.root, &self.shown, crate::fsread::MAX_REPO_FILE);
        let ciphertext = match read {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(AuthoringError::Unreadable(e)),
        };
        let plaintext = ids.decrypt(&ciphertext, &self.shown)?;
        match String::from_utf8(plaintext.to_vec()) {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(e) => {
                // The rejected bytes are plaintext too.
                drop(Zeroizing::new(e.into_bytes()));
                Err(AuthoringError::NotUtf8 {
                    path: self.shown.clone(),
                })
            }
        }
    }

    /// Decrypts and parses the manifest (`None` when absent). A manifest that does not parse
    /// is an error pointing at `castsync edit`, the one command that opens it as text.
    pub fn open(&self, ids: &Identities) -> Result<Option<Manifest>, AuthoringError> {
        let Some(text) = self.decrypt(ids)? else {
            return Ok(None);
        };
        match self.parse(&text) {
            Ok(manifest) => Ok(Some(manifest)),
            Err(source) => Err(AuthoringError::Broken {
                path: self.shown.clone(),
                agent: self.slug.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Parses a decrypted text of this agent's manifest (rules only, no schema check).
    pub fn parse(&self, text: &str) -> Result<Manifest, manifest::ManifestError> {
        manifest::parse(text, &self.context()).map(|parsed| parsed.manifest)
    }

    /// How `manifest::parse` sees this agent's manifest: its shown path, the agent it must
    /// name, the keys it may not declare.
    pub fn context(&self) -> ManifestContext {
        load::manifest_context(&self.tree(), self.config, &self.slug)
    }

    /// Like [`AgentFiles::open`], for commands that need a manifest to exist.
    pub fn require(&self, ids: &Identities) -> Result<Manifest, AuthoringError> {
        self.open(ids)?.ok_or_else(|| self.missing())
    }

    /// The error for an agent without a manifest.
    pub fn missing(&self) -> AuthoringError {
        AuthoringError::NoManifest {
            agent: self.slug.clone(),
            path: self.shown.clone(),
        }
    }

    /// Judges a plaintext by the rules `validate` and `reconcile` apply.
    pub fn judge(&self, text: &str) -> Verdict {
        let judged = load::judge_text(&self.tree(), self.config, &self.slug, text);
        let mut verdict = Verdict {
            manifest: None,
            blocking: Vec::new(),
            missing: Vec::new(),
            warnings: Vec::new(),
        };
        for finding in judged.findings {
            // A schema error about a key the manifest lacks can only be "required but
            // missing": every other key-level error is about a key that is present.
            let absent = |m: &Manifest| {
                finding
                    .key
                    .as_ref()
                    .is_some_and(|k| !m.secrets.contains_key(k))
            };
            match (&judged.manifest, finding.is_error()) {
                (_, false) => verdict.warnings.push(finding),
                (Some(m), true) if absent(m) => {
                    verdict.missing.extend(finding.key.clone());
                }
                (_, true) => verdict.blocking.push(finding),
            }
        }
        verdict.manifest = judged.manifest;
        verdict
    }

    /// Encrypts `manifest` to the recipients the config assigns this agent, records them in
    /// its metadata, and replaces the file atomically. Returns a warning when none of `ids`
    /// will be able to decrypt the result.
    pub fn save(
        &self,
        manifest: &mut Manifest,
        ids: &Identities,
        replace: Replace,
    ) -> Result<Option<String>, AuthoringError> {
        let (ciphertext, recipients) = self.seal(manifest)?;
        std::fs::create_dir_all(&self.dir).map_err(|source| AuthoringError::Create {
            path: self.dir.clone(),
            source,
        })?;
        atomic_write::write(&self.manifest, &ciphertext, replace, Mode::Default).map_err(
            |source| AuthoringError::Write {
                path: self.shown.clone(),
                source,
            },
        )?;
        tracing::debug!(
            agent = %self.slug,
            keys = manifest.secrets.len(),
            recipients = recipients.len(),
            "wrote the encrypted manifest"
        );
        Ok(self.recipient_warning(&recipients, ids))
    }

    /// Records the recipients the config assigns this agent in `manifest`'s metadata, and
    /// encrypts it to them. Returns the ciphertext and those recipients.
    pub fn seal(
        &self,
        manifest: &mut Manifest,
    ) -> Result<(Vec<u8>, Vec<Recipient>), AuthoringError> {
        let recipients = target_recipients(self.config, &self.slug)?;
        manifest.meta = Some(Metadata {
            recipients: recipients.iter().map(|r| r.as_str().to_owned()).collect(),
        });
        let plaintext = manifest.to_yaml();
        let ciphertext = crypto::encrypt(plaintext.as_bytes(), &recipients)?;
        Ok((ciphertext, recipients))
    }

    /// A warning when none of `ids` is among `recipients`: the author will not be able to
    /// decrypt what was just written.
    pub fn recipient_warning(&self, recipients: &[Recipient], ids: &Identities) -> Option<String> {
        let yours: BTreeSet<String> = ids
            .recipients()
            .iter()
            .filter_map(|r| crypto::parse_recipient(r).ok())
            .map(|r| r.as_str().to_owned())
            .collect();
        if recipients.iter().any(|r| yours.contains(r.as_str())) {
            return None;
        }
        Some(format!(
            "warning: {} is encrypted to {} recipient(s) from {}, none of them yours: you will not be able to decrypt it; add your public key there and run `castsync rekey {}`",
            self.shown(),
            recipients.len(),
            config::FILE_NAME,
            self.slug
        ))
    }

    pub fn shown(&self) -> std::path::Display<'_> {
        self.shown.display()
    }

    fn tree(&self) -> Worktree {
        Worktree::new(self.root)
    }
}

impl Verdict {
    /// The warnings and the still-missing keys, one line each, for stderr.
    pub fn notes(&self, files: &AgentFiles<'_>) -> Vec<String> {
        let mut notes: Vec<String> = self.warnings.iter().map(ToString::to_string).collect();
        if !self.missing.is_empty() {
            notes.push(format!(
                "warning: {}: required by {SCHEMA_FILE} but not set yet: {}; `castsync validate` fails until they are (set each with `castsync set {} KEY`)",
                files.shown(),
                self.missing.join(", "),
                files.slug
            ));
        }
        notes
    }

    /// The refusal for blocking errors: each finding on its own line.
    pub fn refusal(&self, files: &AgentFiles<'_>) -> AuthoringError {
        AuthoringError::Refused {
            path: files.shown.clone(),
            problems: self
                .blocking
                .iter()
                .map(|finding| {
                    let line = finding.to_string();
                    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
                })
                .collect(),
        }
    }
}

/// The recipients the config assigns `slug`, parsed and without duplicates, in config order.
pub fn target_recipients(config: &Config, slug: &str) -> Result<Vec<Recipient>, AuthoringError> {
    let listed = config.recipients_for(slug);
    if listed.is_empty() {
        return Err(CryptoError::NoRecipients.into());
    }
    let mut out: Vec<Recipient> = Vec::with_capacity(listed.len());
    for (i, text) in listed.iter().enumerate() {
        let recipient =
            crypto::parse_recipient(text).map_err(|source| AuthoringError::Recipient {
                agent: slug.to_owned(),
                number: i + 1,
                source: Box::new(source),
            })?;
        if !out.contains(&recipient) {
            out.push(recipient);
        }
    }
    Ok(out)
}

/// Creates `path` with `text`, refusing to replace anything (for plain files that are not
/// secret: `.env.example`, `castsync.yaml`, `.gitignore`).
pub fn create_new_file(path: &Path, text: &str) -> Result<(), AuthoringError> {
    atomic_write::write(path, text.as_bytes(), Replace::Never, Mode::Default).map_err(|source| {
        AuthoringError::Create {
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads secret input (a value, a dotenv file) of at most `limit` bytes into a zeroize-on-drop
/// buffer reserved up front, so that it never reallocates and leaves a copy behind. `Ok(None)`
/// when the input is longer than `limit`.
pub fn read_secret_input(
    reader: impl Read,
    limit: usize,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(limit + 1));
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}
