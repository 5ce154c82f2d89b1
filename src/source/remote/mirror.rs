//! The followed remote: a bare clone under the data dir, fetched with git2.
//!
//! Nothing is ever checked out: manifests are read from the fetched commit's tree
//! (`source::GitRevision`). Auth: credentials in the URL (`https://user:TOKEN@host/…`), else
//! an HTTPS token from `CASTSYNC_GIT_TOKEN`, or an SSH key from `--ssh-key` (the host must be
//! in `~/.ssh/known_hosts`: libgit2 refuses unknown hosts and castsync never overrides that
//! check).
//!
//! Credentials never leave memory except toward the remote: they are taken out of the URL
//! before libgit2 sees it and handed over by the credential callback when the remote asks;
//! the clone's config keeps the URL without them ([`crate::redact::identity`]), messages show
//! it masked ([`crate::redact::url`]), and they are never offered over plain http to a host
//! that is not loopback.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// The fetch failed (network, unknown host, missing branch…). `url` is masked.
    #[error("fetching {branch} from {url} failed: {message}")]
    Fetch {
        url: String,
        branch: String,
        message: String,
        /// The remote's TLS certificate was not trusted.
        untrusted: bool,
    },
    /// The remote asked for credentials and refused the ones offered, or none were given.
    #[error("fetching {branch} from {url} failed: {problem}")]
    Auth {
        url: String,
        branch: String,
        problem: AuthProblem,
    },
    /// The branch does not exist on the remote.
    #[error("branch {branch:?} not found on {url}")]
    NoBranch { url: String, branch: String },
}

/// Why a fetch could not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthProblem {
    /// The remote refused what was offered.
    #[error("the remote refused {}", .0.describe())]
    Refused(Offered),
    /// The remote asked for credentials and castsync has none of the kind it accepts.
    #[error("the remote needs credentials and none were given")]
    Missing,
    /// The remote asked for credentials over plain http on another host.
    #[error("refusing to send git credentials over plain http:// to {host}")]
    Insecure { host: String },
}

/// Which credentials a fetch offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The user name and password (or token) written in `--git-url`.
    Url,
    /// `CASTSYNC_GIT_TOKEN`.
    Token,
    /// `--ssh-key`.
    SshKey,
}

impl Offered {
    fn describe(self) -> String {
        match self {
            Offered::Url => "the credentials given in the URL".to_owned(),
            Offered::Token => format!("the token from {TOKEN_ENV}"),
            Offered::SshKey => "the ssh key given with --ssh-key".to_owned(),
        }
    }
}

