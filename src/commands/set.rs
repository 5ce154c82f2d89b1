//! `castsync set AGENT KEY` and `castsync unset AGENT KEY`.
//!
//! The value comes from stdin when stdin is not a terminal (`printf %s "$TOKEN" | castsync
//! set …`), otherwise from a hidden prompt asked twice; never from the command line, where it
//! would land in shell history and `ps`. The new manifest is judged like every other before
//! it is written.

use std::io::IsTerminal as _;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::agent_files::{AgentFiles, Replace, read_secret_input};
use super::{Exit, Repo};
use crate::cli::{GlobalArgs, SetArgs, UnsetArgs};
use crate::manifest::{MAX_VALUE_BYTES, Manifest};
use crate::names;
use crate::secret::SecretValue;

pub(super) fn set(global: &GlobalArgs, args: &SetArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo, &args.agent)?;
    names::validate_key(&args.key)?;
    let identities = repo.identities()?;
    let mut manifest = files.require(&identities)?;

    let value = read_value(&args.key, args.raw)?;
    let key = args.key.as_str();
    let previous = manifest.secrets.insert(key.to_owned(), value.clone());
    if previous.as_ref() == Some(&value) {
        if global.quiet == 0 {
            eprintln!("{key} unchanged in {} (same value)", files.shown());
        }
        return Ok(Exit::Success);
    }
    commit(&files, manifest, &identities)?;
    if global.quiet == 0 {
        let verb = if previous.is_some() {
            "updated"
        } else {
            "added"
        };
        eprintln!("{verb} {key} in {}", files.shown());
    }
    Ok(Exit::Success)
}

pub(super) fn unset(global: &GlobalArgs, args: &UnsetArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo, &args.agent)?;
    let identities = repo.identities()?;
    let mut manifest = files.require(&identities)?;
    let key = args.key.as_str();
    if manifest.secrets.remove(key).is_none() {
        if args.idempotent {
            if global.quiet == 0 {
                eprintln!("{key} is not in {}: nothing to do", files.shown());
            }
            return Ok(Exit::Success);
        }
        let known: Vec<&str> = manifest.secrets.keys().map(String::as_str).collect();
        let hint = match crate::suggest::nearest(key, &known) {
            Some(near) => format!("did you mean {near}?"),
            None => "pass --idempotent to accept an absent key".to_owned(),
        };
        bail!(
            "key {key} is not in {} (agent {})\n  hint: {hint}",
            files.shown(),
            files.slug
        );
    }
    commit(&files, manifest, &identities)?;
    if global.quiet == 0 {
        eprintln!("removed {key} from {}", files.shown());
    }
    Ok(Exit::Success)
}

/// Judges the changed manifest and writes it, or refuses with the reasons.
pub(super) fn commit(
    files: &AgentFiles<'_>,
    mut manifest: Manifest,
    identities: &crate::crypto::Identities,
) -> anyhow::Result<()> {
    let verdict = files.judge(&manifest.to_yaml());
    if !verdict.blocking.is_empty() {
        return Err(verdict.refusal(files));
    }
    verdict.report(files);
    files.save(&mut manifest, identities, Replace::Existing)
}

/// The value for `key`: all of stdin when it is not a terminal (one trailing newline removed
/// unless `raw`), else a hidden prompt, asked twice.
fn read_value(key: &str, raw: bool) -> anyhow::Result<SecretValue> {
    let text = if std::io::stdin().is_terminal() {
        prompt_twice(key)?
    } else {
        read_stdin(raw)?
    };
    Ok(SecretValue::new(text.as_str()))
}

fn read_stdin(raw: bool) -> anyhow::Result<Zeroizing<String>> {
    // Room for the largest value and a trailing CRLF.
    let Some(mut bytes) = read_secret_input(std::io::stdin().lock(), MAX_VALUE_BYTES + 2)
        .context("cannot read the value from stdin")?
    else {
        bail!(too_large());
    };
    let len = bytes.len();
    if !raw && bytes.ends_with(b"\r\n") {
        bytes.truncate(len - 2);
    } else if !raw && bytes.ends_with(b"\n") {
        bytes.truncate(len - 1);
    }
    if bytes.len() > MAX_VALUE_BYTES {
        bail!(too_large());
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!(
            "the value on stdin is not UTF-8 text; for binary data, store it base64-encoded (e.g. `base64 -w0 FILE | castsync set …`)"
        );
    };
    Ok(Zeroizing::new(text.to_owned()))
}

fn too_large() -> String {
    format!(
        "the value on stdin is over the 64 KiB limit ({MAX_VALUE_BYTES} bytes); keep large files out of secrets"
    )
}

fn prompt_twice(key: &str) -> anyhow::Result<Zeroizing<String>> {
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("value for {key} (hidden): "))
            .context("cannot read the value from the terminal")?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("again, to confirm: ")
            .context("cannot read the value from the terminal")?,
    );
    if first != second {
        bail!("the two entries differ: {key} was not changed; run the command again");
    }
    Ok(first)
}
