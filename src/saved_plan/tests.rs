use super::*;
use crate::platform::types::RemoteKey;
use crate::secret::SecretValue;

fn file(path: &str, blob: Option<&str>) -> FileBlob {
    FileBlob {
        path: path.into(),
        blob: blob.map(str::to_owned),
    }
}

fn listing(keys: &[&str]) -> Listing {
    Listing::whole(keys.iter().map(|k| RemoteKey::bare(*k)).collect())
}

fn change(key: &str, action: Action) -> Change {
    Change::new(key, action)
}

fn inputs() -> Inputs {
    Inputs {
        config: file("castsync.yaml", Some("c1")),
        agents: BTreeMap::from([
            (
                "a".to_owned(),
                vec![
                    file("agents/a/secrets.yaml.age", Some("m1")),
                    file("agents/a/.env.example", None),
                ],
            ),
            (
                "b".to_owned(),
                vec![file("agents/b/secrets.yaml.age", Some("m2"))],
            ),
        ]),
    }
}

fn saved() -> SavedPlan {
    let plan = Plan {
        coverage: Default::default(),
        agents: vec![
            AgentPlan {
                changes: vec![change("K1", Action::Create), change("OLD", Action::Delete)],
                ..AgentPlan::new("a")
            },
            AgentPlan::new("b"),
        ],
    };
    let observed = BTreeMap::from([
        ("a".to_owned(), Ok(listing(&["OLD", "K2"]))),
        ("b".to_owned(), Ok(listing(&["B1"]))),
    ]);
    save(
        &plan,
        &Origin {
            inputs: &inputs(),
            observed: &observed,
            platform: "https://api.castari.com",
            revision: "abc",
            all_agents: true,
            created_at: "t",
        },
    )
    .unwrap()
}

#[test]
fn a_saved_plan_records_its_inputs_and_round_trips_through_json() {
    let saved = saved();
    assert_eq!(saved.agents[0].key_count, 2);
    assert_eq!(saved.agents[0].files[0].blob.as_deref(), Some("m1"));
    let text = serde_json::to_string(&saved).unwrap();
    let back: SavedPlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, saved);
    assert_eq!(to_plan(&saved).agents[0].changes, saved.agents[0].changes);
    assert!(check_inputs(&saved, &inputs()).is_empty());
    assert!(check_target(&saved, "https://api.castari.com").is_none());
}

#[test]
fn a_plan_with_a_skipped_agent_is_not_saved() {
    let mut plan = to_plan(&saved());
    plan.agents[1].skipped = Some(crate::plan::SkipReason::LoadFailed {
        message: "bad".into(),
        hint: None,
    });
    let err = save(
        &plan,
        &Origin {
            inputs: &inputs(),
            observed: &BTreeMap::new(),
            platform: "p",
            revision: "r",
            all_agents: true,
            created_at: "t",
        },
    )
    .unwrap_err();
    assert_eq!(err, NotSaved::Skipped { agents: "b".into() });
}

#[test]
fn every_moved_input_is_named() {
    let saved = saved();
    let mut now = inputs();
    now.config.blob = Some("c2".into());
    now.agents.get_mut("a").unwrap()[1].blob = Some("e1".into());
    now.agents.remove("b");
    now.agents.insert("c".into(), vec![]);
    let moved: Vec<String> = check_inputs(&saved, &now)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        moved,
        [
            "castsync.yaml changed since the plan (blob c1 then, c2 now)",
            "agents/a/.env.example (agent a) was added since the plan",
            "agent b was removed since the plan",
            "agent c was added since the plan: the plan would leave it unreconciled",
        ]
    );
    // A plan of some agents only does not mind new ones.
    let only = SavedPlan {
        all_agents: false,
        ..saved.clone()
    };
    let mut now = inputs();
    now.agents.insert("c".into(), vec![]);
    assert!(check_inputs(&only, &now).is_empty());
    assert_eq!(
        check_target(&saved, "local:///tmp/x").unwrap().to_string(),
        "the target differs: the plan is for platform https://api.castari.com, this run targets local:///tmp/x"
    );
}

