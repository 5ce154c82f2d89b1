//! The files of a new secrets repository (`castsync init`): `castsync.yaml` (every setting at
//! its default, spelled out), `agents/`, a `.gitignore` for castsync's local state and
//! plaintext leftovers, and a `.gitattributes` that routes manifests through castsync's diff
//! and merge drivers (`git_setup`). It never overwrites: [`NewRepository::check_free`] looks
//! at every target before anything is written.

use std::path::{Path, PathBuf};

use super::{AuthoringError, create_new_file};
use crate::config;
use crate::git_setup::GITATTRIBUTES;

/// `.gitignore` as `init` writes it.
pub const GITIGNORE: &str = "\
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

/// Where `init` writes.
pub struct NewRepository {
    pub root: PathBuf,
    /// `castsync.yaml`, or the `-c FILE` given.
    pub config: PathBuf,
}

impl NewRepository {
    pub fn at(root: PathBuf, explicit_config: Option<&Path>) -> NewRepository {
        let config = match explicit_config {
            Some(path) => path.to_owned(),
            None => root.join(config::FILE_NAME),
        };
        NewRepository { root, config }
    }

    fn agents_dir(&self) -> PathBuf {
        self.root.join("agents")
    }

    /// Refuses, naming them, when a file `init` writes exists (or `agents` is not a
    /// directory).
    pub fn check_free(&self) -> Result<(), AuthoringError> {
        let agents_dir = self.agents_dir();
        let files = [
            self.config.clone(),
            self.root.join(".gitignore"),
            self.root.join(".gitattributes"),
        ];
        let mut taken: Vec<&Path> = files
            .iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .map(PathBuf::as_path)
            .collect();
        if agents_dir.symlink_metadata().is_ok() && !agents_dir.is_dir() {
            taken.push(&agents_dir);
        }
        if taken.is_empty() {
            return Ok(());
        }
        Err(AuthoringError::Taken {
            root: self.root.clone(),
            paths: taken
                .iter()
                .map(|p| {
                    p.strip_prefix(&self.root)
                        .unwrap_or(p)
                        .display()
                        .to_string()
                })
                .collect(),
        })
    }

    /// Writes the files, castsync.yaml listing `recipients`.
    pub fn write(&self, recipients: &[String]) -> Result<(), AuthoringError> {
        create_new_file(&self.config, &config_text(recipients))?;
        let agents_dir = self.agents_dir();
        std::fs::create_dir_all(&agents_dir).map_err(|source| AuthoringError::Create {
            path: agents_dir,
            source,
        })?;
        create_new_file(&self.root.join(".gitignore"), GITIGNORE)?;
        create_new_file(&self.root.join(".gitattributes"), GITATTRIBUTES)
    }
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
    use crate::crypto;

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
