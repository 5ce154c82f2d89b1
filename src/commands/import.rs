//! `castsync import AGENT --from-dotenv FILE`: create an agent's manifest from a `.env` file,
//! or merge one into it.
//!
//! A key the manifest already holds with another value is refused unless `--overwrite`, and
//! the refusal names the keys, never the values. Keys the platform injects itself
//! (`unmanaged_keys`) are skipped with a warning: real `.env` files often carry them.

use std::path::Path;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::agent_files::{AgentFiles, Replace, read_secret_input};
use super::{Exit, Repo};
use crate::cli::{GlobalArgs, ImportArgs};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::schema;

pub(super) fn run(global: &GlobalArgs, args: &ImportArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo, &args.agent)?;
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

    let creating = existing.is_none();
    let mut manifest = existing.unwrap_or_else(|| Manifest::new(files.slug.clone()));
    let (mut added, mut updated, mut conflicts, mut skipped) = (0, 0, Vec::new(), Vec::new());
    for (key, value, _line) in entries {
        if repo.config().unmanaged_keys.contains(&key) {
            skipped.push(key);
            continue;
        }
        match manifest.secrets.get(&key) {
            Some(current) if *current == value => {}
            Some(_) if !args.overwrite => conflicts.push(key),
            Some(_) => {
                manifest.secrets.insert(key, value);
                updated += 1;
            }
            None => {
                manifest.secrets.insert(key, value);
                added += 1;
            }
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "{} already holds {} with a different value: nothing was imported\n  hint: pass --overwrite to replace them",
            files.shown(),
            conflicts.join(", ")
        );
    }
    for key in &skipped {
        eprintln!(
            "warning: {}: skipped {key}: Castari injects it itself (unmanaged_keys), so castsync never manages it",
            source.display()
        );
    }
    if added + updated == 0 && !creating {
        if global.quiet == 0 {
            eprintln!("no changes: {} already holds these values", files.shown());
        }
        return Ok(Exit::Success);
    }

    let verdict = files.judge(&manifest.to_yaml());
    if !verdict.blocking.is_empty() {
        return Err(verdict.refusal(&files));
    }
    verdict.report(&files);
    let replace = if creating {
        Replace::Never
    } else {
        Replace::Existing
    };
    files.save(&mut manifest, &identities, replace)?;
    if global.quiet == 0 {
        let verb = if creating { "created" } else { "updated" };
        eprintln!(
            "{verb} {}: {added} key(s) added, {updated} replaced",
            files.shown()
        );
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
