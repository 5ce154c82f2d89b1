//! Which directory is the secrets repository: `-C DIR` when given, else the current
//! directory. The one place the root is found, for every command and the daemon's
//! `--repo` mode.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The repository root could not be found.
#[derive(Debug, Error)]
pub enum DiscoverError {
    /// The current directory is unknown (deleted, or not accessible).
    #[error("cannot determine the current directory")]
    CurrentDir(#[source] std::io::Error),
    /// `-C DIR` is not a directory.
    #[error(
        "{} is not a directory\n  hint: -C/--repo names the secrets repository (the folder holding castsync.yaml)",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    /// The directory cannot be made absolute.
    #[error("cannot resolve {}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The repository root: `explicit` (`-C DIR`) or the current directory, canonical, so a
/// `local://` store and the state file are keyed the same from any working directory.
pub fn find_root(explicit: Option<&Path>) -> Result<PathBuf, DiscoverError> {
    let root = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().map_err(DiscoverError::CurrentDir)?,
    };
    if !root.is_dir() {
        return Err(DiscoverError::NotADirectory { path: root });
    }
    root.canonicalize()
        .map_err(|source| DiscoverError::Resolve { path: root, source })
}
