use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{SourceError, Tree};
use crate::fsread::{MAX_REPO_FILE, ReadError};

/// git's file mode for a symbolic link.
const LINK_MODE: i32 = 0o120000;
/// Most symbolic links followed while resolving one path.
const MAX_LINKS: usize = 8;
/// Most trees whose entries one revision keeps parsed (a tree per agent, and a few more).
const MAX_CACHED_TREES: usize = 16_384;

/// A tree's entries: name → (id, kind, file mode).
type TreeEntries = HashMap<Vec<u8>, (git2::Oid, git2::ObjectType, i32)>;

/// A commit's tree, read from git objects with git2: no checkout, untracked and ignored
/// files invisible, the worktree's state irrelevant.
pub struct GitRevision {
    /// The open repository: opened again from `git_dir` after [`Tree::release`].
    repo: OnceCell<git2::Repository>,
    git_dir: PathBuf,
    tree: git2::Oid,
    commit: git2::Oid,
    /// Where the secrets repository sits inside the git repository: empty unless castsync
    /// was pointed (`-C`) at a sub-directory of a larger repository.
    prefix: PathBuf,
    /// Trees already parsed ([`GitRevision::entries`]).
    trees: RefCell<HashMap<git2::Oid, Arc<TreeEntries>>>,
}

fn git_err(context: &str) -> impl Fn(git2::Error) -> SourceError + '_ {
    move |e| SourceError::Git {
        message: format!("{context}: {}", e.message()),
    }
}

/// Where `dir` is inside `repo`'s working tree (empty at its top, or when it is not inside).
pub fn dir_in_repository(repo: &git2::Repository, dir: &Path) -> PathBuf {
    match (repo.workdir(), dir.canonicalize()) {
        (Some(top), Ok(dir)) => top
            .canonicalize()
            .ok()
            .and_then(|top| dir.strip_prefix(top).ok().map(Path::to_path_buf))
            .unwrap_or_default(),
        _ => PathBuf::new(),
    }
}

