//! `castsync guard [--staged | --history] [-o FORMAT]`: the declared values found outside the
//! manifests (`crate::guard`), printed; exit 1 when anything is found, so that a pre-commit
//! hook or a CI step stops.

use super::{Exit, Repo};
use crate::cli::{GlobalArgs, GuardArgs, OutputFormat};
use crate::guard::{self, Mode, Request, render};
use crate::source::Checkout;

pub(super) fn run(global: &GlobalArgs, args: &GuardArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let mode = if args.staged {
        Mode::Staged
    } else if args.history {
        Mode::History
    } else {
        Mode::Worktree
    };
    // The last commit's placeholders come first for --staged (none before the first commit).
    let head = match mode {
        Mode::Staged => Checkout::revision(&repo.root, "HEAD", global.config.as_deref()).ok(),
        _ => None,
    };
    let report = guard::guard(&Request {
        root: repo.root.clone(),
        tree: repo.checkout.tree(),
        base: head.as_ref().map(Checkout::tree),
        config: repo.config(),
        identities: &identities,
        mode,
    })?;
    match args.output {
        OutputFormat::Text => super::print_out(render::text(&report))?,
        OutputFormat::Json => super::print_out(format_args!("{}\n", render::json(&report)))?,
        OutputFormat::Markdown => super::print_out(render::markdown(&report))?,
    }
    if global.quiet == 0 && args.output != OutputFormat::Text {
        crate::say!("{}", render::headline(&report));
    }
    Ok(if report.findings.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}
