//! One agent's files (or one shared group's), as the authoring operations see them: decrypt
//! the manifest for editing, judge a new plaintext by the very rules `validate` and
//! `reconcile` use, and encrypt and write it back atomically.
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
use crate::environment::Environment;
use crate::finding::Finding;
use crate::load;
use crate::load::shared::{self, SharedGroups};
use crate::manifest::{self, Kind, Manifest, ManifestContext, Metadata};
use crate::source::Worktree;
use crate::source::{MANIFEST_FILE, SCHEMA_FILE};

/// Where an agent's (or a shared group's) manifest and schema are, absolute and as shown in
/// messages.
pub struct AgentFiles<'r> {
    /// The repository root.
    pub root: &'r Path,
    /// The worktree's config.
    pub config: &'r Config,
    /// The agent slug, or the shared group's name.
    pub slug: String,
    /// An agent's files or a shared group's.
    pub kind: Kind,
    /// The environment whose overlay these files write (`secrets.ENV.yaml.age`), or the
    /// implicit one: the file every environment shares.
    pub env: Environment,
    /// `ROOT/agents/SLUG` (`ROOT/shared/GROUP`).
    pub dir: PathBuf,
    /// `ROOT/agents/SLUG/secrets.yaml.age` (an environment's: `secrets.ENV.yaml.age`).
    pub manifest: PathBuf,
    /// `ROOT/agents/SLUG/.env.example` (a group has none: never read).
    pub schema: PathBuf,
    /// `agents/SLUG/secrets.yaml.age`, for messages.
    pub shown: PathBuf,
}

pub use crate::atomic_write::Replace;

