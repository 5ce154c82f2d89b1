//! `castsync git-setup [--force]`: configure a clone of the secrets repository for
//! manifests (the diff and merge drivers in its git config, the `.gitattributes` lines that
//! route manifests to them) through `git_setup`, and say what was done and what is left.

use super::{Exit, Repo};
use crate::cli::{GitSetupArgs, GlobalArgs};
use crate::crypto::Identities;
use crate::git_setup::{self, Change, HookChange};
use crate::source::MANIFEST_FILE;

pub(super) fn run(global: &GlobalArgs, args: &GitSetupArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let agents_dir = &repo.config().agents_dir;
    // Every manifest the repository has, and one it may get, must be routed.
    let mut manifests: Vec<_> = repo
        .checkout
        .agents
        .iter()
        .map(|slug| agents_dir.join(slug).join(MANIFEST_FILE))
        .collect();
    manifests.push(agents_dir.join("new-agent").join(MANIFEST_FILE));
    let report = git_setup::setup(&repo.root, &manifests, args.force)?;

    let quiet = global.quiet > 0;
    let mut kept = false;
    for (setting, change) in &report.settings {
        let warning = matches!(change, Change::Kept { .. });
        kept |= warning;
        let line = match change {
            Change::Set => format!("set {} = {}", setting.key, setting.value),
            Change::Unchanged => format!("already set: {} = {}", setting.key, setting.value),
            Change::Replaced { previous } => format!(
                "replaced {} = {} (was {previous:?})",
                setting.key, setting.value
            ),
            Change::Kept { current } => format!(
                "warning: kept {} = {current:?}, which differs from {:?}; pass --force to replace it",
                setting.key, setting.value
            ),
        };
        if !quiet || warning {
            eprintln!("{line}");
        }
    }
    let shown = report
        .attributes_file
        .strip_prefix(&repo.root)
        .unwrap_or(&report.attributes_file)
        .display();
    if !quiet {
        if report.added.is_empty() && report.unrouted.is_empty() {
            eprintln!("{shown} already routes manifests to castsync");
        } else if !report.added.is_empty() {
            eprintln!(
                "added to {shown}: {}; commit it so that every clone uses it",
                report.added.join(", ")
            );
        }
    }
    for (path, attribute, value) in &report.unrouted {
        eprintln!(
            "warning: git still gives {path:?} {attribute}={value:?}: another attributes file (a deeper .gitattributes, or .git/info/attributes) overrides {shown}"
        );
    }
    if args.hooks {
        kept |= hook(&repo, args.force, quiet)?;
    }
    if !git_setup::castsync_on_path() {
        eprintln!(
            "warning: git runs the drivers{} as `castsync …` from PATH, and there is no castsync on PATH: install it there (cargo install --path .)",
            if args.hooks { " and the hook" } else { "" }
        );
    }
    // git runs the drivers without -i: they find the identity by the rest of the chain.
    if Identities::discover(&[]).is_ok_and(|ids| ids.is_empty()) {
        eprintln!(
            "warning: no identity in CASTSYNC_AGE_KEY, CASTSYNC_AGE_KEY_FILE or ~/.config/castsync/keys.txt, where the drivers look (git runs them without -i): diffs will hide key names and merges of manifests will stop"
        );
    }
    if !quiet && report.unrouted.is_empty() && !kept {
        eprintln!(
            "git is set up: `git diff` shows manifests key by key, `git merge` merges them key by key{}",
            if args.hooks {
                ", and a commit that adds a declared value stops"
            } else {
                ""
            }
        );
    }
    Ok(if report.unrouted.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Installs the pre-commit hook and says what was done; true when another hook was kept.
fn hook(repo: &Repo, force: bool, quiet: bool) -> anyhow::Result<bool> {
    let report = git_setup::install_hook(&repo.root, force)?;
    let shown = report.path.display();
    match report.change {
        HookChange::Written if !quiet => eprintln!(
            "wrote the pre-commit hook {shown}: it runs `castsync guard --staged` before each commit"
        ),
        HookChange::Unchanged if !quiet => {
            eprintln!("the pre-commit hook is already installed ({shown})")
        }
        HookChange::Replaced if !quiet => eprintln!(
            "replaced the pre-commit hook {shown} (the previous one is kept as {shown}.before-castsync)"
        ),
        HookChange::Kept => eprintln!(
            "warning: kept the pre-commit hook {shown}, which is not castsync's: pass --force to replace it (it is kept beside it), or call `castsync guard --staged` from it; with the pre-commit framework, add the castsync-guard hook to .pre-commit-config.yaml instead"
        ),
        _ => {}
    }
    Ok(report.change == HookChange::Kept)
}
