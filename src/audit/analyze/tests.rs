use super::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;
const ALICE: &str = "age1alice0000000000000000000";
const BOB: &str = "age1bob000000000000000000000";
const CAROL: &str = "age1carol00000000000000000000";

fn fps(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn seen<'a>(
    commit: &str,
    days_ago: i64,
    readers: &[&str],
    keys: &'a BTreeMap<String, u64>,
) -> Seen<'a> {
    Seen {
        commit: CommitRef::new(commit, NOW - days_ago * DAY),
        readers: Some((readers.iter().map(|r| (*r).to_owned()).collect(), true)),
        content: Ok(keys),
    }
}

fn names() -> Names {
    let mut names = Names::default();
    let list: crate::config::Recipients =
        serde_yaml::from_str(&format!("- alice: {ALICE}\n- bob: {BOB}\n")).unwrap();
    names.add(&list);
    names
}

fn run(trails: &[Trail<'_>], policy: &PolicyOf<'_>) -> Audit {
    let names = names();
    let ctx = Context {
        now: NOW,
        revision: CommitRef::new("head", NOW),
        names: &names,
        policy,
    };
    analyze(trails, &ctx, Vec::new())
}

fn trail<'a>(versions: Vec<Seen<'a>>) -> Trail<'a> {
    Trail {
        kind: SourceKind::Agent,
        name: "billing".into(),
        environment: None,
        file: "agents/billing/secrets.yaml.age".into(),
        versions,
        complete: true,
    }
}

#[test]
fn a_key_dates_from_the_oldest_version_of_its_unchanged_run() {
    let v3 = fps(&[("A", 1), ("B", 7)]);
    let v2 = fps(&[("A", 1), ("B", 8)]);
    let v1 = fps(&[("A", 2), ("B", 8)]);
    let trails = [trail(vec![
        seen("c3", 5, &[ALICE], &v3),
        seen("c2", 45, &[ALICE], &v2),
        seen("c1", 100, &[ALICE], &v1),
    ])];
    let thirty = |_: SourceKind, _: &str, key: &str| {
        (key == "A").then(|| (Period::days(30), ".env.example".to_owned()))
    };
    let audit = run(&trails, &thirty);
    let keys = &audit.sources[0].keys;
    assert_eq!(keys[0].key, "A");
    assert_eq!(keys[0].last_changed.commit, "c2");
    assert_eq!(keys[0].age_days, 45);
    assert_eq!(keys[0].status, Status::Overdue);
    assert_eq!(keys[1].last_changed.commit, "c3");
    assert_eq!(keys[1].status, Status::NoPolicy);
    assert!(keys.iter().all(|k| k.exact));
    assert_eq!(audit.summary.overdue, 1);
    assert!(audit.summary.needs_action());
    assert_eq!(audit.sources[0].readers[0].label, "alice");
}

#[test]
fn due_soon_is_within_fourteen_days_of_the_period() {
    let v = fps(&[("A", 1)]);
    for (days_ago, expected) in [
        (10, Status::Ok),
        (20, Status::DueSoon),
        (31, Status::Overdue),
    ] {
        let trails = [trail(vec![seen("c", days_ago, &[ALICE], &v)])];
        let policy = |_: SourceKind, _: &str, _: &str| Some((Period::days(30), "x".to_owned()));
        let audit = run(&trails, &policy);
        assert_eq!(audit.sources[0].keys[0].status, expected, "{days_ago} days");
    }
}

#[test]
fn a_removed_reader_keeps_exactly_the_values_unchanged_since_they_lost_access() {
    // c1: A, B, C for alice and bob. c2: bob removed (rekey). c3: A rotated.
    let v1 = fps(&[("A", 1), ("B", 2), ("C", 3)]);
    let v3 = fps(&[("A", 9), ("B", 2), ("C", 3)]);
    let trails = [trail(vec![
        seen("c3", 1, &[ALICE], &v3),
        seen("c2", 2, &[ALICE], &v1),
        seen("c1", 3, &[ALICE, BOB], &v1),
    ])];
    let none = |_: SourceKind, _: &str, _: &str| None;
    let audit = run(&trails, &none);
    assert_eq!(audit.exposures.len(), 1);
    let bob = &audit.exposures[0];
    assert_eq!(bob.reader.label, "bob");
    assert_eq!(bob.lost_access.commit, "c2");
    let keys: Vec<&str> = bob.values.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["B", "C"]);
    assert_eq!(audit.summary.exposed_values, 2);
    assert_eq!(audit.summary.former_readers, 1);
}

#[test]
fn someone_who_never_had_access_or_still_has_it_is_exposed_to_nothing() {
    let v = fps(&[("A", 1)]);
    let other = fps(&[("A", 1)]);
    let trails = [
        trail(vec![
            seen("c2", 1, &[ALICE], &v),
            seen("c1", 2, &[ALICE], &v),
        ]),
        Trail {
            name: "other".into(),
            ..trail(vec![seen("c2", 1, &[CAROL], &other)])
        },
    ];
    let none = |_: SourceKind, _: &str, _: &str| None;
    let audit = run(&trails, &none);
    assert!(audit.exposures.is_empty());
    assert!(!audit.summary.needs_action());
    // An unnamed reader shows as a short fingerprint.
    assert_eq!(
        audit.sources[1].readers[0].label,
        crate::config::short_label(CAROL)
    );
}

#[test]
fn an_unreadable_older_version_makes_the_date_a_lower_bound() {
    let v = fps(&[("A", 1)]);
    let trails = [trail(vec![
        seen("c2", 10, &[ALICE], &v),
        Seen {
            commit: CommitRef::new("c1", NOW - 50 * DAY),
            readers: None,
            content: Err("not encrypted to your identities"),
        },
    ])];
    let none = |_: SourceKind, _: &str, _: &str| None;
    let audit = run(&trails, &none);
    let key = &audit.sources[0].keys[0];
    assert_eq!(key.last_changed.commit, "c2");
    assert!(!key.exact);
    assert!(audit.notes[0].contains("may be older"), "{:?}", audit.notes);
}

#[test]
fn a_manifest_that_does_not_read_now_is_reported_with_its_reason() {
    let trails = [trail(vec![Seen {
        commit: CommitRef::new("c1", NOW),
        readers: None,
        content: Err("not encrypted to your identities"),
    }])];
    let none = |_: SourceKind, _: &str, _: &str| None;
    let audit = run(&trails, &none);
    assert_eq!(audit.summary.unreadable, 1);
    assert_eq!(
        audit.sources[0].error.as_deref(),
        Some("not encrypted to your identities")
    );
}