impl GitRevision {
    /// Opens the repository containing `dir` and resolves `rev` (a branch, tag, `HEAD~1`,
    /// `origin/main`, a commit id) to a commit.
    pub fn open(dir: &Path, rev: &str) -> Result<Self, SourceError> {
        let repo = git2::Repository::discover(dir)
            .map_err(git_err(&format!("no git repository at {}", dir.display())))?;
        let prefix = dir_in_repository(&repo, dir);
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
            git_dir: repo.path().to_owned(),
            repo: OnceCell::from(repo),
            tree,
            commit,
            prefix: PathBuf::new(),
            trees: RefCell::new(HashMap::new()),
        })
    }

    /// The repository, opened again if [`Tree::release`] closed it.
    fn repo(&self) -> Result<&git2::Repository, SourceError> {
        if let Some(repo) = self.repo.get() {
            return Ok(repo);
        }
        let repo = git2::Repository::open(&self.git_dir).map_err(git_err(&format!(
            "cannot open the git repository at {} again",
            self.git_dir.display()
        )))?;
        Ok(self.repo.get_or_init(|| repo))
    }

    /// What a repository-relative `path` (under the prefix) names: symbolic links committed
    /// in the tree are followed like the filesystem would, but only while they stay inside the
    /// secrets repository (the prefix), and at most [`MAX_LINKS`] of them.
    fn resolve(&self, path: &Path) -> Result<Option<(git2::Oid, git2::ObjectType)>, SourceError> {
        let outside = |target: PathBuf| {
            SourceError::Refused(ReadError::Outside {
                path: PathBuf::from(self.display(path)),
                target,
            })
        };
        let mut pending: Vec<OsString> = self
            .prefix
            .join(path)
            .components()
            .rev()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        let mut walked: Vec<OsString> = Vec::new();
        let mut current = (self.tree, git2::ObjectType::Tree);
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == "." || name.is_empty() {
                continue;
            }
            if name == ".." {
                if walked.pop().is_none() {
                    return Err(outside(PathBuf::from("..")));
                }
                // Only a `..` needs the root as an object (every other step is a lookup in
                // the parsed entries of the tree walked into).
                let root = self
                    .repo()?
                    .find_tree(self.tree)
                    .map_err(git_err("cannot read the commit's tree"))?;
                current = self.walk(&root, &walked)?;
                continue;
            }
            if current.1 != git2::ObjectType::Tree {
                return Ok(None);
            }
            let entries = self.entries(current.0)?;
            let Some(&(id, kind, mode)) = entries.get(name.as_encoded_bytes()) else {
                return Ok(None);
            };
            if mode == LINK_MODE {
                links += 1;
                if links > MAX_LINKS {
                    return Err(SourceError::Git {
                        message: format!(
                            "{}: more than {MAX_LINKS} symbolic links to follow",
                            self.display(path)
                        ),
                    });
                }
                let blob = self
                    .repo()?
                    .find_blob(id)
                    .map_err(git_err("cannot read a symbolic link of the commit"))?;
                let target = PathBuf::from(String::from_utf8_lossy(blob.content()).into_owned());
                if target.is_absolute() {
                    return Err(outside(target));
                }
                for c in target.components().rev() {
                    pending.push(c.as_os_str().to_owned());
                }
                continue;
            }
            walked.push(name);
            current = (id, kind);
        }
        // Everything must stay under the prefix (the secrets repository's root).
        let resolved: PathBuf = walked.iter().collect();
        if !resolved.starts_with(&self.prefix) {
            return Err(outside(resolved));
        }
        Ok(Some(current))
    }

    /// The entries of the tree `id` (name → id, kind, mode), parsed once per revision:
    /// libgit2 keeps no tree over 4 KiB in its object cache, so a directory of a thousand
    /// agents would otherwise be inflated, hash-checked and parsed again for every file
    /// looked up in it.
    fn entries(&self, id: git2::Oid) -> Result<Arc<TreeEntries>, SourceError> {
        if let Some(entries) = self.trees.borrow().get(&id) {
            return Ok(entries.clone());
        }
        let tree = self
            .repo()?
            .find_tree(id)
            .map_err(git_err("cannot read a tree of the commit"))?;
        let entries: Arc<TreeEntries> = Arc::new(
            tree.iter()
                .map(|e| {
                    let kind = e.kind().unwrap_or(git2::ObjectType::Any);
                    (e.name_bytes().to_vec(), (e.id(), kind, e.filemode()))
                })
                .collect(),
        );
        let mut trees = self.trees.borrow_mut();
        if trees.len() < MAX_CACHED_TREES {
            trees.insert(id, entries.clone());
        }
        Ok(entries)
    }

    /// The object at `walked` (components without links) from the root tree.
    fn walk(
        &self,
        root: &git2::Tree<'_>,
        walked: &[OsString],
    ) -> Result<(git2::Oid, git2::ObjectType), SourceError> {
        if walked.is_empty() {
            return Ok((root.id(), git2::ObjectType::Tree));
        }
        let path: PathBuf = walked.iter().collect();
        let entry = root
            .get_path(&path)
            .map_err(git_err(&format!("cannot read {}", path.display())))?;
        Ok((entry.id(), entry.kind().unwrap_or(git2::ObjectType::Any)))
    }
}

impl Tree for GitRevision {
    /// Only blobs of at most [`MAX_REPO_FILE`] bytes, sized before they are loaded.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, SourceError> {
        let Some((oid, kind)) = self.resolve(path)? else {
            return Ok(None);
        };
        if kind != git2::ObjectType::Blob {
            return Ok(None);
        }
        let repo = self.repo()?;
        let odb = repo
            .odb()
            .map_err(git_err("cannot open the object database"))?;
        let (size, _) = odb
            .read_header(oid)
            .map_err(git_err(&format!("cannot read {}", self.display(path))))?;
        if size as u64 > MAX_REPO_FILE {
            return Err(SourceError::Refused(ReadError::TooLarge {
                path: PathBuf::from(self.display(path)),
                limit: MAX_REPO_FILE,
            }));
        }
        let blob = repo
            .find_blob(oid)
            .map_err(git_err(&format!("cannot read {}", self.display(path))))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// The id from the tree entry: the blob itself is never read or inflated.
    fn blob_id(&self, path: &Path) -> Result<Option<String>, SourceError> {
        match self.resolve(path)? {
            Some((oid, git2::ObjectType::Blob)) => Ok(Some(oid.to_string())),
            // A directory (or a submodule) is not a file, as `read` says too.
            _ => Ok(None),
        }
    }

