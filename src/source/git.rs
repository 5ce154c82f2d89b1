use std::path::{Path, PathBuf};

use super::{SourceError, Tree};

/// A commit's tree, read from git objects with git2: no checkout, untracked and ignored
/// files invisible, the worktree's state irrelevant.
pub struct GitRevision {
    repo: git2::Repository,
    tree: git2::Oid,
    commit: git2::Oid,
    /// Where the secrets repository sits inside the git repository: empty unless castsync
    /// was pointed (`-C`) at a sub-directory of a larger repository.
    prefix: PathBuf,
}

fn git_err(context: &str) -> impl Fn(git2::Error) -> SourceError + '_ {
    move |e| SourceError::Git {
        message: format!("{context}: {}", e.message()),
    }
}

impl GitRevision {
    /// Opens the repository containing `dir` and resolves `rev` (a branch, tag, `HEAD~1`,
    /// `origin/main`, a commit id) to a commit.
    pub fn open(dir: &Path, rev: &str) -> Result<Self, SourceError> {
        let repo = git2::Repository::discover(dir)
            .map_err(git_err(&format!("no git repository at {}", dir.display())))?;
        let prefix = match (repo.workdir(), dir.canonicalize()) {
            (Some(top), Ok(dir)) => top
                .canonicalize()
                .ok()
                .and_then(|top| dir.strip_prefix(top).ok().map(Path::to_path_buf))
                .unwrap_or_default(),
            _ => PathBuf::new(),
        };
        let mut rev = Self::from_repo(repo, rev)?;
        rev.prefix = prefix;
        Ok(rev)
    }

    /// Resolves `rev` in an already open repository (the daemon's bare clone).
    pub fn from_repo(repo: git2::Repository, rev: &str) -> Result<Self, SourceError> {
        let (commit, tree) = {
            let commit = repo
                .revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map_err(git_err(&format!(
                    "cannot resolve revision {rev:?} to a commit"
                )))?;
            (commit.id(), commit.tree_id())
        };
        Ok(GitRevision {
            repo,
            tree,
            commit,
            prefix: PathBuf::new(),
        })
    }

    pub fn commit_id(&self) -> git2::Oid {
        self.commit
    }

    pub fn repository(&self) -> &git2::Repository {
        &self.repo
    }

    /// The object at a repository-relative `path` (under the prefix), or `None`.
    fn entry(&self, path: &Path) -> Result<Option<git2::Object<'_>>, SourceError> {
        let tree = self
            .repo
            .find_tree(self.tree)
            .map_err(git_err("cannot read the commit's tree"))?;
        let full = self.prefix.join(path);
        if full.as_os_str().is_empty() {
            return Ok(Some(tree.into_object()));
        }
        match tree.get_path(&full) {
            Ok(entry) => entry
                .to_object(&self.repo)
                .map(Some)
                .map_err(git_err(&format!("cannot read {}", full.display()))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git_err(&format!("cannot read {}", full.display()))(e)),
        }
    }
}

impl Tree for GitRevision {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, SourceError> {
        match self.entry(path)? {
            Some(obj) => match obj.as_blob() {
                Some(blob) => Ok(Some(blob.content().to_vec())),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    fn blob_id(&self, path: &Path) -> Result<Option<String>, SourceError> {
        // The tree entry carries the id: the blob itself is never read or inflated.
        let tree = self
            .repo
            .find_tree(self.tree)
            .map_err(git_err("cannot read the commit's tree"))?;
        let full = self.prefix.join(path);
        match tree.get_path(&full) {
            Ok(entry) if entry.kind() == Some(git2::ObjectType::Blob) => {
                Ok(Some(entry.id().to_string()))
            }
            // A directory (or a submodule) is not a file, as `read` says too.
            Ok(_) => Ok(None),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git_err(&format!("cannot read {}", full.display()))(e)),
        }
    }

    fn dirs(&self, path: &Path) -> Result<Vec<String>, SourceError> {
        let Some(obj) = self.entry(path)? else {
            return Ok(Vec::new());
        };
        let Some(tree) = obj.as_tree() else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = tree
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
            .filter_map(|e| e.name().ok().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn revision(&self) -> String {
        self.commit.to_string()
    }

    fn display(&self, path: &Path) -> String {
        let id = self.commit.to_string();
        format!("{}:{}", &id[..id.len().min(12)], path.display())
    }
}
