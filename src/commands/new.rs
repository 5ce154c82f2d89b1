//! `castsync new AGENT`: an empty manifest and, when the agent has none, a commented
//! `.env.example` to fill in (`authoring::create`). Never replaces a manifest.

use super::{Exit, Repo, print_notes};
use crate::authoring::{self, AgentFiles};
use crate::cli::GlobalArgs;

pub(super) fn run(global: &GlobalArgs, agent: &str) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo.root, repo.config(), agent)?;
    let identities = repo.identities()?;
    let created = authoring::create(&files, &identities)?;
    print_notes(&created.notes);
    if global.quiet == 0 {
        eprintln!("created {} (no secrets yet)", files.shown());
        if created.outcome.wrote_schema {
            eprintln!(
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
