//! How `--help` reads, in the manner of git and Terraform: `castsync --help` groups the
//! commands by what they are for and lists the options every command accepts; each command's
//! own help shows its own flags and one line pointing at those global options, which
//! `castsync help options` prints in full. Parsing is unchanged: the commands are only hidden
//! from clap's flat list, and the global options only from the subcommands' help. The man
//! pages follow the same split: castsync(1) has the global options, castsync-COMMAND(1) a
//! command's own.

use clap::builder::StyledStr;
use clap::{Command, CommandFactory as _};

use super::Cli;

/// The commands of `castsync --help`, by heading, in the order a newcomer meets them.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "Main commands",
        &[
            "init",
            "keygen",
            "new",
            "set",
            "unset",
            "edit",
            "show",
            "import",
            "run",
            "export",
            "validate",
            "reconcile",
            "watch",
        ],
    ),
    (
        "Team and review",
        &[
            "diff", "rekey", "audit", "guard", "history", "state", "doctor",
        ],
    ),
    (
        "Integration",
        &[
            "git-setup",
            "textconv",
            "merge-driver",
            "completions",
            "man",
            "emulator",
        ],
    ),
];

/// The pseudo-command whose help is the global options: `castsync help options`.
pub const OPTIONS: &str = "options";

/// The line each command's help ends its flags with, instead of repeating the global options.
const GLOBAL_LINE: &str =
    "Global options (-C DIR, -i FILE, -v, -q, …): see `castsync help options`.";

/// The command line as castsync parses and prints it. Completions use the derive's tree as
/// it is ([`Cli::command`]), where nothing is hidden.
pub fn command() -> Command {
    let template = format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{{all-args}}\n\n{GLOBAL_LINE}{{after-help}}"
    );
    let cmd = subcommands_without_globals(Cli::command(), &template);
    let listing = grouped_commands(&cmd);
    cmd.mut_subcommands(|s| s.hide(true))
        .override_usage("castsync [OPTIONS] <COMMAND>")
        .help_template(format!(
            "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listing}\n{{all-args}}{{after-help}}"
        ))
}

/// The tree the man pages are made from: castsync(1) with the global options, and one page
/// per command with its own flags and a pointer back to castsync(1).
pub fn man_command() -> Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let globals = global_ids(&cmd);
    for sub in cmd.get_subcommands_mut() {
        let after = sub
            .get_after_long_help()
            .or(sub.get_after_help())
            .map(|h| format!("{h}\n\n"))
            .unwrap_or_default();
        *sub = hide_globals(std::mem::take(sub), &globals).after_long_help(format!(
            "{after}The options every command accepts (-C, --config, -i, -v, -q, --color…) are in castsync(1)."
        ));
    }
    cmd
}

/// The ids of the options every command accepts.
fn global_ids(cmd: &Command) -> Vec<clap::Id> {
    cmd.get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect()
}

/// `cmd` without the global options in its help.
fn hide_globals(cmd: Command, globals: &[clap::Id]) -> Command {
    cmd.mut_args(|a| {
        if globals.contains(a.get_id()) {
            a.hide(true)
        } else {
            a
        }
    })
}

/// Every subcommand of `cmd` (but `help` and `options`) with the global options hidden, a
/// compact `--help` (`castsync help COMMAND` prints the long one, as git does) and the help
/// `template`.
fn subcommands_without_globals(mut cmd: Command, template: &str) -> Command {
    // Building copies the global options into every subcommand, so they can be hidden there.
    cmd.build();
    let globals = global_ids(&cmd);
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == OPTIONS {
            continue;
        }
        compact(sub, "", &globals, template);
    }
    cmd
}

/// `sub` (a command of `parent`, "" at the top) and its own commands, but `help`, with the
/// global options hidden, a compact `--help` and the help `template`.
fn compact(sub: &mut Command, parent: &str, globals: &[clap::Id], template: &str) {
    if sub.get_name() == "help" {
        return;
    }
    let name = format!("{parent}{}", sub.get_name());
    let details = format!("Print help (each flag's details: castsync help {name})");
    *sub = hide_globals(std::mem::take(sub), globals)
        .mut_arg("help", |a| {
            a.action(clap::ArgAction::HelpShort).help(details)
        })
        .help_template(template.to_owned());
    for nested in sub.get_subcommands_mut() {
        compact(nested, &format!("{name} "), globals, template);
    }
}

/// The grouped command list: one heading per group, each command with its one-line about.
fn grouped_commands(cmd: &Command) -> String {
    let header = cmd.get_styles().get_header();
    let literal = cmd.get_styles().get_literal();
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (heading, names) in GROUPS {
        out.push_str(&format!("{header}{heading}:{header:#}\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(Command::get_about)
                .map(StyledStr::to_string)
                .unwrap_or_default();
            let pad = " ".repeat(width - name.len());
            out.push_str(&format!("  {literal}{name}{literal:#}{pad}  {about}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "`castsync help COMMAND` shows a command's flags and examples; `castsync help {OPTIONS}` the\n\
         options below, which every command accepts.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let cmd = Cli::command();
        let mut grouped: Vec<&str> = GROUPS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        grouped.sort_unstable();
        let before = grouped.len();
        grouped.dedup();
        assert_eq!(before, grouped.len(), "a command is in two groups");
        let mut commands: Vec<&str> = cmd
            .get_subcommands()
            .map(Command::get_name)
            .filter(|n| *n != OPTIONS)
            .collect();
        commands.sort_unstable();
        assert_eq!(grouped, commands);
    }
}
