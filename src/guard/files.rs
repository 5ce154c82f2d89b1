//! The files each mode reads, from git: the working tree's (tracked, and untracked but not
//! ignored), the index's staged changes, and every version that any reachable commit added.
//! Each is handed to a visitor with where it was found; contents are read once (a file
//! version that several commits or paths share is one read).
//!
//! Symbolic links and submodules are not followed: git keeps a link's target, not the file it
//! points to, and a submodule is another repository.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree, TreeWalkMode};

use crate::audit::model::CommitRef;

/// Files larger than this are not read (and said so).
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// Where a file (version) was found.
#[derive(Debug, Clone)]
pub struct Place {
    /// Relative to the top of the git repository, with `/`.
    pub path: String,
    /// History: the commit that added this version there.
    pub commit: Option<CommitRef>,
    /// Whether git tracks it (untracked files of the working tree are not).
    pub tracked: bool,
}

/// What a walk could not read.
#[derive(Debug, Default)]
pub struct Skipped {
    /// Paths of files over [`MAX_FILE`].
    pub too_large: Vec<String>,
    /// Paths that could not be read, and why.
    pub unreadable: Vec<(String, String)>,
    /// Commits read (history).
    pub commits: usize,
}

/// The working tree: every file in the index that is a regular file on disk, then every
/// untracked file git does not ignore.
pub fn worktree(
    repo: &Repository,
    visit: &mut dyn FnMut(&[Place], &[u8]),
) -> Result<Skipped, git2::Error> {
    let top = repo
        .workdir()
        .ok_or_else(|| git2::Error::from_str("a bare repository has no working tree"))?
        .to_owned();
    let mut paths: Vec<(String, bool)> = Vec::new();
    let index = repo.index()?;
    let mut listed = HashSet::new();
    for entry in index.iter() {
        // Regular files only (0o100644, 0o100755): not links, not submodules.
        if entry.mode & 0o170000 != 0o100000 {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        if listed.insert(path.clone()) {
            paths.push((path, true));
        }
    }
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    for status in repo.statuses(Some(&mut options))?.iter() {
        if status.status().contains(git2::Status::WT_NEW) {
            let path = String::from_utf8_lossy(status.path_bytes()).into_owned();
            if listed.insert(path.clone()) {
                paths.push((path, false));
            }
        }
    }
    let mut skipped = Skipped::default();
    for (path, tracked) in paths {
        let rel = Path::new(&path);
        match top.join(rel).symlink_metadata() {
            Ok(meta) if meta.file_type().is_file() => {}
            // Deleted from disk, a link, or another kind of file: nothing to read.
            _ => continue,
        }
        match crate::fsread::read_in_repo(&top, rel, MAX_FILE) {
            Ok(bytes) => {
                let place = Place {
                    path,
                    commit: None,
                    tracked,
                };
                visit(std::slice::from_ref(&place), &bytes);
            }
            Err(crate::fsread::ReadError::TooLarge { .. }) => skipped.too_large.push(path),
            Err(e) if e.is_not_found() => {}
            Err(e) => skipped.unreadable.push((path, e.to_string())),
        }
    }
    Ok(skipped)
}

/// The staged changes: each file of the index whose content differs from HEAD's (all of
/// them before the first commit), as the index holds it.
pub fn staged(
    repo: &Repository,
    visit: &mut dyn FnMut(&[Place], &[u8]),
) -> Result<Skipped, git2::Error> {
    let head = match repo.head().and_then(|h| h.peel_to_tree()) {
        Ok(tree) => Some(tree),
        Err(e)
            if matches!(
                e.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let mut options = git2::DiffOptions::new();
    options.ignore_submodules(true);
    let diff = repo.diff_tree_to_index(head.as_ref(), None, Some(&mut options))?;
    let mut skipped = Skipped::default();
    for delta in diff.deltas() {
        let file = delta.new_file();
        let regular = matches!(
            file.mode(),
            git2::FileMode::Blob | git2::FileMode::BlobExecutable
        );
        if !regular || file.id().is_zero() {
            continue;
        }
        let path = file
            .path_bytes()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let place = Place {
            path,
            commit: None,
            tracked: true,
        };
        read_blob(
            repo,
            file.id(),
            std::slice::from_ref(&place),
            &mut skipped,
            visit,
        )?;
    }
    Ok(skipped)
}

/// Every file version a reachable commit added (changed from each of its parents), each read
/// once, with every commit and path that added it, oldest first.
pub fn history(
    repo: &Repository,
    visit: &mut dyn FnMut(&[Place], &[u8]),
) -> Result<Skipped, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    walk.push_glob("*")?;
    if repo.head().is_ok_and(|h| h.target().is_some()) {
        walk.push_head()?;
    }
    let mut order: Vec<Oid> = Vec::new();
    let mut added: HashMap<Oid, Vec<Place>> = HashMap::new();
    let mut seen: HashSet<(Oid, String)> = HashSet::new();
    let mut skipped = Skipped::default();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        skipped.commits += 1;
        let tree = commit.tree()?;
        let parents: Vec<Tree<'_>> = commit
            .parents()
            .map(|p| p.tree())
            .collect::<Result<_, _>>()?;
        let mut changed = Vec::new();
        changes(repo, &tree, parents.first(), "", &mut changed)?;
        let at = CommitRef::new(commit.id().to_string(), commit.time().seconds());
        for (path, blob) in changed {
            // A merge adds only what differs from every parent.
            let from_other = parents
                .iter()
                .skip(1)
                .any(|p| p.get_path(Path::new(&path)).is_ok_and(|e| e.id() == blob));
            if from_other || !seen.insert((blob, path.clone())) {
                continue;
            }
            let places = added.entry(blob).or_insert_with(|| {
                order.push(blob);
                Vec::new()
            });
            places.push(Place {
                path,
                commit: Some(at.clone()),
                tracked: true,
            });
        }
    }
    for blob in order {
        let places = added.remove(&blob).unwrap_or_default();
        read_blob(repo, blob, &places, &mut skipped, visit)?;
    }
    Ok(skipped)
}

/// Adds to `out` each regular file of `tree` whose blob differs from `parent`'s at the same
/// path (every file when there is no parent), skipping subtrees that did not change.
fn changes(
    repo: &Repository,
    tree: &Tree<'_>,
    parent: Option<&Tree<'_>>,
    prefix: &str,
    out: &mut Vec<(String, Oid)>,
) -> Result<(), git2::Error> {
    let Some(parent) = parent else {
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if is_regular(entry.filemode()) {
                let name = String::from_utf8_lossy(entry.name_bytes());
                out.push((format!("{prefix}{dir}{name}"), entry.id()));
            }
            git2::TreeWalkResult::Ok
        })?;
        return Ok(());
    };
    for entry in tree.iter() {
        let old = parent.get_name_bytes(entry.name_bytes());
        if old
            .as_ref()
            .is_some_and(|o| o.id() == entry.id() && o.filemode() == entry.filemode())
        {
            continue;
        }
        let name = String::from_utf8_lossy(entry.name_bytes());
        let path = format!("{prefix}{name}");
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id())?;
                let old_sub = match old.as_ref().filter(|o| o.kind() == Some(ObjectType::Tree)) {
                    Some(o) => Some(repo.find_tree(o.id())?),
                    None => None,
                };
                changes(repo, &sub, old_sub.as_ref(), &format!("{path}/"), out)?;
            }
            Some(ObjectType::Blob) if is_regular(entry.filemode()) => {
                out.push((path, entry.id()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_regular(mode: i32) -> bool {
    mode & 0o170000 == 0o100000
}

fn read_blob(
    repo: &Repository,
    blob: Oid,
    places: &[Place],
    skipped: &mut Skipped,
    visit: &mut dyn FnMut(&[Place], &[u8]),
) -> Result<(), git2::Error> {
    let Some(first) = places.first() else {
        return Ok(());
    };
    let (size, _) = repo.odb()?.read_header(blob)?;
    if size as u64 > MAX_FILE {
        skipped.too_large.push(shown(first));
        return Ok(());
    }
    let content = repo.find_blob(blob)?;
    visit(places, content.content());
    Ok(())
}

fn shown(place: &Place) -> String {
    match &place.commit {
        Some(c) => format!("{}:{}", c.short(), place.path),
        None => place.path.clone(),
    }
}
