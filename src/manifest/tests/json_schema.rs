use super::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;

fn schema() -> Json {
    serde_json::from_str(include_str!("../../../schemas/manifest.schema.json")).unwrap()
}

fn names(value: &Json) -> BTreeSet<&str> {
    value["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn json(yaml: &str) -> Json {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    assert!(jsonschema::draft202012::meta::is_valid(&schema()));
}

#[test]
fn the_schema_lists_exactly_the_fields_the_parser_accepts() {
    let s = schema();
    assert_eq!(names(&s), TOP_LEVEL_FIELDS.iter().copied().collect());
    assert_eq!(
        names(&s["properties"]["castsync"]),
        METADATA_FIELDS.iter().copied().collect()
    );
}

#[test]
fn example_manifests_validate() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let examples = [
        sample().to_yaml().as_str().to_owned(),
        sample().to_editable_yaml().as_str().to_owned(),
        Manifest::new("support-bot").to_yaml().as_str().to_owned(),
        "agent: support-bot\nsecrets:\n  OPENAI_API_KEY: sk-abc\n  DATABASE_URL: \"postgres://u:p@db/app\"\n".to_owned(),
        "agent: bad-agent\nsecrets:\n  PORT: 8080\n  DEBUG: true\n  lower: x\n".to_owned(),
        "agent: bad-agent\n".to_owned(),
        "agent: bad-agent\nuses: [openai, stripe]\nsecrets: {}\n".to_owned(),
        "agent: bad-agent\nuses:\n  openai: [OPENAI_API_KEY]\n  stripe: \"*\"\n".to_owned(),
    ];
    for example in &examples {
        ok(&example.replace("support-bot", "bad-agent"));
        let instance = json(example);
        assert!(
            validator.is_valid(&instance),
            "{example}: {:?}",
            validator.validate(&instance).err()
        );
    }
}

#[test]
fn shared_group_manifests_validate_and_group_only_rules_hold() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let group = ManifestContext {
        kind: Kind::Group,
        ..ctx()
    };
    let good = "group: bad-agent\nsecrets:\n  OPENAI_API_KEY: sk-x\n";
    parse(good, &group).unwrap();
    assert!(validator.is_valid(&json(good)));
    let written = Manifest::new_group("bad-agent").to_yaml();
    parse(&written, &group).unwrap();
    assert!(validator.is_valid(&json(&written)));
    let bad = "group: bad-agent\nuses: [x]\n";
    assert!(!validator.is_valid(&json(bad)));
    assert!(parse(bad, &group).is_err());
}

#[test]
fn manifests_the_parser_refuses_for_their_shape_fail_the_schema() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    for bad in [
        "secrets: {}\n",
        "agent: bad-agent\nsecret: {}\n",
        "agent: Bad\n",
        "agent: a..b\n",
        "agent: bad-agent\nsecrets:\n  1A: x\n",
        "agent: bad-agent\nsecrets:\n  A: [x]\n",
        "agent: bad-agent\nsecrets:\n  A: 1.10\n",
        "agent: bad-agent\nsecrets:\n  A: ~\n",
        "agent: bad-agent\ncastsync:\n  recipient: []\n",
        "agent: bad-agent\nuses: openai\n",
        "agent: bad-agent\nuses:\n  openai: []\n",
        "agent: bad-agent\nuses:\n  openai: all\n",
        "agent: bad-agent\nuses: [Open]\n",
        "agent: bad-agent\nuses:\n  openai: [1KEY]\n",
        "agent: bad-agent\ngroup: bad-agent\n",
    ] {
        assert!(!validator.is_valid(&json(bad)), "schema accepted {bad:?}");
        assert!(parse(bad, &ctx()).is_err(), "parser accepted {bad:?}");
    }
}
