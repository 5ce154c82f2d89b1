//! `castsync show AGENT [--reveal] [--format yaml|dotenv|json]` (or `show --shared GROUP`):
//! the manifest as `export::show` writes it, its values hidden unless `--reveal`.

use super::{Exit, Repo, manifest_files};
use crate::cli::{GlobalArgs, ShowArgs, ShowFormat};
use crate::export::show;

pub(super) fn run(global: &GlobalArgs, args: &ShowArgs) -> anyhow::Result<Exit> {
    let repo = Repo::open(global)?;
    let files = manifest_files(&repo, &args.agent, args.shared, args.env.as_deref())?;
    let identities = repo.identities()?;
    let manifest = files.require(&identities)?;
    let format = match args.format {
        ShowFormat::Yaml => show::ShowFormat::Yaml,
        ShowFormat::Dotenv => show::ShowFormat::Dotenv,
        ShowFormat::Json => show::ShowFormat::Json,
    };
    super::write_out(&show::manifest(&manifest, format, args.reveal))?;
    Ok(Exit::Success)
}
