//! Plans against the SDK's wire shape (keys without timestamps), `--replace`, redeploys and
//! typed list failures.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// A baseline that also owes redeploys.
struct Owing(Memory, BTreeSet<String>);

impl LastApplied for Owing {
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied> {
        self.0.applied(agent, key, value)
    }
    fn redeploy_pending(&self, agent: &str) -> bool {
        self.1.contains(agent)
    }
}

#[test]
fn without_timestamps_a_recorded_value_is_unchanged_and_the_agent_is_marked_drift_blind() {
    // What castsync records after a write to the SDK-shaped API: no timestamp.
    let last = Memory::default().with("bot", "A", "1", None);
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Ok(bare(&["A"])),
        &last,
        &Policy::default(),
    );
    assert!(p.changes.is_empty(), "{p:?}");
    assert_eq!(p.unchanged, vec!["A"]);
    assert!(p.drift_blind);
    // A timestamp recorded earlier but not listed now is no evidence of drift either.
    let last = Memory::default().with("bot", "A", "1", Some("t1"));
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Ok(bare(&["A"])),
        &last,
        &Policy::default(),
    );
    assert!(p.changes.is_empty(), "{p:?}");
    // With timestamps, the agent is not drift-blind.
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Ok(remote(&[("A", "t1")])),
        &last,
        &Policy::default(),
    );
    assert!(!p.drift_blind);
}

#[test]
fn without_timestamps_presence_drift_is_still_found_and_healed() {
    let last = Memory::default()
        .with("bot", "A", "1", None)
        .with("bot", "B", "2", None);
    // B was deleted on the platform, EXTRA was added there.
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1"), ("B", "2")])),
        Ok(bare(&["A", "EXTRA"])),
        &last,
        &Policy::default(),
    );
    assert_eq!(
        actions(&p),
        vec![a("B", Action::Create), a("EXTRA", Action::Delete)]
    );
}

#[test]
fn remote_names_castsync_would_not_create_are_pruned_like_any_other() {
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1"), ("B", "2"), ("C", "3")])),
        Ok(bare(&["A", "B", "C", "my-key", "lower_case"])),
        &Memory::default()
            .with("bot", "A", "1", None)
            .with("bot", "B", "2", None)
            .with("bot", "C", "3", None),
        &Policy::default(),
    );
    assert_eq!(
        actions(&p),
        vec![a("lower_case", Action::Delete), a("my-key", Action::Delete)]
    );
}

#[test]
fn replace_rewrites_present_keys_whatever_the_state_says() {
    let last = Memory::default()
        .with("bot", "A", "1", None)
        .with("bot", "B", "2", None);
    let wanted = || Ok(secrets(&[("A", "1"), ("B", "2"), ("NEW", "3")]));
    let listed = || Ok(bare(&["A", "B"]));
    let mut policy = Policy::default();
    policy.replace.keys.insert(("bot".into(), "A".into()));
    let p = one("bot", wanted(), listed(), &last, &policy);
    assert_eq!(
        actions(&p),
        vec![a("A", Action::Replace), a("NEW", Action::Create)]
    );
    assert_eq!(p.unchanged, vec!["B"]);

    let mut policy = Policy::default();
    policy.replace.all = true;
    let p = one("bot", wanted(), listed(), &last, &policy);
    assert_eq!(
        actions(&p),
        vec![
            a("A", Action::Replace),
            a("B", Action::Replace),
            a("NEW", Action::Create)
        ]
    );
    let mut policy = Policy::default();
    policy.replace.agents.insert("other".into());
    let p = one("bot", wanted(), listed(), &last, &policy);
    assert_eq!(actions(&p), vec![a("NEW", Action::Create)]);
    let t = plan(
        &BTreeMap::from([("bot".to_owned(), wanted())]),
        &BTreeMap::from([("bot".to_owned(), listed())]),
        &last,
        &Policy {
            replace: Replace {
                all: true,
                ..Replace::default()
            },
            ..Policy::default()
        },
    )
    .totals();
    assert_eq!((t.replace, t.create, t.update), (2, 1, 0));
}

#[test]
fn redeploy_follows_changes_and_debts_of_agents_set_to_on_change_only() {
    let last = || {
        Owing(
            Memory::default().with("bot", "A", "1", None),
            BTreeSet::from(["owed".to_owned()]),
        )
    };
    let on_change = |agents: &[&str]| Policy {
        redeploy: agents.iter().map(|a| a.to_string()).collect(),
        ..Policy::default()
    };
    // A change → redeploy.
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1"), ("B", "2")])),
        Ok(bare(&["A"])),
        &last(),
        &on_change(&["bot"]),
    );
    assert_eq!(p.redeploy, Some(RedeployReason::Changes));
    assert!(p.has_work());
    // No change → no redeploy.
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Ok(bare(&["A"])),
        &last(),
        &on_change(&["bot"]),
    );
    assert_eq!(p.redeploy, None);
    assert!(!p.has_work());
    // A change, but the agent is `never` → no redeploy.
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1"), ("B", "2")])),
        Ok(bare(&["A"])),
        &last(),
        &on_change(&[]),
    );
    assert_eq!(p.redeploy, None);
    // Nothing changes, but an earlier redeploy is owed.
    let p = one(
        "owed",
        Ok(secrets(&[])),
        Ok(bare(&[])),
        &last(),
        &on_change(&["owed"]),
    );
    assert_eq!(p.redeploy, Some(RedeployReason::Pending));
    let desired = BTreeMap::from([("owed".to_owned(), Ok(secrets(&[])))]);
    let actual = BTreeMap::from([("owed".to_owned(), Ok(bare(&[])))]);
    let whole = plan(&desired, &actual, &last(), &on_change(&["owed"]));
    assert!(whole.has_changes(), "an owed redeploy is work to do");
    assert_eq!(whole.totals().redeploy, 1);
    // A skipped agent is never redeployed.
    let p = one(
        "owed",
        Ok(secrets(&[])),
        failed_list("HTTP 503"),
        &last(),
        &on_change(&["owed"]),
    );
    assert!(p.skipped.is_some());
    assert_eq!(p.redeploy, None);
}

#[test]
fn a_failed_list_keeps_its_class_in_the_skip() {
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Err(PlatformError::Unauthorized {
            detail: "Invalid API key".into(),
        }),
        &NoBaseline,
        &Policy::default(),
    );
    let skip = p.skipped.unwrap();
    assert_eq!(skip.class(), ErrorClass::Terminal);
    assert!(skip.platform_error().is_some());
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        failed_list("HTTP 503"),
        &NoBaseline,
        &Policy::default(),
    );
    assert_eq!(p.skipped.unwrap().class(), ErrorClass::Transient);
}
