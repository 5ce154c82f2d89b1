//! `castsync completions SHELL` and `castsync man`: generated from the clap definitions in
//! `cli.rs`, so they can never disagree with the real flags.
//!
//! Both render into memory first: clap_complete panics when its writer fails, and a closed
//! pipe (`castsync man | head`) must not turn into a panic.

use anyhow::Context;

use crate::atomic_write::{self, Mode, Replace};
use crate::cli::{CompletionsArgs, ManArgs, Shell};
use crate::commands::Exit;

/// Prints the completion script for `args.shell` on stdout.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    print(&completion_script(args.shell))
}

/// `castsync man`: castsync.1 on stdout, or with `--dir` every page written into DIR.
pub fn man(args: &ManArgs) -> anyhow::Result<Exit> {
    let pages = man_pages()?;
    let Some(dir) = &args.dir else {
        return print(&pages[0].1);
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}",
            crate::escape::terminal(&dir.display().to_string())
        )
    })?;
    for (name, page) in &pages {
        let path = dir.join(name);
        atomic_write::write(&path, page, Replace::Existing, Mode::Default).with_context(|| {
            format!(
                "cannot write {}",
                crate::escape::terminal(&path.display().to_string())
            )
        })?;
    }
    crate::say!(
        "wrote {} man pages (castsync.1, castsync-COMMAND.1) to {}",
        pages.len(),
        crate::escape::terminal(&dir.display().to_string())
    );
    Ok(Exit::Success)
}

/// Every man page as (file name, roff): castsync.1 first, then castsync-COMMAND.1 for each
/// command (and castsync-COMMAND-SUBCOMMAND.1), so every page that a page names exists.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let cmd = crate::cli::man_command();
    let render = |man: clap_mangen::Man| -> anyhow::Result<(String, Vec<u8>)> {
        let mut page = Vec::new();
        man.render(&mut page).context("cannot render a man page")?;
        Ok((man.get_filename(), page))
    };
    let mut pages = vec![render(clap_mangen::Man::new(cmd.clone()))?];
    // Nested commands too (castsync-state-export.1): a command's page names its own.
    let mut commands: Vec<&clap::Command> = cmd.get_subcommands().collect();
    while let Some(sub) = commands.pop() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        pages.push(render(clap_mangen::Man::new(sub.clone()))?);
        commands.extend(sub.get_subcommands());
    }
    Ok(pages)
}

/// The completion script for one shell: it asks the `castsync` on PATH for candidates,
/// so agent and shared group names complete from the repository being worked on.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    crate::cli::registration(shell)
}

/// Prints the options every command accepts (`castsync help options` shows the same).
pub fn options() -> anyhow::Result<Exit> {
    let mut cmd = crate::cli::command();
    let help = cmd
        .find_subcommand_mut(crate::cli::OPTIONS)
        .map(|sub| sub.render_long_help().to_string())
        .unwrap_or_default();
    print(help.as_bytes())
}

fn print(bytes: &[u8]) -> anyhow::Result<Exit> {
    super::write_out(bytes)?;
    Ok(Exit::Success)
}
