use std::path::{Path, PathBuf};

use super::{SourceError, Tree};
use crate::fsread::{self, MAX_REPO_FILE};

/// The files on disk under a repository root.
#[derive(Debug, Clone)]
pub struct Worktree {
    root: PathBuf,
}

impl Worktree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Worktree { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Tree for Worktree {
    /// Only regular files inside the root, of at most [`MAX_REPO_FILE`] bytes (`fsread`).
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, SourceError> {
        match fsread::read_in_repo(&self.root, path, MAX_REPO_FILE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn dirs(&self, path: &Path) -> Result<Vec<String>, SourceError> {
        let full = self.root.join(path);
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SourceError::Io { path: full, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Io {
                path: full.clone(),
                source,
            })?;
            // A link to a directory counts (its files are still read only when they resolve
            // inside the repository); a name that is not UTF-8 is kept, lossily, so that the
            // agent is reported as invalid instead of silently left out.
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            if is_dir {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn revision(&self) -> String {
        "worktree".to_owned()
    }

    fn display(&self, path: &Path) -> String {
        path.display().to_string()
    }
}
