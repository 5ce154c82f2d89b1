//! `notify:` — where `castsync watch` reports what it did: a commit status on the forge
//! (GitHub, GitLab, Gitea/Forgejo), a generic signed webhook, a Slack-compatible incoming
//! webhook. Only the daemon reads it; `reconcile` ignores it.
//!
//! The config lives in git, so it never holds a credential: tokens, signing secrets and
//! Slack URLs (whose path is the credential) are named by environment variable. Those names
//! may not be castsync's own credentials (`CASTARI_API_KEY…`, `CASTSYNC_…`): a commit must not
//! be able to send the platform key or an age identity to a forge as a "token".

use serde::{Deserialize, Serialize};

/// One `notify:` entry: exactly one of its fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyEntry {
    /// A commit status on GitHub (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_status: Option<CommitStatus>,
    /// A commit status on GitLab (`POST /projects/:id/statuses/:sha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitlab_status: Option<CommitStatus>,
    /// A commit status on Gitea or Forgejo (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitea_status: Option<CommitStatus>,
    /// A generic webhook: a versioned JSON body signed with HMAC-SHA256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
}

/// A forge to set commit statuses on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitStatus {
    /// The environment variable holding the forge token.
    pub token_env: String,
    /// The forge's API base URL; default: derived from the followed remote's host
    /// (`https://api.github.com` for github.com, `https://HOST/api/v3` for GitHub Enterprise,
    /// `https://HOST/api/v4` for GitLab, `https://HOST/api/v1` for Gitea and Forgejo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `owner/repo` (GitLab: the project's full path); default: from the remote URL's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// A generic webhook target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Where to POST; or `url_env` when the URL itself is a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// The environment variable holding the HMAC-SHA256 signing secret
    /// (`X-Castsync-Signature-256: sha256=<hex>`); without it deliveries are unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Which events to send (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyEvent>>,
}

/// A Slack-compatible incoming webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackTarget {
    /// The environment variable holding the incoming webhook's URL (its path is the
    /// credential, so it never sits in the config).
    pub url_env: String,
    /// Which events to send (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyEvent>>,
}

/// What a webhook or chat target can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// Changes landed on the platform.
    Apply,
    /// A reconcile, or an agent in it, failed (each distinct failure once per commit).
    Failure,
    /// Keys changed on the platform behind castsync's back were set back.
    Drift,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Apply => "apply",
            NotifyEvent::Failure => "failure",
            NotifyEvent::Drift => "drift",
        }
    }
}

/// The kinds of entry, by their field names.
pub const KINDS: &[&str] = &[
    "github_status",
    "gitlab_status",
    "gitea_status",
    "webhook",
    "slack",
];

impl NotifyEntry {
    /// The kinds set in this entry (valid entries set exactly one).
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            self.github_status.is_some(),
            self.gitlab_status.is_some(),
            self.gitea_status.is_some(),
            self.webhook.is_some(),
            self.slack.is_some(),
        ]
        .iter()
        .zip(KINDS)
        .filter(|(set, _)| **set)
        .map(|(_, kind)| *kind)
        .collect()
    }

    /// What is wrong with this entry, as `(field under the entry, problem)`.
    pub fn problem(&self) -> Option<(String, String)> {
        let kinds = self.kinds();
        if kinds.len() != 1 {
            return Some((
                String::new(),
                format!(
                    "an entry names exactly one of {}, not {}",
                    KINDS.join(", "),
                    if kinds.is_empty() {
                        "none".to_owned()
                    } else {
                        kinds.join(" and ")
                    }
                ),
            ));
        }
        let kind = kinds[0];
        let at = |field: &str| format!(".{kind}.{field}");
        let env = |field: &str, name: &str| env_problem(name).map(|p| (at(field), p));
        for status in [&self.github_status, &self.gitlab_status, &self.gitea_status]
            .into_iter()
            .flatten()
        {
            if let Some(p) = env("token_env", &status.token_env) {
                return Some(p);
            }
            if let Some(p) = status.api_url.as_deref().and_then(url_problem) {
                return Some((at("api_url"), p));
            }
            if let Some(repo) = &status.repository
                && repository_problem(repo)
            {
                return Some((
                    at("repository"),
                    format!(
                        "{repo:?} is not a repository path: expected OWNER/REPO (GitLab: GROUP/…/PROJECT)"
                    ),
                ));
            }
        }
        if let Some(hook) = &self.webhook {
            match (&hook.url, &hook.url_env) {
                (Some(_), Some(_)) | (None, None) => {
                    return Some((
                        format!(".{kind}"),
                        "set exactly one of url and url_env".to_owned(),
                    ));
                }
                (Some(url), None) => {
                    if let Some(p) = url_problem(url) {
                        return Some((at("url"), p));
                    }
                }
                (None, Some(name)) => {
                    if let Some(p) = env("url_env", name) {
                        return Some(p);
                    }
                }
            }
            if let Some(p) = hook
                .secret_env
                .as_deref()
                .and_then(|n| env("secret_env", n))
            {
                return Some(p);
            }
            if hook.events.as_ref().is_some_and(Vec::is_empty) {
                return Some((at("events"), EMPTY_EVENTS.to_owned()));
            }
        }
        if let Some(slack) = &self.slack {
            if let Some(p) = env("url_env", &slack.url_env) {
                return Some(p);
            }
            if slack.events.as_ref().is_some_and(Vec::is_empty) {
                return Some((at("events"), EMPTY_EVENTS.to_owned()));
            }
        }
        None
    }
}

