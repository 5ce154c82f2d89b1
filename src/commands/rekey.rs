//! `castsync rekey [AGENT…] [--check]` (or `rekey --shared [GROUP…]`): re-encrypt manifests,
//! agents' and shared groups', to the recipients that `castsync.yaml` now assigns them (after
//! someone joins or leaves), through `authoring::rekey`. A file that does not decrypt is an
//! error for that file; the others go on.

use serde_json::json;

use super::{Exit, Repo, print_notes};
use crate::authoring::{self, AgentFiles, Drift};
use crate::cli::{GlobalArgs, OutputFormat, RekeyArgs};
use crate::load::LoadError;
use crate::manifest::Kind;

pub(super) fn run(global: &GlobalArgs, args: &RekeyArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let identities = repo.identities()?;
    // (kind, name): the named agents, the named (or every) group with --shared, or every
    // agent and every group.
    let mut targets: Vec<(Kind, String)> = Vec::new();
    if !args.shared {
        targets.extend(
            selected_agents(&repo, &args.agents)?
                .into_iter()
                .map(|s| (Kind::Agent, s)),
        );
    }
    if args.shared || args.agents.is_empty() {
        let named = if args.shared { &args.agents[..] } else { &[] };
        targets.extend(
            selected_groups(&repo, named)?
                .into_iter()
                .map(|g| (Kind::Group, g)),
        );
    }
    let slugs: Vec<String> = targets.iter().map(|(_, s)| s.clone()).collect();

    // `-o json|markdown` (only with --check) collects instead of printing as it goes.
    let report = args.output.filter(|o| *o != OutputFormat::Text);
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let (mut stale, mut failed, mut rekeyed) = (0usize, 0usize, 0usize);
    for (kind, slug) in &targets {
        let result =
            AgentFiles::of_kind(&repo.root, repo.config(), *kind, slug).and_then(|files| {
                authoring::rekey(&files, &identities, args.check).map(|written| {
                    print_notes(&written.notes);
                    (files, written.outcome)
                })
            });
        match result {
            Ok((_, Drift::Current)) => {}
            Ok((files, drift)) => {
                stale += 1;
                if report.is_some() {
                    entries.push(drift_json(*kind, slug, &files.shown().to_string(), &drift));
                } else {
                    let verb = if args.check { "stale" } else { "re-encrypted" };
                    println!("{}: {verb}: {}", files.shown(), describe(&drift));
                }
                if !args.check {
                    rekeyed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                let e = anyhow::Error::from(e);
                if report.is_some() {
                    let mut entry = json!({
                        "agent": slug,
                        "status": "unreadable",
                        "error": format!("{e:#}"),
                        "hint": super::hint_of(&e),
                    });
                    if *kind == Kind::Group {
                        entry["group"] = json!(slug);
                        entry["agent"] = serde_json::Value::Null;
                    }
                    entries.push(entry);
                } else {
                    super::print_error(&e);
                }
            }
        }
    }
    match report {
        Some(OutputFormat::Json) => println!(
            "{:#}",
            json!({
                "format_version": REKEY_CHECK_FORMAT_VERSION,
                "ok": stale == 0 && failed == 0,
                "checked": slugs.len(),
                "stale": stale,
                "unreadable": failed,
                "files": entries,
            })
        ),
        Some(_) => print!("{}", markdown(slugs.len(), &entries)),
        None => {}
    }
    if global.quiet == 0 {
        let checked = slugs.len();
        if args.check {
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

/// The `rekey --check -o json` format version (schemas/rekey-check.schema.json); bump on
/// incompatible changes.
pub const REKEY_CHECK_FORMAT_VERSION: u32 = 1;

fn drift_json(kind: Kind, name: &str, file: &str, drift: &Drift) -> serde_json::Value {
    let (status, added, removed) = match drift {
        Drift::Current => ("current", &[][..], &[][..]),
        Drift::Unrecorded => ("unrecorded", &[][..], &[][..]),
        Drift::Differs { added, removed } => ("stale", &added[..], &removed[..]),
    };
    let mut entry = json!({
        "agent": name,
        "file": file,
        "status": status,
        "added_recipients": added,
        "removed_recipients": removed,
        "description": describe(drift),
    });
    if kind == Kind::Group {
        entry["agent"] = serde_json::Value::Null;
        entry["group"] = json!(name);
    }
    entry
}

fn markdown(checked: usize, entries: &[serde_json::Value]) -> String {
    use crate::render::md_escape;
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "### castsync rekey --check: {} of {checked} manifest(s) need `castsync rekey`\n",
        entries.len()
    );
    if !entries.is_empty() {
        out.push_str("\n| agent or group | status | detail |\n|---|---|---|\n");
        for e in entries {
            let detail = if e["status"] == "unreadable" {
                text(e, "error")
            } else {
                text(e, "description")
            };
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                md_escape(&match e["group"].as_str() {
                    Some(group) => format!("shared/{group}"),
                    None => text(e, "agent"),
                }),
                text(e, "status"),
                md_escape(&detail)
            ));
        }
    }
    out
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
