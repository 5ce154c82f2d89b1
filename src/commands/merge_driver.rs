//! `castsync merge-driver %O %A %B %P`: the git merge driver for encrypted manifests.
//!
//! git runs it (through `merge.castsync.driver`, which `castsync git-setup` sets) at the top
//! of the work tree whenever both sides of a merge changed a file routed to it by
//! `.gitattributes`. `%O`, `%A` and `%B` are temporary files holding the three versions,
//! `%P` is where the result will live, which names the agent. The merge is
//! `authoring::merge`; this file reads the versions and writes the result.
//!
//! Exit 0 means the result is in `%A`; exit 1 (a conflict, or any error) makes git record a
//! conflict with `%A` as it was, byte for byte. Nothing is written before everything is
//! known to merge, and no value is ever printed.

use std::path::{Component, Path};

use anyhow::{Context as _, bail};

use super::{Exit, Repo, print_notes};
use crate::atomic_write::{self, Mode, Replace};
use crate::authoring::AgentFiles;
use crate::authoring::merge::driver::{self, Side, Versions};
use crate::cli::{GlobalArgs, MergeDriverArgs};
use crate::hint::WithHint;
use crate::source::{self, Checkout};

/// The largest version read: an armored manifest at its 1 MiB plaintext limit is about
/// 1.4 MiB.
const MAX_VERSION_BYTES: u64 = 2 * 1024 * 1024;

pub(super) fn run(global: &GlobalArgs, args: &MergeDriverArgs) -> anyhow::Result<Exit> {
    // git names the file relative to the top of the work tree, plainly (no `..`, not
    // absolute); anything else did not come from git.
    if !args
        .path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(WithHint::new(
            format!(
                "{}: the merged path must be relative to the top of the work tree, as git's %P is",
                args.path.display()
            ),
            "git runs `castsync merge-driver %O %A %B %P` (see `castsync git-setup`)",
        )
        .into());
    }
    let root =
        source::find_root_of_file(&args.path, global.repo.as_deref(), global.config.as_deref())?;
    let checkout = Checkout::worktree(&root, global.config.as_deref())?;
    let repo = Repo::with_checkout(root, checkout, global);
    let full = source::working_dir(None)?.join(&args.path);
    let Ok(rel) = full.strip_prefix(&repo.root) else {
        bail!(
            "{} is not inside the secrets repository {}",
            args.path.display(),
            repo.root.display()
        );
    };
    let (kind, name) = driver::manifest_of(repo.config(), rel)?;
    let files = AgentFiles::of_kind(&repo.root, repo.config(), kind, &name)?;
    let identities = repo.identities()?;

    let base = read_version(&args.base, Side::Base)?;
    let ours = read_version(&args.ours, Side::Ours)?;
    let theirs = read_version(&args.theirs, Side::Theirs)?;
    let merged = driver::merge_versions(
        &files,
        &identities,
        Versions {
            base: &base,
            ours: &ours,
            theirs: &theirs,
        },
    )?;
    print_notes(&merged.notes);
    if let Some(ciphertext) = &merged.ciphertext {
        atomic_write::write(&args.ours, ciphertext, Replace::Existing, Mode::Default)
            .with_context(|| {
                format!(
                    "cannot write the merged {} to {}",
                    files.shown(),
                    args.ours.display()
                )
            })?;
    }
    if global.quiet == 0 {
        crate::say!(
            "castsync: merged {} key by key{}{}",
            files.shown(),
            taken("ours", &merged.from_ours),
            taken("theirs", &merged.from_theirs)
        );
    }
    Ok(Exit::Success)
}

/// The keys a side contributed, for the one-line summary: the first ten by name.
fn taken(side: &str, keys: &[String]) -> String {
    const SHOWN: usize = 10;
    match keys.len() {
        0 => String::new(),
        n if n <= SHOWN => format!("; from {side}: {}", keys.join(", ")),
        n => format!(
            "; from {side}: {} and {} more",
            keys[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}

/// One of git's temporary files, bounded: a regular file only (opening a FIFO would block),
/// size-checked before it is read (`fsread`).
fn read_version(path: &Path, side: Side) -> anyhow::Result<Vec<u8>> {
    crate::fsread::read_file(path, MAX_VERSION_BYTES)
        .with_context(|| format!("cannot read {side} ({})", path.display()))
}
