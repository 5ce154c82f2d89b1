//! `castsync export AGENT [--env ENV] --format dotenv|json|shell [-o FILE]`: an agent's
//! effective values (its own, its shared groups', the environment's overlay) for another
//! program, and the loading `castsync run` shares with it.
//!
//! Values go to stdout only when it is not a terminal, or with `--reveal`; `-o FILE` is
//! created 0600 and never replaces a file without `--force`. Both commands load the agent
//! exactly as `reconcile` would: an agent that would not be applied (a required key missing,
//! a file nobody here can decrypt) is refused with its findings, before anything is written
//! or run.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;

use anyhow::Context as _;

use super::{Exit, Repo};
use crate::atomic_write::{self, Mode, Replace};
use crate::cli::{ExportArgs, ExportFormat, GlobalArgs, ValuesArgs};
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
                eprintln!(
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

/// The effective values of the agent in its environment (`--env`, required when
/// castsync.yaml declares several), as `reconcile` would apply them; only the keys `--only`
/// names, when it names any (each must be among them). `command` names the caller in
/// messages.
pub(super) fn effective(
    global: &GlobalArgs,
    values: &ValuesArgs,
    command: &str,
) -> anyhow::Result<DesiredSecrets> {
    let (agent, only) = (values.agent.as_str(), &values.only);
    let repo = Repo::open(global)?;
    let env = repo
        .config()
        .one_environment(command, values.env.as_deref(), true)?;
    let identities = repo.identities()?;
    let selected = BTreeSet::from([agent.to_owned()]);
    let tree = repo.checkout.tree();
    let mut loaded = crate::load::load_all(tree, repo.config(), &env, &identities, &selected)?;
    let Some(load) = loaded.agents.remove(agent) else {
        anyhow::bail!("agent {agent:?} was not loaded");
    };
    let Some(secrets) = load.effective.map(|e| e.secrets) else {
        for finding in load.findings.iter().filter(|f| f.is_error()) {
            eprintln!("{finding}");
            if let Some(hint) = &finding.hint {
                eprintln!("{}", crate::hint::line("  ", hint));
            }
        }
        return Err(crate::hint::WithHint::new(
            format!(
                "{command} {agent}: the agent's manifest{} does not pass validation (above): nothing was {}",
                env.suffix(),
                if command == "run" { "run" } else { "written" }
            ),
            format!("fix it, then check with `castsync validate{}`", env_flag(&env)),
        )
        .into());
    };
    if only.is_empty() {
        return Ok(secrets);
    }
    select(secrets, only, agent, &env)
}

/// ` --env NAME`, or nothing for the implicit environment.
fn env_flag(env: &crate::environment::Environment) -> String {
    env.name()
        .map(|n| format!(" --env {n}"))
        .unwrap_or_default()
}

/// The keys of `only`, each of which `secrets` must hold.
fn select(
    mut secrets: DesiredSecrets,
    only: &[String],
    agent: &str,
    env: &crate::environment::Environment,
) -> anyhow::Result<DesiredSecrets> {
    if let Some(missing) = only.iter().find(|k| !secrets.contains_key(*k)) {
        let known: Vec<&str> = secrets.keys().map(String::as_str).collect();
        return Err(crate::hint::WithHint::new(
            format!(
                "--only {}: agent {agent}{} has no such key",
                crate::escape::terminal(missing),
                env.suffix()
            ),
            format!("its keys: {}", known.join(", ")),
        )
        .into());
    }
    secrets.retain(|k, _| only.contains(k));
    Ok(secrets)
}
