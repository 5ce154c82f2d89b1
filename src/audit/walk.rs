//! The history of each tracked file, read from git objects: the commits where its content
//! changed, newest first, along the file's own line of history as `git log -- PATH` follows
//! it (at a merge, into the parent whose file is the same: the merge changed nothing there,
//! the branch did).
//!
//! All files are walked at once, in one pass over the commits in topological order (every
//! commit after all its children): the files sit at a commit in groups, and a commit moves
//! its group to a parent, recording a change for the few files its diff touches. A diff
//! compares only the tree entries on the tracked paths, and skips any subtree whose id did
//! not change, so a commit costs its changed trees, not the repository's size.
//!
//! A second run walks only the commits since the last one (`Since`), and joins each file's
//! new changes to its cached history at the old head; when a file's line of history meets
//! the old history anywhere else (a merge of a branch forked before it), the caller walks
//! everything again rather than guess.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use git2::{Oid, Repository, Tree};

/// One version of a file: the commit whose diff changed it, the commit's time (the
/// committer's, in seconds since the epoch), the file's blob id, and the blob id of
/// `castsync.yaml` in that commit (`None` when it had none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub commit: Oid,
    pub time: i64,
    pub blob: Oid,
    pub config: Option<Oid>,
}

/// Each tracked file's versions, newest first; the oldest is the commit that created it (or
/// the oldest commit of a shallow clone).
pub type Chains = BTreeMap<String, Vec<Version>>;

/// The history of an earlier walk: its head and its chains.
pub struct Since<'a> {
    pub head: Oid,
    pub chains: &'a Chains,
}

/// What a walk found.
pub struct Walked {
    pub chains: Chains,
    /// Commits read (a second run reads only the new ones).
    pub commits: usize,
}

/// A path to follow, split into its components, and its index among the tracked files.
enum Node {
    File(u32),
    Dir(HashMap<Vec<u8>, Node>),
}

/// Walks from `head`. `paths` are relative to the git repository's top (`config` is
/// `castsync.yaml`'s path there); a path absent at `head` is left out. With `since`, only the
/// commits after its head are read, and `None` means the result cannot be joined to it.
pub fn walk(
    repo: &Repository,
    head: Oid,
    paths: &[String],
    config: &str,
    since: Option<Since<'_>>,
) -> Result<Option<Walked>, git2::Error> {
    let mut walker = Walker::new(repo, paths, config);
    let head_tree = repo.find_commit(head)?.tree()?;
    let mut at: HashMap<Oid, Vec<u32>> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        if let Some(blob) = blob_at(&head_tree, path) {
            walker.blob[i] = Some(blob);
            at.entry(head).or_default().push(i as u32);
        }
    }
    let mut revwalk = repo.revwalk()?;
    revwalk.set_sorting(git2::Sort::TOPOLOGICAL)?;
    revwalk.push(head)?;
    if let Some(since) = &since {
        revwalk.hide(since.head)?;
    }
    let mut commits = 0;
    for oid in revwalk {
        let oid = oid?;
        commits += 1;
        if let Some(group) = at.remove(&oid) {
            walker.step(oid, group, &mut at)?;
        }
    }
    // Whatever is left waits at a commit the walk did not read: the old head, where the
    // cached history goes on (from the blob the walk carried down to it), or an older commit,
    // where nothing can be joined.
    let mut joined: Vec<(usize, &Vec<Version>)> = Vec::new();
    if let Some(since) = &since {
        for (commit, group) in &at {
            if *commit != since.head {
                return Ok(None);
            }
            for &i in group {
                let i = i as usize;
                match since.chains.get(&paths[i]) {
                    Some(old) if old.first().map(|v| v.blob) == walker.blob[i] => {
                        joined.push((i, old))
                    }
                    _ => return Ok(None),
                }
            }
        }
    }
    let mut versions = walker.versions;
    for (i, old) in joined {
        versions[i].extend(old.iter().cloned());
    }
    let chains = paths
        .iter()
        .cloned()
        .zip(versions)
        .filter(|(_, v)| !v.is_empty())
        .collect();
    Ok(Some(Walked { chains, commits }))
}

