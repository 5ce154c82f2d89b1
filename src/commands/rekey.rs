//! `castsync rekey [AGENT…] [--check]`: re-encrypt manifests to the recipients that
//! `castsync.yaml` now assigns them (after someone joins or leaves).
//!
//! Which recipients a file was encrypted to is not readable from an age header, so castsync
//! records them inside the plaintext (`castsync:` metadata) and compares that record with the
//! config. A file that does not decrypt is an error for that file; the others go on.

use std::collections::BTreeSet;

use super::agent_files::{AgentFiles, Replace, target_recipients};
use super::{Exit, Repo};
use crate::cli::{GlobalArgs, RekeyArgs};
use crate::crypto::Identities;
use crate::source::Worktree;
use crate::source::load::{LoadError, agent_slugs};

/// How one file's recorded recipients compare with the config's.
pub(super) enum Drift {
    Current,
    /// No `castsync:` block: written by hand or by another tool.
    Unrecorded,
    Differs {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

pub(super) fn run(global: &GlobalArgs, args: &RekeyArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let slugs = selected_agents(&repo, &args.agents)?;

    let (mut stale, mut failed, mut rekeyed) = (0usize, 0usize, 0usize);
    for slug in &slugs {
        let result = AgentFiles::new(&repo, slug)
            .and_then(|files| rekey_one(&files, &identities, args.check).map(|d| (files, d)));
        match result {
            Ok((_, Drift::Current)) => {}
            Ok((files, drift)) => {
                stale += 1;
                let verb = if args.check { "stale" } else { "re-encrypted" };
                println!("{}: {verb}: {}", files.shown(), describe(&drift));
                if !args.check {
                    rekeyed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                super::print_error(&e);
            }
        }
    }
    if global.quiet == 0 {
        let checked = slugs.len();
        if args.check {
            eprintln!(
                "checked {checked} manifest(s): {stale} encrypted to other recipients than castsync.yaml assigns{}",
                failures(failed)
            );
            if stale > 0 {
                eprintln!("  hint: run `castsync rekey` to re-encrypt them");
            }
        } else {
            eprintln!(
                "re-encrypted {rekeyed} of {checked} manifest(s), {} already current{}",
                checked - rekeyed - failed,
                failures(failed)
            );
        }
    }
    Ok(if failed > 0 || (args.check && stale > 0) {
        Exit::Failure
    } else {
        Exit::Success
    })
}

fn failures(failed: usize) -> String {
    if failed == 0 {
        String::new()
    } else {
        format!("; {failed} could not be read (see above)")
    }
}

/// The named agents (each must exist), or every agent of the repository.
pub(super) fn selected_agents(repo: &Repo, named: &[String]) -> anyhow::Result<Vec<String>> {
    let tree = Worktree::new(&repo.root);
    let slugs = agent_slugs(&tree, &repo.config)?;
    if let Some(missing) = named.iter().find(|a| !slugs.contains(a)) {
        return Err(LoadError::UnknownAgent {
            agent: missing.clone(),
            agents_dir: repo.config.agents_dir.display().to_string(),
            known: slugs.join(", "),
        }
        .into());
    }
    Ok(if named.is_empty() {
        slugs
    } else {
        slugs.into_iter().filter(|s| named.contains(s)).collect()
    })
}

/// Compares one manifest's recorded recipients with the config's; re-encrypts it unless
/// `check_only` (which never writes: `doctor` relies on that).
pub(super) fn rekey_one(
    files: &AgentFiles<'_>,
    identities: &Identities,
    check_only: bool,
) -> anyhow::Result<Drift> {
    let mut manifest = files.require(identities)?;
    let target: BTreeSet<String> = target_recipients(&files.repo.config, &files.slug)?
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let drift = match &manifest.meta {
        None => Drift::Unrecorded,
        Some(meta) => {
            let recorded: BTreeSet<String> = meta.recipients.iter().cloned().collect();
            if recorded == target {
                Drift::Current
            } else {
                Drift::Differs {
                    added: target.difference(&recorded).cloned().collect(),
                    removed: recorded.difference(&target).cloned().collect(),
                }
            }
        }
    };
    if !check_only && !matches!(drift, Drift::Current) {
        files.save(&mut manifest, identities, Replace::Existing)?;
    }
    Ok(drift)
}

pub(super) fn describe(drift: &Drift) -> String {
    match drift {
        Drift::Current => "current".to_owned(),
        Drift::Unrecorded => {
            "no record of its recipients (written by hand or another tool)".to_owned()
        }
        Drift::Differs { added, removed } => {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("for {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("no longer for {}", removed.join(", ")));
            }
            parts.join("; ")
        }
    }
}
