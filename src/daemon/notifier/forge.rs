//! Commit statuses on the forge that hosts the followed repository: where the API is, which
//! repository, and the request each forge's published API expects.
//!
//! - GitHub REST "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`, JSON
//!   `{state, description, context}`, `state` one of error, failure, pending, success;
//!   `Authorization: Bearer TOKEN`, `Accept: application/vnd.github+json`,
//!   `X-GitHub-Api-Version: 2022-11-28`, and a `User-Agent` (GitHub refuses requests
//!   without one). Descriptions longer than 140 characters are refused (422).
//! - GitLab "Set the pipeline status of a commit": `POST /projects/:id/statuses/:sha`, `:id`
//!   the project's URL-encoded full path; `state` one of pending, running, success, failed,
//!   canceled; `name` (the context), `description`, `ref`; `PRIVATE-TOKEN: TOKEN`.
//! - Gitea and Forgejo "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`,
//!   JSON `{state, description, context}`, `state` one of pending, success, error, failure,
//!   warning; `Authorization: token TOKEN`.

use serde_json::json;

use super::deliver::Outgoing;
use super::message::{State, StatusUpdate};

/// The forges castsync can set statuses on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    pub fn kind(self) -> &'static str {
        match self {
            Forge::GitHub => "github_status",
            Forge::GitLab => "gitlab_status",
            Forge::Gitea => "gitea_status",
        }
    }
}

/// Where a remote URL points: `scheme://host[:port]` of the web side, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    base: String,
    host: String,
    path: String,
}

/// Splits `https://[user@]host[:port]/path`, `ssh://[user@]host[:port]/path` and scp-like
/// `user@host:path`; `None` for local paths and `file://` (no forge behind them).
fn parse_remote(url: &str) -> Option<Remote> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            // scp-like: host:path, never with a slash before the colon.
            let (authority, path) = url.split_once(':')?;
            if authority.contains('/') || authority.is_empty() {
                return None;
            }
            let host = authority.rsplit('@').next()?.to_owned();
            return Some(Remote {
                base: format!("https://{host}"),
                host,
                path: path.to_owned(),
            });
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit('@').next()?;
    let host = host_port.split(':').next()?.to_owned();
    if host.is_empty() {
        return None;
    }
    let base = match scheme.as_str() {
        "https" | "http" => format!("{scheme}://{host_port}"),
        // An SSH port is not the web side's.
        "ssh" | "git+ssh" | "ssh+git" | "git" => format!("https://{host}"),
        _ => return None,
    };
    Some(Remote {
        base,
        host,
        path: path.to_owned(),
    })
}

/// `owner/repo` from a remote's path: no leading or trailing slash, no `.git`.
fn repository_of(path: &str) -> String {
    let path = path.trim_matches('/');
    path.strip_suffix(".git").unwrap_or(path).to_owned()
}

/// A resolved status target: API base and repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTarget {
    pub forge: Forge,
    pub api: String,
    pub repository: String,
}

