//! What the daemon follows: a remote branch (bare clone, commits read from git objects,
//! optionally signature-gated) or a local working tree.
//!
//! A refresh yields a [`Snapshot`]: the revision, its config and its agents. A commit that
//! fails the signature gate never becomes the snapshot; the previous one stays.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engine::Refreshed;
use super::git::Mirror;
use super::signatures::AllowedSigners;
use crate::config::{self, Config};
use crate::source::load::{self, MANIFEST_FILE, SCHEMA_FILE};
use crate::source::{GitRevision, Tree, Worktree};

/// Where manifests come from.
#[derive(Debug)]
pub enum Origin {
    /// `--git-url`: a bare clone; only commits signed by `signers` (when set) are used.
    Remote {
        mirror: Mirror,
        signers: Option<AllowedSigners>,
    },
    /// `--repo`: the working tree at this root.
    Local { root: PathBuf },
}

/// One revision the daemon may reconcile.
#[derive(Debug)]
pub struct Snapshot {
    /// A commit id, or `worktree:` + a digest of the tree's inputs.
    pub revision: String,
    pub commit: Option<git2::Oid>,
    /// The revision's config, or why it cannot be used.
    pub config: Result<Config, String>,
    /// The agent directories it declares.
    pub agents: Vec<String>,
}

/// Reads the config the way `-C` commands do, but from any tree: `--config FILE` when given
/// (a file on disk), else `castsync.yaml` at the tree's root (defaults when absent).
pub fn config_of(tree: &dyn Tree, explicit: Option<&Path>) -> Result<Config, String> {
    if let Some(path) = explicit {
        return Config::load(Path::new("."), Some(path)).map_err(|e| e.to_string());
    }
    let name = Path::new(config::FILE_NAME);
    match tree.read(name) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", tree.display(name)))?;
            Config::from_yaml(&text, Path::new(&tree.display(name))).map_err(|e| e.to_string())
        }
        Ok(None) => Ok(Config::default()),
        Err(e) => Err(e.to_string()),
    }
}

fn snapshot(
    tree: &dyn Tree,
    revision: String,
    commit: Option<git2::Oid>,
    explicit: Option<&Path>,
) -> Snapshot {
    let config = config_of(tree, explicit);
    let agents = match &config {
        Ok(c) => load::agent_slugs(tree, c).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    Snapshot {
        revision,
        commit,
        config,
        agents,
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
    let agents_dir = config_of(tree, explicit)
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
    /// Where a relative `local://PATH` platform and similar paths are resolved.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            Origin::Remote { mirror, .. } => mirror
                .path()
                .parent()
                .map_or_else(|| mirror.path().to_owned(), Path::to_path_buf),
            Origin::Local { root } => root.clone(),
        }
    }

    /// A label for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Remote { mirror, .. } => format!("{} ({})", mirror.url(), mirror.branch()),
            Origin::Local { root } => root.display().to_string(),
        }
    }

    /// Fetches or re-reads. `Ok((Refreshed, Some(snapshot)))` when the revision is usable,
    /// `Ok((Rejected, None))` when it is refused; `Err` when the source cannot be read.
    pub async fn refresh(
        &self,
        explicit_config: Option<&Path>,
    ) -> Result<(Refreshed, Option<Snapshot>), String> {
        match self {
            Origin::Local { root } => {
                let tree = Worktree::new(root);
                if !root.is_dir() {
                    return Err(format!("{} is not a directory", root.display()));
                }
                let revision = worktree_revision(&tree, explicit_config);
                let snap = snapshot(&tree, revision.clone(), None, explicit_config);
                Ok((
                    Refreshed::Ready {
                        revision,
                        commit_time: None,
                    },
                    Some(snap),
                ))
            }
            Origin::Remote { mirror, signers } => {
                let oid = fetch_off_runtime(mirror.clone()).await?;
                let repo = mirror.repository().map_err(|e| e.to_string())?;
                let revision = oid.to_string();
                if let Some(signers) = signers {
                    match signers.verify_commit(&repo, oid) {
                        Ok(v) => tracing::debug!(
                            commit = %revision,
                            principal = %v.principal,
                            key = %v.fingerprint,
                            "commit signature verified"
                        ),
                        Err(rejection) => {
                            return Ok((
                                Refreshed::Rejected {
                                    revision,
                                    reason: rejection.to_string(),
                                },
                                None,
                            ));
                        }
                    }
                }
                let commit_time = repo
                    .find_commit(oid)
                    .ok()
                    .map(|c| c.committer().when().seconds());
                let tree = GitRevision::from_repo(repo, &revision).map_err(|e| e.to_string())?;
                let snap = snapshot(&tree, revision.clone(), Some(oid), explicit_config);
                Ok((
                    Refreshed::Ready {
                        revision,
                        commit_time,
                    },
                    Some(snap),
                ))
            }
        }
    }

    /// The tree of `snapshot`, to reconcile from.
    pub fn tree(&self, snapshot: &Snapshot) -> Result<Box<dyn Tree>, String> {
        match (self, snapshot.commit) {
            (Origin::Remote { mirror, .. }, Some(oid)) => {
                let repo = mirror.repository().map_err(|e| e.to_string())?;
                let rev =
                    GitRevision::from_repo(repo, &oid.to_string()).map_err(|e| e.to_string())?;
                Ok(Box::new(rev))
            }
            (Origin::Local { root }, _) => Ok(Box::new(Worktree::new(root))),
            (Origin::Remote { .. }, None) => Err("no commit fetched yet".to_owned()),
        }
    }
}

/// Runs the (blocking, possibly slow) fetch on its own thread, so a hung network call can
/// neither stall the runtime nor hold up the process's exit at shutdown.
async fn fetch_off_runtime(mirror: Mirror) -> Result<git2::Oid, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("castsync-fetch".into())
        .spawn(move || {
            let _ = tx.send(mirror.fetch().map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("cannot start the fetch thread: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the fetch thread ended without a result".to_owned()))
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
        let snap = snapshot(&tree, "r".into(), None, None);
        let err = snap.config.unwrap_err();
        assert!(
            err.contains("castsync.yaml") && err.contains("prnue"),
            "{err}"
        );
    }
}
