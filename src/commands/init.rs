//! `castsync init`: set up a secrets repository (`authoring::init`), encrypting to the
//! public key of the user's identity, made with `keygen` when there is none.

use super::Exit;
use crate::authoring::init::NewRepository;
use crate::cli::GlobalArgs;
use crate::crypto::{self, CryptoError, Env};
use crate::git_setup;

pub(super) fn run(global: &GlobalArgs) -> anyhow::Result<Exit> {
    let root = crate::source::working_dir(global.repo.as_deref())?;
    let repo = NewRepository::at(root, global.config.as_deref());
    // Check everything before writing anything.
    repo.check_free()?;

    let identities = super::discover_identities(global)?;
    let (recipients, made) = match identities.recipients() {
        found if !found.is_empty() => (found, None),
        _ => {
            let path = Env::from_process()
                .default_identity_path()
                .ok_or(CryptoError::NoHome)?;
            let recipient = crypto::write_new_identity(&path)?;
            (vec![recipient], Some(path))
        }
    };
    repo.write(&recipients)?;

    if global.quiet == 0 {
        if let Some(path) = made {
            crate::say!(
                "wrote a new age identity to {} (mode 0600): keep it secret and back it up",
                path.display()
            );
        }
        crate::say!(
            "initialised {}: {}, agents/, .gitignore, .gitattributes",
            repo.root.display(),
            repo.config.display()
        );
        crate::say!("encrypting to: {}", recipients.join(", "));
        crate::say!(
            "for key-level diffs and key-by-key merges of manifests in git, run once per clone (or `castsync git-setup`, which does both):"
        );
        for command in git_setup::config_commands() {
            crate::say!("  {command}");
        }
        crate::say!("next: `castsync new AGENT`");
    }
    Ok(Exit::Success)
}
