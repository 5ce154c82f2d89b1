//! Telling people what the daemon did, where they already look: a commit status on the
//! forge (pending while applying, success or failure after), and `notify:` webhooks and chat
//! on apply, failure and drift healed.
//!
//! The loop calls [`Notifier`] between steps; it only builds messages and queues them
//! (`deliver`), so a dead or slow target can never hold up, fail or repeat an apply. Targets
//! come from the config of the revision being applied, and are rebuilt when it changes.
//! Credentials are read from the environment when a target is built and never logged.
//!
//! Each commit gets `pending` once when its apply starts, and a final status only when it
//! differs from the last one set (a retry that fails the same way does not post again: a
//! forge keeps at most 1,000 statuses per commit and context). Each failure is told once
//! per commit, like the log line.

pub mod deliver;
pub mod forge;
pub mod message;

use std::collections::BTreeSet;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::engine::RunReport;
use super::metrics::NotifyLabel;
use super::webhook::WebhookSecret;
use crate::config::{NotifyEntry, NotifyEvent};
use deliver::{Outgoing, TargetInfo, Transport, Worker};
use forge::{Forge, StatusTarget};
use message::{Event, Failure, StatusUpdate};

/// Reads an environment variable (the real environment, or a table in tests).
pub type EnvReader = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The header carrying the generic webhook's signature: `sha256=` and the hex HMAC-SHA256 of
/// the body, as GitHub signs its own deliveries.
pub const SIGNATURE_HEADER: &str = "x-castsync-signature-256";

/// What the daemon follows, as notifications name it.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    /// The remote URL (`None` in working-tree mode: no commit to set a status on).
    pub remote: Option<String>,
    pub branch: Option<String>,
    /// `castsync`, or `castsync/ENV`.
    pub context: String,
}

enum Kind {
    Status {
        target: StatusTarget,
        token: String,
    },
    Webhook {
        url: String,
        secret: Option<WebhookSecret>,
        events: Option<Vec<NotifyEvent>>,
    },
    Slack {
        url: String,
        events: Option<Vec<NotifyEvent>>,
    },
}

struct Target {
    kind: Kind,
    worker: Worker,
}

impl Target {
    fn wants(&self, event: NotifyEvent) -> bool {
        match &self.kind {
            Kind::Status { .. } => false,
            Kind::Webhook { events, .. } | Kind::Slack { events, .. } => {
                events.as_ref().is_none_or(|e| e.contains(&event))
            }
        }
    }
}

pub struct Notifier {
    followed: Followed,
    env: EnvReader,
    /// Made when the first target is: a daemon without `notify:` holds no HTTP client for it.
    transport: Option<Arc<dyn Transport>>,
    counter: Family<NotifyLabel, Counter>,
    configured: Vec<NotifyEntry>,
    targets: Vec<Target>,
    /// The commit `pending` was last set on.
    pending_sent: Option<String>,
    /// The last final status set.
    final_sent: Option<StatusUpdate>,
    /// (revision, agent or "", message) failures already told.
    told: BTreeSet<(String, String, String)>,
}

impl Notifier {
    pub fn new(followed: Followed, counter: Family<NotifyLabel, Counter>) -> Notifier {
        Notifier::from_parts(
            followed,
            counter,
            Arc::new(|name: &str| std::env::var(name).ok()),
            None,
        )
    }

    /// With an environment and a transport of the caller's (tests).
    #[cfg(test)]
    pub fn with(
        followed: Followed,
        counter: Family<NotifyLabel, Counter>,
        env: EnvReader,
        transport: Arc<dyn Transport>,
    ) -> Notifier {
        Notifier::from_parts(followed, counter, env, Some(transport))
    }

    fn from_parts(
        followed: Followed,
        counter: Family<NotifyLabel, Counter>,
        env: EnvReader,
        transport: Option<Arc<dyn Transport>>,
    ) -> Notifier {
        Notifier {
            followed,
            env,
            transport,
            counter,
            configured: Vec::new(),
            targets: Vec::new(),
            pending_sent: None,
            final_sent: None,
            told: BTreeSet::new(),
        }
    }