#[test]
fn a_key_list_moves_with_names_and_timestamps_but_not_with_order() {
    let saved = saved();
    let same = BTreeMap::from([("a".to_owned(), listing(&["K2", "OLD"]))]);
    assert!(check_key_lists(&saved, &same).is_empty());
    let added = BTreeMap::from([("a".to_owned(), listing(&["K2", "OLD", "NEW"]))]);
    assert_eq!(
        check_key_lists(&saved, &added),
        [Mismatch::KeyList {
            agent: "a".into(),
            planned: 2,
            now: 3
        }]
    );
    let mut stamped = listing(&["K2", "OLD"]);
    stamped.keys[0].updated_at = Some("2026-11-20T10:00:00Z".into());
    assert_ne!(
        key_list_digest(&stamped),
        key_list_digest(&listing(&["K2", "OLD"]))
    );
}

#[test]
fn changes_a_fresh_plan_could_never_make_are_refused() {
    let mut saved = saved();
    let desired = BTreeMap::from([(
        "a".to_owned(),
        BTreeMap::from([
            ("K1".to_owned(), SecretValue::new("v")),
            ("K2".to_owned(), SecretValue::new("w")),
        ]),
    )]);
    let listed = BTreeMap::from([("a".to_owned(), listing(&["OLD", "K2"]))]);
    let policy = Policy::default();
    assert!(check_changes(&saved, &desired, &listed, &policy).is_empty());

    saved.agents[0].changes = vec![
        change("NOPE", Action::Create),
        change("K2", Action::Delete),
        change("ANTHROPIC_API_KEY", Action::Delete),
    ];
    let refused: Vec<String> = check_changes(&saved, &desired, &listed, &policy)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert!(refused[0].contains("sets NOPE of agent a"));
    assert!(refused[1].contains("deletes K2 of agent a, which its manifest declares"));
    assert!(refused[2].contains("is in unmanaged_keys"));
    assert!(
        refused[3].contains("more than max_delete_fraction"),
        "{refused:#?}"
    );

    saved.agents[0].changes = vec![change("OLD", Action::Delete)];
    let no_prune = Policy {
        prune: false,
        ..Policy::default()
    };
    let refused = check_changes(&saved, &desired, &listed, &no_prune);
    assert!(
        refused[0].to_string().contains("prune is off"),
        "{refused:?}"
    );
}

#[test]
fn a_plan_no_castsync_could_write_is_refused_by_its_shape() {
    let mut forged = saved();
    assert!(check_shape(&forged).is_empty());
    forged.agents.push(forged.agents[0].clone());
    forged.agents[1].changes.clear();
    forged.agents[1].redeploy = Some(RedeployReason::Changes);
    forged.agents[2].changes.push(change("K1", Action::Create));
    let found = check_shape(&forged);
    assert!(found.contains(&Mismatch::DuplicateAgent {
        agent: "a".into(),
        times: 2
    }));
    assert!(found.contains(&Mismatch::RepeatedChange {
        agent: "a".into(),
        key: "K1".into(),
        times: 2
    }));
    assert!(found.contains(&Mismatch::RedeployRefused {
        agent: "b".into(),
        why: "has no changes in the plan"
    }));
}

#[test]
fn redeploys_follow_the_config_and_the_state_only() {
    let mut forged = saved();
    forged.agents[0].redeploy = Some(RedeployReason::Changes);
    forged.agents[1].redeploy = Some(RedeployReason::Pending);
    let never = check_redeploys(&forged, |_| false, |_| true);
    assert_eq!(never.len(), 2, "{never:?}");
    let owed_nothing = check_redeploys(&forged, |_| true, |_| false);
    assert_eq!(
        owed_nothing,
        [Mismatch::RedeployRefused {
            agent: "b".into(),
            why: "has no changes and no redeploy owed"
        }]
    );
    assert!(check_redeploys(&forged, |_| true, |a| a == "b").is_empty());
}

#[test]
fn a_file_the_plan_does_not_record_is_named() {
    let mut forged = saved();
    forged.agents[0].files.clear();
    let found = check_inputs(&forged, &inputs());
    assert!(found.contains(&Mismatch::FileNotRecorded {
        agent: "a".into(),
        path: "agents/a/secrets.yaml.age".into()
    }));
}
