//! `castsync diff --env A --env B`: two environments compared by key, never by value (see
//! `render::compare`): keys one has and the other lacks, and values an overlay sets that are
//! the same in both (`authoring::overlaid` reads which keys the overlays set).

use std::collections::BTreeSet;

use super::{Exit, Repo};
use crate::authoring;
use crate::cli::{DiffArgs, GlobalArgs, OutputFormat};
use crate::environment::Environment;
use crate::hint::WithHint;
use crate::load::load_all;
use crate::render::compare;
use crate::render::redacted::Fingerprinter;

pub(super) fn run(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let envs = repo.config().environments_in_run(&args.envs)?;
    let [a, b] = &envs[..] else {
        return Err(WithHint::new(
            format!(
                "diff --env compares two environments, and {} distinct one(s) were given",
                envs.len()
            ),
            "pass --env twice, e.g. castsync diff --env staging --env production",
        )
        .into());
    };
    if args.rev_a.is_some() || args.rev_b.is_some() {
        return Err(WithHint::new(
            "diff --env compares the worktree's environments, not revisions",
            "leave out the revisions, or the --env flags",
        )
        .into());
    }
    let identities = repo.identities()?;
    let fp = Fingerprinter::for_identities(&identities).ok_or_else(|| {
        WithHint::new(
            "no identity found: castsync diff decrypts both environments",
            "pass -i FILE, set CASTSYNC_AGE_KEY, or run `castsync keygen`",
        )
    })?;
    let none = BTreeSet::new();
    let load =
        |env: &Environment| load_all(repo.checkout.tree(), repo.config(), env, &identities, &none);
    let (loaded_a, loaded_b) = (load(a)?, load(b)?);
    let overlaid = [a, b].map(|env| {
        let loaded = if env == a { &loaded_a } else { &loaded_b };
        authoring::overlaid(&repo.root, repo.config(), env, &identities, &loaded.agents)
    });
    let cmps = compare::compare(
        &fp,
        &loaded_a.agents,
        &loaded_b.agents,
        [&overlaid[0], &overlaid[1]],
    );
    let names = [a, b].map(|e| e.name().unwrap_or_default());
    match args.output {
        OutputFormat::Json => {
            super::print_out(format_args!("{:#}\n", compare::json(&cmps, names)))?
        }
        _ => super::print_out(compare::text(&cmps, names))?,
    }
    let unreadable = cmps
        .iter()
        .any(|c| c.unreadable.iter().any(Option::is_some));
    let found = cmps
        .iter()
        .any(|c| c.only.iter().any(|o| !o.is_empty()) || !c.same.is_empty());
    Ok(if unreadable {
        Exit::Failure
    } else if args.exit_code && found {
        Exit::Changes
    } else {
        Exit::Success
    })
}