    /// Uses `entries` (the applied revision's `notify:`) from now on; a no-op when unchanged.
    pub fn configure(&mut self, entries: &[NotifyEntry]) {
        if entries == self.configured.as_slice() {
            return;
        }
        self.configured = entries.to_vec();
        // Dropping the old workers lets their queues drain and their tasks end.
        self.targets = entries
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| match self.build(entry) {
                Ok(target) => Some(target),
                Err((kind, problem)) => {
                    tracing::error!(
                        entry = format!("notify[{i}]"),
                        kind,
                        problem = %problem,
                        "notification target not usable; the others still are"
                    );
                    deliver::count(&self.counter, kind, "failed");
                    None
                }
            })
            .collect();
    }

    fn secret_env(&self, name: &str) -> Result<String, String> {
        match (self.env)(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            _ => Err(format!("the environment variable {name} is not set")),
        }
    }

    fn build(&mut self, entry: &NotifyEntry) -> Result<Target, (&'static str, String)> {
        let status = [
            (Forge::GitHub, &entry.github_status),
            (Forge::GitLab, &entry.gitlab_status),
            (Forge::Gitea, &entry.gitea_status),
        ]
        .into_iter()
        .find_map(|(forge, s)| s.as_ref().map(|s| (forge, s)));
        let (kind, info) = if let Some((forge, s)) = status {
            let fail = |p: String| (forge.kind(), p);
            if self.followed.remote.is_none() {
                return Err(fail(
                    "commit statuses need a followed remote (--git-url): a working tree has no commit to mark".into(),
                ));
            }
            let target = StatusTarget::resolve(
                forge,
                s.api_url.as_deref(),
                s.repository.as_deref(),
                self.followed.remote.as_deref(),
            )
            .map_err(fail)?;
            let token = self.secret_env(&s.token_env).map_err(fail)?;
            let info = TargetInfo {
                kind: forge.kind(),
                label: target.label(),
                secrets: vec![token.clone()],
            };
            (Kind::Status { target, token }, info)
        } else if let Some(hook) = &entry.webhook {
            let fail = |p: String| ("webhook", p);
            let (url, label, mut secrets) = match (&hook.url, &hook.url_env) {
                (Some(url), _) => (url.clone(), format!("webhook ({})", host_of(url)), vec![]),
                (None, Some(name)) => {
                    let url = self.secret_env(name).map_err(fail)?;
                    (url.clone(), format!("webhook (${name})"), vec![url])
                }
                (None, None) => return Err(fail("no url".into())),
            };
            let secret = match &hook.secret_env {
                Some(name) => {
                    let s = self.secret_env(name).map_err(fail)?;
                    secrets.push(s.clone());
                    Some(WebhookSecret::new(s.into_bytes()))
                }
                None => None,
            };
            let info = TargetInfo {
                kind: "webhook",
                label,
                secrets,
            };
            let events = hook.events.clone();
            (
                Kind::Webhook {
                    url,
                    secret,
                    events,
                },
                info,
            )
        } else if let Some(slack) = &entry.slack {
            let url = self.secret_env(&slack.url_env).map_err(|p| ("slack", p))?;
            let info = TargetInfo {
                kind: "slack",
                label: format!("slack (${})", slack.url_env),
                secrets: vec![url.clone()],
            };
            let events = slack.events.clone();
            (Kind::Slack { url, events }, info)
        } else {
            return Err(("notify", "the entry names no target".into()));
        };
        let transport = self
            .transport
            .get_or_insert_with(|| Arc::new(deliver::Http::new()))
            .clone();
        let worker = Worker::spawn(info, transport, self.counter.clone());
        Ok(Target { kind, worker })
    }

    fn is_commit(revision: &str) -> bool {
        matches!(revision.len(), 40 | 64) && revision.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn post_status(&self, update: &StatusUpdate) {
        if !Notifier::is_commit(&update.sha) {
            return;
        }
        for t in &self.targets {
            if let Kind::Status { target, token } = &t.kind {
                let request = target.request(
                    update,
                    &self.followed.context,
                    self.followed.branch.as_deref(),
                    token,
                );
                t.worker.send(request);
            }
        }
    }

    /// A cycle starts applying `revision`: `pending`, once per commit.
    pub fn applying(&mut self, revision: &str) {
        if self.pending_sent.as_deref() == Some(revision) {
            return;
        }
        self.pending_sent = Some(revision.to_owned());
        self.post_status(&StatusUpdate::applying(revision));
    }

    /// A reconcile finished. `cycle`: it was the commit's own run (not a drift-resync batch,
    /// which never changes the commit's status).
    pub fn finished(&mut self, report: &RunReport, cycle: bool) {
        if cycle {
            let update = StatusUpdate::outcome(report);
            if self.final_sent.as_ref() != Some(&update) {
                self.post_status(&update);
                self.final_sent = Some(update);
            }
        }
        let mut fresh = Vec::new();
        if let Some(e) = &report.error {
            fresh.extend(self.fresh(&report.revision, None, &e.message, None));
        }
        for (agent, failure) in &report.agent_errors {
            let class = Some(failure.class);
            fresh.extend(self.fresh(&report.revision, Some(agent), &failure.message, class));
        }
        for event in message::events(report, fresh) {
            self.send_event(&event);
        }
    }

    /// The fetched commit is refused (signature): its status says so, and people are told.
    pub fn rejected(&mut self, revision: &str, reason: &str) {
        let update = StatusUpdate::rejected(revision, reason);
        if self.final_sent.as_ref() != Some(&update) {
            self.post_status(&update);
            self.final_sent = Some(update);
        }
        let message = format!("commit not applied: {reason}");
        if let Some(f) = self.fresh(revision, None, &message, None) {
            let report = RunReport {
                revision: revision.to_owned(),
                ..RunReport::default()
            };
            for event in message::events(&report, vec![f]) {
                self.send_event(&event);
            }
        }
    }

    fn fresh(
        &mut self,
        revision: &str,
        agent: Option<&String>,
        message: &str,
        class: Option<crate::platform::ErrorClass>,
    ) -> Option<Failure> {
        // Only the current commit's failures are remembered.
        self.told.retain(|(r, _, _)| r == revision);
        let key = (
            revision.to_owned(),
            agent.cloned().unwrap_or_default(),
            message.to_owned(),
        );
        self.told.insert(key).then(|| Failure {
            agent: agent.cloned(),
            message: message.to_owned(),
            class,
        })
    }

    fn send_event(&self, event: &Event) {
        let time = crate::history::now();
        let source = self
            .followed
            .remote
            .as_deref()
            .map(without_credentials)
            .unwrap_or_default();
        let branch = self.followed.branch.as_deref();
        for t in self.targets.iter().filter(|t| t.wants(event.kind)) {
            let request = match &t.kind {
                Kind::Webhook { url, secret, .. } => {
                    let body = event.json(&source, branch, &time);
                    webhook_request(url, secret.as_ref(), event.kind, &body)
                }
                Kind::Slack { url, .. } => Outgoing::json(
                    url.clone(),
                    Vec::new(),
                    &serde_json::json!({ "text": event.chat_text(branch) }),
                ),
                Kind::Status { .. } => continue,
            };
            t.worker.send(request);
        }
    }
}

/// The generic webhook's POST: the JSON body, its event, a delivery id and the signature.
fn webhook_request(
    url: &str,
    secret: Option<&WebhookSecret>,
    event: NotifyEvent,
    body: &serde_json::Value,
) -> Outgoing {
    let mut request = Outgoing::json(
        url.to_owned(),
        vec![
            ("x-castsync-event", event.as_str().to_owned()),
            ("x-castsync-delivery", delivery_id()),
        ],
        body,
    );
    if let Some(secret) = secret {
        let signature = secret.sign(&request.body);
        request.headers.push((SIGNATURE_HEADER, signature));
    }
    request
}

fn delivery_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// A URL's host, for labels.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default().to_owned()
}

/// `scheme://user:password@host/…` without `user:password@`.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
