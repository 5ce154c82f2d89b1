//! `castsync new AGENT`: an empty manifest (encrypted, like every manifest) and, when the
//! agent has none, a commented `.env.example` to fill in. Never replaces a manifest.

use anyhow::bail;

use super::agent_files::{AgentFiles, Replace, create_new_file};
use super::{Exit, Repo};
use crate::cli::GlobalArgs;
use crate::manifest::Manifest;

pub(super) fn run(global: &GlobalArgs, agent: &str) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = AgentFiles::new(&repo, agent)?;
    if files.exists() {
        bail!(
            "{} already exists: castsync new never replaces a manifest\n  hint: change it with `castsync edit {agent}` or `castsync set {agent} KEY`",
            files.shown()
        );
    }
    let identities = repo.identities()?;
    files.save(&mut Manifest::new(agent), &identities, Replace::Never)?;
    let wrote_schema = !files.schema.exists();
    if wrote_schema {
        create_new_file(&files.schema, &schema_template(agent))?;
    }
    if global.quiet == 0 {
        eprintln!("created {} (no secrets yet)", files.shown());
        if wrote_schema {
            eprintln!(
                "created {}: list the keys agent {agent} needs there, then `castsync set {agent} KEY`",
                files
                    .repo
                    .config()
                    .agents_dir
                    .join(agent)
                    .join(crate::schema::FILE_NAME)
                    .display()
            );
        }
    }
    Ok(Exit::Success)
}

fn schema_template(agent: &str) -> String {
    format!(
        "# The keys agent {agent} needs, one KEY=placeholder per line. This file is committed in\n\
         # clear: placeholders only, never real values. castsync checks the manifest against it:\n\
         # every key listed here is required unless marked `# optional`, and (with strict: true)\n\
         # the manifest may hold no key that is not listed here.\n\
         #\n\
         # OPENAI_API_KEY=sk-your-key-here\n\
         # SLACK_WEBHOOK_URL=https://hooks.slack.com/services/...  # optional\n"
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::schema::EnvSchema;

    #[test]
    fn the_schema_template_declares_no_key() {
        let schema = EnvSchema::parse(&schema_template("support-bot"), Path::new("x")).unwrap();
        assert!(schema.entries.is_empty());
    }
}
