//! The followed remote: a bare clone under the data dir, fetched with git2.
//!
//! Nothing is ever checked out: manifests are read from the fetched commit's tree
//! (`source::GitRevision`). Auth: an HTTPS token from `CASTSYNC_GIT_TOKEN`, an SSH key from
//! `--ssh-key` (the host must be in `~/.ssh/known_hosts`: libgit2 refuses unknown hosts and
//! castsync never overrides that check). The token is never logged or put in an error.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The environment variable holding an HTTPS token for the remote.
pub const TOKEN_ENV: &str = "CASTSYNC_GIT_TOKEN";

/// The remote name inside the bare clone.
const REMOTE: &str = "origin";

#[derive(Debug, Error)]
pub enum GitError {
    /// The data dir or the clone cannot be created or opened.
    #[error("cannot set up the clone at {path}: {message}")]
    Setup { path: PathBuf, message: String },
    /// The fetch failed (network, auth, unknown host, missing branch…).
    #[error("fetching {branch} from {url} failed: {message}")]
    Fetch {
        url: String,
        branch: String,
        message: String,
    },
    /// The branch does not exist on the remote.
    #[error("branch {branch:?} not found on {url}")]
    NoBranch { url: String, branch: String },
}

impl crate::hint::Hinted for GitError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            GitError::NoBranch { .. } => Some("check --branch".into()),
            GitError::Setup { .. } | GitError::Fetch { .. } => None,
        }
    }
}

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub struct GitAuth {
    pub token: Option<SecretString>,
    pub ssh_key: Option<PathBuf>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

impl GitAuth {
    /// The token from `CASTSYNC_GIT_TOKEN` (if set and not blank) and the `--ssh-key` path.
    pub fn from_env(ssh_key: Option<PathBuf>) -> GitAuth {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        GitAuth { token, ssh_key }
    }
}

/// The default data dir: `$XDG_STATE_HOME/castsync`, else `~/.local/state/castsync`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("castsync"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/castsync"))
}

/// A remote URL as libgit2 should see it: URLs and scp-style `user@host:path` unchanged, a
/// plain path made absolute (the clone lives elsewhere, so a relative path would break).
pub fn normalize_url(url: &str) -> String {
    let is_url = url.contains("://");
    let is_scp = !is_url
        && url
            .split_once(':')
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'));
    if is_url || is_scp {
        return url.to_owned();
    }
    std::path::absolute(url)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| url.to_owned())
}

/// The sub-directory of the data dir for one remote: a readable slug of the URL plus a
/// hash, so two remotes never share a clone or a state file. Credentials in the URL are
/// left out of the slug.
pub fn remote_dir_name(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_user = without_scheme
        .rsplit_once('@')
        .map_or(without_scheme, |(_, rest)| rest);
    let mut slug: String = without_user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    slug = slug.trim_matches('_').to_owned();
    if slug.len() > 60 {
        slug = slug[slug.len() - 60..].to_owned();
    }
    let digest = Sha256::digest(url.as_bytes());
    format!("{slug}-{}", &hex::encode(digest)[..12])
}

/// A bare clone that follows one branch of one remote.
#[derive(Debug, Clone)]
pub struct Mirror {
    url: String,
    branch: String,
    path: PathBuf,
    auth: GitAuth,
}