    /// The sub-trees' ids (raw), from the entries of `path`'s tree (links on the way to it
    /// followed).
    fn dir_ids(&self, path: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
        let Ok(Some((oid, git2::ObjectType::Tree))) = self.resolve(path) else {
            return HashMap::new();
        };
        let Ok(entries) = self.entries(oid) else {
            return HashMap::new();
        };
        entries
            .iter()
            .filter(|(_, e)| e.1 == git2::ObjectType::Tree && e.2 != LINK_MODE)
            .map(|(name, e)| (name.clone(), e.0.as_bytes().to_vec()))
            .collect()
    }

    fn links_in(&self, path: &Path) -> bool {
        let Ok(Some((oid, git2::ObjectType::Tree))) = self.resolve(path) else {
            return true;
        };
        self.entries(oid)
            .map_or(true, |entries| entries.values().any(|e| e.2 == LINK_MODE))
    }

    /// Sub-directories (and links to sub-directories) of `path`; a name that is not UTF-8 is
    /// kept, lossily, so that it is reported rather than silently left out.
    fn dirs(&self, path: &Path) -> Result<Vec<String>, SourceError> {
        let Some((oid, git2::ObjectType::Tree)) = self.resolve(path)? else {
            return Ok(Vec::new());
        };
        // The parsed entries, which the reads of the agents' files use next.
        let entries = self.entries(oid)?;
        let mut names = Vec::new();
        for (name, &(_, kind, mode)) in entries.iter() {
            let name = String::from_utf8_lossy(name).into_owned();
            let is_dir = match (kind, mode) {
                (git2::ObjectType::Tree, _) => true,
                // A link that cannot be followed (outside the repository, too many hops) is
                // listed, as the filesystem lists one: reading it then names the link and why,
                // where leaving it out would report a missing agent or group.
                (_, LINK_MODE) => matches!(
                    self.resolve(&path.join(&name)),
                    Ok(Some((_, git2::ObjectType::Tree))) | Err(_)
                ),
                _ => false,
            };
            if is_dir {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn revision(&self) -> String {
        self.commit.to_string()
    }

    /// Closes the repository (libgit2 unmaps its pack files) and forgets the parsed trees.
    fn release(&mut self) {
        self.repo.take();
        self.trees.get_mut().clear();
        self.trees.get_mut().shrink_to_fit();
    }

    fn display(&self, path: &Path) -> String {
        let id = self.commit.to_string();
        format!("{}:{}", &id[..id.len().min(12)], path.display())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new repository at `root` with everything under `root/agents` committed as HEAD.
    pub(crate) fn commit_agents(root: &Path) -> git2::Repository {
        let repo = git2::Repository::init(root).unwrap();
        {
            let mut index = repo.index().unwrap();
            index
                .add_all(["agents"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
                .unwrap();
        }
        repo
    }

    #[test]
    fn a_released_revision_reads_the_same_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agents/a")).unwrap();
        std::fs::write(root.join("agents/a/.env.example"), "K=v\n").unwrap();
        let mut rev = GitRevision::from_repo(commit_agents(root), "HEAD").unwrap();
        let path = Path::new("agents/a/.env.example");
        let before = (
            rev.read(path).unwrap(),
            rev.dirs(Path::new("agents")).unwrap(),
        );
        assert!(!rev.trees.borrow().is_empty());

        rev.release();
        assert!(rev.repo.get().is_none() && rev.trees.borrow().is_empty());
        let after = (
            rev.read(path).unwrap(),
            rev.dirs(Path::new("agents")).unwrap(),
        );
        assert_eq!(after, before);
        assert_eq!(after.0.as_deref(), Some(&b"K=v\n"[..]));
        assert_eq!(
            rev.blob_id(path).unwrap(),
            Some(
                git2::Oid::hash_object(git2::ObjectType::Blob, b"K=v\n")
                    .unwrap()
                    .to_string()
            )
        );
    }
}
