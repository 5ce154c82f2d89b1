//! Private keys, where to find them, and decryption.
//!
//! The search chain (docs/security.md, "Identities"), in order: the `-i` files (all of them), `CASTSYNC_AGE_KEY`
//! (the key text itself), the file named by `CASTSYNC_AGE_KEY_FILE`, the output of
//! `CASTSYNC_AGE_KEY_CMD` (a password manager), and `$XDG_CONFIG_HOME/castsync/keys.txt`
//! (`~/.config/castsync/keys.txt` when `XDG_CONFIG_HOME` is unset). Every source present is
//! loaded, as sops does, so a file encrypted to any of the user's keys opens; the order
//! decides which identity is tried first, except that age plugin identities
//! (`AGE-PLUGIN-NAME-1…`) are tried after every native key: a plugin may want a touch, and a
//! file one of the native keys opens should not cost one.
//!
//! Key text is held in zeroize-on-drop buffers and never appears in an error, a log line or
//! `Debug` output: errors name the source and a line number only.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use std::time::Duration;

use super::CryptoError;
use super::error::Hint;
use super::keycmd;
use super::plugin::PluginIdentities;
use super::search::{Attempt, Outcome, Source, Tried};
use super::unwrap::{Remembering, UnwrapMemory};

/// Identity files larger than this are refused unread (a keys.txt is a few hundred bytes).
const MAX_IDENTITY_FILE: u64 = crate::fsread::MAX_KEY_FILE;

