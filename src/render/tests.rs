use std::collections::BTreeMap;

use super::*;
use crate::plan::{CoverageMode, NoBaseline, NotLoaded, Policy, plan};
use crate::platform::{Listing, RemoteKey};
use crate::secret::SecretValue;

/// A listing of `keys`, each with a creation time.
fn stamped(keys: &[&str]) -> Listing {
    let keys = keys.iter().map(|k| RemoteKey {
        created_at: Some("t".into()),
        ..RemoteKey::bare(*k)
    });
    Listing::whole(keys.collect())
}

fn sample() -> Plan {
    let secrets = |keys: &[&str]| {
        keys.iter()
            .map(|k| (k.to_string(), SecretValue::new("canary-render-77")))
            .collect::<BTreeMap<_, _>>()
    };
    let remote = |keys: &[&str]| Ok(stamped(keys));
    let desired = BTreeMap::from([
        ("alpha".to_owned(), Ok(secrets(&["NEW", "OLD_ONE", "STAY"]))),
        (
            "beta".to_owned(),
            Err("cannot decrypt agents/beta/secrets.yaml.age".into()),
        ),
        ("gamma".to_owned(), Ok(secrets(&[]))),
    ]);
    let actual = BTreeMap::from([
        (
            "alpha".to_owned(),
            remote(&["OLD_ONE", "GONE", "STAY", "ANTHROPIC_API_KEY"]),
        ),
        ("beta".to_owned(), remote(&[])),
        ("gamma".to_owned(), remote(&[])),
    ]);
    plan(&desired, &actual, &NoBaseline, &Policy::default())
}

fn ctx() -> RenderContext {
    RenderContext {
        platform: "http://127.0.0.1:PORT".into(),
        revision: Some("worktree".into()),
        dry_run: true,
        ..RenderContext::default()
    }
}

