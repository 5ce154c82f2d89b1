//! What an apply did, as entries of the apply history: one per change (landed or not) and
//! one per redeploy, with the result and, for a failure, its class and a stable error kind.
//!
//! The translation lives with apply, which owns these results; `history` owns only the file
//! (its format, appends and reads), so neither module depends on the other's internals. It
//! must never put a value, a fingerprint or a platform's `detail` text into an entry.

use super::{AgentResult, FailReason, Redeployed};
use crate::history::{Context, Entry};
use crate::plan::Action;
use crate::platform::ErrorClass;

fn class_name(class: ErrorClass) -> String {
    match class {
        ErrorClass::Transient => "transient",
        ErrorClass::Terminal => "terminal",
    }
    .to_owned()
}

/// (result, error kind) of a change that did not land.
fn failure(reason: &FailReason) -> (&'static str, &'static str) {
    match reason {
        FailReason::Platform(e) => ("failed", e.kind()),
        FailReason::ShuttingDown => ("not-attempted", "shutting-down"),
        FailReason::AfterFailedSet => ("not-attempted", "after-failed-set"),
        FailReason::NotVerified => ("unverified", "not-verified"),
        FailReason::StillPresent => ("failed", "still-present"),
        FailReason::NotListed => ("failed", "not-listed"),
        FailReason::NoDesiredValue => ("failed", "internal"),
    }
}

/// (action, reason) as the history names them.
fn action_names(action: Action) -> (&'static str, Option<String>) {
    match action {
        Action::Create => ("create", None),
        Action::Update(r) => ("update", Some(r.describe().replace(' ', "-").to_owned())),
        Action::Replace => ("replace", None),
        Action::Delete => ("delete", None),
    }
}

/// The entries of one agent's apply: every change (landed or not), then its redeploy.
pub fn entries(result: &AgentResult, ctx: &Context, time: &str) -> Vec<Entry> {
    let entry = |key: Option<&str>, action: &str, reason: Option<String>| Entry {
        time: time.to_owned(),
        commit: ctx.commit.clone(),
        platform: ctx.platform.clone(),
        agent: result.agent.clone(),
        key: key.map(str::to_owned),
        action: action.to_owned(),
        reason,
        result: "applied".to_owned(),
        error_class: None,
        error: None,
    };
    let mut out = Vec::new();
    for change in &result.applied {
        let (action, reason) = action_names(change.action);
        out.push(entry(Some(&change.key), action, reason));
    }
    for failed in &result.failed {
        let (action, reason) = action_names(failed.change.action);
        let (outcome, kind) = failure(&failed.reason);
        out.push(Entry {
            result: outcome.to_owned(),
            error_class: failed.reason.class().map(class_name),
            error: Some(kind.to_owned()),
            ..entry(Some(&failed.change.key), action, reason)
        });
    }
    if let Some(redeploy) = &result.redeploy {
        let base = entry(None, "redeploy", None);
        out.push(match redeploy {
            Redeployed::Done => base,
            Redeployed::Failed(e) => Entry {
                result: "failed".to_owned(),
                error_class: Some(class_name(e.class())),
                error: Some(e.kind().to_owned()),
                ..base
            },
            Redeployed::Postponed => Entry {
                result: "postponed".to_owned(),
                ..base
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Failed;
    use crate::plan::{Change, UpdateReason};
    use crate::platform::PlatformError;

    fn ctx() -> Context {
        Context {
            commit: Some("c0ffee".into()),
            platform: "local://x".into(),
        }
    }

    fn change(key: &str, action: Action) -> Change {
        Change::new(key, action)
    }

    /// (key, action, reason, result, error class, error) of an entry.
    type Brief<'a> = (
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );

    #[test]
    fn every_change_and_the_redeploy_become_one_entry_each_with_its_class() {
        let result = AgentResult {
            agent: "bot".into(),
            applied: vec![
                change("A", Action::Create),
                change("B", Action::Update(UpdateReason::ValueChanged)),
            ],
            failed: vec![
                Failed {
                    change: change("C", Action::Replace),
                    reason: FailReason::Platform(PlatformError::RateLimited {
                        detail: "slow down".into(),
                    }),
                },
                Failed {
                    change: change("D", Action::Delete),
                    reason: FailReason::AfterFailedSet,
                },
            ],
            error: None,
            redeploy: Some(Redeployed::Postponed),
        };
        let got = entries(&result, &ctx(), "T");
        let brief: Vec<Brief> = got
            .iter()
            .map(|e| {
                (
                    e.key.as_deref(),
                    e.action.as_str(),
                    e.reason.as_deref(),
                    e.result.as_str(),
                    e.error_class.as_deref(),
                    e.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                (Some("A"), "create", None, "applied", None, None),
                (
                    Some("B"),
                    "update",
                    Some("value-changed"),
                    "applied",
                    None,
                    None
                ),
                (
                    Some("C"),
                    "replace",
                    None,
                    "failed",
                    Some("transient"),
                    Some("rate-limited")
                ),
                (
                    Some("D"),
                    "delete",
                    None,
                    "not-attempted",
                    None,
                    Some("after-failed-set")
                ),
                (None, "redeploy", None, "postponed", None, None),
            ]
        );
        assert!(got.iter().all(|e| e.time == "T" && e.agent == "bot"));
        // The platform's detail text is outside input: it never reaches the history.
        let text = serde_json::to_string(&got).unwrap();
        assert!(!text.contains("slow down"), "{text}");
    }
}
