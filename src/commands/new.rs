//! `castsync new AGENT` (or `new --shared GROUP`): an empty manifest and, for an agent that
//! has none, a commented `.env.example` to fill in (`authoring::create`). Never replaces a
//! manifest.

use super::{Exit, Repo, manifest_files, print_notes};
use crate::authoring;
use crate::cli::{GlobalArgs, NewArgs};

pub(super) fn run(global: &GlobalArgs, args: &NewArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = manifest_files(&repo, &args.agent, args.shared, args.env.as_deref())?;
    let identities = repo.identities()?;
    let created = authoring::create(&files, &identities)?;
    print_notes(&created.notes);
    let agent = &args.agent;
    if global.quiet == 0 {
        crate::say!("created {} (no secrets yet)", files.shown());
        if args.shared {
            crate::say!(
                "set its keys with `castsync set --shared {agent} KEY`, then take them in an agent's manifest with `uses: [{agent}]` (`castsync edit AGENT`)"
            );
        }
        if created.outcome.wrote_schema {
            crate::say!(
                "created {}: list the keys agent {agent} needs there, then `castsync set {agent} KEY`",
                repo.config()
                    .agents_dir
                    .join(agent)
                    .join(crate::schema::FILE_NAME)
                    .display()
            );
        }
    }
    Ok(Exit::Success)
}
