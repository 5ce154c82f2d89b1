//! The binding of an environment's overlay to its file: `secrets.ENV.yaml.age` says
//! `environment: ENV`, and the file every environment shares (`secrets.yaml.age`) says none.
//! Like `agent:`, it makes a copied ciphertext fail loudly: a production overlay copied over
//! staging's would otherwise hand production values to staging unnoticed.

use super::reader::RawDoc;
use super::{At, Kind, ManifestContext, ManifestError};

/// Checks `environment:` (at `env_at`) and refuses `uses:` (at `uses_at`) in an overlay.
/// Returns the overlay's environment, `None` for the shared file.
pub(super) fn check(
    doc: &RawDoc,
    ctx: &ManifestContext,
    env_at: At,
    uses_at: At,
) -> Result<Option<String>, ManifestError> {
    let found = doc.environment.as_ref().map(|s| s.text.as_str());
    match (&ctx.environment(), found) {
        (None, None) => Ok(None),
        (Some(expected), None) => Err(ManifestError::MissingEnvironment {
            at: env_at,
            kind: ctx.kind,
            expected: expected.clone(),
        }),
        (expected, Some(found)) if expected.as_deref() != Some(found) => {
            Err(ManifestError::EnvironmentMismatch {
                at: env_at,
                mismatch: Box::new(Mismatch {
                    found: shown(found),
                    expected: expected.clone(),
                    name: arg(ctx),
                }),
            })
        }
        (_, Some(_)) if doc.uses.is_some() => Err(ManifestError::UsesInOverlay { at: uses_at }),
        (expected, Some(_)) => Ok(expected.clone()),
    }
}

/// `environment:` that is not a plain name.
pub(super) fn not_a_name(ctx: &ManifestContext, at: At) -> ManifestError {
    ManifestError::EnvironmentMismatch {
        at,
        mismatch: Box::new(Mismatch {
            found: None,
            expected: ctx.environment(),
            name: arg(ctx),
        }),
    }
}

/// What an `environment:` that does not match its file says, and what the file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The `environment:` text when it is a valid name (else not shown).
    found: Option<String>,
    /// The file's environment (`None`: the file every environment shares).
    expected: Option<String>,
    /// How commands name the agent or group (`support-bot`, `--shared openai`).
    name: String,
}

/// The message of [`ManifestError::EnvironmentMismatch`].
pub(super) fn mismatch(m: &Mismatch) -> String {
    let (found, expected, name) = (m.found.as_deref(), m.expected.as_deref(), &m.name);
    let says = found.map_or_else(
        || "an environment that is not a valid name".to_owned(),
        |f| format!("environment {f:?}"),
    );
    let origin = found.map_or_else(
        || "another environment's overlay".to_owned(),
        crate::environment::overlay_file_name,
    );
    match expected {
        None => format!(
            "this is the file every environment shares, but it says {says}: it may have been copied from {origin}. Move it back, or, if it really belongs here, run `castsync edit {name}` and remove the `environment:` line"
        ),
        Some(expected) => format!(
            "the overlay says {says} but it is the overlay of environment {expected:?}: an overlay copied or moved from {origin} is refused, its values were meant for that environment. Move it back, or, if it really belongs here, run `castsync edit --env {expected} {name}` and set `environment: {expected}`"
        ),
    }
}

/// A name shown in a message only when it is a valid environment name (anything else may
/// be a pasted value).
fn shown(name: &str) -> Option<String> {
    crate::environment::name_problem(name)
        .is_none()
        .then(|| name.to_owned())
}

/// How commands name the agent or group.
fn arg(ctx: &ManifestContext) -> String {
    match ctx.kind {
        Kind::Agent => ctx.expected_agent.clone(),
        Kind::Group => format!("--shared {}", ctx.expected_agent),
    }
}
