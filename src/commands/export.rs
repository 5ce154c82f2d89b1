//! `castsync export AGENT [--env ENV] --format dotenv|json|shell [-o FILE]`: an agent's
//! effective values (its own, its shared groups', the environment's overlay) for another
//! program, and the loading `castsync run` shares with it.
//!
//! Values go to stdout only when it is not a terminal, or with `--reveal`; `-o FILE` is
//! created 0600 and never replaces a file without `--force`. Both commands load the agent
//! exactly as `reconcile` would: an agent that would not be applied (a required key missing,
//! a file nobody here can decrypt) is refused with its findings, before anything is written
//! or run.

use std::io::IsTerminal as _;

use anyhow::Context as _;

use super::{Exit, Repo};
use crate::atomic_write::{self, Mode, Replace};
use crate::cli::{ExportArgs, ExportFormat, GlobalArgs, ValuesArgs};
use crate::export::values::NotExported;
use crate::export::{self, Format};
use crate::plan::DesiredSecrets;

pub(super) fn run(global: &GlobalArgs, args: &ExportArgs) -> anyhow::Result<Exit> {
    if args.output.is_none() && !args.reveal && std::io::stdout().is_terminal() {
        return Err(crate::hint::WithHint::new(
            "export prints secret values, and stdout is a terminal",
            "redirect it (`> FILE`, `| program`), write a 0600 file with -o FILE, or pass --reveal to print the values here",
        )
        .into());
    }
    // A file that exists is refused before anything is decrypted.
    if let Some(path) = &args.output
        && !args.force
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(crate::hint::WithHint::new(
            format!("{} exists: export never replaces a file", path.display()),
            "pass --force to replace it, or choose another path",
        )
        .into());
    }
    let secrets = effective(global, &args.values, "export")?;
    let format = match args.format {
        ExportFormat::Dotenv => Format::Dotenv,
        ExportFormat::Json => Format::Json,
        ExportFormat::Shell => Format::Shell,
    };
    let text = export::render(&secrets, format)?;
    match &args.output {
        Some(path) => {
            let replace = if args.force {
                Replace::Existing
            } else {
                Replace::Never
            };
            atomic_write::write(path, text.as_bytes(), replace, Mode::Private)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if global.quiet == 0 {
                crate::say!(
                    "wrote {} key(s) of {} to {} (mode 0600): delete it when you are done",
                    secrets.len(),
                    args.values.agent,
                    path.display()
                );
            }
        }
        None => super::write_out(text.as_bytes())?,
    }
    Ok(Exit::Success)
}

/// The effective values of `values.agent` in its environment (`--env`, required when
/// castsync.yaml declares several), as `reconcile` would apply them (`export::values`); an
/// agent that does not load has its error findings printed. `command` names the caller in
/// messages.
pub(super) fn effective(
    global: &GlobalArgs,
    values: &ValuesArgs,
    command: &'static str,
) -> anyhow::Result<DesiredSecrets> {
    let repo = Repo::open(global)?;
    let env = repo
        .config()
        .one_environment(command, values.env.as_deref(), true)?;
    let identities = repo.identities()?;
    let request = export::values::Request {
        tree: repo.checkout.tree(),
        config: repo.config(),
        env: &env,
        identities: &identities,
        agent: &values.agent,
        only: &values.only,
        command,
    };
    let result = export::values::effective(&request);
    if let Err(NotExported::Invalid { findings, .. }) = &result {
        for finding in findings.iter().filter(|f| f.is_error()) {
            crate::say!("{finding}");
            if let Some(hint) = &finding.hint {
                crate::say!("{}", crate::hint::line("  ", hint));
            }
        }
    }
    Ok(result?)
}