/// The walk's state: the tracked paths as a tree of names, each file's blob where its group
/// stands, its versions so far, and the trees lately read.
struct Walker<'r> {
    repo: &'r Repository,
    root: Node,
    config: String,
    blob: Vec<Option<Oid>>,
    versions: Vec<Vec<Version>>,
    trees: HashMap<Oid, Tree<'r>>,
}

/// Trees kept parsed between commits: a commit's trees are its parent's, but for one path.
const TREE_CACHE: usize = 256;

impl<'r> Walker<'r> {
    fn new(repo: &'r Repository, paths: &[String], config: &str) -> Walker<'r> {
        let mut root = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let parts: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
            insert(&mut root, &parts, i as u32);
        }
        Walker {
            repo,
            root: Node::Dir(root),
            config: config.to_owned(),
            blob: vec![None; paths.len()],
            versions: vec![Vec::new(); paths.len()],
            trees: HashMap::new(),
        }
    }

    /// Commit `oid` moves `group` (files whose version at `oid` is `self.blob`) to its parents.
    fn step(
        &mut self,
        oid: Oid,
        group: Vec<u32>,
        at: &mut HashMap<Oid, Vec<u32>>,
    ) -> Result<(), git2::Error> {
        let commit = self.repo.find_commit(oid)?;
        let parents: Vec<Oid> = commit.parent_ids().collect();
        let tree = commit.tree_id();
        if parents.is_empty() {
            // A root commit (or a shallow clone's oldest): every file began here.
            for i in group {
                self.record(i, &commit)?;
            }
            return Ok(());
        }
        let mut diffs: Vec<HashMap<u32, Option<Oid>>> = Vec::with_capacity(parents.len());
        for parent in &parents {
            let parent_tree = self.repo.find_commit(*parent)?.tree_id();
            diffs.push(self.diff(tree, parent_tree)?);
        }
        let mut moved: Vec<Vec<u32>> = vec![Vec::new(); parents.len()];
        for i in group {
            match diffs.iter().position(|d| !d.contains_key(&i)) {
                // Unchanged from this parent: its history goes on there.
                Some(p) => moved[p].push(i),
                // Changed here, from every parent: a version; its history goes on in the
                // first parent, unless it began here.
                None => {
                    self.record(i, &commit)?;
                    if let Some(old) = diffs[0][&i] {
                        self.blob[i as usize] = Some(old);
                        moved[0].push(i);
                    }
                }
            }
        }
        for (parent, files) in parents.iter().zip(moved) {
            if files.is_empty() {
                continue;
            }
            match at.entry(*parent) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(files);
                }
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().extend(files)
                }
            }
        }
        Ok(())
    }

    /// A version of file `i` at `commit`: the blob its group carried there.
    fn record(&mut self, i: u32, commit: &git2::Commit<'_>) -> Result<(), git2::Error> {
        let Some(blob) = self.blob[i as usize] else {
            return Ok(());
        };
        let tree = commit.tree()?;
        self.versions[i as usize].push(Version {
            commit: commit.id(),
            time: commit.time().seconds(),
            blob,
            config: blob_at(&tree, &self.config),
        });
        Ok(())
    }

    /// The tracked files whose blob differs between `new` and `old`: index → the blob in
    /// `old` (`None`: absent there).
    fn diff(&mut self, new: Oid, old: Oid) -> Result<HashMap<u32, Option<Oid>>, git2::Error> {
        let mut out = HashMap::new();
        let root = std::mem::replace(&mut self.root, Node::Dir(HashMap::new()));
        let result = match &root {
            Node::Dir(names) => self.diff_dir(Some(new), Some(old), names, &mut out),
            Node::File(_) => Ok(()),
        };
        self.root = root;
        result.map(|()| out)
    }

    fn diff_dir(
        &mut self,
        new: Option<Oid>,
        old: Option<Oid>,
        names: &HashMap<Vec<u8>, Node>,
        out: &mut HashMap<u32, Option<Oid>>,
    ) -> Result<(), git2::Error> {
        if new == old {
            return Ok(());
        }
        if self.trees.len() + 2 > TREE_CACHE {
            self.trees.clear();
        }
        for id in [new, old].into_iter().flatten() {
            if !self.trees.contains_key(&id) {
                let tree = self.repo.find_tree(id)?;
                self.trees.insert(id, tree);
            }
        }
        let changed = {
            let tree = |id: Option<Oid>| id.and_then(|id| self.trees.get(&id));
            differing(tree(new), tree(old))
        };
        for (name, a, b) in changed {
            match names.get(name.as_slice()) {
                Some(Node::File(i)) => {
                    let blob = |e: Option<(Oid, bool)>| e.filter(|(_, tree)| !tree).map(|e| e.0);
                    if blob(a) != blob(b) {
                        out.insert(*i, blob(b));
                    }
                }
                Some(Node::Dir(children)) => {
                    let tree = |e: Option<(Oid, bool)>| e.filter(|(_, tree)| *tree).map(|e| e.0);
                    self.diff_dir(tree(a), tree(b), children, out)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// An entry of a changed name: (name, its id and whether it is a tree, in `a`, in `b`).
type Changed = (Vec<u8>, Option<(Oid, bool)>, Option<(Oid, bool)>);

/// The names whose entry differs between two trees (git keeps entries sorted, so one pass
/// over both does it; only the differing names are copied).
fn differing(a: Option<&Tree<'_>>, b: Option<&Tree<'_>>) -> Vec<Changed> {
    let entry = |e: &git2::TreeEntry<'_>| (e.id(), e.kind() == Some(git2::ObjectType::Tree));
    let mut a = a.map(|t| t.iter()).into_iter().flatten().peekable();
    let mut b = b.map(|t| t.iter()).into_iter().flatten().peekable();
    let mut out = Vec::new();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some(x), Some(y)) => {
                let (x_tree, y_tree) = (entry(x).1, entry(y).1);
                git_order(x.name_bytes(), x_tree, y.name_bytes(), y_tree)
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        match order {
            Ordering::Equal => {
                let (x, y) = (a.next(), b.next());
                if let (Some(x), Some(y)) = (x, y)
                    && x.id() != y.id()
                {
                    out.push((x.name_bytes().to_vec(), Some(entry(&x)), Some(entry(&y))));
                }
            }
            Ordering::Less => {
                if let Some(x) = a.next() {
                    out.push((x.name_bytes().to_vec(), Some(entry(&x)), None));
                }
            }
            Ordering::Greater => {
                if let Some(y) = b.next() {
                    out.push((y.name_bytes().to_vec(), None, Some(entry(&y))));
                }
            }
        }
    }
}

/// git's order of tree entries: by name, a tree's name read as if it ended in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |s: &[u8], tree: bool| s.get(n).copied().or(tree.then_some(b'/'));
    next(a, a_tree).cmp(&next(b, b_tree))
}

fn insert(dir: &mut HashMap<Vec<u8>, Node>, parts: &[&[u8]], index: u32) {
    match parts {
        [] => {}
        [file] => {
            dir.insert(file.to_vec(), Node::File(index));
        }
        [name, rest @ ..] => {
            let node = dir
                .entry(name.to_vec())
                .or_insert_with(|| Node::Dir(HashMap::new()));
            if let Node::Dir(children) = node {
                insert(children, rest, index);
            }
        }
    }
}

/// The blob at `path` (`a/b/c`) in `tree`, if it is a file there.
pub fn blob_at(tree: &Tree<'_>, path: &str) -> Option<Oid> {
    let entry = tree.get_path(std::path::Path::new(path)).ok()?;
    (entry.kind() == Some(git2::ObjectType::Blob)).then(|| entry.id())
}
