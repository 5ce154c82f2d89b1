//! `castsync run AGENT [--env ENV] [--only KEY]… -- CMD [ARGS]`: runs a command with the
//! agent's effective values in its environment, the way `doppler run` or `sops exec-env` do.
//!
//! Nothing touches the disk: the values go from the decrypted manifests straight into the
//! command's environment. On Unix castsync then *becomes* the command (`exec`): nothing of
//! castsync remains to clean up, so its exit status and its signals (SIGINT, SIGTERM,
//! SIGHUP from a terminal or a supervisor) are the command's own. castsync's own secrets
//! (`CASTSYNC_AGE_KEY`, the platforms' API keys) are not passed on.

use std::process::Command;

use super::Exit;
use crate::cli::{GlobalArgs, RunArgs};

/// Variables castsync reads its own secrets from: never handed to the command.
const OWN_SECRETS: &[&str] = &["CASTSYNC_AGE_KEY", crate::platform::API_KEY_ENV];

pub(super) fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<Exit> {
    let secrets = super::export::effective(global, &args.values, "run")?;
    let Some((program, rest)) = args.command.split_first() else {
        anyhow::bail!("no command given: castsync run AGENT -- CMD [ARGS]");
    };
    let mut command = Command::new(program);
    command.args(rest);
    for var in OWN_SECRETS {
        command.env_remove(var);
    }
    for var in api_key_variables(global) {
        command.env_remove(var);
    }
    for (key, value) in &secrets {
        crate::export::environment_safe(key, value.expose(), "an environment variable")?;
        if args.keep_env && std::env::var_os(key).is_some() {
            continue;
        }
        command.env(key, value.expose());
    }
    drop(secrets);
    exec(command, program)
}

/// The API key variables of castsync.yaml's environments.
fn api_key_variables(global: &GlobalArgs) -> Vec<String> {
    let Ok(repo) = super::Repo::open(global) else {
        return Vec::new();
    };
    let config = repo.config();
    config
        .all_environments()
        .iter()
        .map(|env| config.api_key_env(env).to_owned())
        .collect()
}

/// Replaces castsync with the command; returns only if that failed.
#[cfg(unix)]
fn exec(mut command: Command, program: &str) -> anyhow::Result<Exit> {
    use std::os::unix::process::CommandExt as _;
    let e = command.exec();
    Ok(not_started(&e, program))
}

/// Without `exec`: runs the command and passes its exit status on.
#[cfg(not(unix))]
fn exec(mut command: Command, program: &str) -> anyhow::Result<Exit> {
    match command.status() {
        Ok(status) => Ok(Exit::Code(
            status.code().map_or(1, |c| c.clamp(0, 255) as u8),
        )),
        Err(e) => Ok(not_started(&e, program)),
    }
}

/// Says why the command did not start; the exit status `env(1)` uses: 127 when it is not
/// found, 126 when it cannot be run.
fn not_started(e: &std::io::Error, program: &str) -> Exit {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    super::print_error(&anyhow::Error::new(crate::hint::WithHint::new(
        format!("cannot run {}: {e}", crate::escape::terminal(program)),
        "check the command's name and that it is on PATH (castsync run AGENT -- CMD [ARGS])",
    )));
    Exit::Code(code)
}
