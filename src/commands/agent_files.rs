//! One agent's files, as the authoring commands (`new`, `edit`, `set`, `unset`, `import`,
//! `rekey`, `show`) see them: decrypt the manifest for editing, judge a new plaintext by the
//! very rules `validate` and `reconcile` use, and encrypt and write it back atomically.
//!
//! Plaintext never touches the disk here: it lives in zeroize-on-drop buffers, and only
//! ciphertext goes into the temporary file that is renamed over the manifest.

use std::collections::BTreeSet;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::Repo;
use crate::config::{self, Config};
use crate::crypto::{self, CryptoError, Identities, Recipient};
use crate::finding::Finding;
use crate::manifest::{self, Manifest, Metadata};
use crate::source::Worktree;
use crate::source::load::{self, MANIFEST_FILE, SCHEMA_FILE};

/// Where an agent's manifest and schema are, absolute and as shown in messages.
pub(super) struct AgentFiles<'r> {
    pub repo: &'r Repo,
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

/// Whether writing the manifest may replace an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replace {
    /// `new` and the first `import`: refuse if a manifest appeared meanwhile.
    Never,
    /// Every other write.
    Existing,
}

/// A new plaintext, judged by `source::load::judge_text`, split the way authoring needs it.
pub(super) struct Verdict {
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
    /// The files of agent `slug` (a valid slug, or an error that says what one is).
    pub fn new(repo: &'r Repo, slug: &str) -> anyhow::Result<Self> {
        crate::names::validate_slug(slug)?;
        let rel_dir = repo.config.agents_dir.join(slug);
        let dir = repo.root.join(&rel_dir);
        Ok(AgentFiles {
            repo,
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
    pub fn decrypt(&self, ids: &Identities) -> anyhow::Result<Option<Zeroizing<String>>> {
        let ciphertext = match crate::fsread::read_in_repo(
            &self.repo.root,
            &self.shown,
            crate::fsread::MAX_REPO_FILE,
        ) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let plaintext = ids.decrypt(&ciphertext, &self.shown)?;
        match String::from_utf8(plaintext.to_vec()) {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(e) => {
                // The rejected bytes are plaintext too.
                drop(Zeroizing::new(e.into_bytes()));
                bail!("{}: the decrypted manifest is not UTF-8 text", self.shown())
            }
        }
    }

    /// Decrypts and parses the manifest (`None` when absent). A manifest that does not parse
    /// is an error pointing at `castsync edit`, the one command that opens it as text.
    pub fn open(&self, ids: &Identities) -> anyhow::Result<Option<Manifest>> {
        let Some(text) = self.decrypt(ids)? else {
            return Ok(None);
        };
        match self.parse(&text) {
            Ok(manifest) => Ok(Some(manifest)),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "cannot use {}: it breaks the manifest rules; fix it with `castsync edit {}`",
                self.shown(),
                self.slug
            ))),
        }
    }

    /// Parses a decrypted text of this agent's manifest (rules only, no schema check).
    pub fn parse(&self, text: &str) -> Result<Manifest, manifest::ManifestError> {
        let ctx = load::manifest_context(&self.tree(), &self.repo.config, &self.slug);
        manifest::parse(text, &ctx).map(|parsed| parsed.manifest)
    }

    /// Like [`AgentFiles::open`], for commands that need a manifest to exist.
    pub fn require(&self, ids: &Identities) -> anyhow::Result<Manifest> {
        self.open(ids)?.ok_or_else(|| self.missing())
    }

