//! Git's index as a stat cache for a working tree's blob ids: a file whose size, times, inode
//! and mode are those the index recorded for it has the content the index names, so its id
//! is known without reading it, as `git status` knows it. A run that digests every agent's
//! inputs (`source::inputs`) then reads only the files that changed since they were staged,
//! not the whole repository.
//!
//! It only ever answers "the id is this" when it is sure, and otherwise nothing (the caller
//! reads and hashes the file): no index, a path the index does not hold (or holds in a
//! conflict, or as a link), a file whose stat differs in any field, or one modified in the
//! same tick as the index was written (git's "racily clean" entries: their stat cannot tell a
//! later change of the same size).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fsread::MAX_REPO_FILE;

/// Stage bits of an entry's flags: non-zero for the sides of a merge conflict.
const STAGE_MASK: u16 = 0x3000;
/// Extended flags of entries whose content the index does not hold: `git add -N` (intent to
/// add) and sparse checkouts' skip-worktree.
const NOT_STAGED: u16 = (1 << 13) | (1 << 14);

/// The stat data the index recorded for one file, and its blob id.
#[derive(Debug)]
struct Entry {
    id: git2::Oid,
    mode: u32,
    size: u32,
    mtime: (i64, u32),
    ctime: (i64, u32),
    ino: u32,
}

/// The index of the git repository holding a working tree: its regular files' entries, by
/// path relative to that working tree.
#[derive(Debug)]
pub struct StatCache {
    entries: HashMap<PathBuf, Entry>,
    /// When the index was written: an entry is trusted only for a file last modified before.
    written: (i64, u32),
}

impl StatCache {
    /// The index of the repository whose working tree holds `root`; `None` without one (not
    /// a repository, a bare one, an index that cannot be read).
    pub fn read(root: &Path) -> Option<StatCache> {
        let repo = git2::Repository::discover(root).ok()?;
        repo.workdir()?;
        let written = std::fs::metadata(repo.path().join("index")).ok()?;
        let prefix = super::dir_in_repository(&repo, root);
        let index = repo.index().ok()?;
        let mut entries = HashMap::new();
        let mut conflicted = Vec::new();
        for e in index.iter() {
            let Ok(path) = std::str::from_utf8(&e.path) else {
                continue;
            };
            let Ok(rel) = Path::new(path).strip_prefix(&prefix) else {
                continue;
            };
            if e.flags & STAGE_MASK != 0 {
                conflicted.push(rel.to_owned());
                continue;
            }
            if e.flags_extended & NOT_STAGED != 0 {
                continue;
            }
            let entry = Entry {
                id: e.id,
                mode: e.mode,
                size: e.file_size,
                // git keeps the low 32 bits of the seconds (libgit2 shows them signed).
                mtime: (i64::from(e.mtime.seconds() as u32), e.mtime.nanoseconds()),
                ctime: (i64::from(e.ctime.seconds() as u32), e.ctime.nanoseconds()),
                ino: e.ino,
            };
            entries.insert(rel.to_owned(), entry);
        }
        for path in conflicted {
            entries.remove(&path);
        }
        Some(StatCache {
            entries,
            written: (written.mtime(), nanos(written.mtime_nsec())),
        })
    }

    /// The blob id of the file at `path` (relative to the working tree at `root`), when the
    /// index vouches for it.
    pub fn id(&self, root: &Path, path: &Path) -> Option<String> {
        let entry = self.entries.get(path)?;
        let meta = std::fs::symlink_metadata(root.join(path)).ok()?;
        let mtime = (meta.mtime(), nanos(meta.mtime_nsec()));
        let same = meta.file_type().is_file()
            && meta.len() <= MAX_REPO_FILE
            // git records the low 32 bits of sizes and inode numbers.
            && u64::from(entry.size) == meta.len()
            && entry.ino == meta.ino() as u32
            && entry.mode & 0o170000 == 0o100000
            && entry.mtime == (mtime.0 & 0xffff_ffff, mtime.1)
            && entry.ctime == (meta.ctime() & 0xffff_ffff, nanos(meta.ctime_nsec()))
            && mtime < self.written;
        same.then(|| entry.id.to_string())
    }
}

fn nanos(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::source::{Tree, Worktree, blob_id};

    /// Writes `content` at `root/rel`, last modified a minute ago (so that an index written
    /// now vouches for it: not racily clean).
    fn write_old(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    fn stage(repo: &git2::Repository, rel: &str) {
        let mut index = repo.index().unwrap();
        index.add_path(Path::new(rel)).unwrap();
        index.write().unwrap();
    }

    #[test]
    fn a_staged_file_unchanged_since_is_known_by_its_index_entry_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        // The secrets repository is a directory of a larger one.
        let root = dir.path().join("secrets");
        let rel = "agents/a/secrets.yaml.age";
        write_old(&root, rel, "one");
        stage(&repo, &format!("secrets/{rel}"));

        let cache = StatCache::read(&root).unwrap();
        assert_eq!(cache.id(&root, Path::new(rel)), Some(blob_id(b"one")));
        assert_eq!(cache.id(&root, Path::new("agents/a/.env.example")), None);

        // Changed since it was staged: read and hashed.
        write_old(&root, rel, "three");
        assert_eq!(cache.id(&root, Path::new(rel)), None);
        let tree = Worktree::new(&root);
        assert_eq!(
            tree.blob_id(Path::new(rel)).unwrap(),
            Some(blob_id(b"three"))
        );
    }

    #[test]
    fn a_file_changed_as_the_index_was_written_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        std::fs::write(dir.path().join("f"), "one").unwrap();
        stage(&repo, "f");
        // Modified after the index was written, in the same clock tick or not: never the
        // staged id.
        std::fs::write(dir.path().join("f"), "uno").unwrap();
        let tree = Worktree::new(dir.path());
        assert_eq!(tree.blob_id(Path::new("f")).unwrap(), Some(blob_id(b"uno")));
    }

    #[test]
    fn without_a_repository_there_is_no_cache_and_files_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "one").unwrap();
        // A temporary directory is not inside a repository on any machine that runs tests;
        // if it were, the file is not in its index either way.
        let tree = Worktree::new(dir.path());
        assert_eq!(tree.blob_id(Path::new("f")).unwrap(), Some(blob_id(b"one")));
        assert_eq!(tree.blob_id(Path::new("missing")).unwrap(), None);
    }
}
