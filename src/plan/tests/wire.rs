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

cases! {
    // What castsync records after a write to the SDK-shaped API: no timestamp.
    without_timestamps_a_recorded_value_is_unchanged_and_the_agent_is_marked_drift_blind {
        wanted: &[("A", "1")],
        bare: &["A"],
        last: &[("A", "1", None)],
        unchanged: &["A"],
        drift_blind: true,
    }
    without_timestamps_a_timestamp_recorded_earlier_is_no_evidence_of_drift {
        wanted: &[("A", "1")],
        bare: &["A"],
        last: &[("A", "1", Some("t1"))],
        unchanged: &["A"],
        drift_blind: true,
    }
    with_timestamps_the_agent_is_not_drift_blind {
        wanted: &[("A", "1")],
        listed: &[("A", "t1")],
        last: &[("A", "1", Some("t1"))],
        unchanged: &["A"],
    }
    // B was deleted on the platform, EXTRA was added there.
    without_timestamps_presence_drift_is_still_found_and_healed {
        wanted: &[("A", "1"), ("B", "2")],
        bare: &["A", "EXTRA"],
        last: &[("A", "1", None), ("B", "2", None)],
        changes: &[("B", Create), ("EXTRA", Delete)],
        unchanged: &["A"],
        drift_blind: true,
    }
    remote_names_castsync_would_not_create_are_pruned_like_any_other {
        wanted: &[("A", "1"), ("B", "2"), ("C", "3")],
        bare: &["A", "B", "C", "my-key", "lower_case"],
        last: &[("A", "1", None), ("B", "2", None), ("C", "3", None)],
        changes: &[("lower_case", Delete), ("my-key", Delete)],
        unchanged: &["A", "B", "C"],
        drift_blind: true,
    }
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
