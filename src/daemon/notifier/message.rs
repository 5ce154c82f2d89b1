//! What a notification says, built from a run's report: the commit status (state and a
//! one-line description), the generic webhook's JSON body (format version
//! [`FORMAT_VERSION`], schemas/notify-event.schema.json) and the chat line.
//!
//! Everything here comes from the same report `/readyz` shows: agent slugs, counts, and the
//! failure messages the logs carry — never a value. Chat text also loses anything shaped like a
//! value fingerprint (`hmac-sha256:…`), so no message meant for people ever carries one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::engine::{ChangeCounts, RunReport};
use crate::config::NotifyEvent;
use crate::platform::ErrorClass;

/// The generic webhook body's format version; bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// GitHub refuses a description over 140 characters; the others take it too.
const MAX_DESCRIPTION: usize = 140;

/// The status context: `castsync`, or `castsync/ENV` for a named environment.
pub fn context(environment: Option<&str>) -> String {
    match environment {
        Some(env) => format!("castsync/{env}"),
        None => "castsync".to_owned(),
    }
}

/// A commit status's state, in castsync's terms (each forge spells it its own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Success,
    Failure,
    /// Interrupted (shutdown): neither passed nor failed.
    Error,
}

/// One status to set on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub sha: String,
    pub state: State,
    pub description: String,
}

impl StatusUpdate {
    pub fn applying(sha: &str) -> StatusUpdate {
        StatusUpdate {
            sha: sha.to_owned(),
            state: State::Pending,
            description: "applying".to_owned(),
        }
    }

    /// The status a finished reconcile leaves on its commit.
    pub fn outcome(report: &RunReport) -> StatusUpdate {
        let state = if report.cancelled && report.error.is_none() {
            State::Error
        } else if report.ok() {
            State::Success
        } else {
            State::Failure
        };
        StatusUpdate {
            sha: report.revision.clone(),
            state,
            description: shorten(&summary(report), MAX_DESCRIPTION),
        }
    }

    pub fn rejected(sha: &str, reason: &str) -> StatusUpdate {
        StatusUpdate {
            sha: sha.to_owned(),
            state: State::Failure,
            description: shorten(&format!("not applied: {reason}"), MAX_DESCRIPTION),
        }
    }
}

/// "applied 3 changes to 2 agents", "billing-agent: platform refused: 401", …
pub fn summary(report: &RunReport) -> String {
    if let Some(e) = &report.error {
        return format!("reconcile failed: {}", e.message);
    }
    if let Some((agent, failure)) = report.agent_errors.iter().next() {
        let more = report.agent_errors.len() - 1;
        let tail = if more > 0 {
            format!(" (and {more} more agent{})", plural(more as u64))
        } else {
            String::new()
        };
        return format!("{agent}: {}{tail}", failure.message);
    }
    if report.cancelled {
        return "interrupted by shutdown; the next start applies the rest".to_owned();
    }
    if let Some(t) = &report.timed_out {
        return format!("timed out: {t}");
    }
    let changes = report.applied.total();
    if changes == 0 {
        return "nothing to change: the platform matches git".to_owned();
    }
    let agents = report.changed_agents.len() as u64;
    format!(
        "applied {changes} change{} to {agents} agent{}",
        plural(changes),
        plural(agents)
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// At most `max` characters, on one line, ending in `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let line = crate::escape::terminal(text);
    if line.chars().count() <= max {
        return line.into_owned();
    }
    let mut out: String = line.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One failure worth telling people about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `None` for a run that failed as a whole.
    pub agent: Option<String>,
    pub message: String,
    pub class: Option<ErrorClass>,
}

/// An event for webhooks and chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: NotifyEvent,
    pub revision: String,
    pub summary: String,
    /// Per agent: the changes that landed (apply) or the keys set back (drift).
    pub agents: BTreeMap<String, ChangeCounts>,
    pub drift_healed: u64,
    pub failures: Vec<Failure>,
}

