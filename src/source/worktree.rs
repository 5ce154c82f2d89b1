use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::index::StatCache;
use super::{SourceError, Tree};
use crate::fsread::{self, MAX_REPO_FILE};

/// The files on disk under a repository root.
#[derive(Debug, Clone)]
pub struct Worktree {
    root: PathBuf,
    /// The git index of the repository holding `root`, read on the first [`Tree::blob_id`]
    /// (`None` inside: there is none).
    index: OnceLock<Option<Arc<StatCache>>>,
}

impl Worktree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Worktree {
            root: root.into(),
            index: OnceLock::new(),
        }
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
            let is_dir = match entry.file_type() {
                Ok(t) if !t.is_symlink() => t.is_dir(),
                _ => std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()),
            };
            if is_dir {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// From git's index when the file's stat is the one it recorded (see `source::index`),
    /// else read and hashed.
    fn blob_id(&self, path: &Path) -> Result<Option<String>, SourceError> {
        let index = self
            .index
            .get_or_init(|| StatCache::read(&self.root).map(Arc::new));
        if let Some(id) = index.as_ref().and_then(|i| i.id(&self.root, path)) {
            return Ok(Some(id));
        }
        Ok(self.read(path)?.map(|bytes| super::blob_id(&bytes)))
    }

    fn shared(&self) -> Option<&(dyn Tree + Sync)> {
        Some(self)
    }

    fn revision(&self) -> String {
        "worktree".to_owned()
    }

    fn display(&self, path: &Path) -> String {
        path.display().to_string()
    }
}
