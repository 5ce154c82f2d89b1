//! Errors of the crypto layer. Every message names the file or the identity source, and its
//! hint ([`crate::hint::Hinted`]) says what to do next; none ever contains key material,
//! plaintext, or more than a short prefix of a string the user gave as a recipient.

use std::fmt;
use std::path::PathBuf;

use super::search::Tried;

/// Everything that can go wrong while parsing keys, encrypting or decrypting.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A recipient string that is not a public key castsync can encrypt to.
    #[error("recipient `{preview}` is not usable: {reason}")]
    InvalidRecipient {
        /// At most the first 20 characters of the string.
        preview: String,
        reason: String,
    },

    /// An `age1pq1…` (ML-KEM hybrid) recipient, which the age crate castsync is built on
    /// cannot encrypt to yet.
    #[error(
        "recipient `{preview}` is a post-quantum age recipient: post-quantum age recipients are \
         not supported by this build of castsync"
    )]
    PostQuantumRecipient {
        /// At most the first 20 characters of the string.
        preview: String,
    },

    /// A private key pasted where a public recipient belongs. The string is not echoed.
    #[error("a recipient entry holds {what}, which is secret")]
    SecretKeyAsRecipient {
        /// The kind of secret, e.g. "an age secret key (AGE-SECRET-KEY-1…)".
        what: &'static str,
    },

    /// Encryption was asked for with an empty recipient list.
    #[error("no recipients to encrypt to")]
    NoRecipients,

    /// age refused the recipient set, or writing the ciphertext failed.
    #[error("cannot encrypt: {reason}")]
    Encrypt { reason: String },

    /// An identity file named explicitly (`-i`, `CASTSYNC_AGE_KEY_FILE`) does not exist.
    #[error("identity file {path} (from {origin}) does not exist")]
    IdentityFileMissing { path: PathBuf, origin: &'static str },

    /// An identity file that exists but cannot be read.
    #[error("cannot read identity file {path} (from {origin})")]
    IdentityUnreadable {
        path: PathBuf,
        origin: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// An identity source whose content is not an identity. `reason` names a line number,
    /// never the line.
    #[error("{location} is not a usable identity: {reason}")]
    InvalidIdentity { location: String, reason: String },

    /// A passphrase-protected OpenSSH (or PEM) private key.
    #[error(
        "{location} is a passphrase-protected ssh key: castsync never prompts for key \
         passphrases, so passphrase-protected keys are not supported"
    )]
    PassphraseProtectedKey { location: String },

    /// An OpenSSH private key of a type age cannot use (ecdsa, security keys, …).
    #[error("{location} holds an ssh key of type `{key_type}`, which castsync cannot use")]
    UnsupportedSshKey { location: String, key_type: String },

    /// Decryption was needed but no identity was found anywhere in the search chain.
    #[error("cannot decrypt {path}: no identity found\n{tried}")]
    NoIdentity { path: PathBuf, tried: Tried },

    /// Identities were found, but none of them is a recipient of the file.
    #[error(
        "cannot decrypt {path}: none of your identities is a recipient of this file\n{tried}{hint}"
    )]
    NoMatchingIdentity {
        path: PathBuf,
        tried: Tried,
        hint: Hint,
    },

    /// The file is not an age file, is garbled, or ends early.
    #[error("{path} is not a valid age file or is truncated: {reason}")]
    NotAnAgeFile { path: PathBuf, reason: String },

    /// The file is encrypted to a passphrase (age -p), not to recipients.
    #[error(
        "{path} is encrypted with a passphrase, not to public keys: castsync only reads files \
         encrypted to the recipients in castsync.yaml"
    )]
    PassphraseEncrypted { path: PathBuf },

    /// `keygen` refuses to replace an existing file.
    #[error("{path} already exists: castsync never overwrites an identity")]
    IdentityExists { path: PathBuf },

    /// Creating the directory or the file of a new identity failed.
    #[error("cannot write the new identity to {path}")]
    WriteIdentity {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An age plugin's program is not on PATH.
    #[error("{binary} is not on PATH, and it is needed for {needed_for}")]
    MissingPlugin { binary: String, needed_for: String },

    /// An age plugin answered with an error while unwrapping a file key.
    #[error("cannot decrypt {path}: the age plugin reported: {message}")]
    PluginFailed { path: PathBuf, message: String },

    /// An age plugin did not answer in time, or broke off the protocol (it exited, or printed
    /// something else): the plugin is at fault, not the file.
    #[error("cannot decrypt {path}: {binary} {reason}")]
    PluginBroken {
        path: PathBuf,
        binary: String,
        reason: String,
    },

    /// An age plugin asked for a PIN, a touch confirmation or another answer, and there was
    /// no terminal to ask on.
    #[error(
        "cannot decrypt {path}: {binary} needs a terminal to ask for a PIN or a confirmation, \
         and castsync has none here (no /dev/tty)"
    )]
    PluginNeedsTerminal { path: PathBuf, binary: String },

    /// `CASTSYNC_AGE_KEY_CMD` could not give an identity.
    #[error("CASTSYNC_AGE_KEY_CMD {reason}")]
    KeyCommand { reason: String },

    /// No default identity path can be built (neither HOME nor XDG_CONFIG_HOME is set).
    #[error("cannot find your home directory (HOME is not set)")]
    NoHome,
}