impl Event {
    /// The webhook body (format version [`FORMAT_VERSION`]).
    pub fn json(&self, source: &str, branch: Option<&str>, time: &str) -> Value {
        let agents: Vec<Value> = self
            .agents
            .iter()
            .map(|(agent, c)| {
                json!({"agent": agent, "created": c.create, "updated": c.update, "deleted": c.delete})
            })
            .collect();
        let failures: Vec<Value> = self
            .failures
            .iter()
            .map(|f| json!({"agent": f.agent, "message": f.message, "class": f.class}))
            .collect();
        json!({
            "format_version": FORMAT_VERSION,
            "event": self.kind.as_str(),
            "source": source,
            "branch": branch,
            "revision": self.revision,
            "time": time,
            "summary": self.summary,
            "agents": agents,
            "drift_healed": self.drift_healed,
            "failures": failures,
        })
    }

    /// One line for a Slack-compatible incoming webhook: names escaped for Slack's markup,
    /// fingerprints removed.
    pub fn chat_text(&self, branch: Option<&str>) -> String {
        let commit = self.revision.get(..12).unwrap_or(&self.revision);
        let at = match branch {
            Some(b) => format!("`{}` ({})", slack(commit), slack(b)),
            None => format!("`{}`", slack(commit)),
        };
        let line = match self.kind {
            NotifyEvent::Apply => {
                let agents: Vec<String> = self
                    .agents
                    .iter()
                    .map(|(a, c)| format!("{} ({})", slack(a), counts(c)))
                    .collect();
                format!(
                    ":white_check_mark: castsync {} at {at}: {}",
                    slack(&self.summary),
                    agents.join(", ")
                )
            }
            NotifyEvent::Drift => {
                let agents: Vec<String> = self.agents.keys().map(|a| slack(a)).collect();
                format!(
                    ":wrench: castsync set back {} key{} changed outside git at {at}: {}",
                    self.drift_healed,
                    plural(self.drift_healed),
                    agents.join(", ")
                )
            }
            NotifyEvent::Failure => {
                let failures: Vec<String> = self
                    .failures
                    .iter()
                    .map(|f| match &f.agent {
                        Some(a) => format!("{}: {}", slack(a), slack(&f.message)),
                        None => slack(&f.message),
                    })
                    .collect();
                format!(":x: castsync could not apply {at}: {}", failures.join("; "))
            }
        };
        scrub_fingerprints(&line)
    }
}

