//! `castsync import AGENT --from-dotenv FILE`: create an agent's manifest from a `.env` file,
//! or merge one into it.
//!
//! A key the manifest already holds with another value is refused unless `--overwrite`, and
//! the refusal names the keys, never the values. Keys the platform injects itself
//! (`unmanaged_keys`) are skipped with a warning: real `.env` files often carry them.

use std::path::Path;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::{Exit, Repo, print_notes};
use crate::authoring::{self, read_secret_input};
use crate::cli::{GlobalArgs, ImportArgs};
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::schema;

pub(super) fn run(global: &GlobalArgs, args: &ImportArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = super::manifest_files(&repo, &args.agent, false, args.env.as_deref())?;
    let identities = repo.identities()?;
    let existing = files.open(&identities)?;

    let from_stdin = args.from_dotenv == Path::new("-");
    let source = if from_stdin {
        Path::new("(stdin)")
    } else {
        args.from_dotenv.as_path()
    };
    let text = read_source(&args.from_dotenv, from_stdin)?;
    let entries = schema::parse_dotenv(&text, source)?;
    drop(text);

    let written = authoring::import(&files, existing, &identities, entries, args.overwrite)?;
    let done = &written.outcome;
    for key in &done.skipped {
        crate::say!(
            "warning: {}: skipped {key}: Castari injects it itself (unmanaged_keys), so castsync never manages it",
            source.display()
        );
    }
    print_notes(&written.notes);
    if global.quiet == 0 {
        if !done.written {
            crate::say!("no changes: {} already holds these values", files.shown());
        } else {
            let verb = if done.created { "created" } else { "updated" };
            crate::say!(
                "{verb} {}: {} key(s) added, {} replaced",
                files.shown(),
                done.added,
                done.updated
            );
        }
    }
    Ok(Exit::Success)
}

/// The whole dotenv text (it holds secrets: zeroized on drop), at most a manifest's size.
fn read_source(path: &Path, from_stdin: bool) -> anyhow::Result<Zeroizing<String>> {
    let shown = if from_stdin {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let read = if from_stdin {
        read_secret_input(std::io::stdin().lock(), MAX_MANIFEST_BYTES)
    } else {
        std::fs::File::open(path).and_then(|f| read_secret_input(f, MAX_MANIFEST_BYTES))
    };
    let Some(bytes) = read.with_context(|| format!("cannot read {shown}"))? else {
        bail!("{shown} is over 1 MiB, the largest manifest castsync accepts");
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!("{shown} is not UTF-8 text");
    };
    Ok(Zeroizing::new(text.to_owned()))
}