#[test]
fn the_text_plan_reads_like_terraform() {
    insta::assert_snapshot!(plan_text(&sample(), &ctx()), @r"
    castsync plan for http://127.0.0.1:PORT from worktree

      alpha:
          + NEW
          ~ OLD_ONE (unverified)
          ~ STAY (unverified)
          - GONE

    ! beta: skipped, nothing changed: manifest not loaded: cannot decrypt agents/beta/secrets.yaml.age

      gamma: no changes (0 in sync)

    Plan: 1 to create, 2 to update, 1 to delete, 0 unchanged; 1 agent skipped.
    ");
}

#[test]
fn text_has_no_colour_unless_asked() {
    assert!(!plan_text(&sample(), &ctx()).contains('\x1b'));
    let colored = RenderContext {
        color: true,
        ..ctx()
    };
    assert!(plan_text(&sample(), &colored).contains("\x1b[32m+ NEW"));
}

#[test]
fn the_markdown_plan_has_a_table_details_and_collapsed_in_sync_agents() {
    insta::assert_snapshot!(plan_markdown(&sample(), &ctx()), @r"
    ### castsync plan

    Platform `http://127.0.0.1:PORT`, source `worktree`.

    **Plan:** 1 to create, 2 to update, 1 to delete, 0 unchanged; 1 agent skipped.

    | agent | create | update | delete | unchanged | status |
    |---|---:|---:|---:|---:|---|
    | alpha | 1 | 2 | 1 | 0 | changes |
    | beta | 0 | 0 | 0 | 0 | ⚠️ skipped |

    - **beta** skipped, nothing changed: manifest not loaded: cannot decrypt agents/beta/secrets.yaml.age

    <details><summary>alpha: 4 changes</summary>

    ```diff
    + NEW
    ! OLD_ONE (unverified)
    ! STAY (unverified)
    - GONE
    ```

    </details>

    <details><summary>1 agent in sync</summary>

    gamma

    </details>
    ");
}

#[test]
fn a_huge_markdown_plan_is_summarised_under_the_budget() {
    let many: BTreeMap<String, Result<BTreeMap<String, SecretValue>, NotLoaded>> = (0..400)
        .map(|i| {
            let keys = (0..60)
                .map(|k| {
                    (
                        format!("KEY_NUMBER_{k:03}_WITH_A_LONG_NAME"),
                        SecretValue::new("v"),
                    )
                })
                .collect();
            (format!("agent-{i:03}"), Ok(keys))
        })
        .collect();
    let actual = many
        .keys()
        .map(|a| (a.clone(), Ok(Listing::default())))
        .collect();
    let p = plan(&many, &actual, &NoBaseline, &Policy::default());
    let md = plan_markdown(&p, &ctx());
    assert!(md.len() < MARKDOWN_BUDGET, "{} chars", md.len());
    assert!(
        md.contains("more changed agents omitted"),
        "summary note missing"
    );
    assert!(
        md.contains("24000 to create"),
        "totals must count everything"
    );
}

#[test]
fn the_json_plan_carries_a_format_version_and_skip_messages() {
    let v = plan_json(&sample(), &ctx());
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["agents"][0]["changes"][1]["action"], "update");
    assert_eq!(v["agents"][0]["changes"][1]["reason"], "unverified");
    assert_eq!(v["agents"][1]["status"], "skipped");
    assert_eq!(v["agents"][1]["skipped"]["kind"], "load-failed");
    assert!(
        v["agents"][1]["skipped"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot decrypt")
    );
    assert_eq!(v["totals"]["delete"], 1);
}

#[test]
fn no_rendering_contains_a_value() {
    let p = sample();
    for out in [
        plan_text(&p, &ctx()),
        plan_markdown(&p, &ctx()),
        plan_json(&p, &ctx()).to_string(),
    ] {
        assert!(!out.contains("canary-render-77"));
    }
}

fn partial(since: &str, uniform: bool, unrefreshed: usize) -> Plan {
    let mut p = sample();
    p.coverage = crate::plan::Coverage {
        mode: CoverageMode::Changed,
        full_reason: None,
        unrefreshed: (0..unrefreshed).map(|i| format!("idle-{i:04}")).collect(),
        since: Some(crate::plan::Since {
            revision: since.to_owned(),
            at: Some("2026-11-20T10:00:00Z".to_owned()),
            uniform,
        }),
    };
    p
}

#[test]
fn a_partial_plan_says_how_many_agents_were_left_unrefreshed_in_every_format() {
    let commit = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
    let p = partial(commit, true, 997);
    let line = "997 agents unchanged since 1a2b3c4, not refreshed.";
    assert!(
        plan_text(&p, &ctx()).contains(line),
        "{}",
        plan_text(&p, &ctx())
    );
    assert!(plan_markdown(&p, &ctx()).contains(line));
    let v = plan_json(&p, &ctx());
    assert_eq!(v["coverage"]["mode"], "changed");
    assert_eq!(v["coverage"]["unrefreshed"], 997);
    assert_eq!(v["coverage"]["refreshed"], 3);
    assert_eq!(v["coverage"]["since"]["revision"], commit);
    assert_eq!(v["coverage"]["summary"], line.trim_end_matches('.'));

    let mixed = partial(commit, false, 1);
    assert!(
        plan_text(&mixed, &ctx())
            .contains("1 agent unchanged since their last refresh (the oldest at 1a2b3c4)")
    );
}

#[test]
fn a_full_plan_says_nothing_about_coverage_unless_a_changed_run_fell_back() {
    let p = sample();
    assert!(!plan_text(&p, &ctx()).contains("refresh"));
    assert_eq!(plan_json(&p, &ctx())["coverage"]["mode"], "full");
    let mut fell_back = sample();
    fell_back.coverage.full_reason = Some("no state file yet (.castsync/state.json)".into());
    let text = plan_text(&fell_back, &ctx());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("full reconcile"))
        .collect();
    assert_eq!(
        lines,
        ["full reconcile: no state file yet (.castsync/state.json)."]
    );
    assert!(plan_markdown(&fell_back, &ctx()).contains("full reconcile: no state file yet"));
}

#[test]
fn a_key_from_a_shared_group_names_the_group_in_every_format() {
    let origin = crate::plan::SharedOrigin {
        group: "openai".into(),
        path: "shared/openai".into(),
    };
    let origins = BTreeMap::from([(
        "alpha".to_owned(),
        BTreeMap::from([
            ("OLD_ONE".to_owned(), origin.clone()),
            ("NEW".to_owned(), origin),
        ]),
    )]);
    let plan = sample().with_origins(&origins);
    let text = plan_text(&plan, &ctx());
    assert!(text.contains("+ NEW (from shared/openai)"), "{text}");
    assert!(
        text.contains("~ OLD_ONE (unverified, from shared/openai)"),
        "{text}"
    );
    assert!(text.contains("~ STAY (unverified)\n"), "{text}");
    let json = plan_json(&plan, &ctx());
    let changes = json["agents"][0]["changes"].as_array().unwrap();
    let new = changes.iter().find(|c| c["key"] == "NEW").unwrap();
    assert_eq!(new["from"]["group"], "openai");
    assert_eq!(new["from"]["path"], "shared/openai");
    let gone = changes.iter().find(|c| c["key"] == "GONE").unwrap();
    assert!(gone.get("from").is_none(), "{gone}");
    let md = plan_markdown(&plan, &ctx());
    assert!(
        md.contains("Shared groups behind these changes: shared/openai (1 agent: alpha)."),
        "{md}"
    );
    assert!(
        md.contains("! OLD_ONE (unverified, from shared/openai)"),
        "{md}"
    );
    for out in [text, json.to_string(), md] {
        assert!(!out.contains("canary"), "{out}");
    }
}

/// A plan whose platform lists keys built to fool a reader: escapes, fake lines, fences, HTML.
fn hostile() -> Plan {
    let keys = [
        "RED\u{1b}[31mKEY",
        "X\n\nPlan: 0 to create, 0 to update, 0 to delete, 9 unchanged.",
        "F\n```\n<img src=x onerror=alert(1)>",
        "BIDI\u{202e}YEK",
    ];
    let actual = BTreeMap::from([("alpha".to_owned(), Ok(stamped(&keys)))]);
    let desired = BTreeMap::from([("alpha".to_owned(), Ok(BTreeMap::new()))]);
    let policy = Policy {
        allow_mass_delete: true,
        ..Policy::default()
    };
    plan(&desired, &actual, &NoBaseline, &policy)
}

#[test]
fn remote_key_names_are_escaped_in_text_and_markdown_and_exact_in_json() {
    let plan = hostile();
    assert_eq!(plan.agents[0].changes.len(), 4, "{plan:?}");
    let text = plan_text(&plan, &RenderContext::default());
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Plan:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("- RED\\x1b[31mKEY"), "{text}");
    assert!(text.contains("- X\\n\\nPlan: 0 to create"), "{text}");

    let md = plan_markdown(&plan, &RenderContext::default());
    assert!(!md.contains('\u{1b}'), "{md}");
    // Only a line starting with ``` closes a fence; the hostile text stays inside one line
    // of the code block, where HTML is shown as text.
    assert_eq!(
        md.lines().filter(|l| l.starts_with("```")).count(),
        2,
        "one fence opened and closed: {md}"
    );
    assert!(
        md.lines()
            .filter(|l| l.contains("<img"))
            .all(|l| l.starts_with("- F\\n```")),
        "{md}"
    );
    assert!(!md.lines().any(|l| l.starts_with("Plan:")), "{md}");
    assert_eq!(
        md.lines().filter(|l| l.starts_with("**Plan:**")).count(),
        1,
        "{md}"
    );

    let json = plan_json(&plan, &RenderContext::default());
    let listed: Vec<&str> = json["agents"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"F\n```\n<img src=x onerror=alert(1)>"),
        "{listed:?}"
    );
}
