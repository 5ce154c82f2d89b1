//! Shell completion that knows the repository, through clap's dynamic completion: the script
//! `castsync completions SHELL` prints calls castsync back on every TAB press (with
//! `CASTSYNC_COMPLETE` set), and the agent arguments offer the repository's agent and shared
//! group names (see `crate::completion`).

use std::ffi::OsStr;

use clap::CommandFactory as _;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{CompleteEnv, EnvCompleter};

use super::{Cli, Shell};
use crate::completion::{self, Names};

/// The variable that makes castsync answer a completion request instead of running.
pub const COMPLETE_VAR: &str = "CASTSYNC_COMPLETE";

/// Answers a completion request and exits, when the shell's completion function called; a
/// normal run returns at once. Runs before anything is parsed or printed.
pub fn complete_if_asked() {
    CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// The script a shell sources to complete castsync: it asks the `castsync` on PATH.
pub fn registration(shell: Shell) -> Vec<u8> {
    let shell: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Powershell => &clap_complete::env::Powershell,
    };
    let mut script = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = shell.write_registration(
        COMPLETE_VAR,
        "castsync",
        "castsync",
        "castsync",
        &mut script,
    );
    script
}

/// Completes an agent, or a shared group when `--shared` is on the command line.
pub(super) fn agents_or_groups() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| names(current, Names::AgentsOrGroups))
}

/// Completes an agent.
pub(super) fn agents() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| names(current, Names::Agents))
}

fn names(current: &OsStr, kind: Names) -> Vec<CompletionCandidate> {
    // The shell passes the words typed so far after `--`: `castsync -- castsync set sup`.
    let words: Vec<String> = std::env::args().skip_while(|w| w != "--").skip(1).collect();
    completion::candidates(&words, &current.to_string_lossy(), kind)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}
