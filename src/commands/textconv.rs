//! `castsync textconv FILE` (the git diff driver) and `castsync diff [A [B]]`: key-level,
//! redacted views of manifests, agents' and shared groups' (`render::redacted`,
//! `render::diff`). Neither ever prints a value, in any `-o` format.

use std::path::Path;

use crate::cli::{DiffArgs, GlobalArgs, OutputFormat, TextconvArgs};
use crate::commands::{Exit, Repo};
use crate::hint::WithHint;
use crate::render::diff;
use crate::render::redacted::{Fingerprinter, decrypted_view};
use crate::source::Checkout;

/// The diff driver must never make `git diff` fail: every problem becomes a one-line notice
/// in the converted text, and the exit code is 0.
pub fn textconv(global: &GlobalArgs, args: &TextconvArgs) -> anyhow::Result<Exit> {
    let text = match convert(global, &args.file) {
        Ok(text) => text,
        Err(notice) => format!("# castsync: {notice}\n"),
    };
    super::print_out(text)?;
    Ok(Exit::Success)
}

fn convert(global: &GlobalArgs, file: &Path) -> Result<String, String> {
    // git hands the driver a temporary file outside the repository: a regular file, capped.
    let bytes = crate::fsread::read_file(file, crate::fsread::MAX_REPO_FILE)
        .map_err(|e| crate::escape::terminal(&e.to_string()).into_owned())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let identities = crate::commands::discover_identities(global)
        .map_err(|_| "no usable identity (see `castsync validate`); key names hidden".to_owned())?;
    let fp = Fingerprinter::for_identities(&identities)
        .ok_or_else(|| "no identity found; key names hidden".to_owned())?;
    decrypted_view(&identities, &fp, &bytes, file)
}

/// `castsync diff [REV_A [REV_B]]`: REV_A defaults to HEAD, REV_B to the worktree.
pub fn diff(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<Exit> {
    if !args.envs.is_empty() {
        return super::compare::run(global, args);
    }
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let fp = Fingerprinter::for_identities(&identities).ok_or_else(|| {
        WithHint::new(
            "no identity found: castsync diff decrypts both sides",
            "pass -i FILE, set CASTSYNC_AGE_KEY, or run `castsync keygen`",
        )
    })?;
    let old_rev = args.rev_a.as_deref().unwrap_or("HEAD");
    let explicit = global.config.as_deref();
    let old = Checkout::revision(&repo.root, old_rev, explicit)?;
    let at_rev_b = match &args.rev_b {
        Some(rev) => Some(Checkout::revision(&repo.root, rev, explicit)?),
        None => None,
    };
    let new = at_rev_b.as_ref().unwrap_or(&repo.checkout);
    let new_label = args.rev_b.as_deref().unwrap_or("worktree");
    let reader = diff::Reader {
        identities: &identities,
        fp: &fp,
    };
    let diffs = diff::between(&old, new, &reader)?;
    match args.output {
        OutputFormat::Text => super::print_out(diff::text(&diffs, old_rev, new_label))?,
        OutputFormat::Json => super::print_out(format_args!(
            "{:#}\n",
            diff::json(&diffs, old_rev, new_label)
        ))?,
        OutputFormat::Markdown => super::print_out(diff::markdown(&diffs, old_rev, new_label))?,
    }
    Ok(if args.exit_code && !diffs.is_empty() {
        Exit::Changes
    } else {
        Exit::Success
    })
}