impl crate::hint::Hinted for CryptoError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        Some(match self {
            CryptoError::PostQuantumRecipient { .. } => {
                "use an age1… X25519 key (`castsync keygen`) or an ssh-ed25519 key".into()
            }
            CryptoError::SecretKeyAsRecipient { .. } => "remove it from castsync.yaml (and from git history), and list its public key instead (`age-keygen -y KEYFILE` prints it)".into(),
            CryptoError::NoRecipients => "add `recipients:` with at least one public key to castsync.yaml (the age1… line that `castsync keygen` prints)".into(),
            CryptoError::IdentityFileMissing { path, .. } => Cow::Owned(format!(
                "check the path, or create an identity there with `castsync keygen -o {}`",
                path.display()
            )),
            CryptoError::PassphraseProtectedKey { .. } => {
                "use an age identity (`castsync keygen`) instead".into()
            }
            CryptoError::UnsupportedSshKey { .. } => {
                "use an ssh-ed25519 or ssh-rsa key, or an age identity (`castsync keygen`)".into()
            }
            // A new teammate's path comes first, in the order it is walked: a key of their own,
            // then a recipient who rekeys; a key that exists elsewhere comes after.
            CryptoError::NoIdentity { .. } => {
                "new here? `castsync keygen` creates your key and prints its public key: send \
                 that line to someone who can decrypt, who adds it to castsync.yaml and runs \
                 `castsync rekey`. Your key is elsewhere? pass `-i FILE` or set CASTSYNC_AGE_KEY"
                    .into()
            }
            CryptoError::NoMatchingIdentity { hint, .. } => hint.fix().into(),
            CryptoError::PassphraseEncrypted { .. } => {
                "decrypt it with `age -d` and re-create it with `castsync import`".into()
            }
            CryptoError::IdentityExists { .. } => {
                "write the new one elsewhere with `castsync keygen -o FILE`".into()
            }
            CryptoError::MissingPlugin { binary, .. } => Cow::Owned(format!(
                "install the plugin (its program must be named {binary} and be on PATH), or use another key"
            )),
            CryptoError::PluginBroken { binary, .. } => Cow::Owned(format!(
                "check that {binary} works with this key on its own (`age -d -i IDENTITY-FILE FILE`); a run's --timeout also bounds each call to the plugin"
            )),
            CryptoError::PluginNeedsTerminal { .. } => "run it in a terminal, or give unattended runs (CI, the daemon) an identity that needs no interaction".into(),
            CryptoError::KeyCommand { .. } => "it must print an identity (age-keygen format or an OpenSSH private key) on stdout and exit 0; check the command, or unset the variable".into(),
            CryptoError::NoHome => {
                "give the identity file explicitly (`-o FILE` for keygen, `-i FILE` otherwise)"
                    .into()
            }
            CryptoError::InvalidRecipient { .. }
            | CryptoError::Encrypt { .. }
            | CryptoError::IdentityUnreadable { .. }
            | CryptoError::InvalidIdentity { .. }
            | CryptoError::NotAnAgeFile { .. }
            | CryptoError::PluginFailed { .. }
            | CryptoError::WriteIdentity { .. } => return None,
        })
    }
}

/// What helps with a "no matching identity" error: who you are and who the file is for (the
/// end of its message), and whom to ask (its hint, [`Hint::fix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Public recipients of the identities that were loaded.
    pub yours: Vec<String>,
    /// Recipients the file was encrypted to, when the caller knows them (manifest metadata).
    pub needs: Option<Vec<String>>,
}

impl Hint {
    /// Whom to ask, and what they run.
    pub fn fix(&self) -> &'static str {
        match &self.needs {
            Some(needs) if !needs.is_empty() => {
                "ask one of them to add your public key to castsync.yaml and run `castsync rekey`"
            }
            _ => {
                "ask a recipient of this file to add your public key to castsync.yaml and run \
                 `castsync rekey`"
            }
        }
    }
}

/// The facts, one `\n  …` line each: your public keys, and the file's recipients when known.
impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.yours.is_empty() {
            write!(f, "\n  your public keys: {}", self.yours.join(", "))?;
        }
        if let Some(needs) = self.needs.as_ref().filter(|n| !n.is_empty()) {
            write!(f, "\n  this file is encrypted to: {}", needs.join(", "))?;
        }
        Ok(())
    }
}
