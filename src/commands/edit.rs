//! `castsync edit AGENT` (or `edit --shared GROUP`): the manifest in `$VISUAL`/`$EDITOR`,
//! judged on save (a shared group's change also from the side of the agents that use it).
//!
//! The plaintext goes to a 0600 file in a private 0700 temporary directory (editors leave
//! swap and backup files next to the file they edit: they land in that directory too), and
//! the directory is removed on every way out: a save, an abort, an editor that fails, an
//! error, SIGINT, SIGTERM or SIGHUP. An invalid result is shown and, on a terminal, the editor
//! can be reopened; otherwise the original file is left byte-for-byte as it was. A save that
//! changes no key or value rewrites nothing.

use std::io::IsTerminal as _;

use anyhow::{Context as _, bail};

use super::{Exit, Repo, manifest_files, print_notes};
use crate::authoring::edit::{self, Judged, Saved};
use crate::authoring::editor::{self, Ended, Scratch, Signals};
use crate::cli::{AgentArg, GlobalArgs};

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
            crate::say!("warning: {e}\n  opening the file as it is: fix it in the editor");
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
        let edited = edited.as_ref().map(|text| text.as_str());
        if edited == Some(initial.as_str()) {
            if global.quiet == 0 {
                crate::say!("no changes: {} was not rewritten", files.shown());
            }
            return Ok(Exit::Success);
        }
        match edit::judge(&files, original.as_ref(), edited, &identities)? {
            Judged::Accepted { manifest, notes } => {
                print_notes(&notes);
                match edit::save(&files, original.as_ref(), manifest, &identities)? {
                    Saved::Unchanged if global.quiet == 0 => crate::say!(
                        "no change to any key or value: {} was not rewritten",
                        files.shown()
                    ),
                    Saved::Unchanged => {}
                    Saved::Written { changes, note } => {
                        print_notes(note.as_slice());
                        if global.quiet == 0 {
                            crate::say!("saved {}: {changes}", files.shown());
                        }
                    }
                }
                return Ok(Exit::Success);
            }
            Judged::Rejected(problems) => {
                for problem in &problems {
                    crate::say!("{problem}");
                }
            }
        }
        if !ask_reopen(&mut signals).await? {
            bail!("aborted: {} was not changed", files.shown());
        }
    }
}

/// On a terminal, asks whether to reopen the editor; elsewhere the answer is no.
async fn ask_reopen(signals: &mut Signals) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        crate::say!("stdin is not a terminal: not reopening the editor");
        return Ok(false);
    }
    crate::say_partial!("reopen the editor to fix it? [Y/n] ");
    let answer = signals
        .read_line()
        .await
        .context("cannot read the answer")?;
    Ok(match answer {
        None => false,
        Some(line) => matches!(line.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes"),
    })
}