impl StatusTarget {
    /// From the config's `api_url`/`repository`, filling what is missing from `remote`.
    pub fn resolve(
        forge: Forge,
        api_url: Option<&str>,
        repository: Option<&str>,
        remote: Option<&str>,
    ) -> Result<StatusTarget, String> {
        let parsed = remote.and_then(parse_remote);
        let api = match (api_url, &parsed) {
            (Some(api), _) => api.trim_end_matches('/').to_owned(),
            (None, Some(r)) => match forge {
                Forge::GitHub if r.host.eq_ignore_ascii_case("github.com") => {
                    "https://api.github.com".to_owned()
                }
                Forge::GitHub => format!("{}/api/v3", r.base),
                Forge::GitLab => format!("{}/api/v4", r.base),
                Forge::Gitea => format!("{}/api/v1", r.base),
            },
            (None, None) => {
                return Err(
                    "the forge's API cannot be told from this remote (a local path or file://): set api_url"
                        .to_owned(),
                );
            }
        };
        let repository = match (repository, &parsed) {
            (Some(r), _) => r.trim_matches('/').to_owned(),
            (None, Some(r)) => repository_of(&r.path),
            (None, None) => {
                return Err(
                    "the repository cannot be told from this remote (a local path or file://): set repository"
                        .to_owned(),
                );
            }
        };
        let segments = repository.split('/').filter(|s| !s.is_empty()).count();
        let fits = match forge {
            Forge::GitLab => segments >= 2,
            Forge::GitHub | Forge::Gitea => segments == 2,
        };
        if !fits {
            return Err(format!(
                "{:?} is not an OWNER/REPO path{}: set repository",
                crate::escape::terminal(&repository),
                if forge == Forge::GitLab {
                    " (GitLab: GROUP/…/PROJECT)"
                } else {
                    ""
                }
            ));
        }
        Ok(StatusTarget {
            forge,
            api,
            repository,
        })
    }

    /// The request that sets `update` on this forge, authenticated with `token`.
    pub fn request(
        &self,
        update: &StatusUpdate,
        context: &str,
        branch: Option<&str>,
        token: &str,
    ) -> Outgoing {
        let sha = &update.sha;
        let (url, headers, body) = match self.forge {
            Forge::GitHub => (
                format!("{}/repos/{}/statuses/{sha}", self.api, self.repository),
                vec![
                    ("authorization", format!("Bearer {token}")),
                    ("accept", "application/vnd.github+json".to_owned()),
                    ("x-github-api-version", "2022-11-28".to_owned()),
                ],
                json!({
                    "state": github_state(update.state),
                    "description": update.description,
                    "context": context,
                }),
            ),
            Forge::GitLab => {
                let mut body = json!({
                    "state": gitlab_state(update.state),
                    "name": context,
                    "description": update.description,
                });
                if let Some(branch) = branch {
                    body["ref"] = json!(branch);
                }
                (
                    format!(
                        "{}/projects/{}/statuses/{sha}",
                        self.api,
                        encode_component(&self.repository)
                    ),
                    vec![("private-token", token.to_owned())],
                    body,
                )
            }
            Forge::Gitea => (
                format!("{}/repos/{}/statuses/{sha}", self.api, self.repository),
                vec![("authorization", format!("token {token}"))],
                json!({
                    "state": github_state(update.state),
                    "description": update.description,
                    "context": context,
                }),
            ),
        };
        Outgoing::json(url, headers, &body)
    }

    /// For logs: the forge kind, API host and repository (never the token).
    pub fn label(&self) -> String {
        let host = parse_remote(&self.api).map_or_else(|| self.api.clone(), |r| r.host);
        format!("{} ({host}, {})", self.forge.kind(), self.repository)
    }
}

/// GitHub's states, which Gitea and Forgejo share.
fn github_state(state: State) -> &'static str {
    match state {
        State::Pending => "pending",
        State::Success => "success",
        State::Failure => "failure",
        State::Error => "error",
    }
}

