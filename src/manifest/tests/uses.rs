//! `uses:` and shared group manifests (`group:`).
use super::*;

fn group_ctx() -> ManifestContext {
    ManifestContext {
        kind: Kind::Group,
        path: PathBuf::from("shared/bad-agent/secrets.yaml.age"),
        ..ctx()
    }
}

fn keys(names: &[&str]) -> UsedKeys {
    UsedKeys::Keys(names.iter().map(|k| (*k).to_owned()).collect())
}

#[test]
fn both_forms_of_uses_are_read() {
    let short = ok("agent: bad-agent\nuses: [openai, stripe]\nsecrets: {}\n");
    assert_eq!(
        short.manifest.uses,
        Uses::from([
            ("openai".to_owned(), UsedKeys::All),
            ("stripe".to_owned(), UsedKeys::All)
        ])
    );
    let long = ok(
        "agent: bad-agent\nuses:\n  openai: [OPENAI_API_KEY, OPENAI_ORG]\n  stripe: \"*\"\nsecrets:\n  OWN: x\n",
    );
    assert_eq!(
        long.manifest.uses,
        Uses::from([
            ("openai".to_owned(), keys(&["OPENAI_API_KEY", "OPENAI_ORG"])),
            ("stripe".to_owned(), UsedKeys::All)
        ])
    );
    assert!(ok("agent: bad-agent\nuses:\n").manifest.uses.is_empty());
}

#[test]
fn uses_is_written_back_in_the_shortest_form_and_reads_back_the_same() {
    let mut m = Manifest::new("bad-agent");
    m.uses.insert("openai".into(), UsedKeys::All);
    m.uses.insert("yes".into(), UsedKeys::All);
    let text = m.to_yaml();
    assert!(
        text.contains("uses: [openai, \"yes\"]\n"),
        "{}",
        text.as_str()
    );
    assert_eq!(ok(&text).manifest, m);

    m.uses.insert("stripe".into(), keys(&["B", "A"]));
    m.secrets.insert("OWN".into(), SecretValue::new("v"));
    let text = m.to_yaml();
    assert!(
        text.contains("uses:\n  openai: \"*\"\n  stripe: [A, B]\n"),
        "{}",
        text.as_str()
    );
    assert_eq!(ok(&text).manifest, m);
}

#[test]
fn bad_uses_blocks_are_refused_with_the_line_and_the_fix() {
    for (text, expected) in [
        (
            "agent: bad-agent\nuses: openai\n",
            "must be a list of group names",
        ),
        ("agent: bad-agent\nuses: [[a]]\n", "must be a group name"),
        (
            "agent: bad-agent\nuses:\n  openai: []\n",
            "line 3, column 3: group openai under `uses:` lists no keys",
        ),
        (
            "agent: bad-agent\nuses:\n  openai: all\n",
            "takes a list of key names",
        ),
        (
            "agent: bad-agent\nuses:\n  openai: {a: b}\n",
            "takes a list of key names",
        ),
        (
            "agent: bad-agent\nuses: [openai, openai]\n",
            "group openai is listed twice",
        ),
        (
            "agent: bad-agent\nuses:\n  openai: [K, K]\n",
            "key K is listed twice under `uses: openai`",
        ),
        (
            "agent: bad-agent\nuses:\n  openai: [1K]\n",
            "not a valid environment variable name (not shown)",
        ),
        (
            "agent: bad-agent\nuses: [Open-AI]\n",
            "a group name under `uses:` is not valid (not shown)",
        ),
    ] {
        let e = err(text).to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
    }
}

#[test]
fn a_group_manifest_is_bound_to_its_folder_like_an_agents() {
    let parsed = parse("group: bad-agent\nsecrets:\n  K: v\n", &group_ctx()).unwrap();
    assert_eq!(parsed.manifest.kind, Kind::Group);
    assert_eq!(parsed.manifest.agent, "bad-agent");
    for (text, expected) in [
        (
            "secrets: {}\n",
            "has no `group:` field; add `group: bad-agent`",
        ),
        (
            "group: other\n",
            "the manifest says group \"other\" but it is in the folder of shared group \"bad-agent\"",
        ),
        (
            "agent: bad-agent\n",
            "this is an agent's manifest (`agent:`) but it is in the folder of shared group \"bad-agent\"",
        ),
        (
            "group: bad-agent\nuses: [x]\n",
            "a shared group cannot take keys from other groups",
        ),
        (
            "group: bad-agent\nsecrets:\n  ANTHROPIC_API_KEY: x\n",
            "Castari injects this key itself",
        ),
    ] {
        let e = parse(text, &group_ctx()).unwrap_err().to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
    }
    let e = err("group: bad-agent\nsecrets: {}\n").to_string();
    assert!(
        e.contains("this is a shared group's manifest (`group:`) but it is in the folder of agent \"bad-agent\""),
        "{e}"
    );
    assert!(e.contains("castsync edit bad-agent"), "{e}");
}