/// A new plaintext, judged by `load::judge_text`, split the way authoring needs it.
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
        Self::of_kind(root, config, Kind::Agent, slug)
    }

    /// The files of shared group `group` (its name follows the slug rules).
    pub fn group(root: &'r Path, config: &'r Config, group: &str) -> Result<Self, AuthoringError> {
        Self::of_kind(root, config, Kind::Group, group)
    }

    /// An agent's files or a shared group's.
    pub fn of_kind(
        root: &'r Path,
        config: &'r Config,
        kind: Kind,
        name: &str,
    ) -> Result<Self, AuthoringError> {
        crate::names::validate_slug(name).map_err(|e| match kind {
            Kind::Agent => AuthoringError::Name(e),
            Kind::Group => AuthoringError::GroupName {
                name: name.to_owned(),
            },
        })?;
        let parent = match kind {
            Kind::Agent => &config.agents_dir,
            Kind::Group => &config.shared_dir,
        };
        let rel_dir = parent.join(name);
        let dir = root.join(&rel_dir);
        Ok(AgentFiles {
            root,
            config,
            slug: name.to_owned(),
            kind,
            env: Environment::IMPLICIT,
            manifest: dir.join(MANIFEST_FILE),
            schema: dir.join(SCHEMA_FILE),
            shown: rel_dir.join(MANIFEST_FILE),
            dir,
        })
    }

    /// The same agent's (or group's) overlay of `env`; the file every environment shares for
    /// the implicit environment.
    pub fn in_env(mut self, env: &Environment) -> Self {
        let file = env
            .overlay_file()
            .unwrap_or_else(|| MANIFEST_FILE.to_owned());
        self.manifest = self.dir.join(&file);
        self.shown = self.shown.with_file_name(&file);
        self.env = env.clone();
        self
    }

    /// The file every environment shares, whichever file these are.
    pub fn base(&self) -> AgentFiles<'r> {
        AgentFiles {
            slug: self.slug.clone(),
            dir: self.dir.clone(),
            schema: self.schema.clone(),
            shown: self.shown.clone(),
            manifest: self.manifest.clone(),
            env: self.env.clone(),
            ..*self
        }
        .in_env(&Environment::IMPLICIT)
    }

    /// Whether these are an environment's overlay.
    pub fn is_overlay(&self) -> bool {
        !self.env.is_implicit()
    }

    /// How commands name this manifest: `support-bot`, `--shared openai`, with `--env ENV`
    /// first for an overlay.
    pub fn arg(&self) -> String {
        let name = match self.kind {
            Kind::Agent => self.slug.clone(),
            Kind::Group => format!("--shared {}", self.slug),
        };
        match self.env.name() {
            Some(env) => format!("--env {env} {name}"),
            None => name,
        }
    }

    /// "agent support-bot" or "shared group openai", for messages.
    pub fn who(&self) -> String {
        format!("{} {}", self.kind.noun(), self.slug)
    }

    /// A new, empty manifest bound to these files.
    pub fn empty_manifest(&self) -> Manifest {
        let manifest = match self.kind {
            Kind::Agent => Manifest::new(&self.slug),
            Kind::Group => Manifest::new_group(&self.slug),
        };
        Manifest {
            environment: self.env.name().map(str::to_owned),
            ..manifest
        }
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
                agent: self.arg(),
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
        match self.kind {
            Kind::Agent => load::manifest_context(&self.tree(), self.config, &self.env, &self.slug),
            Kind::Group => {
                let base = self.base();
                let ctx = shared::group_context(self.config, &self.slug, base.shown.clone());
                match self.is_overlay() {
                    true => load::layers::context(&ctx, &self.shown),
                    false => ctx,
                }
            }
        }
    }

    /// Like [`AgentFiles::open`], for commands that need a manifest to exist.
    pub fn require(&self, ids: &Identities) -> Result<Manifest, AuthoringError> {
        self.open(ids)?.ok_or_else(|| self.missing())
    }

    /// [`AgentFiles::require`], except that an environment's overlay not written yet is
    /// an empty one (the file every environment shares must exist: an overlay lays keys
    /// over it).
    pub fn require_or_new_overlay(&self, ids: &Identities) -> Result<Manifest, AuthoringError> {
        match self.open(ids)? {
            Some(manifest) => Ok(manifest),
            None if self.is_overlay() => {
                self.base().require(ids)?;
                Ok(self.empty_manifest())
            }
            None => Err(self.missing()),
        }
    }

    /// The error for an agent without a manifest.
    pub fn missing(&self) -> AuthoringError {
        AuthoringError::NoManifest {
            agent: self.arg(),
            path: self.shown.clone(),
        }
    }

    /// Judges a plaintext by the rules `validate` and `reconcile` apply. An agent's keys
    /// taken from shared groups are checked too, with `ids`; a group the author cannot
    /// decrypt is a warning here (the write is the agent's own), and an error in `validate`.
    pub fn judge(&self, text: &str, ids: &Identities) -> Verdict {
        let mut verdict = Verdict::empty();
        if self.kind == Kind::Group {
            match manifest::parse(text, &self.context()) {
                Ok(parsed) => {
                    verdict.warnings = parsed.warnings;
                    verdict.manifest = Some(parsed.manifest);
                }
                Err(e) => verdict
                    .blocking
                    .push(Finding::located_error(self.shown.clone(), &e)),
            }
            return verdict;
        }
        let tree = self.tree();
        let groups = match SharedGroups::read(&tree, self.config, &self.env, ids) {
            Ok(groups) => groups,
            Err(e) => {
                verdict.blocking.push(Finding::error(
                    self.config.shared_dir.clone(),
                    e.to_string(),
                ));
                return verdict;
            }
        };
        self.judge_with(text, &groups, verdict, ids)
    }

    /// [`AgentFiles::judge`] of an agent's text against `groups`. The text of an overlay is
    /// judged laid over the file every environment shares (decrypted with `ids`).
    pub fn judge_with(
        &self,
        text: &str,
        groups: &SharedGroups<'_>,
        verdict: Verdict,
        ids: &Identities,
    ) -> Verdict {
        let mut verdict = verdict;
        let base = match self.is_overlay() {
            false => None,
            true => {
                match self.base().decrypt(ids) {
                    Ok(Some(base)) => Some(base),
                    Ok(None) => {
                        verdict.blocking.push(
                        Finding::error(self.base().shown, "missing: an overlay needs the file every environment shares beside it")
                            .with_hint(format!("create it with `castsync new {}`", self.base().arg())),
                    );
                        return verdict;
                    }
                    Err(e) => {
                        verdict
                            .blocking
                            .push(Finding::error(self.base().shown, e.to_string()));
                        return verdict;
                    }
                }
            }
        };
        let texts = match &base {
            Some(base) => load::Texts {
                base: base.as_str(),
                overlay: Some(text),
            },
            None => load::Texts {
                base: text,
                overlay: None,
            },
        };
        let tree = self.tree();
        let judged = load::judge_text(&tree, self.config, &self.env, &self.slug, texts, groups);
        for mut finding in judged.unavailable {
            finding.severity = crate::finding::Severity::Warning;
            finding.message.push_str(
                " (its keys were not checked: `castsync validate` fails until you, or a recipient of the group, can check them)",
            );
            verdict.warnings.push(finding);
        }
        verdict.blocking.extend(judged.references);
        for finding in judged.findings {
            // A schema error about a key the agent does not get (neither its own nor a
            // shared one) can only be "required but missing": every other key-level error is
            // about a key that is present.
            let absent = finding
                .key
                .as_ref()
                .is_some_and(|k| !judged.keys.contains(k));
            match (&judged.manifest, finding.is_error()) {
                (_, false) => verdict.warnings.push(finding),
                (Some(_), true) if absent => {
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
        let recipients = target_recipients_in(self.config, &self.env, self.kind, &self.slug)?;
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
        // A plugin identity's public key is known only to its plugin: when one of the same
        // plugin is loaded, the author may well be a recipient, so say nothing.
        let plugins = ids.plugin_names();
        if recipients
            .iter()
            .any(|r| r.plugin().is_some_and(|p| plugins.iter().any(|q| q == p)))
        {
            return None;
        }
        Some(format!(
            "warning: {} is encrypted to {} recipient(s) from {}, none of them yours: you will not be able to decrypt it; add your public key there and run `castsync rekey {}`",
            self.shown(),
            recipients.len(),
            config::FILE_NAME,
            self.arg()
        ))
    }

    /// The schema's path as shown in messages (`agents/SLUG/.env.example`).
    pub fn schema_shown(&self) -> PathBuf {
        self.shown.with_file_name(SCHEMA_FILE)
    }

    pub fn shown(&self) -> std::path::Display<'_> {
        self.shown.display()
    }

    fn tree(&self) -> Worktree {
        Worktree::new(self.root)
    }
}

impl Verdict {
    /// A verdict with nothing in it yet.
    pub fn empty() -> Verdict {
        Verdict {
            manifest: None,
            blocking: Vec::new(),
            missing: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The warnings and the still-missing keys, one line each, for stderr.
    pub fn notes(&self, files: &AgentFiles<'_>) -> Vec<String> {
        let mut notes: Vec<String> = self.warnings.iter().map(ToString::to_string).collect();
        if !self.missing.is_empty() && files.config.has_environments() && !files.is_overlay() {
            // The shared file alone need not hold every key: overlays may add them.
            notes.push(format!(
                "note: {}: required by {SCHEMA_FILE} and not in the file every environment shares: {}; each environment needs them from its overlay (`castsync set --env ENV {} KEY`); `castsync validate` checks every environment",
                files.shown(),
                self.missing.join(", "),
                files.slug
            ));
        } else if !self.missing.is_empty() {
            notes.push(format!(
                "warning: {}: required by {SCHEMA_FILE} but not set yet: {}; `castsync validate` fails until they are (set each with `castsync set {} KEY`, or take them from a shared group with `uses:`)",
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
            problems: self.blocking.iter().map(Finding::text).collect(),
        }
    }
}

/// The recipients the config assigns agent `slug`, parsed and without duplicates, in config
/// order.
pub fn target_recipients(config: &Config, slug: &str) -> Result<Vec<Recipient>, AuthoringError> {
    target_recipients_of(config, Kind::Agent, slug)
}

/// The recipients the config assigns an agent (`agents:` rules) or a shared group (`groups:`
/// rules), parsed and without duplicates, in config order.
pub fn target_recipients_of(
    config: &Config,
    kind: Kind,
    name: &str,
) -> Result<Vec<Recipient>, AuthoringError> {
    target_recipients_in(config, &Environment::IMPLICIT, kind, name)
}

/// [`target_recipients_of`] for `env`'s overlay (the environment's rules and recipients);
/// for the implicit environment, the file every environment shares.
pub fn target_recipients_in(
    config: &Config,
    env: &Environment,
    kind: Kind,
    name: &str,
) -> Result<Vec<Recipient>, AuthoringError> {
    let listed = match kind {
        Kind::Agent => config.overlay_recipients_for(env, name),
        Kind::Group => config.overlay_recipients_for_group(env, name),
    };
    if listed.is_empty() {
        return Err(CryptoError::NoRecipients.into());
    }
    let mut out: Vec<Recipient> = Vec::with_capacity(listed.len());
    for (i, text) in listed.keys().enumerate() {
        let recipient =
            crypto::parse_recipient(text).map_err(|source| AuthoringError::Recipient {
                agent: format!("{} {name}", kind.noun()),
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
