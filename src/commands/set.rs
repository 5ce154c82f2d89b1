//! `castsync set AGENT KEY` and `castsync unset AGENT KEY` (with `--shared`, on a shared
//! group: every agent that takes the key follows at the next reconcile).
//!
//! The value comes from stdin when stdin is not a terminal (`printf %s "$TOKEN" | castsync
//! set …`), otherwise from a hidden prompt asked twice; never from the command line, where it
//! would land in shell history and `ps`. The new manifest is judged like every other before
//! it is written.

use std::io::IsTerminal as _;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::{Exit, Repo, manifest_files, print_notes};
use crate::authoring::{self, SetOutcome, UnsetOutcome, read_secret_input};
use crate::cli::{GlobalArgs, SetArgs, UnsetArgs};
use crate::manifest::MAX_VALUE_BYTES;
use crate::names;
use crate::secret::SecretValue;

/// Refuses a key that is not a valid name without repeating it (`names::key_fault`): a CI
/// log need not keep what the shell history already has.
fn refuse_invalid_key(key: &str) -> anyhow::Result<()> {
    let Some(fault) = names::key_fault(key) else {
        return Ok(());
    };
    Err(crate::hint::WithHint::new(
        format!(
            "invalid key name ({}, not shown in case it is a value): {fault}",
            crate::escape::length_of(key)
        ),
        "keys are environment variable names ([A-Za-z_][A-Za-z0-9_]*); the value goes on stdin or at the prompt: printf %s \"$VALUE\" | castsync set AGENT KEY",
    )
    .into())
}

pub(super) fn set(global: &GlobalArgs, args: &SetArgs) -> anyhow::Result<Exit> {
    if let Some((key, _value)) = args.key.split_once('=') {
        // `set AGENT KEY=value`: the value is on the command line already; never repeat it.
        return Err(crate::hint::WithHint::new(
            format!(
                "key \"{}=…\" carries a value after '=' (not shown): a value on the command line shows in `ps`, shell history and CI logs",
                crate::escape::terminal(key)
            ),
            format!("give the key alone and the value on stdin or at the prompt: printf %s \"$VALUE\" | castsync set AGENT {}", crate::escape::terminal(key)),
        )
        .into());
    }
    let repo = Repo::open(global)?;
    let files = manifest_files(&repo, &args.agent, args.shared, args.env.as_deref())?;
    refuse_invalid_key(&args.key)?;
    let identities = repo.identities()?;
    let manifest = files.require_or_new_overlay(&identities)?;

    let value = read_value(&args.key, args.raw)?;
    let key = args.key.as_str();
    let written = authoring::set_key(&files, manifest, &identities, key, value)?;
    print_notes(&written.notes);
    if global.quiet == 0 {
        match written.outcome {
            SetOutcome::Unchanged => {
                crate::say!("{key} unchanged in {} (same value)", files.shown())
            }
            SetOutcome::Updated => crate::say!("updated {key} in {}", files.shown()),
            SetOutcome::Added => crate::say!("added {key} in {}", files.shown()),
        }
    }
    Ok(Exit::Success)
}

pub(super) fn unset(global: &GlobalArgs, args: &UnsetArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = manifest_files(&repo, &args.agent, args.shared, args.env.as_deref())?;
    let identities = repo.identities()?;
    let key = args.key.as_str();
    let written = authoring::unset_key(&files, &identities, key, args.idempotent)?;
    print_notes(&written.notes);
    if global.quiet == 0 {
        match written.outcome {
            UnsetOutcome::Absent => {
                crate::say!("{key} is not in {}: nothing to do", files.shown())
            }
            UnsetOutcome::Removed => crate::say!("removed {key} from {}", files.shown()),
        }
    }
    Ok(Exit::Success)
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