impl crate::hint::Hinted for GitError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            GitError::NoBranch { .. } => Some("check --branch".into()),
            GitError::Auth { problem, .. } => Some(
                match problem {
                    AuthProblem::Refused(Offered::Url) => "check the token in --git-url: it may have expired, been revoked, or lack read access to the repository".to_owned(),
                    AuthProblem::Refused(Offered::Token) => format!("check {TOKEN_ENV}: the token may have expired, been revoked, or lack read access to the repository"),
                    AuthProblem::Refused(Offered::SshKey) => "check that the key given with --ssh-key is allowed to read the repository".to_owned(),
                    AuthProblem::Missing => format!("set {TOKEN_ENV} for https, or pass --ssh-key for ssh"),
                    AuthProblem::Insecure { .. } => "use https:// (or ssh), or pass --allow-insecure-http if this network is trusted".to_owned(),
                }
                .into(),
            ),
            GitError::Fetch {
                untrusted: true, ..
            } => Some(
                "if the remote's certificate is signed by a private CA, set SSL_CERT_FILE to a PEM file holding that CA"
                    .into(),
            ),
            GitError::Setup { .. } | GitError::Fetch { .. } => None,
        }
    }
}

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub struct GitAuth {
    pub token: Option<SecretString>,
    pub ssh_key: Option<PathBuf>,
    /// Send credentials over plain http to a host that is not loopback
    /// (`--allow-insecure-http`).
    pub allow_insecure_http: bool,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl GitAuth {
    /// The token from `CASTSYNC_GIT_TOKEN` (if set and not blank) and the `--ssh-key` path.
    pub fn from_env(ssh_key: Option<PathBuf>, allow_insecure_http: bool) -> GitAuth {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        GitAuth {
            token,
            ssh_key,
            allow_insecure_http,
        }
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
/// hash, so two remotes never share a clone or a state file. Both are taken from the URL
/// without its credentials ([`crate::redact::identity`]): a rotated token keeps the clone
/// and the state.
pub fn remote_dir_name(url: &str) -> String {
    let url = crate::redact::identity(url);
    let without_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
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

/// The user name and password written in the remote's URL.
#[derive(Clone)]
struct UrlCredentials {
    user: SecretString,
    password: SecretString,
}

/// A bare clone that follows one branch of one remote.
#[derive(Clone)]
pub struct Mirror {
    /// The URL for messages: credentials masked.
    shown: String,
    /// The URL libgit2 fetches: credentials taken out.
    fetch_url: String,
    url_credentials: Option<UrlCredentials>,
    branch: String,
    path: PathBuf,
    auth: GitAuth,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("url", &self.shown)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Where credentials sent to `url` would cross the network in clear: a plain-http remote on
/// another host, or one reached through a proxy on another host. None for https, ssh, files
/// and loopback.
fn exposed_to(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    if parsed.scheme() != "http" {
        return None;
    }
    if !crate::net::is_loopback(host) {
        return Some(host.to_owned());
    }
    let proxy = crate::net::proxy_for(&parsed)?;
    let remote_proxy = !proxy.host_str().is_some_and(crate::net::is_loopback);
    remote_proxy.then(|| {
        format!(
            "{host} through the proxy {}",
            crate::redact::url(proxy.as_str())
        )
    })
}

/// The proxy the environment names for an http(s) remote (see [`crate::net`]), as libgit2
/// takes it.
fn proxy_options(url: &str) -> Option<git2::ProxyOptions<'static>> {
    let proxy = crate::net::proxy_for(&reqwest::Url::parse(url).ok()?)?;
    let mut options = git2::ProxyOptions::new();
    options.url(proxy.as_str());
    Some(options)
}

impl Mirror {
    /// Opens the clone at `path`, creating it (bare, no objects yet) if needed, with
    /// `origin` pointing at `url` without its credentials. Credentials written in a plain
    /// http URL to a host that is not loopback are refused here, before anything is sent.
    pub fn open(url: &str, branch: &str, path: &Path, auth: GitAuth) -> Result<Mirror, GitError> {
        let shown = crate::redact::url(url);
        let (fetch_url, url_credentials) = match crate::redact::take_user_info(url) {
            Some((rest, info)) => (
                rest,
                Some(UrlCredentials {
                    user: SecretString::from(info.user),
                    password: SecretString::from(info.password.unwrap_or_default()),
                }),
            ),
            None => (url.to_owned(), None),
        };
        if url_credentials.is_some()
            && !auth.allow_insecure_http
            && let Some(host) = exposed_to(&fetch_url)
        {
            return Err(GitError::Auth {
                url: shown,
                branch: branch.to_owned(),
                problem: AuthProblem::Insecure { host },
            });
        }
        let setup = |e: git2::Error| GitError::Setup {
            path: path.to_owned(),
            message: crate::redact::in_text(e.message()).into_owned(),
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
        // Kept for people looking into the clone; fetches use the URL held in memory. This
        // also rewrites a URL that an older version stored with its token.
        let stored = crate::redact::identity(url);
        match repo.find_remote(REMOTE) {
            Ok(remote) if remote.url() == Ok(stored.as_str()) => {}
            Ok(_) => repo.remote_set_url(REMOTE, &stored).map_err(setup)?,
            Err(_) => {
                repo.remote(REMOTE, &stored).map_err(setup)?;
            }
        }
        Ok(Mirror {
            shown,
            fetch_url,
            url_credentials,
            branch: branch.to_owned(),
            path: path.to_owned(),
            auth,
        })
    }

    /// The remote's URL for messages and status pages, credentials masked.
    pub fn url(&self) -> &str {
        &self.shown
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
            url: self.shown.clone(),
            branch: self.branch.clone(),
            message: crate::redact::in_text(e.message()).into_owned(),
            untrusted: e.code() == git2::ErrorCode::Certificate,
        };
        let mut remote = repo.remote_anonymous(&self.fetch_url).map_err(fetch_err)?;
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let auth_problem = Arc::new(Mutex::new(None));
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(self.callbacks(auth_problem.clone()));
        options.download_tags(git2::AutotagOption::None);
        if let Some(proxy) = proxy_options(&self.fetch_url) {
            options.proxy_options(proxy);
        }
        let fetched = remote.fetch(&[refspec.as_str()], Some(&mut options), None);
        if let Err(e) = fetched {
            let problem = auth_problem
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            return Err(match problem {
                Some(problem) => GitError::Auth {
                    url: self.shown.clone(),
                    branch: self.branch.clone(),
                    problem,
                },
                None => fetch_err(e),
            });
        }
        match repo.refname_to_id(&self.tracking_ref()) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Err(GitError::NoBranch {
                url: self.shown.clone(),
                branch: self.branch.clone(),
            }),
            Err(e) => Err(fetch_err(e)),
        }
    }

    /// Answers libgit2's requests for credentials: the URL's, then the token, then the ssh
    /// key; each offered once. Why none could be given ends up in `problem`.
    fn callbacks(
        &self,
        problem: Arc<Mutex<Option<AuthProblem>>>,
    ) -> git2::RemoteCallbacks<'static> {
        let (auth, url_credentials) = (self.auth.clone(), self.url_credentials.clone());
        let insecure = exposed_to(&self.fetch_url).filter(|_| !auth.allow_insecure_http);
        let mut offered: Option<Offered> = None;
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.credentials(move |_url, username, allowed| {
            let fail = |p: AuthProblem| {
                let message = p.to_string();
                *problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                Err(git2::Error::from_str(&message))
            };
            // libgit2 asks again after a refused credential: offering the same one again
            // would loop.
            if let Some(refused) = offered {
                return fail(AuthProblem::Refused(refused));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY)
                && let Some(key) = &auth.ssh_key
            {
                offered = Some(Offered::SshKey);
                return git2::Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                let (source, user, password) = match (&url_credentials, &auth.token) {
                    (Some(c), _) => (
                        Offered::Url,
                        c.user.expose_secret(),
                        c.password.expose_secret(),
                    ),
                    // GitHub, GitLab and Gitea accept a token as the password for any user.
                    (None, Some(token)) => {
                        (Offered::Token, "x-access-token", token.expose_secret())
                    }
                    (None, None) => return fail(AuthProblem::Missing),
                };
                if let Some(host) = &insecure {
                    return fail(AuthProblem::Insecure { host: host.clone() });
                }
                offered = Some(source);
                return git2::Cred::userpass_plaintext(user, password);
            }
            if allowed.contains(git2::CredentialType::DEFAULT) {
                return git2::Cred::default();
            }
            fail(AuthProblem::Missing)
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
    fn urls_map_to_distinct_readable_dirs_whatever_their_credentials() {
        let a = remote_dir_name("https://user:hunter2@github.com/acme/secrets.git");
        let b = remote_dir_name("https://github.com/acme/secrets.git");
        let c = remote_dir_name("https://github.com/acme/other.git");
        assert!(a.starts_with("github.com_acme_secrets.git-"), "{a}");
        assert!(!a.contains("hunter2"), "{a}");
        // A rotated token (or one moved to CASTSYNC_GIT_TOKEN) keeps the clone and the state.
        assert_eq!(a, b);
        assert_eq!(
            a,
            remote_dir_name("https://rotated@github.com/acme/secrets.git")
        );
        assert_ne!(a, c);
        // A remote without credentials keeps the name it always had.
        assert_eq!(b, "github.com_acme_secrets.git-5b5382fb9715");
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
            ..GitAuth::default()
        };
        assert!(!format!("{auth:?}").contains("canary"));
    }
}
