//! `castsync git-setup [--force]`: configure a clone of the secrets repository for
//! manifests (the diff and merge drivers in its git config, the `.gitattributes` lines that
//! route manifests to them) through `git_setup`, and say what was done and what is left
//! (`render::git_setup`).

use super::{Exit, Repo};
use crate::cli::{GitSetupArgs, GlobalArgs};
use crate::crypto::Identities;
use crate::git_setup::{self, Change, HookChange};
use crate::render;
use crate::render::git_setup::Line;
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
    let mut kept = report
        .settings
        .iter()
        .any(|(_, change)| matches!(change, Change::Kept { .. }));
    let say = |lines: &[Line]| {
        for line in lines.iter().filter(|line| !quiet || line.warning) {
            crate::say!("{}", line.text);
        }
    };
    say(&render::git_setup::setup(&report, &repo.root));
    if args.hooks {
        let hook = git_setup::install_hook(&repo.root, args.force)?;
        kept |= hook.change == HookChange::Kept;
        say(&[render::git_setup::hook(&hook)]);
    }
    if !git_setup::castsync_on_path() {
        crate::say!(
            "warning: git runs the drivers{} as `castsync …` from PATH, and there is no castsync on PATH: install it there (cargo install --path .)",
            if args.hooks { " and the hook" } else { "" }
        );
    }
    // git runs the drivers without -i: they find the identity by the rest of the chain.
    if Identities::discover(&[]).is_ok_and(|ids| ids.is_empty()) {
        crate::say!(
            "warning: no identity in CASTSYNC_AGE_KEY, CASTSYNC_AGE_KEY_FILE or ~/.config/castsync/keys.txt, where the drivers look (git runs them without -i): diffs will hide key names and merges of manifests will stop"
        );
    }
    if !quiet && report.unrouted.is_empty() && !kept {
        crate::say!(
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
