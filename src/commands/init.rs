//! `castsync init`: set up a secrets repository.
//!
//! Writes `castsync.yaml` (listing the public key of the user's identity, made with `keygen`
//! when there is none), `agents/`, a `.gitignore` for castsync's local state and plaintext
//! leftovers, and a `.gitattributes` that routes manifests through castsync's diff and merge
//! drivers (`git_setup`). It never overwrites: every target is checked before anything is
//! written.

use std::path::{Path, PathBuf};

use super::Exit;
use crate::authoring::create_new_file;
use crate::cli::GlobalArgs;
use crate::config;
use crate::crypto::{self, CryptoError, Env};
use crate::git_setup::{self, GITATTRIBUTES};
use crate::hint::WithHint;

const GITIGNORE: &str = "\
# castsync: local state (last-applied fingerprints, the local:// store) and plaintext leftovers.
.castsync/
*.plain
*.dec
*.decrypted
.env
# editor leftovers
*~
*.swp
*.swo
.#*
";

pub(super) fn run(global: &GlobalArgs) -> anyhow::Result<Exit> {
    let root = crate::source::working_dir(global.repo.as_deref())?;
    let config_path = match &global.config {
        Some(path) => path.clone(),
        None => root.join(config::FILE_NAME),
    };
    let agents_dir = root.join("agents");
    let gitignore = root.join(".gitignore");
    let gitattributes = root.join(".gitattributes");

    // Check everything before writing anything.
    let mut taken: Vec<&Path> = [&config_path, &gitignore, &gitattributes]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .map(PathBuf::as_path)
        .collect();
    if agents_dir.symlink_metadata().is_ok() && !agents_dir.is_dir() {
        taken.push(&agents_dir);
    }
    if !taken.is_empty() {
        let list: Vec<String> = taken
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
            .collect();
        return Err(WithHint::new(
            format!(
                "{} already exist(s) in {}: castsync init never overwrites, so nothing was written",
                list.join(", "),
                root.display()
            ),
            "move them aside and run it again, or write castsync.yaml yourself (see castsync's docs/config.md)",
        )
        .into());
    }

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

    create_new_file(&config_path, &config_text(&recipients))?;
    std::fs::create_dir_all(&agents_dir)?;
    create_new_file(&gitignore, GITIGNORE)?;
    create_new_file(&gitattributes, GITATTRIBUTES)?;

    if global.quiet == 0 {
        if let Some(path) = made {
            eprintln!(
                "wrote a new age identity to {} (mode 0600): keep it secret and back it up",
                path.display()
            );
        }
        eprintln!(
            "initialised {}: {}, agents/, .gitignore, .gitattributes",
            root.display(),
            config_path.display()
        );
        eprintln!("encrypting to: {}", recipients.join(", "));
        eprintln!(
            "for key-level diffs and key-by-key merges of manifests in git, run once per clone (or `castsync git-setup`, which does both):"
        );
        for command in git_setup::config_commands() {
            eprintln!("  {command}");
        }
        eprintln!("next: `castsync new AGENT`");
    }
    Ok(Exit::Success)
}

/// The initial castsync.yaml: every setting at its default, spelled out.
fn config_text(recipients: &[String]) -> String {
    let mut text = String::from(
        "# castsync configuration (see castsync's docs/config.md). Every setting below is the default except\n\
         # recipients: the public keys manifests are encrypted to.\n\
         version: 1\n\
         agents_dir: agents\n\
         recipients:\n",
    );
    for recipient in recipients {
        // A JSON string is a valid YAML double-quoted scalar (ssh keys contain spaces).
        let quoted = serde_json::to_string(recipient).unwrap_or_else(|_| recipient.clone());
        text.push_str(&format!("  - {quoted}\n"));
    }
    text.push_str(
        "# access:                        # per-agent recipient sets; the first match wins\n\
         #   - agents: \"billing-*\"\n\
         #     recipients: [\"age1...\"]\n\
         prune: true                     # delete platform keys the manifest does not declare\n\
         strict: true                    # a key missing from .env.example is an error\n\
         unmanaged_keys: [ANTHROPIC_API_KEY]\n\
         max_delete_fraction: 0.5\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_config_loads_and_lists_its_recipients() {
        let recipients = vec![
            crypto::generate_identity().1,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB/VJzqh0tlB alice@laptop"
                .to_owned(),
        ];
        let config =
            config::Config::from_yaml(&config_text(&recipients), Path::new("castsync.yaml"))
                .unwrap();
        assert_eq!(config.recipients.keys().collect::<Vec<_>>(), recipients);
        assert_eq!(
            config,
            config::Config {
                recipients: config::Recipients::from_keys(recipients),
                ..Default::default()
            }
        );
    }
}