    /// The error for an agent without a manifest.
    pub fn missing(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "agent {} has no manifest: {} does not exist\n  hint: create it with `castsync new {}`",
            self.slug,
            self.shown(),
            self.slug
        )
    }

    /// Judges a plaintext by the rules `validate` and `reconcile` apply.
    pub fn judge(&self, text: &str) -> Verdict {
        let judged = load::judge_text(&self.tree(), &self.repo.config, &self.slug, text);
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
    /// its metadata, and replaces the file atomically. Warns when none of `ids` will be able
    /// to decrypt the result.
    pub fn save(
        &self,
        manifest: &mut Manifest,
        ids: &Identities,
        replace: Replace,
    ) -> anyhow::Result<()> {
        let recipients = target_recipients(&self.repo.config, &self.slug)?;
        manifest.meta = Some(Metadata {
            recipients: recipients.iter().map(|r| r.as_str().to_owned()).collect(),
        });
        let plaintext = manifest.to_yaml();
        let ciphertext = crypto::encrypt(plaintext.as_bytes(), &recipients)?;
        drop(plaintext);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        write_atomically(&self.manifest, &ciphertext, replace)
            .with_context(|| format!("cannot write {}", self.shown()))?;
        tracing::debug!(
            agent = %self.slug,
            keys = manifest.secrets.len(),
            recipients = recipients.len(),
            "wrote the encrypted manifest"
        );
        let yours: BTreeSet<String> = ids
            .recipients()
            .iter()
            .filter_map(|r| crypto::parse_recipient(r).ok())
            .map(|r| r.as_str().to_owned())
            .collect();
        if !recipients.iter().any(|r| yours.contains(r.as_str())) {
            eprintln!(
                "warning: {} is encrypted to {} recipient(s) from {}, none of them yours: you will not be able to decrypt it; add your public key there and run `castsync rekey {}`",
                self.shown(),
                recipients.len(),
                config::FILE_NAME,
                self.slug
            );
        }
        Ok(())
    }

    pub fn shown(&self) -> std::path::Display<'_> {
        self.shown.display()
    }

    fn tree(&self) -> Worktree {
        Worktree::new(&self.repo.root)
    }
}

impl Verdict {
    /// Prints the warnings and the still-missing keys on stderr.
    pub fn report(&self, files: &AgentFiles<'_>) {
        for warning in &self.warnings {
            eprintln!("{warning}");
        }
        if !self.missing.is_empty() {
            eprintln!(
                "warning: {}: required by {SCHEMA_FILE} but not set yet: {}; `castsync validate` fails until they are (set each with `castsync set {} KEY`)",
                files.shown(),
                self.missing.join(", "),
                files.slug
            );
        }
    }

    /// The refusal for blocking errors: each finding on its own line.
    pub fn refusal(&self, files: &AgentFiles<'_>) -> anyhow::Error {
        let mut message = format!("{} was not changed:", files.shown());
        for finding in &self.blocking {
            let line = finding.to_string();
            message.push_str("\n  ");
            message.push_str(line.strip_prefix("error: ").unwrap_or(&line));
        }
        anyhow::anyhow!(message)
    }
}

/// The recipients the config assigns `slug`, parsed and without duplicates, in config order.
pub(super) fn target_recipients(config: &Config, slug: &str) -> anyhow::Result<Vec<Recipient>> {
    let listed = config.recipients_for(slug);
    if listed.is_empty() {
        return Err(CryptoError::NoRecipients.into());
    }
    let mut out: Vec<Recipient> = Vec::with_capacity(listed.len());
    for (i, text) in listed.iter().enumerate() {
        let recipient = crypto::parse_recipient(text).with_context(|| {
            format!(
                "{}: recipient {} of agent {slug} cannot be used",
                config::FILE_NAME,
                i + 1
            )
        })?;
        if !out.contains(&recipient) {
            out.push(recipient);
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file in the same directory (synced, then
/// renamed over `path`), so a reader sees the old file or the new one, never half of one.
/// A replaced file keeps its permissions; a new one gets 0666 less the umask, like any file.
pub(super) fn write_atomically(path: &Path, bytes: &[u8], replace: Replace) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    if let Ok(existing) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(existing.permissions())?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // On error the temporary file is removed by its guard.
    match replace {
        Replace::Never => tmp.persist_noclobber(path).map_err(|e| e.error)?,
        Replace::Existing => tmp.persist(path).map_err(|e| e.error)?,
    };
    // Best effort: make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` with `text`, refusing to replace anything (for plain files that are not
/// secret: `.env.example`, `castsync.yaml`, `.gitignore`).
pub(super) fn create_new_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads secret input (a value, a dotenv file) of at most `limit` bytes into a zeroize-on-drop
/// buffer reserved up front, so that it never reallocates and leaves a copy behind. `Ok(None)`
/// when the input is longer than `limit`.
pub(super) fn read_secret_input(
    reader: impl Read,
    limit: usize,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(limit + 1));
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}