/// The environment that the search chain reads, injectable for tests.
#[derive(Default, Clone)]
pub struct Env {
    /// `CASTSYNC_AGE_KEY`: identity text (an age identity file or an OpenSSH private key).
    pub age_key: Option<SecretString>,
    /// `CASTSYNC_AGE_KEY_FILE`.
    pub age_key_file: Option<PathBuf>,
    /// `CASTSYNC_AGE_KEY_CMD`: a command (run by `sh -c`) that prints an identity.
    pub age_key_cmd: Option<String>,
    /// `CASTSYNC_AGE_KEY_CMD_TIMEOUT` (default 60 s).
    pub age_key_cmd_timeout: Option<Duration>,
    /// How long one call to an age plugin may take: the run's `--timeout` when it is shorter
    /// than the default (60 s).
    pub age_plugin_timeout: Option<Duration>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`; honoured only when absolute, as the XDG spec says.
    pub xdg_config_home: Option<PathBuf>,
}

impl Env {
    /// Reads the real process environment.
    pub fn from_process() -> Env {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            // A non-UTF-8 value is kept (lossily) so that it fails to parse with a clear
            // message instead of being silently ignored.
            age_key: std::env::var_os("CASTSYNC_AGE_KEY")
                .map(|v| SecretString::from(v.to_string_lossy().into_owned())),
            age_key_file: std::env::var_os("CASTSYNC_AGE_KEY_FILE").map(PathBuf::from),
            age_key_cmd: std::env::var_os("CASTSYNC_AGE_KEY_CMD")
                .map(|v| v.to_string_lossy().into_owned()),
            age_key_cmd_timeout: key_cmd_timeout(),
            age_plugin_timeout: None,
            home: path("HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
        }
    }

    /// `$XDG_CONFIG_HOME/castsync/keys.txt`, else `$HOME/.config/castsync/keys.txt`.
    pub fn default_identity_path(&self) -> Option<PathBuf> {
        let config = match &self.xdg_config_home {
            Some(xdg) if xdg.is_absolute() => xdg.clone(),
            _ => self.home.as_ref()?.join(".config"),
        };
        Some(config.join("castsync").join("keys.txt"))
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("age_key", &self.age_key.as_ref().map(|_| "<redacted>"))
            .field("age_key_file", &self.age_key_file)
            .field("age_key_cmd", &self.age_key_cmd.as_ref().map(|_| "<set>"))
            .field("home", &self.home)
            .field("xdg_config_home", &self.xdg_config_home)
            .finish()
    }
}

/// A private key castsync can decrypt with.
#[derive(Clone)]
enum Key {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
    /// Served by `age-plugin-NAME`; decrypts through [`PluginIdentities`].
    Plugin(age::plugin::Identity),
}

#[derive(Clone)]
struct LoadedKey {
    key: Key,
    /// Where it was loaded from (for messages about plugins).
    origin: String,
    /// The public recipient, for `recipients()` and error hints (unknown for a plugin
    /// identity: only its plugin can tell).
    recipient: Option<String>,
    /// SHA-256 of the private key text: the root of [`Identities::derive_key`].
    seed: Zeroizing<[u8; 32]>,
}

fn seed_of(secret_text: &str) -> Zeroizing<[u8; 32]> {
    use sha2::Digest;
    Zeroizing::new(sha2::Sha256::digest(secret_text.trim().as_bytes()).into())
}

impl LoadedKey {
    /// A native key as age's identity (plugin keys decrypt through their plugin).
    fn as_age(&self) -> Option<&dyn age::Identity> {
        match &self.key {
            Key::X25519(k) => Some(k),
            Key::Ssh(k) => Some(k),
            Key::Plugin(_) => None,
        }
    }
}

/// The identities found by the search chain, with a record of where it looked.
#[derive(Clone, Default)]
pub struct Identities {
    keys: Vec<LoadedKey>,
    /// One per plugin named by a loaded plugin identity (built once the chain is read).
    plugins: Vec<Arc<PluginIdentities>>,
    attempts: Vec<Attempt>,
    warnings: Vec<String>,
    /// Which identity opened which stanza last (shared by clones and threads).
    unwrap: Arc<UnwrapMemory>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("recipients", &self.recipients())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// Runs the search chain against the real environment. `cli` are the `-i` files.
    pub fn discover(cli: &[PathBuf]) -> Result<Identities, CryptoError> {
        Self::discover_with(cli, &Env::from_process())
    }

    /// Runs the search chain against `env`.
    ///
    /// Explicit sources (`-i`, `CASTSYNC_AGE_KEY`, `CASTSYNC_AGE_KEY_FILE`) that are missing,
    /// unreadable or malformed are errors; a missing or unreadable default file is recorded,
    /// and only becomes an error when something needs decrypting.
    pub fn discover_with(cli: &[PathBuf], env: &Env) -> Result<Identities, CryptoError> {
        let mut ids = Identities::default();

        for path in cli {
            ids.load_file(Source::Flag(path.clone()), path, true)?;
        }

        match &env.age_key {
            None => ids.record(Source::EnvKey, Outcome::NotSet),
            Some(text) if text.expose_secret().trim().is_empty() => {
                ids.record(Source::EnvKey, Outcome::Empty)
            }
            Some(text) => {
                let keys = parse_identities(text.expose_secret(), &Source::EnvKey)?;
                ids.add(Source::EnvKey, keys);
            }
        }

        match &env.age_key_file {
            None => ids.record(Source::EnvKeyFile(None), Outcome::NotSet),
            Some(p) if p.as_os_str().is_empty() => {
                ids.record(Source::EnvKeyFile(None), Outcome::Empty)
            }
            Some(p) => ids.load_file(Source::EnvKeyFile(Some(p.clone())), p, true)?,
        }

        match &env.age_key_cmd {
            None => ids.record(Source::EnvKeyCmd, Outcome::NotSet),
            Some(cmd) if cmd.trim().is_empty() => ids.record(Source::EnvKeyCmd, Outcome::Empty),
            Some(cmd) => {
                let timeout = env.age_key_cmd_timeout.unwrap_or(keycmd::DEFAULT_TIMEOUT);
                let text = keycmd::run(cmd, timeout)?;
                let keys = parse_identities(&text, &Source::EnvKeyCmd)?;
                ids.add(Source::EnvKeyCmd, keys);
            }
        }

        match env.default_identity_path() {
            None => ids.record(Source::Default(None), Outcome::NotSet),
            Some(p) => ids.load_file(Source::Default(Some(p.clone())), &p, false)?,
        }

        let plugin_timeout = env
            .age_plugin_timeout
            .map_or(super::plugin::DEFAULT_TIMEOUT, |t| {
                t.min(super::plugin::DEFAULT_TIMEOUT)
            });
        ids.resolve_plugins(plugin_timeout);
        Ok(ids)
    }

    /// Groups the plugin identities by plugin and finds each plugin's program on PATH. A
    /// missing program is a warning now and an error naming it when a file does not open.
    fn resolve_plugins(&mut self, timeout: Duration) {
        let mut names: Vec<String> = Vec::new();
        for key in &self.keys {
            if let Key::Plugin(id) = &key.key
                && !names.iter().any(|n| n == id.plugin())
            {
                names.push(id.plugin().to_owned());
            }
        }
        for name in names {
            let (mut ids, mut sources) = (Vec::new(), Vec::new());
            for key in &self.keys {
                if let Key::Plugin(id) = &key.key
                    && id.plugin() == name
                {
                    ids.push(id.clone());
                    if !sources.contains(&key.origin) {
                        sources.push(key.origin.clone());
                    }
                }
            }
            let plugin = PluginIdentities::new(&name, &ids, sources, timeout);
            if let Some(binary) = plugin.missing_binary() {
                let message = format!(
                    "age plugin identity for `{name}` ({}) needs {binary}, which is not on PATH: files encrypted only to it will not open",
                    plugin.sources.join(", ")
                );
                tracing::warn!("{message}");
                self.warnings.push(message);
            }
            self.plugins.push(Arc::new(plugin));
        }
    }

    /// The names of the plugins of the loaded plugin identities (`yubikey`, …).
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name.clone()).collect()
    }

    /// Public recipients of the loaded identities, in search order (for `init`, and for the
    /// hint in decryption errors).
    pub fn recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.keys.len());
        for recipient in self.keys.iter().filter_map(|k| k.recipient.as_ref()) {
            if !out.contains(recipient) {
                out.push(recipient.clone());
            }
        }
        out
    }

    /// Every place the search chain looked at, in order, with what happened there.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// A 32-byte key for `purpose`, derived (HMAC-SHA256) from the first identity's private
    /// key: stable for this user across runs, useless to anyone without the identity. Used
    /// for fingerprints that must match between separate processes (git's textconv driver).
    /// `None` when no identity is loaded.
    pub fn derive_key(&self, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        use hmac::Mac;
        let first = self.keys.first()?;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&first.seed[..])
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(purpose.as_bytes());
        Some(Zeroizing::new(mac.finalize().into_bytes().into()))
    }

    /// Warnings raised while loading (also emitted through `tracing`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Identity-on-stanza unwrap attempts made by every decryption so far (one per file once
    /// the first file of a repository has shown which stanza is ours; see `unwrap`).
    pub fn unwrap_attempts(&self) -> u64 {
        self.unwrap.attempts()
    }

    /// Decrypts an armored or binary age file. `path` is only used in messages.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        path: &Path,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.decrypt_hinted(ciphertext, path, None)
    }

    /// Like [`Identities::decrypt`]; when no identity matches, the error lists
    /// `known_recipients` (the recipients recorded in the file's metadata, when the caller
    /// knows them from an earlier decryption) as the people to ask.
    pub fn decrypt_hinted(
        &self,
        ciphertext: &[u8],
        path: &Path,
        known_recipients: Option<&[String]>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let input = strip_whitespace_before_armor(ciphertext);
        let not_age = |reason: String| CryptoError::NotAnAgeFile {
            path: path.to_owned(),
            reason,
        };
        if input.iter().all(u8::is_ascii_whitespace) {
            return Err(not_age("the file is empty".to_owned()));
        }

        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(input))
            .map_err(|e| not_age(describe(&e)))?;
        if decryptor.is_scrypt() {
            return Err(CryptoError::PassphraseEncrypted {
                path: path.to_owned(),
            });
        }
        if self.keys.is_empty() {
            return Err(CryptoError::NoIdentity {
                path: path.to_owned(),
                tried: Tried(self.attempts.clone()),
            });
        }
        // Native keys first (with the memory of which identity opened which stanza, so a
        // repository costs one key agreement per file); then one identity per plugin, which
        // gets all of a file's stanzas in one call (one program run, maybe one touch) and is
        // asked only when no native key opened the file.
        let remembering = Remembering {
            identities: self.keys.iter().filter_map(LoadedKey::as_age).collect(),
            memory: &self.unwrap,
        };
        let order = std::iter::once(&remembering as &dyn age::Identity).chain(
            self.plugins
                .iter()
                .map(|p| p.as_ref() as &dyn age::Identity),
        );
        let plugin_error = |e: &age::DecryptError| -> Option<CryptoError> {
            if let Some((p, reason)) = self
                .plugins
                .iter()
                .find_map(|p| p.take_failure().map(|reason| (p, reason)))
            {
                return Some(CryptoError::PluginBroken {
                    path: path.to_owned(),
                    binary: super::plugin::binary_name(&p.name),
                    reason,
                });
            }
            if let Some(p) = self.plugins.iter().find(|p| p.needed_terminal()) {
                return Some(CryptoError::PluginNeedsTerminal {
                    path: path.to_owned(),
                    binary: super::plugin::binary_name(&p.name),
                });
            }
            match e {
                age::DecryptError::Plugin(_) | age::DecryptError::PluginResolve(_) => {
                    // The plugin's own words: outside text, bounded and escaped.
                    let message: String = e.to_string().chars().take(1000).collect();
                    Some(CryptoError::PluginFailed {
                        path: path.to_owned(),
                        message: crate::escape::terminal(message.trim()).into_owned(),
                    })
                }
                _ => None,
            }
        };
        let mut reader = match decryptor.decrypt(order) {
            Ok(reader) => reader,
            Err(e) => match plugin_error(&e) {
                Some(error) => return Err(error),
                None => return Err(self.no_key_error(e, path, known_recipients)),
            },
        };
        // The plaintext is shorter than the ciphertext: reserving that much up front means
        // the buffer never reallocates, so no unzeroized copy of the plaintext is left behind.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(input.len()));
        reader
            .read_to_end(&mut plaintext)
            .map_err(|e| not_age(describe_io(&e)))?;
        Ok(plaintext)
    }

    /// The error of a decryption that found no key, or failed for the file's sake.
    fn no_key_error(
        &self,
        e: age::DecryptError,
        path: &Path,
        known_recipients: Option<&[String]>,
    ) -> CryptoError {
        let not_age = |reason: String| CryptoError::NotAnAgeFile {
            path: path.to_owned(),
            reason,
        };
        match e {
            age::DecryptError::NoMatchingKeys => {
                if let Some(binary) = self.plugins.iter().find_map(|p| p.missing_binary()) {
                    return CryptoError::MissingPlugin {
                        binary: binary.to_owned(),
                        needed_for: format!(
                            "your plugin identity (none of your other identities opens {})",
                            path.display()
                        ),
                    };
                }
                CryptoError::NoMatchingIdentity {
                    path: path.to_owned(),
                    tried: Tried(self.attempts.clone()),
                    hint: Hint {
                        yours: self.recipients(),
                        needs: known_recipients.map(<[String]>::to_vec),
                    },
                }
            }
            e => not_age(describe(&e)),
        }
    }

    fn record(&mut self, source: Source, outcome: Outcome) {
        self.attempts.push(Attempt { source, outcome });
    }

    fn add(&mut self, source: Source, mut keys: Vec<LoadedKey>) {
        self.record(source.clone(), Outcome::Loaded(keys.len()));
        for key in &mut keys {
            key.origin = source.to_string();
        }
        self.keys.extend(keys);
    }

    /// Loads one identity file. A missing or unreadable file is an error when the user named
    /// it (`explicit`), and a recorded outcome for the default location.
    fn load_file(
        &mut self,
        source: Source,
        path: &Path,
        explicit: bool,
    ) -> Result<(), CryptoError> {
        let unreadable = |source_err: std::io::Error| CryptoError::IdentityUnreadable {
            path: path.to_owned(),
            origin: source.origin(),
            source: source_err,
        };
        let text = match read_identity_file(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if explicit {
                    return Err(CryptoError::IdentityFileMissing {
                        path: path.to_owned(),
                        origin: source.origin(),
                    });
                }
                self.record(source, Outcome::NotFound);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(CryptoError::InvalidIdentity {
                    location: source.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(e) if explicit => return Err(unreadable(e)),
            Err(e) => {
                let why = e.kind().to_string();
                tracing::warn!(path = %path.display(), "cannot read identity file: {why}");
                self.warnings.push(format!(
                    "cannot read identity file {}: {why}",
                    path.display()
                ));
                self.record(source, Outcome::Unreadable(why));
                return Ok(());
            }
        };
        self.warn_if_shared(path);
        let keys = parse_identities(&text, &source)?;
        self.add(source, keys);
        Ok(())
    }

    /// Identity files readable by group or others get a warning with the fix.
    #[cfg(unix)]
    fn warn_if_shared(&mut self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let message = format!(
                "identity file {} is readable by group or others (mode {mode:03o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            );
            tracing::warn!("{message}");
            self.warnings.push(message);
        }
    }

    #[cfg(not(unix))]
    fn warn_if_shared(&mut self, _path: &Path) {}
}

/// Reads an identity file into a zeroize-on-drop buffer, refusing non-files, huge files and
/// non-UTF-8 content (as `InvalidData`, with a message that quotes nothing).
fn read_identity_file(path: &Path) -> std::io::Result<Zeroizing<String>> {
    use crate::fsread::{ReadError, read_secret_file};
    use std::io::{Error, ErrorKind};
    let bytes = read_secret_file(path, MAX_IDENTITY_FILE).map_err(|e| match e {
        ReadError::NotFound { .. } => Error::from(ErrorKind::NotFound),
        ReadError::Io { source, .. } => source,
        ReadError::TooLarge { .. } => Error::new(
            ErrorKind::InvalidData,
            "the file is too large to be an identity file",
        ),
        ReadError::NotRegular {
            kind: crate::fsread::Kind::Directory,
            ..
        } => Error::new(ErrorKind::IsADirectory, "is a directory"),
        ReadError::NotRegular { kind, .. } => Error::new(
            ErrorKind::InvalidData,
            format!("it is {kind}, not a regular file"),
        ),
        other => Error::new(ErrorKind::InvalidData, other.to_string()),
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(Error::new(
            ErrorKind::InvalidData,
            "the file is not text (not UTF-8)",
        )),
    }
}

/// Parses identity text: an OpenSSH/PEM private key, or an age identity file
/// (`AGE-SECRET-KEY-1…` lines, `#` comments, blank lines).
fn parse_identities(text: &str, source: &Source) -> Result<Vec<LoadedKey>, CryptoError> {
    // Some Windows editors start files with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN") {
        return parse_ssh_identity(trimmed, source).map(|key| vec![key]);
    }
    let invalid = |reason: String| CryptoError::InvalidIdentity {
        location: source.to_string(),
        reason,
    };
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        let n = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-SECRET-KEY-1") {
            let identity = line.parse::<age::x25519::Identity>().map_err(|_| {
                invalid(format!(
                    "line {n} is a malformed AGE-SECRET-KEY-1… (wrong length or checksum)"
                ))
            })?;
            let recipient = identity.to_public().to_string();
            keys.push(LoadedKey {
                key: Key::X25519(identity),
                origin: String::new(),
                recipient: Some(recipient),
                seed: seed_of(line),
            });
        } else if line.starts_with("AGE-PLUGIN-") {
            let identity = line.parse::<age::plugin::Identity>().map_err(|_| {
                invalid(format!(
                    "line {n} is a malformed age plugin identity (AGE-PLUGIN-NAME-1…: wrong checksum or plugin name)"
                ))
            })?;
            keys.push(LoadedKey {
                key: Key::Plugin(identity),
                origin: String::new(),
                recipient: None,
                seed: seed_of(line),
            });
        } else if line.starts_with("age1") {
            return Err(invalid(format!(
                "line {n} is a public recipient (age1…), not a secret key: identity files hold AGE-SECRET-KEY-1… lines"
            )));
        } else if line.starts_with("ssh-") {
            return Err(invalid(format!(
                "line {n} is an ssh public key: give the private key file (e.g. ~/.ssh/id_ed25519) instead"
            )));
        } else {
            return Err(invalid(format!(
                "line {n} is not an identity (expected AGE-SECRET-KEY-1… lines or an OpenSSH private key)"
            )));
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            "it contains no identity (no AGE-SECRET-KEY-1… or AGE-PLUGIN-… line)".to_owned(),
        ));
    }
    Ok(keys)
}

