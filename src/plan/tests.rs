use std::collections::{BTreeMap, HashMap};

use super::*;

/// A last-applied baseline in memory: (agent, key) → (value written, timestamp seen).
#[derive(Default)]
struct Memory(HashMap<(String, String), (String, Option<String>)>);

impl Memory {
    fn with(mut self, agent: &str, key: &str, value: &str, seen: Option<&str>) -> Self {
        self.0.insert(
            (agent.into(), key.into()),
            (value.into(), seen.map(str::to_owned)),
        );
        self
    }
}

impl LastApplied for Memory {
    fn applied(&self, agent: &str, key: &str, value: &SecretValue) -> Option<Applied> {
        self.0
            .get(&(agent.to_owned(), key.to_owned()))
            .map(|(v, seen)| Applied {
                same_value: v == value.expose(),
                observed_at: seen.clone(),
            })
    }
}

fn secrets(pairs: &[(&str, &str)]) -> DesiredSecrets {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), SecretValue::new(*v)))
        .collect()
}

fn remote(keys: &[(&str, &str)]) -> Listing {
    Listing::whole(
        keys.iter()
            .map(|(k, ts)| RemoteKey {
                key: k.to_string(),
                created_at: Some("2026-01-01T00:00:00Z".into()),
                updated_at: Some(ts.to_string()),
            })
            .collect(),
    )
}

/// Keys as Castari's SDK lists them: names only.
fn bare(keys: &[&str]) -> Listing {
    Listing::whole(keys.iter().map(|k| RemoteKey::bare(*k)).collect())
}

fn failed_list(detail: &str) -> Result<Listing, PlatformError> {
    Err(PlatformError::Transient {
        detail: detail.into(),
    })
}

fn one(
    agent: &str,
    wanted: Result<DesiredSecrets, NotLoaded>,
    listed: Result<Listing, PlatformError>,
    last: &dyn LastApplied,
    policy: &Policy,
) -> AgentPlan {
    let desired = BTreeMap::from([(agent.to_owned(), wanted)]);
    let actual = BTreeMap::from([(agent.to_owned(), listed)]);
    let mut p = plan(&desired, &actual, last, policy);
    p.agents.remove(0)
}

fn actions(p: &AgentPlan) -> Vec<(String, Action)> {
    p.changes
        .iter()
        .map(|c| (c.key.clone(), c.action))
        .collect()
}

fn a(key: &str, action: Action) -> (String, Action) {
    (key.to_owned(), action)
}

/// One agent, "bot", planned from what it declares, what the platform lists and what castsync
/// last applied. Every outcome a case does not name is expected empty (or false).
#[derive(Default)]
struct Case {
    /// Declared `(key, value)`.
    wanted: &'static [(&'static str, &'static str)],
    /// Listed `(key, updated_at)`.
    listed: &'static [(&'static str, &'static str)],
    /// Listed by name only, as the SDK lists (used instead of `listed` when not empty).
    bare: &'static [&'static str],
    /// Last applied `(key, value, updated_at seen then)`.
    last: &'static [(&'static str, &'static str, Option<&'static str>)],
    policy: Policy,
    changes: &'static [(&'static str, Action)],
    unchanged: &'static [&'static str],
    drift_ignored: &'static [&'static str],
    kept: &'static [&'static str],
    unmanaged: &'static [&'static str],
    skipped: Option<SkipReason>,
    drift_blind: bool,
}

impl Case {
    fn check(self) {
        let last = self.last.iter().fold(Memory::default(), |m, (k, v, seen)| {
            m.with("bot", k, v, *seen)
        });
        let listed = if self.bare.is_empty() {
            remote(self.listed)
        } else {
            bare(self.bare)
        };
        let p = one(
            "bot",
            Ok(secrets(self.wanted)),
            Ok(listed),
            &last,
            &self.policy,
        );
        let names = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let changes: Vec<_> = self.changes.iter().map(|(k, c)| a(k, *c)).collect();
        assert_eq!(actions(&p), changes, "changes of {p:?}");
        assert_eq!(p.unchanged, names(self.unchanged), "unchanged");
        assert_eq!(p.drift_ignored, names(self.drift_ignored), "drift ignored");
        assert_eq!(p.kept, names(self.kept), "kept");
        assert_eq!(p.unmanaged, names(self.unmanaged), "unmanaged");
        assert_eq!(p.skipped, self.skipped, "skipped");
        assert_eq!(p.drift_blind, self.drift_blind, "drift blind");
    }
}

