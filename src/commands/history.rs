//! `castsync history`: print the apply history kept next to a state file (`history`), as
//! aligned text or versioned JSON. It reads only; it never takes the state lock, so it works
//! while a reconcile or the daemon runs.

use anyhow::Context as _;

use crate::cli::{GlobalArgs, HistoryArgs, HistoryFormat};
use crate::commands::{Exit, Repo, print_out};
use crate::environment::Environment;
use crate::history;
use crate::render;
use crate::render::history::escape;
use crate::target;

pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> anyhow::Result<Exit> {
    let state = state_of(
        global,
        "history",
        args.state.as_deref(),
        args.env.as_deref(),
    )?;
    let path = history::path_for_state(&state);
    // The repository's own state not there yet is an empty history (`[]` in JSON); a
    // --state FILE that does not exist is more likely a mistyped path.
    if args.state.is_some()
        && !state.exists()
        && !path.exists()
        && !history::rotated(&path).exists()
    {
        return Err(crate::hint::WithHint::new(
            format!(
                "no state file at {}: nothing has been applied with it",
                state.display()
            ),
            "check the path: a daemon keeps its state in its --data-dir (one folder per remote), and without --state castsync reads the repository's .castsync/state.db",
        )
        .into());
    }
    let read = history::read(&path)?;
    let cutoff = args
        .since
        .map(|d| {
            time::Duration::try_from(d)
                .ok()
                .and_then(|d| time::OffsetDateTime::now_utc().checked_sub(d))
                .context("--since reaches too far back")
        })
        .transpose()?;
    let entries = read.select(args.agent.as_deref(), cutoff);
    for note in render::history::read_notes(&read, &path) {
        crate::say!("{note}");
    }
    match args.output {
        HistoryFormat::Json => {
            let doc = history::document(&entries, &read, Some(&path));
            print_out(format_args!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        HistoryFormat::Text if entries.is_empty() => {
            let agent = args.agent.as_deref();
            print_out(render::history::nothing_recorded(agent, args.since, &path))?;
            // A mistyped agent reads like one never applied: list the ones the history knows.
            if let Some(agent) = agent
                && !read.entries.is_empty()
                && !read.entries.iter().any(|e| e.agent == agent)
            {
                crate::say!(
                    "note: no entry names agent {}; agents in the history: {}",
                    escape(agent),
                    escape(&read.agents().join(", "))
                );
            }
        }
        HistoryFormat::Text => print_out(render::history::table(&entries))?,
    }
    Ok(Exit::Success)
}

/// The state a read-only command (`history`, `state export`) looks at: `--state`, else the
/// repository's, in the environment `--env` names, else the only one (the implicit one of a
/// repository without environments, or the one `--state` names by its file). A repository
/// with environments needs `--env` to say which.
pub(super) fn state_of(
    global: &GlobalArgs,
    command: &str,
    state: Option<&std::path::Path>,
    env: Option<&str>,
) -> anyhow::Result<std::path::PathBuf> {
    let path = match state {
        Some(path) => path.to_owned(),
        None => Repo::locate(global)?.join(target::STATE_FILE),
    };
    let environment = if env.is_none() && state.is_some() {
        Environment::IMPLICIT
    } else {
        match Repo::open(global) {
            Ok(repo) => repo.config().one_environment(command, env, true)?,
            // Without a readable config there are no environments to choose from.
            Err(_) if env.is_none() => Environment::IMPLICIT,
            Err(e) => return Err(e),
        }
    };
    Ok(environment.state_path(&path))
}