const EMPTY_EVENTS: &str = "lists no event, so nothing would be sent: list some of apply, failure, drift, or leave it out for all";

/// An environment variable name a target may read: a plain name that is not one of
/// castsync's own credentials.
fn env_problem(name: &str) -> Option<String> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Some(format!(
            "{:?} is not an environment variable name (letters, digits and _)",
            crate::escape::terminal(name)
        ));
    }
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CASTARI_API_KEY") || upper.starts_with("CASTSYNC_") {
        return Some(format!(
            "{name} is one of castsync's own credentials; a notification target never gets it: use a variable of its own (e.g. GITHUB_TOKEN)"
        ));
    }
    None
}

/// A target URL: `https://`, or `http://` (a plain-text hop is the operator's choice, e.g. a
/// sidecar on loopback).
fn url_problem(url: &str) -> Option<String> {
    let ok = ["https://", "http://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme));
    (!ok).then(|| "must be an https:// (or http://) URL".to_owned())
}

fn repository_problem(repo: &str) -> bool {
    let parts: Vec<&str> = repo.split('/').collect();
    parts.len() < 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> NotifyEntry {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn each_kind_parses_and_a_valid_entry_has_no_problem() {
        for yaml in [
            "github_status: { token_env: GITHUB_TOKEN }",
            "gitlab_status: { token_env: GITLAB_TOKEN, api_url: https://gitlab.example.com/api/v4, repository: group/sub/project }",
            "gitea_status: { token_env: GITEA_TOKEN, repository: acme/secrets }",
            "webhook: { url: https://hooks.example.com/castsync, secret_env: NOTIFY_SECRET, events: [failure] }",
            "webhook: { url_env: HOOK_URL }",
            "slack: { url_env: SLACK_WEBHOOK_URL, events: [apply, drift] }",
        ] {
            let e = entry(yaml);
            assert_eq!(e.kinds().len(), 1, "{yaml}");
            assert_eq!(e.problem(), None, "{yaml}");
        }
    }

    #[test]
    fn bad_entries_name_the_field_and_the_fix() {
        for (yaml, field, says) in [
            ("{}", "", "exactly one of"),
            (
                "{ slack: { url_env: A }, webhook: { url: https://x } }",
                "",
                "webhook and slack",
            ),
            (
                "github_status: { token_env: CASTARI_API_KEY }",
                ".github_status.token_env",
                "castsync's own credentials",
            ),
            (
                "gitea_status: { token_env: CASTSYNC_AGE_KEY }",
                ".gitea_status.token_env",
                "castsync's own credentials",
            ),
            (
                "github_status: { token_env: 'not a name' }",
                ".github_status.token_env",
                "not an environment variable name",
            ),
            (
                "gitlab_status: { token_env: T, api_url: ftp://x }",
                ".gitlab_status.api_url",
                "https://",
            ),
            (
                "github_status: { token_env: T, repository: justone }",
                ".github_status.repository",
                "OWNER/REPO",
            ),
            (
                "webhook: { secret_env: S }",
                ".webhook",
                "exactly one of url",
            ),
            (
                "webhook: { url: https://x, events: [] }",
                ".webhook.events",
                "lists no event",
            ),
            (
                "slack: { url_env: CASTSYNC_GIT_TOKEN }",
                ".slack.url_env",
                "own credentials",
            ),
        ] {
            let (at, problem) = entry(yaml).problem().expect(yaml);
            assert_eq!(at, field, "{yaml}");
            assert!(problem.contains(says), "{yaml}: {problem}");
        }
    }
}