/// One `#[test]` a case: `name { field: value, … }` with the fields of [`Case`].
macro_rules! cases {
    ($($name:ident { $($field:ident: $value:expr),* $(,)? })*) => {$(
        #[test]
        fn $name() {
            Case { $($field: $value,)* ..Case::default() }.check();
        }
    )*};
}

use Action::{Create, Delete, Update};
use UpdateReason::{Drifted, Unverified, ValueChanged};

fn policy_without_prune() -> Policy {
    Policy {
        prune: false,
        ..Policy::default()
    }
}

fn policy_deleting_up_to(max_delete_fraction: f64) -> Policy {
    Policy {
        max_delete_fraction,
        ..Policy::default()
    }
}

cases! {
    declared_keys_absent_on_the_platform_are_created {
        wanted: &[("A", "1"), ("B", "2")],
        changes: &[("A", Create), ("B", Create)],
    }
    a_present_key_without_a_record_is_updated_as_unverified {
        wanted: &[("A", "1")],
        listed: &[("A", "t1")],
        changes: &[("A", Update(Unverified))],
    }
    a_key_written_with_the_same_value_and_untouched_since_is_unchanged {
        wanted: &[("A", "1")],
        listed: &[("A", "t1")],
        last: &[("A", "1", Some("t1"))],
        unchanged: &["A"],
    }
    a_new_value_is_an_update_because_the_value_changed {
        wanted: &[("A", "new")],
        listed: &[("A", "t1")],
        last: &[("A", "old", Some("t1"))],
        changes: &[("A", Update(ValueChanged))],
    }
    value_changed_wins_over_drift {
        wanted: &[("A", "new")],
        listed: &[("A", "t2")],
        last: &[("A", "old", Some("t1"))],
        changes: &[("A", Update(ValueChanged))],
    }
    a_timestamp_that_moved_since_our_write_is_drift_and_is_healed {
        wanted: &[("A", "1")],
        listed: &[("A", "t2")],
        last: &[("A", "1", Some("t1"))],
        changes: &[("A", Update(Drifted))],
    }
    without_self_heal_drift_is_reported_but_not_fixed {
        wanted: &[("A", "1")],
        listed: &[("A", "t2")],
        last: &[("A", "1", Some("t1"))],
        policy: Policy { self_heal: false, ..Policy::default() },
        drift_ignored: &["A"],
    }
    a_baseline_without_timestamps_never_reports_drift {
        wanted: &[("A", "1")],
        listed: &[("A", "anything")],
        last: &[("A", "1", None)],
        unchanged: &["A"],
    }
    undeclared_platform_keys_are_deleted_after_the_sets {
        wanted: &[("A", "1"), ("C", "3")],
        listed: &[("A", "t"), ("B", "t"), ("Z", "t")],
        last: &[("A", "1", Some("t"))],
        policy: policy_deleting_up_to(1.0),
        changes: &[("C", Create), ("B", Delete), ("Z", Delete)],
        unchanged: &["A"],
    }
    a_renamed_key_is_created_before_the_old_one_is_deleted {
        wanted: &[("A", "1"), ("B_NEW", "2")],
        listed: &[("A", "t"), ("B", "t")],
        last: &[("A", "1", Some("t")), ("B", "2", Some("t"))],
        changes: &[("B_NEW", Create), ("B", Delete)],
        unchanged: &["A"],
    }
    renaming_the_only_key_of_an_agent_is_not_a_mass_delete {
        wanted: &[("NEW", "1")],
        listed: &[("OLD", "t")],
        changes: &[("NEW", Create), ("OLD", Delete)],
    }
    with_prune_off_undeclared_keys_are_kept_and_reported {
        wanted: &[("A", "1")],
        listed: &[("A", "t"), ("B", "t")],
        last: &[("A", "1", Some("t"))],
        policy: policy_without_prune(),
        unchanged: &["A"],
        kept: &["B"],
    }
    unmanaged_keys_on_the_platform_are_never_deleted {
        wanted: &[("A", "1")],
        listed: &[("A", "t"), ("ANTHROPIC_API_KEY", "t")],
        last: &[("A", "1", Some("t"))],
        unchanged: &["A"],
        unmanaged: &["ANTHROPIC_API_KEY"],
    }
    unmanaged_keys_in_the_desired_state_are_never_set {
        wanted: &[("A", "1"), ("ANTHROPIC_API_KEY", "x")],
        changes: &[("A", Create)],
    }
    // One of two managed keys deleted (0.5, not more than 0.5) with an unmanaged key present.
    unmanaged_keys_do_not_count_toward_the_mass_delete_share {
        wanted: &[("A", "1")],
        listed: &[("A", "t"), ("B", "t"), ("ANTHROPIC_API_KEY", "t")],
        last: &[("A", "1", Some("t"))],
        changes: &[("B", Delete)],
        unchanged: &["A"],
        unmanaged: &["ANTHROPIC_API_KEY"],
    }
    deleting_more_than_the_allowed_share_is_refused {
        wanted: &[("A", "1")],
        listed: &[("A", "t"), ("B", "t"), ("C", "t")],
        last: &[("A", "1", Some("t"))],
        skipped: Some(SkipReason::MassDelete { deletes: 2, managed: 3, max_fraction: 0.5 }),
    }
    deleting_exactly_the_allowed_share_is_fine {
        wanted: &[("A", "1"), ("B", "2")],
        listed: &[("A", "t"), ("B", "t"), ("C", "t"), ("D", "t")],
        last: &[("A", "1", Some("t")), ("B", "2", Some("t"))],
        changes: &[("C", Delete), ("D", Delete)],
        unchanged: &["A", "B"],
    }
    allow_mass_delete_lifts_the_guard {
        listed: &[("A", "t"), ("B", "t"), ("C", "t")],
        policy: Policy { allow_mass_delete: true, ..Policy::default() },
        changes: &[("A", Delete), ("B", Delete), ("C", Delete)],
    }
    an_agent_with_only_unmanaged_keys_left_is_not_a_mass_delete_case {
        listed: &[("ANTHROPIC_API_KEY", "t")],
        unmanaged: &["ANTHROPIC_API_KEY"],
    }
}

