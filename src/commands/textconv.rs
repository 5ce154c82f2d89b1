//! `castsync textconv FILE` (the git diff driver) and `castsync diff [A [B]]`: key-level,
//! redacted views of manifests. Neither ever prints a value.

use std::path::Path;

use crate::cli::{DiffArgs, GlobalArgs, TextconvArgs};
use crate::commands::{Exit, Repo};
use crate::crypto::Identities;
use crate::render::redacted::{self, Fingerprinter};
use crate::source::Checkout;
use crate::source::load::{MANIFEST_FILE, SCHEMA_FILE};

/// The diff driver must never make `git diff` fail: every problem becomes a one-line notice
/// in the converted text, and the exit code is 0.
pub fn textconv(global: &GlobalArgs, args: &TextconvArgs) -> anyhow::Result<Exit> {
    let text = match convert(global, &args.file) {
        Ok(text) => text,
        Err(notice) => format!("# castsync: {notice}\n"),
    };
    print!("{text}");
    Ok(Exit::Success)
}

fn convert(global: &GlobalArgs, file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let identities = Identities::discover(&global.identity)
        .map_err(|_| "no usable identity (see `castsync validate`); key names hidden".to_owned())?;
    let fp = Fingerprinter::for_identities(&identities)
        .ok_or_else(|| "no identity found; key names hidden".to_owned())?;
    decrypt_view(&identities, &fp, &bytes, file)
}

fn decrypt_view(
    identities: &Identities,
    fp: &Fingerprinter,
    bytes: &[u8],
    file: &Path,
) -> Result<String, String> {
    let plain = identities.decrypt(bytes, file).map_err(|_| {
        // A hash of the ciphertext (never of a value) so that two versions nobody here can
        // open still show as different.
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        format!(
            "cannot decrypt this version with your identities (not a recipient?); key names hidden (ciphertext sha256:{})",
            &digest[..12]
        )
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| "the decrypted manifest is not UTF-8 text".to_owned())?;
    Ok(redacted::view(text, fp))
}

/// `castsync diff [REV_A [REV_B]]`: REV_A defaults to HEAD, REV_B to the worktree.
pub fn diff(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let fp = Fingerprinter::for_identities(&identities).ok_or_else(|| {
        anyhow::anyhow!(
            "no identity found: castsync diff decrypts both sides\n  hint: pass -i FILE, set CASTSYNC_AGE_KEY, or run `castsync keygen`"
        )
    })?;
    let old_rev = args.rev_a.as_deref().unwrap_or("HEAD");
    // Each side is read with its own config: the agents directory may have moved between them.
    let explicit = global.config.as_deref();
    let old = Checkout::revision(&repo.root, old_rev, explicit)?;
    let at_rev_b = match &args.rev_b {
        Some(rev) => Some(Checkout::revision(&repo.root, rev, explicit)?),
        None => None,
    };
    let new = at_rev_b.as_ref().unwrap_or(&repo.checkout);
    let mut agents = old.agents.clone();
    agents.extend(new.agents.iter().cloned());
    agents.sort();
    agents.dedup();

    let new_label = args.rev_b.as_deref().unwrap_or("worktree");
    for agent in &agents {
        for file in [MANIFEST_FILE, SCHEMA_FILE] {
            let path_of = |side: &Checkout| side.config.agents_dir.join(agent).join(file);
            let (path_a, path_b) = (path_of(&old), path_of(new));
            let side = |side: &Checkout, path: &Path| -> anyhow::Result<Option<String>> {
                let Some(bytes) = side.tree().read(path)? else {
                    return Ok(None);
                };
                Ok(Some(if file == MANIFEST_FILE {
                    decrypt_view(&identities, &fp, &bytes, path)
                        .unwrap_or_else(|notice| format!("# castsync: {notice}\n"))
                } else {
                    // `.env.example` holds placeholders, never values: shown as it is.
                    String::from_utf8_lossy(&bytes).into_owned()
                }))
            };
            let (a, b) = (side(&old, &path_a)?, side(new, &path_b)?);
            if a == b {
                continue;
            }
            let header_a = match a {
                Some(_) => format!("a/{} ({old_rev})", path_a.display()),
                None => "/dev/null".to_owned(),
            };
            let header_b = match b {
                Some(_) => format!("b/{} ({new_label})", path_b.display()),
                None => "/dev/null".to_owned(),
            };
            let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
            let text_diff = similar::TextDiff::from_lines(&a, &b);
            print!(
                "{}",
                text_diff
                    .unified_diff()
                    .context_radius(3)
                    .header(&header_a, &header_b)
            );
        }
    }
    Ok(Exit::Success)
}
