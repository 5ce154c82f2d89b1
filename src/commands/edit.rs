//! `castsync edit AGENT` (or `edit --shared GROUP`): the manifest in `$VISUAL`/`$EDITOR`,
//! judged on save (a shared group's change also from the side of the agents that use it).
//!
//! The plaintext goes to a 0600 file in a private 0700 temporary directory (editors leave
//! swap and backup files next to the file they edit: they land in that directory too), and
//! the directory is removed on every way out: a save, an abort, an editor that fails, an
//! error, SIGINT, SIGTERM or SIGHUP. An invalid result is shown and, on a terminal, the editor
//! can be reopened; otherwise the original file is left byte-for-byte as it was. A save that
//! changes no key or value rewrites nothing.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;

use anyhow::{Context as _, bail};

use super::{Exit, Repo, manifest_files, print_notes};
use crate::authoring::editor::{self, Ended, Scratch, Signals};
use crate::authoring::{self, AgentFiles, AuthoringError, Replace};
use crate::cli::{AgentArg, GlobalArgs};
use crate::manifest::{Kind, Manifest};

pub(super) async fn run(global: &GlobalArgs, args: &AgentArg) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = manifest_files(&repo, &args.agent, args.shared, args.env.as_deref())?;
    let identities = repo.identities()?;
    let plaintext = match files.decrypt(&identities)? {
        Some(text) => text,
        // An environment's overlay not written yet opens empty (its shared file must exist).
        None => files.require_or_new_overlay(&identities)?.to_yaml(),
    };

    // A manifest that breaks its own rules still opens, as it is, so it can be repaired here.
    let (original, initial) = match files.parse(&plaintext) {
        Ok(manifest) => {
            let text = manifest.to_editable_yaml();
            (Some(manifest), text)
        }
        Err(e) => {
            eprintln!("warning: {e}\n  opening the file as it is: fix it in the editor");
            (None, plaintext)
        }
    };

    let mut signals = Signals::install()?;
    let scratch = Scratch::create(&files.slug, &initial)?;
    loop {
        match editor::run(scratch.path(), &mut signals).await? {
            Ended::Saved => {}
            Ended::Failed(status) => bail!(
                "the editor failed ({status}): {} was not changed",
                files.shown()
            ),
            Ended::Signalled(signal) => {
                bail!("interrupted by {signal}: {} was not changed", files.shown())
            }
        }
        let edited = scratch.read()?;
        let problems: Vec<String> = match &edited {
            Some(text) if text.as_str() == initial.as_str() => {
                if global.quiet == 0 {
                    eprintln!("no changes: {} was not rewritten", files.shown());
                }
                return Ok(Exit::Success);
            }
            Some(text) => {
                let verdict = files.judge(text, &identities);
                match (verdict.blocking.is_empty(), verdict.manifest.clone()) {
                    (true, Some(manifest)) => {
                        // A shared group's change is judged by the agents that use it too.
                        let users =
                            if files.kind == Kind::Group && original.as_ref() != Some(&manifest) {
                                authoring::check_group_users(&files, &manifest, &identities)
                            } else {
                                Ok(Vec::new())
                            };
                        match users {
                            Ok(notes) => {
                                print_notes(&verdict.notes(&files));
                                print_notes(&notes);
                                save(&files, original.as_ref(), manifest, &identities, global)?;
                                return Ok(Exit::Success);
                            }
                            Err(AuthoringError::Refused { problems, .. }) => {
                                problems.iter().map(|p| format!("error: {p}")).collect()
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    _ => verdict.blocking.iter().map(ToString::to_string).collect(),
                }
            }
            None => vec![format!(
                "error: {}: the edited text is not UTF-8",
                files.shown()
            )],
        };
        for problem in &problems {
            eprintln!("{problem}");
        }
        if !ask_reopen(&mut signals).await? {
            bail!("aborted: {} was not changed", files.shown());
        }
    }
}

/// Writes a valid edit, unless it changes no key or value.
fn save(
    files: &AgentFiles<'_>,
    original: Option<&Manifest>,
    mut manifest: Manifest,
    identities: &crate::crypto::Identities,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let same = original.is_some_and(|o| {
        o.agent == manifest.agent && o.uses == manifest.uses && o.secrets == manifest.secrets
    });
    if same {
        if global.quiet == 0 {
            eprintln!(
                "no change to any key or value: {} was not rewritten",
                files.shown()
            );
        }
        return Ok(());
    }
    let note = files.save(&mut manifest, identities, Replace::Existing)?;
    print_notes(note.as_slice());
    if global.quiet == 0 {
        eprintln!("saved {}: {}", files.shown(), changes(original, &manifest));
    }
    Ok(())
}

/// On a terminal, asks whether to reopen the editor; elsewhere the answer is no.
async fn ask_reopen(signals: &mut Signals) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("stdin is not a terminal: not reopening the editor");
        return Ok(false);
    }
    eprint!("reopen the editor to fix it? [Y/n] ");
    let answer = signals
        .read_line()
        .await
        .context("cannot read the answer")?;
    Ok(match answer {
        None => false,
        Some(line) => matches!(line.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes"),
    })
}

/// "added A; changed B; removed C" — key names only.
fn changes(before: Option<&Manifest>, after: &Manifest) -> String {
    let Some(before) = before else {
        return format!("{} key(s)", after.secrets.len());
    };
    let old: BTreeSet<&String> = before.secrets.keys().collect();
    let new: BTreeSet<&String> = after.secrets.keys().collect();
    let join = |keys: Vec<&String>| {
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<&String> = new.difference(&old).copied().collect();
    let removed: Vec<&String> = old.difference(&new).copied().collect();
    let changed: Vec<&String> = new
        .intersection(&old)
        .copied()
        .filter(|k| before.secrets.get(*k) != after.secrets.get(*k))
        .collect();
    let mut parts = Vec::new();
    if before.uses != after.uses {
        parts.push("changed uses".to_owned());
    }
    for (label, keys) in [("added", added), ("changed", changed), ("removed", removed)] {
        if !keys.is_empty() {
            parts.push(format!("{label} {}", join(keys)));
        }
    }
    if parts.is_empty() {
        "keys and values unchanged".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    #[test]
    fn the_change_summary_names_keys_and_never_values() {
        let mut before = Manifest::new("a");
        before.secrets.insert("KEEP".into(), SecretValue::new("v1"));
        before
            .secrets
            .insert("ROTATE".into(), SecretValue::new("canary-old"));
        before.secrets.insert("DROP".into(), SecretValue::new("v3"));
        let mut after = before.clone();
        after.secrets.remove("DROP");
        after
            .secrets
            .insert("ROTATE".into(), SecretValue::new("canary-new"));
        after.secrets.insert("NEW".into(), SecretValue::new("v4"));
        let summary = changes(Some(&before), &after);
        assert_eq!(summary, "added NEW; changed ROTATE; removed DROP");
        assert!(!summary.contains("canary"));
    }
}