fn parse_ssh_identity(text: &str, source: &Source) -> Result<LoadedKey, CryptoError> {
    use age::ssh::{Identity, UnsupportedKey};
    let location = source.to_string();
    let identity =
        Identity::from_buffer(text.as_bytes(), Some(location.clone())).map_err(|_| {
            CryptoError::InvalidIdentity {
                location: location.clone(),
                reason: "not a valid OpenSSH or PEM private key".to_owned(),
            }
        })?;
    match &identity {
        Identity::Unencrypted(_) => {}
        Identity::Encrypted(_)
        | Identity::Unsupported(UnsupportedKey::EncryptedPem | UnsupportedKey::EncryptedSsh(_)) => {
            return Err(CryptoError::PassphraseProtectedKey { location });
        }
        Identity::Unsupported(UnsupportedKey::Hardware(t) | UnsupportedKey::Type(t)) => {
            return Err(CryptoError::UnsupportedSshKey {
                location,
                key_type: super::recipient::preview(t),
            });
        }
    }
    let recipient = age::ssh::Recipient::try_from(identity.clone())
        .map_err(|_| CryptoError::InvalidIdentity {
            location: location.clone(),
            reason: "its public key cannot be used as an age recipient (ssh-rsa under 2048 bits?)"
                .to_owned(),
        })?
        .to_string();
    Ok(LoadedKey {
        key: Key::Ssh(identity),
        origin: String::new(),
        recipient: Some(recipient),
        seed: seed_of(text),
    })
}

