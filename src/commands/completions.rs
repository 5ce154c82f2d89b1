//! `castsync completions SHELL` and `castsync man`: generated from the clap definitions in
//! `cli.rs`, so they can never disagree with the real flags.
//!
//! Both render into memory first: clap_complete panics when its writer fails, and a closed
//! pipe (`castsync man | head`) must not turn into a panic.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::commands::Exit;

/// Prints the completion script for `args.shell` on stdout.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    print(&completion_script(args.shell))
}

/// Prints the man page (roff) on stdout: `castsync man > castsync.1`.
pub fn man() -> anyhow::Result<Exit> {
    print(&man_page()?)
}

/// The completion script for one shell, for a binary named `castsync`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    // Writing into a Vec cannot fail, so clap_complete's internal expect cannot fire.
    clap_complete::generate(shell, &mut cmd, "castsync", &mut script);
    script
}

/// The top-level man page: synopsis, global options and one line per subcommand. A page
/// per subcommand would need files (`castsync-reconcile.1`, …); this command prints one page
/// on stdout, so it points at `--help` for each subcommand's own flags.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let cmd = Cli::command()
        .disable_help_subcommand(true)
        .after_long_help(
            "Each subcommand documents its own options: castsync SUBCOMMAND --help \
             (for example castsync reconcile --help).",
        );
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .context("cannot render the man page")?;
    Ok(page)
}

fn print(bytes: &[u8]) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Exit::Success),
        // The reader went away (`| head`): what it wanted has been written.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(err) => Err(err).context("cannot write to stdout"),
    }
}
