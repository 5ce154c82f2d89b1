//! `castsync rekey [AGENT…] [--check]` (or `rekey --shared [GROUP…]`): re-encrypt manifests,
//! agents' and shared groups', to the recipients that `castsync.yaml` now assigns them (after
//! someone joins or leaves), through `authoring::rekey`. A file that does not decrypt is an
//! error for that file; the others go on.

use super::{Exit, Repo, print_notes};
use crate::authoring::{self, AgentFiles, AuthoringError, Drift};
use crate::cli::{GlobalArgs, OutputFormat, RekeyArgs};
use crate::config::Names;
use crate::environment::Environment;
use crate::load::LoadError;
use crate::manifest::Kind;
use crate::render::rekey;

pub(super) fn run(global: &GlobalArgs, args: &RekeyArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    let targets = targets(&repo, args)?;
    let names = repo.recipient_names();
    // `-o json|markdown` (only with --check) collects instead of printing as it goes.
    let report = args.output.filter(|o| *o != OutputFormat::Text);
    let mut tally = Tally::default();
    let layers = layers(repo.config(), &args.envs)?;
    let mut checked = 0;
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
            checked += 1;
            tally.count(*kind, slug, result, &names, args.check, report.is_some());
        }
    }
    match report {
        Some(OutputFormat::Json) => {
            let (stale, failed) = (tally.stale, tally.failed);
            super::print_out(format_args!(
                "{:#}\n",
                rekey::json(checked, stale, failed, &tally.entries)
            ))?;
        }
        Some(_) => super::print_out(rekey::markdown(checked, &tally.entries))?,
        None => {}
    }
    if global.quiet == 0 {
        summary(args.check, checked, &tally);
    }
    Ok(if tally.failed > 0 || (args.check && tally.stale > 0) {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// Which of each agent's files to rekey: the file every environment shares and every
/// environment's overlay, or with `--env` only those environments' overlays.
fn layers(config: &crate::config::Config, named: &[String]) -> anyhow::Result<Vec<Environment>> {
    if named.is_empty() {
        let mut all = vec![Environment::IMPLICIT];
        all.extend(
            config
                .all_environments()
                .into_iter()
                .filter(|e| !e.is_implicit()),
        );
        return Ok(all);
    }
    Ok(config.environments_in_run(named)?)
}

/// (kind, name) of every file to rekey: the named agents, the named (or every) group with
/// --shared, or every agent and every group.
fn targets(repo: &Repo, args: &RekeyArgs) -> anyhow::Result<Vec<(Kind, String)>> {
    let mut targets: Vec<(Kind, String)> = Vec::new();
    if !args.shared {
        targets.extend(
            selected_agents(repo, &args.agents)?
                .into_iter()
                .map(|s| (Kind::Agent, s)),
        );
    }
    if args.shared || args.agents.is_empty() {
        let named = if args.shared { &args.agents[..] } else { &[] };
        targets.extend(
            selected_groups(repo, named)?
                .into_iter()
                .map(|g| (Kind::Group, g)),
        );
    }
    Ok(targets)
}

/// What the files came out as, and (for `-o json|markdown`) their entries.
#[derive(Default)]
struct Tally {
    stale: usize,
    failed: usize,
    rekeyed: usize,
    entries: Vec<serde_json::Value>,
}

impl Tally {
    /// Counts one file's outcome; prints it as it goes unless `collect`.
    fn count(
        &mut self,
        kind: Kind,
        slug: &str,
        result: Result<(AgentFiles<'_>, Drift), AuthoringError>,
        names: &Names,
        check: bool,
        collect: bool,
    ) {
        match result {
            Ok((_, Drift::Current)) => {}
            Ok((files, drift)) => {
                self.stale += 1;
                if collect {
                    let shown = files.shown().to_string();
                    self.entries
                        .push(rekey::drift_json(kind, slug, &shown, &drift, names));
                } else {
                    let verb = if check { "stale" } else { "re-encrypted" };
                    // A line stdout cannot take does not stop the re-encryption; the summary
                    // on stderr still counts the file.
                    let _ = super::print_out(format_args!(
                        "{}: {verb}: {}\n",
                        files.shown(),
                        drift.describe(names)
                    ));
                }
                if !check {
                    self.rekeyed += 1;
                }
            }
            Err(e) => {
                self.failed += 1;
                let e = anyhow::Error::from(e);
                if collect {
                    let hint = super::hint_of(&e);
                    let error = format!("{e:#}");
                    self.entries
                        .push(rekey::unreadable_json(kind, slug, &error, hint));
                } else {
                    super::print_error(&e);
                }
            }
        }
    }
}

/// The closing line on stderr: what was checked or re-encrypted.
fn summary(check: bool, checked: usize, tally: &Tally) {
    let (stale, failed) = (tally.stale, tally.failed);
    if check {
        eprintln!(
            "checked {checked} manifest(s): {stale} encrypted to other recipients than castsync.yaml assigns{}",
            failures(failed)
        );
        if stale > 0 {
            eprintln!(
                "{}",
                crate::hint::line("  ", "run `castsync rekey` to re-encrypt them")
            );
        }
    } else {
        eprintln!(
            "re-encrypted {} of {checked} manifest(s), {} already current{}",
            tally.rekeyed,
            checked - tally.rekeyed - failed,
            failures(failed)
        );
    }
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
    let slugs = repo.checkout.agents.clone();
    if let Some(missing) = named.iter().find(|a| !slugs.contains(a)) {
        return Err(LoadError::UnknownAgent {
            agent: missing.clone(),
            agents_dir: repo.config().agents_dir.display().to_string(),
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

/// The named shared groups (each must exist), or every group of the repository.
fn selected_groups(repo: &Repo, named: &[String]) -> anyhow::Result<Vec<String>> {
    let groups = crate::source::group_names(repo.checkout.tree(), repo.config())?;
    if let Some(missing) = named.iter().find(|g| !groups.contains(g)) {
        return Err(crate::hint::WithHint::new(
            format!(
                "shared group {missing:?} is not declared: there is no directory {}/{missing}",
                repo.config().shared_dir.display(),
            ),
            format!(
                "declared groups: {}; create one with `castsync new --shared {missing}`",
                if groups.is_empty() {
                    "none".to_owned()
                } else {
                    groups.join(", ")
                }
            ),
        )
        .into());
    }
    Ok(if named.is_empty() {
        groups
    } else {
        groups.into_iter().filter(|g| named.contains(g)).collect()
    })
}