fn counts(c: &ChangeCounts) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (c.create, "created"),
        (c.update, "updated"),
        (c.delete, "deleted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

/// Slack's markup: `&`, `<` and `>` are entities (so `<!channel>` or a link cannot be
/// injected), and the text stays on one line.
fn slack(text: &str) -> String {
    crate::escape::terminal(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Replaces anything shaped like a state fingerprint (`hmac-sha256:` and hex) with a mark.
pub fn scrub_fingerprints(text: &str) -> String {
    const MARK: &str = "hmac-sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        let after = &rest[i + MARK.len()..];
        let hex = after
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len());
        out.push_str("<fingerprint>");
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

/// The events a finished run gives rise to: `fresh` are its failures not told before.
pub fn events(report: &RunReport, fresh: Vec<Failure>) -> Vec<Event> {
    let base = |kind| Event {
        kind,
        revision: report.revision.clone(),
        summary: summary(report),
        agents: BTreeMap::new(),
        drift_healed: 0,
        failures: Vec::new(),
    };
    let mut out = Vec::new();
    if report.applied.total() > 0 {
        let mut e = base(NotifyEvent::Apply);
        e.agents = report.changed_agents.clone();
        e.drift_healed = report.drift_healed;
        // The apply summary, even when another agent failed (that is the failure event's).
        let changes = report.applied.total();
        let agents = report.changed_agents.len() as u64;
        e.summary = format!(
            "applied {changes} change{} to {agents} agent{}",
            plural(changes),
            plural(agents)
        );
        out.push(e);
    }
    if report.drift_healed > 0 {
        let mut e = base(NotifyEvent::Drift);
        e.agents = report.changed_agents.clone();
        e.drift_healed = report.drift_healed;
        e.summary = format!(
            "set back {} key{} changed outside git",
            report.drift_healed,
            plural(report.drift_healed)
        );
        out.push(e);
    }
    if !fresh.is_empty() {
        let mut e = base(NotifyEvent::Failure);
        e.failures = fresh;
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::engine::AgentFailure;

    fn applied() -> RunReport {
        RunReport {
            revision: "a".repeat(40),
            applied: ChangeCounts {
                create: 1,
                update: 2,
                delete: 0,
            },
            changed_agents: [
                (
                    "billing-agent".to_owned(),
                    ChangeCounts {
                        create: 1,
                        update: 1,
                        delete: 0,
                    },
                ),
                (
                    "support".to_owned(),
                    ChangeCounts {
                        create: 0,
                        update: 1,
                        delete: 0,
                    },
                ),
            ]
            .into(),
            ..RunReport::default()
        }
    }

    #[test]
    fn the_description_says_what_landed_or_the_first_failure() {
        let ok = StatusUpdate::outcome(&applied());
        assert_eq!(ok.state, State::Success);
        assert_eq!(ok.description, "applied 3 changes to 2 agents");
        let mut failed = applied();
        failed.agent_errors.insert(
            "billing-agent".into(),
            AgentFailure::new("platform refused: 401", ErrorClass::Terminal),
        );
        failed.agent_errors.insert(
            "zeta".into(),
            AgentFailure::new("manifest does not decrypt", ErrorClass::Terminal),
        );
        let f = StatusUpdate::outcome(&failed);
        assert_eq!(f.state, State::Failure);
        assert_eq!(
            f.description,
            "billing-agent: platform refused: 401 (and 1 more agent)"
        );
        let long = RunReport {
            error: Some("x\n".repeat(200).into()),
            ..RunReport::default()
        };
        let d = StatusUpdate::outcome(&long).description;
        assert_eq!(d.chars().count(), 140);
        assert!(d.ends_with('…') && !d.contains('\n'), "{d}");
        let nothing = StatusUpdate::outcome(&RunReport::default());
        assert_eq!(
            nothing.description,
            "nothing to change: the platform matches git"
        );
    }

    #[test]
    fn chat_text_escapes_names_and_never_carries_a_fingerprint() {
        let mut report = applied();
        report.changed_agents.insert(
            "<!channel> & <https://evil|x>".into(),
            ChangeCounts::default(),
        );
        let fresh = vec![Failure {
            agent: Some("billing-agent".into()),
            message: "API_KEY: last applied hmac-sha256:0123abcdef99 differs".into(),
            class: Some(ErrorClass::Terminal),
        }];
        let events = events(&report, fresh);
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [NotifyEvent::Apply, NotifyEvent::Failure]
        );
        let apply = events[0].chat_text(Some("main"));
        assert!(
            apply.contains("&lt;!channel&gt; &amp; &lt;https://evil|x&gt;"),
            "{apply}"
        );
        assert!(
            apply.contains("billing-agent (1 created, 1 updated)"),
            "{apply}"
        );
        assert!(!apply.contains("<!channel>"), "{apply}");
        let failure = events[1].chat_text(Some("main"));
        assert!(
            failure.contains("billing-agent: API_KEY: last applied <fingerprint> differs"),
            "{failure}"
        );
        assert!(!failure.contains("0123abcdef99"), "{failure}");
    }

    #[test]
    fn drift_healed_is_an_event_of_its_own() {
        let mut report = applied();
        report.drift_healed = 2;
        let kinds: Vec<_> = events(&report, Vec::new()).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [NotifyEvent::Apply, NotifyEvent::Drift]);
        let drift = &events(&report, Vec::new())[1];
        assert!(
            drift
                .chat_text(None)
                .contains("set back 2 keys changed outside git")
        );
        let body = drift.json("https://git.example.com/acme/secrets", Some("main"), "t");
        assert_eq!(body["event"], "drift");
        assert_eq!(body["format_version"], 1);
        assert_eq!(body["drift_healed"], 2);
        assert!(events(&RunReport::default(), Vec::new()).is_empty());
    }
}