#[test]
fn drift_is_detected_from_created_at_when_the_platform_gives_no_updated_at() {
    let last = Memory::default().with("bot", "A", "1", Some("t1"));
    let listed = Listing::whole(vec![RemoteKey {
        created_at: Some("t9".into()),
        ..RemoteKey::bare("A")
    }]);
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        Ok(listed),
        &last,
        &Policy::default(),
    );
    assert_eq!(
        actions(&p),
        vec![a("A", Action::Update(UpdateReason::Drifted))]
    );
}

#[test]
fn an_agent_whose_manifest_failed_to_load_is_skipped_whole() {
    let p = one(
        "bot",
        Err("cannot decrypt agents/bot/secrets.yaml.age".into()),
        Ok(remote(&[("A", "t"), ("B", "t")])),
        &NoBaseline,
        &Policy::default(),
    );
    assert!(p.changes.is_empty());
    assert!(matches!(p.skipped, Some(SkipReason::LoadFailed { .. })));
}

#[test]
fn an_agent_whose_key_list_failed_is_skipped_whole() {
    let p = one(
        "bot",
        Ok(secrets(&[("A", "1")])),
        failed_list("HTTP 500"),
        &NoBaseline,
        &Policy::default(),
    );
    assert!(p.changes.is_empty());
    assert!(matches!(p.skipped, Some(SkipReason::ListFailed { .. })));
}

#[test]
fn an_agent_with_no_fetched_key_list_is_skipped_not_treated_as_empty() {
    let desired = BTreeMap::from([("bot".to_owned(), Ok(secrets(&[("A", "1")])))]);
    let p = plan(&desired, &BTreeMap::new(), &NoBaseline, &Policy::default());
    assert!(matches!(
        p.agents[0].skipped,
        Some(SkipReason::ListFailed { .. })
    ));
    assert!(p.agents[0].changes.is_empty());
}