fn gitlab_state(state: State) -> &'static str {
    match state {
        State::Pending => "pending",
        State::Success => "success",
        State::Failure => "failed",
        State::Error => "canceled",
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (GitLab's `:id` is the
/// project path with `/` as `%2F`).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(forge: Forge, remote: &str) -> StatusTarget {
        StatusTarget::resolve(forge, None, None, Some(remote)).unwrap()
    }

    #[test]
    fn the_api_and_repository_come_from_every_form_of_remote_url() {
        let cases = [
            (
                Forge::GitHub,
                "https://github.com/acme/secrets.git",
                "https://api.github.com",
                "acme/secrets",
            ),
            (
                Forge::GitHub,
                "git@github.com:acme/secrets.git",
                "https://api.github.com",
                "acme/secrets",
            ),
            (
                Forge::GitHub,
                "https://x-access-token:t0ken@github.com/acme/secrets",
                "https://api.github.com",
                "acme/secrets",
            ),
            (
                Forge::GitHub,
                "https://ghe.example.com/acme/secrets.git",
                "https://ghe.example.com/api/v3",
                "acme/secrets",
            ),
            (
                Forge::GitLab,
                "ssh://git@gitlab.example.com:2222/group/sub/project.git",
                "https://gitlab.example.com/api/v4",
                "group/sub/project",
            ),
            (
                Forge::GitLab,
                "https://gitlab.example.com:8443/group/project",
                "https://gitlab.example.com:8443/api/v4",
                "group/project",
            ),
            (
                Forge::Gitea,
                "https://codeberg.org/acme/secrets.git",
                "https://codeberg.org/api/v1",
                "acme/secrets",
            ),
            (
                Forge::Gitea,
                "http://127.0.0.1:3000/acme/secrets.git",
                "http://127.0.0.1:3000/api/v1",
                "acme/secrets",
            ),
        ];
        for (forge, remote, api, repo) in cases {
            let t = resolve(forge, remote);
            assert_eq!(
                (t.api.as_str(), t.repository.as_str()),
                (api, repo),
                "{remote}"
            );
            assert!(!t.label().contains("t0ken"), "{}", t.label());
        }
    }

    #[test]
    fn a_local_remote_needs_api_url_and_repository_from_the_config() {
        let err = StatusTarget::resolve(Forge::GitHub, None, None, Some("file:///srv/secrets.git"))
            .unwrap_err();
        assert!(err.contains("set api_url"), "{err}");
        let err = StatusTarget::resolve(Forge::GitHub, Some("http://127.0.0.1:9/"), None, None)
            .unwrap_err();
        assert!(err.contains("set repository"), "{err}");
        let t = StatusTarget::resolve(
            Forge::GitHub,
            Some("http://127.0.0.1:9/"),
            Some("acme/secrets"),
            Some("/srv/secrets.git"),
        )
        .unwrap();
        assert_eq!(t.api, "http://127.0.0.1:9");
        let err = StatusTarget::resolve(Forge::Gitea, Some("https://x"), Some("a/b/c"), None)
            .unwrap_err();
        assert!(err.contains("OWNER/REPO"), "{err}");
    }

    #[test]
    fn each_forge_gets_its_own_path_states_and_auth_header() {
        let update = StatusUpdate {
            sha: "0123abcd".into(),
            state: State::Failure,
            description: "billing: refused".into(),
        };
        let gh = resolve(Forge::GitHub, "https://github.com/acme/secrets.git");
        let req = gh.request(&update, "castsync", Some("main"), "T");
        assert_eq!(
            req.url,
            "https://api.github.com/repos/acme/secrets/statuses/0123abcd"
        );
        assert!(
            req.headers
                .contains(&("authorization", "Bearer T".to_owned()))
        );
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"state": "failure", "description": "billing: refused", "context": "castsync"})
        );

        let gl = resolve(Forge::GitLab, "git@gitlab.com:group/sub/project.git");
        let req = gl.request(&update, "castsync", Some("main"), "T");
        assert_eq!(
            req.url,
            "https://gitlab.com/api/v4/projects/group%2Fsub%2Fproject/statuses/0123abcd"
        );
        assert!(req.headers.contains(&("private-token", "T".to_owned())));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"state": "failed", "name": "castsync", "description": "billing: refused", "ref": "main"})
        );

        let gt = resolve(Forge::Gitea, "https://codeberg.org/acme/secrets");
        let req = gt.request(&update, "castsync", None, "T");
        assert!(
            req.headers
                .contains(&("authorization", "token T".to_owned()))
        );
        assert_eq!(
            req.url,
            "https://codeberg.org/api/v1/repos/acme/secrets/statuses/0123abcd"
        );
    }
}
