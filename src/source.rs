//! Where desired state comes from: the working tree, or a git revision read straight from
//! git objects (no checkout, untracked files ignored).
//!
//! A [`Tree`] only reads files; deciding what they mean (decrypt, parse, validate) is done
//! once, by the load stage (`load`), for every kind of tree, so `--ref`, `--base`, the daemon and the
//! worktree can never disagree about a manifest. A [`Checkout`] pairs a tree with the config read from it; [`find_root`] says which
//! directory is the repository.
//!
//! What the daemon follows (a remote branch's bare clone, its signature gate) is in
//! [`remote`].

mod checkout;
mod discover;
mod git;
mod index;
pub mod inputs;
pub mod remote;
mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::Config;

pub use checkout::{Checkout, CheckoutError, read_config};
pub use discover::{DiscoverError, find_root, find_root_of_file, working_dir};
pub use git::{GitRevision, dir_in_repository};
pub use worktree::Worktree;

/// The manifest file inside an agent's (or a shared group's) directory.
pub const MANIFEST_FILE: &str = "secrets.yaml.age";
/// The schema file inside an agent's directory.
pub const SCHEMA_FILE: &str = ".env.example";

/// Git's blob id of `bytes`, as `git hash-object` prints it.
pub fn blob_id(bytes: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, bytes)
        // Hashing a buffer cannot fail: libgit2 only reports an invalid object type.
        .map(|oid| oid.to_string())
        .unwrap_or_default()
}

/// `path` with `/` between its components, as git and reports show paths.
pub fn slashed(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The agents a tree declares (directories under `agents_dir`), sorted.
pub fn agent_slugs(tree: &dyn Tree, config: &Config) -> Result<Vec<String>, SourceError> {
    tree.dirs(&config.agents_dir)
}

/// The shared groups a tree declares (directories under `shared_dir`), sorted.
pub fn group_names(tree: &dyn Tree, config: &Config) -> Result<Vec<String>, SourceError> {
    tree.dirs(&config.shared_dir)
}

/// Where a shared group's manifest lives, relative to the repository root.
pub fn group_manifest_path(config: &Config, group: &str) -> PathBuf {
    config.shared_dir.join(group).join(MANIFEST_FILE)
}

/// Who each recipient is, for reports: the names `config` gives, then those of the config
/// committed at HEAD of the repository at `root` (when there is one), so that someone just
/// removed from the file is still named.
pub fn recipient_names(root: &Path, config: &Config) -> crate::config::Names {
    let mut names = config.names();
    if let Ok(head) = Checkout::revision(root, "HEAD", None) {
        names.merge(&head.config.names());
    }
    names
}

#[derive(Debug, Error)]
pub enum SourceError {
    /// A file or directory of the worktree cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The repository or revision cannot be opened.
    #[error("git: {message}")]
    Git { message: String },
    /// A file that is refused: not a regular file, leading outside the repository, or too
    /// large (see `fsread`).
    #[error(transparent)]
    Refused(#[from] crate::fsread::ReadError),
}

/// No fix beyond what the message says (it names the file, line and key); implemented so
/// findings and reports can be built from it like from any error that has one.
impl crate::hint::Hinted for SourceError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
}

/// A read-only view of a secrets repository at one point in time.
pub trait Tree {
    /// The file at `path` (relative to the repository root), or `None` when absent.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, SourceError>;
    /// Names of the sub-directories of `path`, sorted; empty when `path` is absent.
    fn dirs(&self, path: &Path) -> Result<Vec<String>, SourceError>;
    /// Git's blob id of the file at `path` (what `git hash-object` prints for it), or `None`
    /// when it is absent: equal ids mean equal bytes. A git revision answers from its tree
    /// without reading the file; the working tree from git's index when the file's stat is
    /// the one the index recorded (`index`); any other tree reads and hashes it.
    fn blob_id(&self, path: &Path) -> Result<Option<String>, SourceError> {
        Ok(self.read(path)?.map(|bytes| blob_id(&bytes)))
    }
    /// The sub-directories of `path` (not links to them) that have an id two directories
    /// share only when they hold the same entries with the same ids (git's tree id), by
    /// name: found without reading them. Empty for a tree without such ids (files on disk).
    fn dir_ids(&self, _path: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
        HashMap::new()
    }
    /// Whether an entry directly in the directory `path` is a symbolic link: reading such a
    /// directory's files may give other bytes while its [`Tree::dir_id`] stays the same.
    fn links_in(&self, _path: &Path) -> bool {
        true
    }
    /// This tree as one that threads may share, when it is one (files on disk), so that its
    /// files can be read on every core; `None` for a tree read from one thread only (a git
    /// revision keeps the objects it parsed for the thread that reads it).
    fn shared(&self) -> Option<&(dyn Tree + Sync)> {
        None
    }
    /// A label for this tree: a full commit id, or `worktree`.
    fn revision(&self) -> String;
    /// Lets go of what the tree holds open or cached for reading (an open repository, parsed
    /// directories), for a process that keeps the tree while it idles; the next read opens
    /// them again.
    fn release(&mut self) {}
    /// How to name `path` in messages (e.g. `agents/x/secrets.yaml.age` or
    /// `abc1234:agents/x/secrets.yaml.age`).
    fn display(&self, path: &Path) -> String;
}
