//! Which directory is the secrets repository, found like git and sops find theirs: `-C DIR`
//! when given, else the nearest directory holding `castsync.yaml`, from the current
//! directory up to the filesystem root. The one place the root is found, for every command
//! and the daemon's `--repo` mode.
//!
//! It must never settle on a directory that is not a repository: a CI step started in the
//! wrong directory has to fail, not check nothing and pass.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::FILE_NAME;

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
    /// No `castsync.yaml` from the current directory up to the filesystem root.
    #[error("no {FILE_NAME} in this directory or any parent (run castsync init, or pass -C DIR)")]
    NotFound,
    /// `-C DIR` holds no `castsync.yaml`.
    #[error(
        "no {FILE_NAME} in {} (run castsync init -C {}, or pass -C the folder that holds {FILE_NAME})",
        path.display(),
        path.display()
    )]
    NotARepository { path: PathBuf },
}

/// The directory a command works in, canonical: `explicit` (`-C DIR`) or the current
/// directory, whether or not it holds a repository yet (for `init`, which creates one).
pub fn working_dir(explicit: Option<&Path>) -> Result<PathBuf, DiscoverError> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().map_err(DiscoverError::CurrentDir)?,
    };
    if !dir.is_dir() {
        return Err(DiscoverError::NotADirectory { path: dir });
    }
    // Absolute, so a `local://` store and the state file are keyed the same from any
    // working directory.
    dir.canonicalize()
        .map_err(|source| DiscoverError::Resolve { path: dir, source })
}

/// The repository root, canonical: `-C DIR` (which must hold `castsync.yaml`), else the
/// nearest directory holding `castsync.yaml` from the current directory upwards. With
/// `--config FILE` (`explicit_config`) the config is not looked for: `-C DIR`, else the
/// nearest repository, else the current directory is the root.
pub fn find_root(
    explicit: Option<&Path>,
    explicit_config: Option<&Path>,
) -> Result<PathBuf, DiscoverError> {
    let start = working_dir(explicit)?;
    if explicit.is_some() {
        return if explicit_config.is_some() || is_repository(&start) {
            Ok(start)
        } else {
            Err(DiscoverError::NotARepository { path: start })
        };
    }
    match start.ancestors().find(|dir| is_repository(dir)) {
        Some(root) => Ok(root.to_path_buf()),
        None if explicit_config.is_some() => Ok(start),
        None => Err(DiscoverError::NotFound),
    }
}

/// The repository holding `file`, a path relative to the current directory: `-C DIR` when
/// given (as [`find_root`]), else the nearest directory holding `castsync.yaml` from the
/// file's directory up. git runs a merge driver at the top of the work tree and names the
/// file relative to it (`%P`); the secrets repository may be a folder below that top, so the
/// search starts at the file, not at the current directory.
pub fn find_root_of_file(
    file: &Path,
    explicit: Option<&Path>,
    explicit_config: Option<&Path>,
) -> Result<PathBuf, DiscoverError> {
    if explicit.is_some() {
        return find_root(explicit, explicit_config);
    }
    let cwd = working_dir(None)?;
    let path = cwd.join(file);
    match path.ancestors().skip(1).find(|dir| is_repository(dir)) {
        Some(root) => Ok(root.to_path_buf()),
        None if explicit_config.is_some() => Ok(cwd),
        None => Err(DiscoverError::NotFound),
    }
}

/// Anything named castsync.yaml marks the repository, even a link or a FIFO: reading it then
/// says what is wrong with it (`fsread`), instead of "no castsync.yaml".
fn is_repository(dir: &Path) -> bool {
    dir.join(FILE_NAME).symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_directory_with_a_config_is_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("repo");
        let deep = root.join("agents/support-bot");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join(FILE_NAME), "version: 1\n").unwrap();
        let found = root.ancestors().find(|d| is_repository(d));
        assert_eq!(found, Some(root.as_path()));
        assert_eq!(
            deep.ancestors().find(|d| is_repository(d)),
            Some(root.as_path())
        );
        assert_eq!(find_root(Some(&root), None).unwrap(), root);
    }

    #[test]
    fn a_named_directory_without_a_config_is_refused_unless_one_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_root(Some(tmp.path()), None).unwrap_err().to_string();
        assert!(err.starts_with("no castsync.yaml in "), "{err}");
        let config = tmp.path().join("elsewhere.yaml");
        assert_eq!(
            find_root(Some(tmp.path()), Some(&config)).unwrap(),
            tmp.path().canonicalize().unwrap()
        );
        let missing = tmp.path().join("missing");
        assert!(matches!(
            find_root(Some(&missing), None),
            Err(DiscoverError::NotADirectory { .. })
        ));
    }
}
