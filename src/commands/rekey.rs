//! `castsync rekey [AGENT…] [--check]` (or `rekey --shared [GROUP…]`): re-encrypt manifests,
//! agents' and shared groups', to the recipients that `castsync.yaml` now assigns them (after
//! someone joins or leaves), through `authoring::rekey`; `render::rekey` says what became of
//! each. A file that does not decrypt is an error for that file; the others go on.

use std::collections::BTreeSet;

use super::{Exit, Repo, print_notes};
use crate::authoring::{self, AgentFiles};
use crate::cli::{GlobalArgs, OutputFormat, RekeyArgs};
use crate::load;
use crate::manifest::Kind;
use crate::render::rekey::Tally;

pub(super) fn run(global: &GlobalArgs, args: &RekeyArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let targets = targets(&repo, args)?;
    let names = repo.recipient_names();
    // `-o json|markdown` (only with --check) collects instead of printing as it goes.
    let report = args.output.filter(|o| *o != OutputFormat::Text);
    let mut tally = Tally::new(args.check);
    let layers = repo.config().layers_in_run(&args.envs)?;
    for (kind, slug) in &targets {
        for env in &layers {
            let files = AgentFiles::of_kind(&repo.root, repo.config(), *kind, slug)
                .map(|files| files.in_env(env));
            // An environment's overlay exists only where it adds or overrides keys.
            if files.as_ref().is_ok_and(|f| f.is_overlay() && !f.exists()) {
                continue;
            }
            let result = files.and_then(|files| {
                authoring::rekey(&files, &identities, args.check).map(|written| {
                    print_notes(&written.notes);
                    (files, written.outcome)
                })
            });
            match result {
                Ok((files, drift)) => {
                    let file = files.shown().to_string();
                    if let Some(line) = tally.drift(*kind, slug, &file, &drift, &names)
                        && report.is_none()
                    {
                        // A line stdout cannot take does not stop the re-encryption; the
                        // summary on stderr still counts the file.
                        let _ = super::print_out(line);
                    }
                }
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    tally.unreadable(*kind, slug, &format!("{e:#}"), super::hint_of(&e));
                    if report.is_none() {
                        super::print_error(&e);
                    }
                }
            }
        }
    }
    match report {
        Some(OutputFormat::Json) => super::print_out(format_args!("{:#}\n", tally.json()))?,
        Some(_) => super::print_out(tally.markdown())?,
        None => {}
    }
    if global.quiet == 0 {
        crate::say_partial!("{}", tally.summary());
    }
    Ok(if tally.failed() {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// (kind, name) of every file to rekey: the named agents, the named (or every) group with
/// --shared, or every agent and every group.
fn targets(repo: &Repo, args: &RekeyArgs) -> anyhow::Result<Vec<(Kind, String)>> {
    let (tree, config) = (repo.checkout.tree(), repo.config());
    let named: BTreeSet<String> = args.agents.iter().cloned().collect();
    let mut targets: Vec<(Kind, String)> = Vec::new();
    if !args.shared {
        let agents = load::named_agents(tree, config, repo.checkout.agents.clone(), &named)?;
        targets.extend(agents.into_iter().map(|a| (Kind::Agent, a)));
    }
    if args.shared || args.agents.is_empty() {
        let named = if args.shared { named } else { BTreeSet::new() };
        let groups = load::named_groups(tree, config, &named)?;
        targets.extend(groups.into_iter().map(|g| (Kind::Group, g)));
    }
    Ok(targets)
}
