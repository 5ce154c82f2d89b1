//! `castsync validate [AGENT…]`: check the repository offline, as reconcile would judge it
//! (`crate::validate`), and print the findings (`validate::render`) as text, versioned JSON
//! or Markdown; exit 1 on any error.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Exit, Repo};
use crate::cli::{GlobalArgs, OutputFormat, ValidateArgs};
use crate::config;
use crate::source::{Checkout, CheckoutError};
use crate::validate::{self, Request, Validation, render};

pub(super) fn run(global: &GlobalArgs, args: &ValidateArgs) -> anyhow::Result<Exit> {
    let root = Repo::locate(global)?;
    let config_shown = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::FILE_NAME));
    let checkout = match Checkout::worktree(&root, global.config.as_deref()) {
        Ok(checkout) => checkout,
        Err(CheckoutError::Config(e)) => {
            return report(
                &Validation::unreadable_config(&config_shown, &e),
                args.output,
            );
        }
        Err(e) => return Err(e.into()),
    };
    let repo = Repo::with_checkout(root, checkout, global);
    let identities = repo.identities()?;
    let envs = repo.config().environments_in_run(&args.envs)?;
    let validation = validate::validate(&Request {
        root: &repo.root,
        checkout: &repo.checkout,
        config_shown: &config_shown,
        explicit_config: global.config.as_deref(),
        identities: &identities,
        envs: &envs,
        only: &args.agents.iter().cloned().collect::<BTreeSet<_>>(),
    })?;
    report(&validation, args.output)
}

/// Prints the findings and a summary; the exit code follows the errors.
fn report(validation: &Validation, output: OutputFormat) -> anyhow::Result<Exit> {
    match output {
        OutputFormat::Text => super::print_out(render::text(validation))?,
        OutputFormat::Json => super::print_out(format_args!("{:#}\n", render::json(validation)))?,
        OutputFormat::Markdown => super::print_out(render::markdown(validation))?,
    }
    Ok(if validation.errors() == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}
