//! An environment's overlay on an agent's (or a shared group's) manifest: the
//! `secrets.ENV.yaml.age` beside `secrets.yaml.age`, whose keys are added to, or replace,
//! the shared file's for that environment. The implicit environment of a repository without
//! `environments:` has no overlay, and nothing here runs for it.
//!
//! An overlay is encrypted to its environment's recipients only: someone who reads staging
//! but not production gets, for each production overlay, one error naming the file and who
//! can read it — never an agent treated as if it had no production values.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{Recipients, short_label};
use crate::crypto::{CryptoError, Identities};
use crate::environment::Environment;
use crate::finding::Finding;
use crate::manifest::{self, Manifest, ManifestContext};
use crate::source::{SourceError, Tree};

/// An overlay as read from a tree: its shown path and its ciphertext (`None`: absent).
pub struct Overlay {
    pub shown: PathBuf,
    pub ciphertext: Result<Option<Vec<u8>>, SourceError>,
}

impl Overlay {
    /// `env`'s overlay in `dir` (relative to the root), or `None` for the implicit
    /// environment.
    pub fn read(tree: &dyn Tree, dir: &Path, env: &Environment) -> Option<Overlay> {
        let path = dir.join(env.overlay_file()?);
        Some(Overlay {
            shown: PathBuf::from(tree.display(&path)),
            ciphertext: tree.read(&path),
        })
    }

    /// The overlay's plaintext (`None`: there is no overlay), or the finding that says why
    /// it cannot be used. `recipients` are whom the config encrypts it to, named when the
    /// identities are not among them.
    pub fn decrypt(
        &self,
        identities: &Identities,
        env: &Environment,
        recipients: &Recipients,
    ) -> Result<Option<Zeroizing<String>>, Box<Finding>> {
        let ciphertext = match &self.ciphertext {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Box::new(Finding::error(self.shown.clone(), e.to_string()))),
        };
        let plaintext = match identities.decrypt(ciphertext, &self.shown) {
            Ok(p) => p,
            Err(CryptoError::NoMatchingIdentity { .. }) => {
                return Err(Box::new(not_a_recipient(&self.shown, env, recipients)));
            }
            Err(e) => return Err(Box::new(Finding::located_error(self.shown.clone(), &e))),
        };
        match String::from_utf8(plaintext.to_vec()) {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(Box::new(Finding::error(
                    self.shown.clone(),
                    "the decrypted manifest is not UTF-8 text",
                )))
            }
        }
    }
}

/// The context `parse` checks an overlay of `base`'s file in: shown as `shown`, whose name
/// (`secrets.ENV.yaml.age`) its `environment:` must match.
pub fn context(base: &ManifestContext, shown: &Path) -> ManifestContext {
    ManifestContext {
        path: shown.to_path_buf(),
        ..base.clone()
    }
}

/// Parses an overlay's text and lays its keys over `manifest` (an overlay's value wins).
/// Returns the overlay's warnings and the keys it set.
pub fn apply(
    manifest: &mut Manifest,
    text: &str,
    ctx: &ManifestContext,
) -> Result<(Vec<Finding>, Vec<String>), manifest::ManifestError> {
    let parsed = manifest::parse(text, ctx)?;
    let keys: Vec<String> = parsed.manifest.secrets.keys().cloned().collect();
    manifest.secrets.extend(parsed.manifest.secrets);
    Ok((parsed.warnings, keys))
}

/// "secrets.production.yaml.age is encrypted to the production recipients; you are not
/// one", with who is as the hint.
fn not_a_recipient(shown: &Path, env: &Environment, recipients: &Recipients) -> Finding {
    let file = shown
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = env.name().unwrap_or_default();
    Finding::error(
        shown.to_path_buf(),
        format!("{file} is encrypted to the {name} recipients; you are not one"),
    )
    .with_hint(format!(
        "its recipients are {}: ask one of them to run this, or to add your public key to environments.{name} in castsync.yaml and run `castsync rekey`; the other environments work without it (--env)",
        who(recipients)
    ))
}

/// Recipients by name where castsync.yaml names them, else each key shortened so a line
/// stays readable.
pub fn who(recipients: &Recipients) -> String {
    if recipients.is_empty() {
        return "not listed in castsync.yaml".to_owned();
    }
    recipients
        .entries()
        .map(|(name, key)| {
            name.map_or_else(
                || short_label(key),
                |n| crate::escape::terminal(n).into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