impl Mirror {
    /// Opens the clone at `path`, creating it (bare, no objects yet) if needed, with
    /// `origin` pointing at `url`.
    pub fn open(url: &str, branch: &str, path: &Path, auth: GitAuth) -> Result<Mirror, GitError> {
        let setup = |e: git2::Error| GitError::Setup {
            path: path.to_owned(),
            message: e.message().to_owned(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| GitError::Setup {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        }
        let repo = match git2::Repository::open_bare(path) {
            Ok(r) => r,
            Err(_) => git2::Repository::init_bare(path).map_err(setup)?,
        };
        match repo.find_remote(REMOTE) {
            Ok(remote) if remote.url() == Ok(url) => {}
            Ok(_) => repo.remote_set_url(REMOTE, url).map_err(setup)?,
            Err(_) => {
                repo.remote(REMOTE, url).map_err(setup)?;
            }
        }
        Ok(Mirror {
            url: url.to_owned(),
            branch: branch.to_owned(),
            path: path.to_owned(),
            auth,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The local ref the branch is fetched into.
    pub fn tracking_ref(&self) -> String {
        format!("refs/remotes/{REMOTE}/{}", self.branch)
    }

    pub fn repository(&self) -> Result<git2::Repository, GitError> {
        git2::Repository::open_bare(&self.path).map_err(|e| GitError::Setup {
            path: self.path.clone(),
            message: e.message().to_owned(),
        })
    }

    /// Fetches the branch (blocking; call it off the async runtime) and returns the commit
    /// it points at.
    pub fn fetch(&self) -> Result<git2::Oid, GitError> {
        let repo = self.repository()?;
        let fetch_err = |e: git2::Error| GitError::Fetch {
            url: self.url.clone(),
            branch: self.branch.clone(),
            message: e.message().to_owned(),
        };
        let mut remote = repo.find_remote(REMOTE).map_err(fetch_err)?;
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(self.callbacks());
        options.download_tags(git2::AutotagOption::None);
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(fetch_err)?;
        match repo.refname_to_id(&self.tracking_ref()) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Err(GitError::NoBranch {
                url: self.url.clone(),
                branch: self.branch.clone(),
            }),
            Err(e) => Err(fetch_err(e)),
        }
    }

    fn callbacks(&self) -> git2::RemoteCallbacks<'static> {
        let auth = self.auth.clone();
        let mut attempts = 0u32;
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 asks again after a refused credential; offering the same one forever
            // would loop, so give up after a few.
            attempts += 1;
            if attempts > 3 {
                return Err(git2::Error::from_str(
                    "authentication failed: the remote refused the credentials offered",
                ));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY)
                && let Some(key) = &auth.ssh_key
            {
                return git2::Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &auth.token
            {
                // GitHub, GitLab and Gitea accept a token as the password for any user name.
                return git2::Cred::userpass_plaintext("x-access-token", token.expose_secret());
            }
            if allowed.contains(git2::CredentialType::DEFAULT) {
                return git2::Cred::default();
            }
            Err(git2::Error::from_str(&format!(
                "the remote needs credentials: set {TOKEN_ENV} for https, or pass --ssh-key for ssh"
            )))
        });
        callbacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit on `main` holding `file` = `content`.
    fn upstream(dir: &Path, content: &str) -> git2::Oid {
        let repo = git2::Repository::init(dir).unwrap();
        commit(&repo, content)
    }

    fn commit(repo: &git2::Repository, content: &str) -> git2::Oid {
        let blob = repo.blob(content.as_bytes()).unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        tb.insert("file", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parents: Vec<git2::Commit> = repo
            .refname_to_id("refs/heads/main")
            .ok()
            .and_then(|id| repo.find_commit(id).ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "c", &tree, &parents)
            .unwrap()
    }

    #[test]
    fn a_file_url_is_cloned_bare_and_fetched_again_after_a_new_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let up = tmp.path().join("up");
        let first = upstream(&up, "one");
        let url = format!("file://{}", up.display());
        let clone = tmp.path().join("data").join(remote_dir_name(&url));
        let mirror = Mirror::open(&url, "main", &clone, GitAuth::default()).unwrap();
        assert_eq!(mirror.fetch().unwrap(), first);
        assert!(mirror.repository().unwrap().is_bare());
        assert!(!clone.join("file").exists(), "nothing is checked out");

        let second = commit(&git2::Repository::open(&up).unwrap(), "two");
        // Reopening an existing clone works too.
        let mirror = Mirror::open(&url, "main", &clone, GitAuth::default()).unwrap();
        assert_eq!(mirror.fetch().unwrap(), second);
    }

    #[test]
    fn a_plain_path_works_and_a_missing_branch_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let up = tmp.path().join("up");
        let first = upstream(&up, "one");
        let url = normalize_url(up.to_str().unwrap());
        let clone = tmp.path().join("clone.git");
        let mirror = Mirror::open(&url, "main", &clone, GitAuth::default()).unwrap();
        assert_eq!(mirror.fetch().unwrap(), first);

        let mirror = Mirror::open(&url, "nope", &clone, GitAuth::default()).unwrap();
        let err = mirror.fetch().unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn an_unreachable_remote_is_a_fetch_error_naming_the_url() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}/does-not-exist", tmp.path().display());
        let mirror =
            Mirror::open(&url, "main", &tmp.path().join("c.git"), GitAuth::default()).unwrap();
        let err = mirror.fetch().unwrap_err();
        assert!(matches!(err, GitError::Fetch { .. }), "{err}");
        assert!(err.to_string().contains("does-not-exist"), "{err}");
    }

    #[test]
    fn urls_map_to_distinct_readable_dirs_without_credentials() {
        let a = remote_dir_name("https://user:hunter2@github.com/acme/secrets.git");
        let b = remote_dir_name("https://github.com/acme/secrets.git");
        assert!(a.starts_with("github.com_acme_secrets.git-"), "{a}");
        assert!(!a.contains("hunter2"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn plain_paths_become_absolute_and_urls_stay() {
        assert_eq!(normalize_url("https://h/r.git"), "https://h/r.git");
        assert_eq!(
            normalize_url("git@github.com:acme/s.git"),
            "git@github.com:acme/s.git"
        );
        assert!(Path::new(&normalize_url("some/dir")).is_absolute());
    }

    #[test]
    fn the_token_is_redacted_in_debug_output() {
        let auth = GitAuth {
            token: Some(SecretString::from("ghp_canary_never_print".to_owned())),
            ssh_key: None,
        };
        assert!(!format!("{auth:?}").contains("canary"));
    }
}
