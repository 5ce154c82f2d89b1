//! What the daemon follows, its origin: a remote branch (bare clone, commits read from git
//! objects, optionally signature-gated) or a local working tree.
//!
//! A refresh yields a [`Snapshot`]: the revision and its [`Checkout`] (tree, config,
//! agents). A commit that fails the signature gate never becomes the snapshot; the previous
//! one stays.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::mirror::Mirror;
use super::signatures::{AllowedSigners, Rejection};
use crate::config::{self, Config};
use crate::hint::Explained;
use crate::source::{
    Checkout, GitRevision, MANIFEST_FILE, SCHEMA_FILE, Tree, Worktree, read_config,
};

/// Where manifests come from.
#[derive(Debug)]
pub enum Origin {
    /// `--git-url`: a bare clone; only commits signed by `signers` (when set) are used.
    Remote {
        /// Boxed: the local variant holds only a path.
        mirror: Box<Mirror>,
        signers: Option<AllowedSigners>,
        /// The file recording the last commit the gate let through: a new one must descend
        /// from it. None without signers, or with `--allow-rollback`.
        last_signed: Option<PathBuf>,
    },
    /// `--repo`: the working tree at this root.
    Local { root: PathBuf },
}

/// What a refresh found.
#[derive(Debug)]
pub enum Fetched {
    /// A revision to reconcile from now on.
    Ready {
        /// Boxed: a snapshot holds a whole config, and a refusal needs none of it.
        snapshot: Box<Snapshot>,
        /// The commit's committer time (unix seconds), for a remote.
        commit_time: Option<i64>,
    },
    /// A commit that failed the signature gate: the previous snapshot stays.
    Rejected { revision: String, reason: String },
}

/// One revision the daemon may reconcile.
#[derive(Debug)]
pub struct Snapshot {
    /// A commit id, or `worktree:` + a digest of the tree's inputs.
    pub revision: String,
    /// The revision's tree, config and agents, or why they cannot be used.
    pub checkout: Result<Checkout, String>,
}

impl Snapshot {
    /// The agent directories it declares (none when its config is broken).
    pub fn agents(&self) -> &[String] {
        self.checkout.as_ref().map_or(&[], |c| c.agents.as_slice())
    }
}

fn snapshot(tree: Box<dyn Tree + Send>, revision: String, explicit: Option<&Path>) -> Snapshot {
    Snapshot {
        revision,
        checkout: Checkout::open(tree, explicit).map_err(|e| e.to_string()),
    }
}

/// A digest of everything a reconcile of the working tree reads: the config, and each
/// agent's manifest and schema. File events that change none of them change nothing.
pub fn worktree_revision(tree: &Worktree, explicit: Option<&Path>) -> String {
    let mut hash = Sha256::new();
    let mut feed = |label: &str, bytes: Option<Vec<u8>>| {
        hash.update(label.as_bytes());
        hash.update([0]);
        match bytes {
            Some(b) => {
                hash.update((b.len() as u64).to_le_bytes());
                hash.update(&b);
            }
            None => hash.update([0xff]),
        }
    };
    let config_bytes = match explicit {
        Some(p) => crate::fsread::read_file(p, crate::fsread::MAX_REPO_FILE).ok(),
        None => tree.read(Path::new(config::FILE_NAME)).ok().flatten(),
    };
    feed("config", config_bytes);
    let agents_dir = read_config(tree, explicit)
        .map(|c| c.agents_dir)
        .unwrap_or_else(|_| Config::default().agents_dir);
    for slug in tree.dirs(&agents_dir).unwrap_or_default() {
        let dir = agents_dir.join(&slug);
        for file in [MANIFEST_FILE, SCHEMA_FILE] {
            let path = dir.join(file);
            feed(&path.to_string_lossy(), tree.read(&path).ok().flatten());
        }
    }
    let digest = hex::encode(hash.finalize());
    format!("worktree:{}", &digest[..16])
}

