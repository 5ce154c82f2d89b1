//! `castsync state export`: print the state (`state`) as the JSON document castsync kept in
//! its state file before the state moved into a database. It reads only: no lock, no
//! migration, so it works beside a running reconcile or daemon.

use std::io::Write as _;

use crate::cli::{GlobalArgs, StateArgs, StateCommand, StateExportArgs};
use crate::commands::Exit;
use crate::state::{State, StateError, StorePaths};

pub fn run(global: &GlobalArgs, args: &StateArgs) -> anyhow::Result<Exit> {
    match &args.command {
        StateCommand::Export(args) => export(global, args),
    }
}

fn export(global: &GlobalArgs, args: &StateExportArgs) -> anyhow::Result<Exit> {
    let path = super::history::state_of(
        global,
        "state export",
        args.state.as_deref(),
        args.env.as_deref(),
    )?;
    let paths = StorePaths::of(&path);
    if !paths.db.exists() && !paths.legacy.exists() {
        return Err(crate::hint::WithHint::new(
            format!(
                "no state at {}: nothing has been applied with it",
                paths.db.display()
            ),
            "check the path: a daemon keeps its state in its --data-dir (one folder per remote), and without --state castsync reads the repository's .castsync/state.db",
        )
        .into());
    }
    let state = State::open_read_only(&path)?;
    let mut out = std::io::stdout().lock();
    match state.export(&mut out).and_then(|()| {
        out.flush().map_err(|source| StateError::Io {
            action: "export",
            path: paths.db.clone(),
            source,
        })
    }) {
        Ok(()) => Ok(Exit::Success),
        // `castsync state export | head`: the reader had enough.
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(Exit::Success)
        }
        Err(e) => Err(e.into()),
    }
}
