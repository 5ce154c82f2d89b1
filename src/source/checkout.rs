//! A secrets repository at one point in time: a [`Tree`] (the worktree or a git revision),
//! the config read from that same tree, and the agents it declares.
//!
//! Every command and the daemon open one, so the manifests, `castsync.yaml` and the agent
//! list always come from the same place: `reconcile --ref v1` reads v1's config, never the
//! worktree's. It must never mix a tree with another tree's config.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{GitRevision, SourceError, Tree, Worktree};
use crate::config::{self, Config, ConfigError};

/// The config or the agent list of a tree could not be read.
#[derive(Debug, Error)]
pub enum CheckoutError {
    /// The tree (or the git revision) cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `castsync.yaml` is broken.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A tree, its config and its agents.
pub struct Checkout {
    tree: Box<dyn Tree + Send>,
    /// The config: `--config FILE` when given (a file on disk), else the tree's own
    /// `castsync.yaml` (defaults when the tree has none).
    pub config: Config,
    /// The agent directories under the config's `agents_dir`, sorted.
    pub agents: Vec<String>,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("revision", &self.tree.revision())
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

impl Checkout {
    /// Reads the config and the agent list of `tree`.
    pub fn open(
        tree: Box<dyn Tree + Send>,
        explicit_config: Option<&Path>,
    ) -> Result<Checkout, CheckoutError> {
        let config = read_config(tree.as_ref(), explicit_config)?;
        let agents = super::agent_slugs(tree.as_ref(), &config)?;
        Ok(Checkout {
            tree,
            config,
            agents,
        })
    }

    /// Lets go of what the tree holds open or cached between uses (see [`Tree::release`]).
    pub fn release(&mut self) {
        self.tree.release();
    }

    /// The files on disk under `root`.
    pub fn worktree(
        root: &Path,
        explicit_config: Option<&Path>,
    ) -> Result<Checkout, CheckoutError> {
        Self::open(Box::new(Worktree::new(root)), explicit_config)
    }

    /// The commit `rev` of the git repository holding `root`, read from git objects.
    pub fn revision(
        root: &Path,
        rev: &str,
        explicit_config: Option<&Path>,
    ) -> Result<Checkout, CheckoutError> {
        Self::open(Box::new(GitRevision::open(root, rev)?), explicit_config)
    }

    /// Whether the tree declares `agent` (a lookup in the sorted agent list).
    pub fn declares(&self, agent: &str) -> bool {
        self.agents
            .binary_search_by(|a| a.as_str().cmp(agent))
            .is_ok()
    }

    /// The commit `rev` as the baseline `reconcile --changed --since REV` compares inputs
    /// with: its checkout, or (when the revision exists but its `castsync.yaml` cannot be
    /// used) why every agent must be refreshed. A revision that does not resolve is an
    /// error: a mistyped `--since` must not pass as a full reconcile.
    pub fn since(
        root: &Path,
        rev: &str,
        explicit_config: Option<&Path>,
    ) -> Result<Result<Checkout, String>, CheckoutError> {
        let tree = GitRevision::open(root, rev)?;
        let label = tree.revision();
        match Self::open(Box::new(tree), explicit_config) {
            Ok(checkout) => Ok(Ok(checkout)),
            Err(CheckoutError::Config(e)) => Ok(Err(format!(
                "the config at --since {rev} ({}) cannot be read: {e}",
                &label[..label.len().min(7)]
            ))),
            Err(e) => Err(e),
        }
    }

    pub fn tree(&self) -> &dyn Tree {
        self.tree.as_ref()
    }

    /// The tree's label: a full commit id, or `worktree`.
    pub fn label(&self) -> String {
        self.tree.revision()
    }
}

/// The config of `tree`: `explicit` when given (a file on disk, which must exist), else
/// `castsync.yaml` at the tree's root, named in messages as the tree names its files
/// (defaults when the tree has none).
pub fn read_config(tree: &dyn Tree, explicit: Option<&Path>) -> Result<Config, CheckoutError> {
    if let Some(path) = explicit {
        return Ok(Config::load(Path::new("."), Some(path))?);
    }
    let name = Path::new(config::FILE_NAME);
    let shown = PathBuf::from(tree.display(name));
    match tree.read(name)? {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(Config::from_yaml(&text, &shown)?),
            Err(_) => Err(ConfigError::Syntax {
                path: shown,
                message: "not UTF-8 text".to_owned(),
            }
            .into()),
        },
        None => Ok(Config::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_comes_from_the_same_tree_as_the_agents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("teams/a")).unwrap();
        std::fs::create_dir_all(dir.path().join("agents/b")).unwrap();
        std::fs::write(dir.path().join("castsync.yaml"), "agents_dir: teams\n").unwrap();
        let checkout = Checkout::worktree(dir.path(), None).unwrap();
        assert_eq!(checkout.config.agents_dir, Path::new("teams"));
        assert_eq!(checkout.agents, vec!["a".to_owned()]);
        assert_eq!(checkout.label(), "worktree");
    }

    #[test]
    fn a_broken_config_names_the_file_as_the_tree_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("castsync.yaml"), "prnue: true\n").unwrap();
        let err = Checkout::worktree(dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown field \"prnue\" in castsync.yaml"),
            "{err}"
        );
    }
}