#[test]
fn emptying_an_agent_is_refused_even_when_the_share_allows_it() {
    let p = one(
        "bot",
        Ok(secrets(&[])),
        Ok(remote(&[("A", "t")])),
        &NoBaseline,
        &Policy {
            max_delete_fraction: 1.0,
            ..Policy::default()
        },
    );
    assert!(matches!(
        p.skipped,
        Some(SkipReason::MassDelete {
            deletes: 1,
            managed: 1,
            ..
        })
    ));
    let reason = p.skipped.unwrap();
    assert!(
        reason
            .to_string()
            .contains("refusing to delete all 1 managed keys"),
        "{reason}"
    );
    assert!(
        reason.hint().unwrap().contains("--allow-mass-delete"),
        "{reason:?}"
    );
}

#[test]
fn plans_cover_only_the_agents_of_the_run_in_slug_order() {
    let desired = BTreeMap::from([
        ("b".to_owned(), Ok(secrets(&[("K", "1")]))),
        ("a".to_owned(), Ok(secrets(&[("K", "1")]))),
    ]);
    let actual = BTreeMap::from([
        ("a".to_owned(), Ok(Listing::default())),
        ("b".to_owned(), Ok(Listing::default())),
        ("undeclared".to_owned(), Ok(remote(&[("X", "t")]))),
    ]);
    let p = plan(&desired, &actual, &NoBaseline, &Policy::default());
    let names: Vec<_> = p.agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
}

#[test]
fn totals_count_every_kind_of_change_and_skip() {
    let desired = BTreeMap::from([
        ("a".to_owned(), Ok(secrets(&[("NEW", "1"), ("SAME", "1")]))),
        ("b".to_owned(), Err("bad".into())),
        ("c".to_owned(), Ok(secrets(&[("X", "1"), ("Y", "2")]))),
    ]);
    let actual = BTreeMap::from([
        ("a".to_owned(), Ok(remote(&[("SAME", "t")]))),
        ("b".to_owned(), Ok(Listing::default())),
        (
            "c".to_owned(),
            Ok(remote(&[("X", "t"), ("Y", "t"), ("OLD", "t")])),
        ),
    ]);
    let last = Memory::default()
        .with("a", "SAME", "1", Some("t"))
        .with("c", "X", "0", Some("t"));
    let p = plan(&desired, &actual, &last, &Policy::default());
    let t = p.totals();
    assert_eq!(
        t,
        Totals {
            create: 1,
            update: 2,
            replace: 0,
            delete: 1,
            unchanged: 1,
            skipped_agents: 1,
            redeploy: 0,
        }
    );
    assert!(p.has_changes());
    assert!(p.has_skips());
}

#[test]
fn the_plan_never_contains_a_value() {
    let canary = "canary-plan-5e1d-never-print";
    let p = one(
        "bot",
        Ok(secrets(&[("A", canary)])),
        Ok(remote(&[("B", "t")])),
        &NoBaseline,
        &Policy::default(),
    );
    let debug = format!("{p:?}");
    let json = serde_json::to_string(&p).unwrap();
    assert!(!debug.contains(canary) && !json.contains(canary));
}

#[test]
fn with_a_base_revision_only_values_that_differ_from_it_are_updated() {
    let base = RevisionBaseline(BTreeMap::from([(
        "bot".to_owned(),
        secrets(&[("SAME", "1"), ("CHANGED", "old")]),
    )]));
    let p = one(
        "bot",
        Ok(secrets(&[
            ("SAME", "1"),
            ("CHANGED", "new"),
            ("NOT_AT_BASE", "x"),
        ])),
        Ok(remote(&[
            ("SAME", "t"),
            ("CHANGED", "t"),
            ("NOT_AT_BASE", "t"),
        ])),
        &base,
        &Policy::default(),
    );
    assert_eq!(
        actions(&p),
        vec![
            a("CHANGED", Action::Update(UpdateReason::ValueChanged)),
            a("NOT_AT_BASE", Action::Update(UpdateReason::Unverified)),
        ]
    );
    assert_eq!(p.unchanged, vec!["SAME"]);
}

/// Plans against the SDK's wire shape (no timestamps), `--replace` and redeploys.
mod wire;
