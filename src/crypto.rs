//! age encryption for manifests: recipients, identities and their search chain, armor.
//!
//! Everything here is standard age (age-encryption.org/v1) through the `age` crate, so any
//! file castsync writes opens with `age -d` or `rage`, and files written by those tools are
//! read here. No home-made cryptography.
//!
//! This module must never put key material or plaintext into an error, a log line or a
//! `Debug` string, and never write plaintext to disk. Post-quantum (`age1pq1…`) recipients
//! are refused with a clear message rather than half-supported; age plugins (`age1NAME1…`,
//! `AGE-PLUGIN-NAME-1…`) are run through the `age` crate's plugin support ([`plugin`]).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

mod error;
mod identity;
mod keycmd;
mod keygen;
pub mod plugin;
mod recipient;
mod search;
mod unwrap;

#[cfg(test)]
mod tests;

pub use error::{CryptoError, Hint};
pub use identity::{Env, Identities};
pub use keygen::{generate_identity, write_new_identity};
pub use recipient::{Recipient, RecipientKind, parse_recipient};
pub use search::{Attempt, Outcome, Source, Tried};

/// Encrypts `plaintext` to every recipient (duplicates are written once) and returns an
/// ASCII-armored age file; a plugin recipient's program is given [`plugin::DEFAULT_TIMEOUT`].
pub fn encrypt(plaintext: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, CryptoError> {
    encrypt_within(plaintext, recipients, plugin::DEFAULT_TIMEOUT)
}

/// [`encrypt`], a plugin's call given at most `plugin_timeout`.
fn encrypt_within(
    plaintext: &[u8],
    recipients: &[Recipient],
    plugin_timeout: Duration,
) -> Result<Vec<u8>, CryptoError> {
    if recipients.is_empty() {
        return Err(CryptoError::NoRecipients);
    }
    let mut seen = HashSet::new();
    let unique: Vec<&Recipient> = recipients
        .iter()
        .filter(|r| seen.insert(r.as_str()))
        .collect();
    // Native recipients are age's own; plugin recipients are wrapped by their plugin, one
    // program per plugin for all of its recipients.
    let native: Vec<&dyn age::Recipient> = unique.iter().filter_map(|r| r.as_age().ok()).collect();
    let plugged: Vec<&age::plugin::Recipient> =
        unique.iter().filter_map(|r| r.as_age().err()).collect();
    let plugins = plugin::recipients(&plugged, plugin_timeout)?;
    let all = native
        .into_iter()
        .chain(plugins.iter().map(|p| p.as_ref() as &dyn age::Recipient));
    let encryptor = age::Encryptor::with_recipients(all).map_err(|e| CryptoError::Encrypt {
        reason: e.to_string(),
    })?;

    let write = || -> std::io::Result<Vec<u8>> {
        let armored =
            age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor)?;
        let mut writer = encryptor.wrap_output(armored)?;
        writer.write_all(plaintext)?;
        writer.finish()?.finish()
    };
    write().map_err(|e| CryptoError::Encrypt {
        reason: e.kind().to_string(),
    })
}
