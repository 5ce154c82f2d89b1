//! New X25519 identities, in the `age-keygen` file format, written so that the secret is
//! never readable by anyone else and an existing identity is never replaced.

use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};

use super::CryptoError;
use crate::atomic_write::{self, Mode, Replace};

/// Generates a new identity. Returns the identity file text (with `# created:` and
/// `# public key:` comment lines, as `age-keygen` writes) and its `age1…` recipient.
pub fn generate_identity() -> (SecretString, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let secret = identity.to_string();
    // Sized up front so that the String never reallocates and leaves a copy of the key.
    let mut text = String::with_capacity(256 + secret.expose_secret().len());
    text.push_str("# created: ");
    text.push_str(&created);
    text.push_str("\n# public key: ");
    text.push_str(&recipient);
    text.push('\n');
    text.push_str(secret.expose_secret());
    text.push('\n');
    (SecretString::from(text), recipient)
}

/// Generates an identity and writes it to `path`: parent directories are created with mode
/// 0700, the file with mode 0600, atomically (`atomic_write`, without replacing anything).
/// Returns the public recipient.
pub fn write_new_identity(path: &Path) -> Result<String, CryptoError> {
    let exists = || CryptoError::IdentityExists {
        path: path.to_owned(),
    };
    let write_err = |source: std::io::Error| CryptoError::WriteIdentity {
        path: path.to_owned(),
        source,
    };
    if path.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::atomic_write::create_private_dir(dir).map_err(write_err)?;

    let (text, recipient) = generate_identity();
    // Never replaces: a file that appeared since the check above is still never overwritten.
    atomic_write::write(
        path,
        text.expose_secret().as_bytes(),
        Replace::Never,
        Mode::Private,
    )
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists()
        } else {
            write_err(e)
        }
    })?;
    Ok(recipient)
}