/// `CASTSYNC_AGE_KEY_CMD_TIMEOUT`: whole seconds, at least 1; anything else means the default.
fn key_cmd_timeout() -> Option<Duration> {
    let text = std::env::var("CASTSYNC_AGE_KEY_CMD_TIMEOUT").ok()?;
    let secs: u64 = text.trim().parse().ok().filter(|s| *s > 0)?;
    Some(Duration::from_secs(secs))
}

/// An armored file may be preceded by blank lines, indentation or a UTF-8 byte order mark
/// (an editor, a YAML block); the armor reader wants the marker first. Binary files are left
/// as they are.
fn strip_whitespace_before_armor(input: &[u8]) -> &[u8] {
    let without_bom = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let start = without_bom
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(without_bom.len());
    let rest = &without_bom[start..];
    if rest.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        rest
    } else {
        input
    }
}

/// A reason for "not a valid age file", from age's error, without any file content.
fn describe(err: &age::DecryptError) -> String {
    match err {
        age::DecryptError::InvalidHeader => "the age header is malformed".to_owned(),
        age::DecryptError::UnknownFormat => {
            "unknown age format version (written by a newer age?)".to_owned()
        }
        age::DecryptError::InvalidMac => {
            "the header does not authenticate (the file was modified or is corrupt)".to_owned()
        }
        age::DecryptError::DecryptionFailed => {
            "decryption failed (the file was modified or is corrupt)".to_owned()
        }
        age::DecryptError::Io(e) => describe_io(e),
        other => format!("{other}"),
    }
}

fn describe_io(err: &std::io::Error) -> String {
    if let Some(armor) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<age::armor::ArmoredReadError>())
    {
        return format!("invalid armor: {armor}");
    }
    match err.kind() {
        std::io::ErrorKind::UnexpectedEof => "the file ends early (truncated)".to_owned(),
        std::io::ErrorKind::InvalidData => {
            "the payload does not authenticate (truncated, modified or corrupt)".to_owned()
        }
        kind => format!("read error ({kind})"),
    }
}