impl Origin {
    /// A label for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Remote { mirror, .. } => format!("{} ({})", mirror.url(), mirror.branch()),
            Origin::Local { root } => root.display().to_string(),
        }
    }

    /// Fetches or re-reads. `Err` when the source cannot be read.
    pub async fn refresh(&self, explicit_config: Option<&Path>) -> Result<Fetched, Explained> {
        match self {
            Origin::Local { root } => {
                let tree = Worktree::new(root);
                if !root.is_dir() {
                    return Err(format!("{} is not a directory", root.display()).into());
                }
                let revision = worktree_revision(&tree, explicit_config);
                Ok(Fetched::Ready {
                    snapshot: Box::new(snapshot(Box::new(tree), revision, explicit_config)),
                    commit_time: None,
                })
            }
            Origin::Remote {
                mirror,
                signers,
                last_signed,
            } => {
                let oid = fetch_off_runtime(Mirror::clone(mirror)).await?;
                let repo = mirror.repository().map_err(|e| Explained::of(&e))?;
                let revision = oid.to_string();
                if let Some(signers) = signers {
                    let gate = signers
                        .verify_commit(&repo, oid)
                        .and_then(|v| match last_signed {
                            Some(file) => moves_forward(&repo, oid, file).map(|()| v),
                            None => Ok(v),
                        });
                    match gate {
                        Ok(v) => tracing::debug!(
                            commit = %revision,
                            principal = %v.principal,
                            key = %v.fingerprint,
                            "commit signature verified"
                        ),
                        Err(rejection) => {
                            return Ok(Fetched::Rejected {
                                revision,
                                reason: rejection.to_string(),
                            });
                        }
                    }
                }
                let commit_time = repo
                    .find_commit(oid)
                    .ok()
                    .map(|c| c.committer().when().seconds());
                let tree =
                    GitRevision::from_repo(repo, &revision).map_err(|e| Explained::of(&e))?;
                Ok(Fetched::Ready {
                    snapshot: Box::new(snapshot(Box::new(tree), revision, explicit_config)),
                    commit_time,
                })
            }
        }
    }
}

/// The signature gate's second rule, after Flux and TUF: the followed branch only moves
/// forward. `oid` must be the commit recorded in `file` (the last one let through) or descend
/// from it; then it is recorded in its place. No record yet (a first start) lets it through.
/// A recorded commit the clone no longer has, or a record that does not read, refuses: the
/// gate cannot tell forward from back.
fn moves_forward(repo: &git2::Repository, oid: git2::Oid, file: &Path) -> Result<(), Rejection> {
    let recorded = match std::fs::read_to_string(file) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("(unreadable: {})", e.kind())),
    };
    if let Some(last) = recorded {
        let forward = git2::Oid::from_str(&last)
            .is_ok_and(|last| last == oid || repo.graph_descendant_of(oid, last).unwrap_or(false));
        if !forward {
            return Err(Rejection::NotForward {
                commit: oid.to_string(),
                last: crate::escape::terminal(&last).into_owned(),
            });
        }
    }
    if let Err(e) = crate::atomic_write::write(
        file,
        format!("{oid}\n").as_bytes(),
        crate::atomic_write::Replace::Existing,
        crate::atomic_write::Mode::Private,
    ) {
        tracing::warn!(file = %file.display(), error = %e, "cannot record the last signed commit");
    }
    Ok(())
}

/// Runs the (blocking, possibly slow) fetch on its own thread, so a hung network call can
/// neither stall the runtime nor hold up the process's exit at shutdown.
async fn fetch_off_runtime(mirror: Mirror) -> Result<git2::Oid, Explained> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("castsync-fetch".into())
        .spawn(move || {
            let _ = tx.send(mirror.fetch().map_err(|e| Explained::of(&e)));
        })
        .map_err(|e| Explained::from(format!("cannot start the fetch thread: {e}")))?;
    rx.await
        .unwrap_or_else(|_| Err("the fetch thread ended without a result".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worktree_revision_changes_with_inputs_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agents/a")).unwrap();
        std::fs::write(root.join("agents/a/secrets.yaml.age"), "one").unwrap();
        let tree = Worktree::new(root);
        let first = worktree_revision(&tree, None);
        assert!(first.starts_with("worktree:"));
        std::fs::write(root.join("README.md"), "docs").unwrap();
        std::fs::write(root.join("agents/a/notes.txt"), "x").unwrap();
        assert_eq!(worktree_revision(&tree, None), first);
        std::fs::write(root.join("agents/a/secrets.yaml.age"), "two").unwrap();
        let second = worktree_revision(&tree, None);
        assert_ne!(second, first);
        std::fs::write(root.join("agents/a/.env.example"), "K=v\n").unwrap();
        assert_ne!(worktree_revision(&tree, None), second);
        std::fs::write(root.join("castsync.yaml"), "version: 1\n").unwrap();
        assert_ne!(worktree_revision(&tree, None), second);
    }

    #[test]
    fn a_broken_config_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("castsync.yaml"), "prnue: true\n").unwrap();
        let tree = Worktree::new(dir.path());
        let snap = snapshot(Box::new(tree), "r".into(), None);
        let err = snap.checkout.unwrap_err();
        assert!(
            err.contains("castsync.yaml") && err.contains("prnue"),
            "{err}"
        );
    }
}
