use super::*;
use std::path::Path;

const CANARY: &str = "canary-7f3a91-do-not-print";

fn ctx() -> ManifestContext {
    ManifestContext {
        path: PathBuf::from("agents/bad-agent/secrets.yaml.age"),
        expected_agent: "bad-agent".to_owned(),
        kind: Kind::Agent,
        unmanaged_keys: vec!["ANTHROPIC_API_KEY".to_owned()],
    }
}

/// The context of agent bad-agent's staging overlay.
fn overlay_ctx() -> ManifestContext {
    ManifestContext {
        path: PathBuf::from("agents/bad-agent/secrets.staging.yaml.age"),
        ..ctx()
    }
}

fn ok(text: &str) -> Parsed {
    parse(text, &ctx()).unwrap_or_else(|e| panic!("refused: {e}\n---\n{text}"))
}

fn err(text: &str) -> ManifestError {
    match parse(text, &ctx()) {
        Ok(parsed) => panic!("accepted: {:?}\n---\n{text}", parsed.manifest),
        Err(e) => e,
    }
}

fn value(parsed: &Parsed, key: &str) -> String {
    parsed.manifest.secrets[key].expose().to_owned()
}

fn secrets(body: &str) -> String {
    format!("agent: bad-agent\nsecrets:\n{body}")
}

#[test]
fn a_valid_manifest_is_read_with_every_value_as_text() {
    let parsed = ok(
        "agent: bad-agent\nsecrets:\n  OPENAI_API_KEY: sk-abc\n  DATABASE_URL: \"postgres://u:p@db/app\"\n",
    );
    assert_eq!(parsed.manifest.agent, "bad-agent");
    assert_eq!(value(&parsed, "OPENAI_API_KEY"), "sk-abc");
    assert_eq!(value(&parsed, "DATABASE_URL"), "postgres://u:p@db/app");
    assert_eq!(parsed.manifest.meta, None);
    assert!(parsed.warnings.is_empty());
}

#[test]
fn integers_and_booleans_become_their_text_exactly_as_written() {
    let parsed = ok(&secrets(
        "  PORT: 8080\n  DEBUG: true\n  OFFSET: -5\n  ZERO: 0\n  OFF: false\n",
    ));
    assert_eq!(value(&parsed, "PORT"), "8080");
    assert_eq!(value(&parsed, "DEBUG"), "true");
    assert_eq!(value(&parsed, "OFFSET"), "-5");
    assert_eq!(value(&parsed, "ZERO"), "0");
    assert_eq!(value(&parsed, "OFF"), "false");
}

#[test]
fn quoted_and_block_values_are_strings_whatever_they_look_like() {
    let parsed = ok(&secrets(concat!(
        "  A: \"1.10\"\n",
        "  B: '~'\n",
        "  C: \"\"\n",
        "  D: \"line\\nbreak\"\n",
        "  E: 'it''s'\n",
        "  F: |\n    -----BEGIN KEY-----\n    abc\n  G: >-\n    folded\n    text\n",
        "  H: \"2024-01-01\"\n",
        "  I: plain text with spaces # and a comment\n",
    )));
    assert_eq!(value(&parsed, "A"), "1.10");
    assert_eq!(value(&parsed, "B"), "~");
    assert_eq!(value(&parsed, "C"), "");
    assert_eq!(value(&parsed, "D"), "line\nbreak");
    assert_eq!(value(&parsed, "E"), "it's");
    assert_eq!(value(&parsed, "F"), "-----BEGIN KEY-----\nabc\n");
    assert_eq!(value(&parsed, "G"), "folded text");
    assert_eq!(value(&parsed, "H"), "2024-01-01");
    assert_eq!(value(&parsed, "I"), "plain text with spaces");
}

#[test]
fn a_float_value_is_an_error_that_names_the_file_line_and_key_with_the_quoted_fix() {
    let e = err("agent: bad-agent\n# the release\nsecrets:\n  VERSION: 1.10\n");
    assert_eq!(
        e.to_string(),
        "agents/bad-agent/secrets.yaml.age (decrypted), line 4, column 3: key VERSION: the unquoted value is read as a floating-point number, which YAML tools rewrite (trailing zeros are lost, for one); put the value in double quotes: VERSION: \"...\""
    );
}

#[test]
fn every_value_whose_text_a_yaml_reader_would_change_is_refused() {
    type Expect = fn(&ValueProblem) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("1.10", |p| matches!(p, ValueProblem::Float)),
        ("", |p| matches!(p, ValueProblem::Empty)),
        ("~", |p| matches!(p, ValueProblem::Null)),
        ("null", |p| matches!(p, ValueProblem::Null)),
        ("0x1F", |p| matches!(p, ValueProblem::Number)),
        ("0o17", |p| matches!(p, ValueProblem::Number)),
        ("+5", |p| matches!(p, ValueProblem::Number)),
        ("0755", |p| matches!(p, ValueProblem::Yaml11Number)),
        ("1_000", |p| matches!(p, ValueProblem::Yaml11Number)),
        ("2024-01-01", |p| matches!(p, ValueProblem::Timestamp)),
        (".inf", |p| matches!(p, ValueProblem::Float)),
        (".nan", |p| matches!(p, ValueProblem::Float)),
        ("True", |p| matches!(p, ValueProblem::Bool)),
        ("yes", |p| matches!(p, ValueProblem::Yaml11Bool)),
        ("99999999999999999999999999", |p| {
            matches!(p, ValueProblem::BigNumber)
        }),
        ("!!float 1", |p| matches!(p, ValueProblem::Tagged)),
        ("!!str 1.10", |p| matches!(p, ValueProblem::Tagged)),
        ("!custom text", |p| matches!(p, ValueProblem::Tagged)),
        ("&a !!int 3", |p| matches!(p, ValueProblem::Tagged)),
        ("[a, b]", |p| matches!(p, ValueProblem::List)),
        ("{a: b}", |p| matches!(p, ValueProblem::Mapping)),
    ];
    for (text, expected) in cases {
        let e = err(&secrets(&format!("  OTHER: fine\n  KEY: {text}\n")));
        match &e {
            ManifestError::Value { at, key, problem } => {
                assert!(expected(problem), "{text}: {problem:?}");
                assert_eq!(key, "KEY", "{text}");
                assert_eq!(at.line, Some(4), "{text}");
            }
            other => panic!("{text}: {other}"),
        }
        assert!(e.to_string().contains("key KEY: "), "{e}");
    }
}

#[test]
fn an_empty_value_suggests_an_empty_string() {
    let e = err(&secrets("  KEY:\n"));
    assert!(
        e.to_string().contains("write KEY: \"\" for an empty value"),
        "{e}"
    );
}

#[test]
fn a_nested_list_or_mapping_value_is_refused_without_showing_it() {
    let e = err(&secrets(&format!("  KEY:\n    - {CANARY}\n")));
    assert!(e.to_string().contains("is a list"), "{e}");
    let e = err(&secrets(&format!("  KEY:\n    nested: {CANARY}\n")));
    assert!(
        e.to_string().contains("is a mapping") && e.to_string().contains("line 3"),
        "{e}"
    );
    assert!(!e.to_string().contains(CANARY));
}

#[test]
fn an_alias_has_the_style_of_its_anchor() {
    let parsed = ok(&secrets("  A: &shared \"1.10\"\n  B: *shared\n"));
    assert_eq!(value(&parsed, "B"), "1.10");
    let e = err(&secrets("  A: &shared x\n  B: &n 1.10\n  C: *n\n"));
    assert!(
        matches!(e, ManifestError::Value { ref key, .. } if key == "B"),
        "{e}"
    );
}

#[test]
fn flow_style_secrets_follow_the_same_rules() {
    let parsed = ok("agent: bad-agent\nsecrets: {A: \"2024-01-01\", B: x, 'C': 'y'}\n");
    assert_eq!(value(&parsed, "A"), "2024-01-01");
    assert_eq!(value(&parsed, "C"), "y");
    let e = err("agent: bad-agent\nsecrets: {A: x,\n  B: 2024-01-01}\n");
    assert!(
        matches!(&e, ManifestError::Value { at, key, .. } if key == "B" && at.line == Some(3)),
        "{e}"
    );
}

#[test]
fn absent_null_or_empty_secrets_mean_no_secrets() {
    for text in [
        "agent: bad-agent\n",
        "agent: bad-agent\nsecrets:\n",
        "agent: bad-agent\nsecrets: ~\n",
        "agent: bad-agent\nsecrets: {}\n",
    ] {
        assert!(ok(text).manifest.secrets.is_empty(), "{text}");
    }
}

#[test]
fn secrets_that_are_not_a_mapping_are_refused() {
    for body in [
        format!("secrets: {CANARY}"),
        "secrets: [a, b]".to_owned(),
        "secrets: 3".to_owned(),
    ] {
        let e = err(&format!("agent: bad-agent\n{body}\n"));
        assert!(
            matches!(e, ManifestError::SecretsNotMapping { ref at } if at.line == Some(2)),
            "{e}"
        );
    }
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    for text in [
        CANARY.to_owned(),
        format!("- {CANARY}\n"),
        "42\n".to_owned(),
        "!tag x\n".to_owned(),
    ] {
        let e = err(&text);
        assert!(
            matches!(e, ManifestError::NotAMapping { .. }),
            "{text}: {e}"
        );
        assert!(!e.to_string().contains(CANARY));
    }
}

#[test]
fn a_manifest_without_agent_is_refused_with_the_line_to_add() {
    for text in ["", "# only a comment\n", "secrets:\n  A: x\n"] {
        let e = err(text);
        assert!(e.to_string().contains("add `agent: bad-agent`"), "{e}");
    }
}

#[test]
fn an_agent_from_another_folder_is_refused_and_the_fix_is_explained() {
    let e = err("agent: billing\nsecrets:\n  A: x\n");
    let msg = e.to_string();
    assert!(msg.contains("line 1"), "{msg}");
    assert!(
        msg.contains("agent \"billing\"") && msg.contains("agent \"bad-agent\""),
        "{msg}"
    );
    assert!(
        msg.contains("copied or moved from another agent's folder"),
        "{msg}"
    );
    assert!(msg.contains("castsync edit bad-agent"), "{msg}");
}

#[test]
fn the_agent_binding_is_checked_before_the_values() {
    let e = err("agent: billing\nsecrets:\n  A: 1.10\n  B: [x]\n");
    assert!(matches!(e, ManifestError::AgentMismatch { .. }), "{e}");
}

#[test]
fn an_agent_that_is_not_a_slug_is_not_repeated() {
    let e = err(&format!("agent: \"{CANARY} with spaces\"\n"));
    assert!(
        matches!(e, ManifestError::AgentMismatch { found: None, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains(CANARY), "{e}");
}

#[test]
fn an_empty_or_structured_agent_is_refused() {
    for text in [
        "agent:\n",
        "agent: \"\"\n",
        "agent: [bad-agent]\n",
        "agent: {a: b}\n",
    ] {
        assert!(
            matches!(err(text), ManifestError::InvalidAgent { .. }),
            "{text}"
        );
    }
}

#[test]
fn an_unknown_top_level_field_is_refused_with_a_suggestion() {
    let e = err("agent: bad-agent\nsecret:\n  A: x\n");
    assert_eq!(
        e.to_string(),
        "agents/bad-agent/secrets.yaml.age (decrypted), line 2, column 1: unknown top-level field \"secret\" (did you mean \"secrets\"?): an agent's manifest has only agent, uses, secrets and castsync (a shared group's: group, secrets and castsync)"
    );
}

#[test]
fn a_duplicate_top_level_field_is_refused() {
    let e = err("agent: bad-agent\nsecrets:\n  A: x\nagent: bad-agent\n");
    assert!(
        matches!(&e, ManifestError::DuplicateField { at, first_line: Some(1), .. } if at.line == Some(4)),
        "{e}"
    );
    let e = err("agent: bad-agent\nsecrets:\n  A: x\nsecrets:\n  B: y\n");
    assert!(
        e.to_string().contains("duplicate top-level field secrets"),
        "{e}"
    );
}

#[test]
fn a_duplicate_key_under_secrets_is_refused_with_both_lines() {
    let e = err(&secrets(&format!("  A: {CANARY}\n  B: x\n  A: {CANARY}\n")));
    assert_eq!(
        e.to_string(),
        "agents/bad-agent/secrets.yaml.age (decrypted), line 5, column 3: duplicate key A under secrets (first at line 3); keep one of them"
    );
    let e = err(&secrets("  A: x\n  'A': y\n"));
    assert!(
        matches!(e, ManifestError::DuplicateKey { .. }),
        "a quoted key is the same key: {e}"
    );
}

#[test]
fn invalid_key_names_are_refused_with_their_line() {
    for key in ["1A", "A-B", "A.B", "\"A B\"", "\"\"", "~"] {
        let e = err(&secrets(&format!("  OK: x\n  {key}: v\n")));
        assert!(
            matches!(&e, ManifestError::InvalidKey { at, .. } if at.line == Some(4)),
            "{key}: {e}"
        );
    }
    let e = err(&secrets("  ? [a]\n  : v\n"));
    assert!(matches!(e, ManifestError::ComplexKey { .. }), "{e}");
}

#[test]
fn a_lowercase_key_is_a_warning_with_its_line() {
    let parsed = ok(&secrets("  UPPER: x\n  lower_key: value\n"));
    assert_eq!(parsed.warnings.len(), 1);
    let w = &parsed.warnings[0];
    assert_eq!(w.line, Some(4));
    assert_eq!(w.key.as_deref(), Some("lower_key"));
    assert_eq!(w.agent.as_deref(), Some("bad-agent"));
    assert!(
        w.to_string()
            .starts_with("warning: agents/bad-agent/secrets.yaml.age:4: key lower_key: "),
        "{w}"
    );
    assert!(w.message.contains("LOWER_KEY"), "{w}");
}

#[test]
fn an_unmanaged_key_is_refused_because_castari_injects_it() {
    let e = err(&secrets(&format!("  ANTHROPIC_API_KEY: {CANARY}\n")));
    assert!(
        e.to_string()
            .contains("Castari injects this key itself and castsync never manages it"),
        "{e}"
    );
    assert!(matches!(e, ManifestError::UnmanagedKey { ref at, .. } if at.line == Some(3)));
}

#[test]
fn a_value_over_64_kib_is_refused_and_one_at_the_limit_is_accepted() {
    let at_limit = "a".repeat(MAX_VALUE_BYTES);
    assert_eq!(
        value(&ok(&secrets(&format!("  BIG: {at_limit}\n"))), "BIG").len(),
        MAX_VALUE_BYTES
    );
    let e = err(&secrets(&format!("  BIG: \"{at_limit}b\"\n")));
    assert!(
        matches!(e, ManifestError::ValueTooLarge { size, .. } if size == MAX_VALUE_BYTES + 1),
        "{e}"
    );
    assert!(e.to_string().contains("64 KiB"));
}

#[test]
fn a_manifest_over_1_mib_is_refused_before_parsing() {
    let text = secrets(&format!("  A: \"{}\"\n", "x".repeat(MAX_MANIFEST_BYTES)));
    let e = err(&text);
    assert!(
        matches!(e, ManifestError::TooLarge { size, .. } if size == text.len()),
        "{e}"
    );
}

#[test]
fn broken_yaml_is_an_error_with_its_line_and_column() {
    let e = err("agent: bad-agent\nsecrets:\n  A: \"unterminated\n");
    match &e {
        ManifestError::Syntax { at, .. } => {
            assert!(at.line.is_some() && at.column.is_some(), "{e}");
        }
        other => panic!("{other}"),
    }
    let e = err("agent: bad-agent\nsecrets:\n  A: x\n B: y\n");
    assert!(
        matches!(&e, ManifestError::Syntax { at, .. } if at.line == Some(4)),
        "{e}"
    );
    assert!(e.to_string().contains("invalid YAML"), "{e}");
}

#[test]
fn several_yaml_documents_are_refused() {
    let e = err("agent: bad-agent\n---\nagent: bad-agent\n");
    assert!(matches!(e, ManifestError::Syntax { .. }), "{e}");
}

#[test]
fn lines_are_counted_with_comments_blank_lines_and_crlf() {
    let e = err(
        "# header\r\n\r\nagent: bad-agent\r\nsecrets:\r\n  # note\r\n\r\n  A: ok\r\n  B: 1.5\r\n",
    );
    assert!(
        matches!(&e, ManifestError::Value { at, .. } if at.line == Some(8)),
        "{e}"
    );
}

#[test]
fn the_metadata_block_is_read() {
    let parsed = ok(
        "agent: bad-agent\nsecrets: {}\ncastsync:\n  recipients:\n    - age1abc\n    - \"ssh-ed25519 AAAA x\"\n",
    );
    assert_eq!(
        parsed.manifest.meta,
        Some(Metadata {
            recipients: vec!["age1abc".into(), "ssh-ed25519 AAAA x".into()]
        })
    );
}

#[test]
fn a_malformed_metadata_block_is_refused() {
    for (text, needle) in [
        ("castsync: x\n", "must be a mapping"),
        (
            "castsync:\n  recipient: []\n",
            "did you mean \"recipients\"?",
        ),
        ("castsync:\n  recipients: age1x\n", "must be a list"),
        ("castsync:\n  recipients: [[a]]\n", "must be a list"),
        (
            "castsync:\n  recipients: []\n  recipients: []\n",
            "duplicate field recipients",
        ),
    ] {
        let e = err(&format!("agent: bad-agent\n{text}"));
        assert!(matches!(e, ManifestError::Metadata { .. }), "{text}: {e}");
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
}

fn sample() -> Manifest {
    let mut m = Manifest::new("bad-agent");
    m.secrets.insert("ZED".into(), SecretValue::new("last"));
    m.secrets
        .insert("ALPHA".into(), SecretValue::new("line1\nline2 \"q\" \\"));
    m.secrets.insert("PORT".into(), SecretValue::new("8080"));
    m.meta = Some(Metadata {
        recipients: vec!["age1qqq".into(), "ssh-ed25519 AAAAC3 alice".into()],
    });
    m
}

#[test]
fn to_yaml_writes_agent_sorted_quoted_secrets_then_the_metadata() {
    assert_eq!(
        sample().to_yaml().as_str(),
        concat!(
            "agent: bad-agent\n",
            "secrets:\n",
            "  ALPHA: \"line1\\nline2 \\\"q\\\" \\\\\"\n",
            "  PORT: \"8080\"\n",
            "  ZED: \"last\"\n",
            "castsync:\n",
            "  recipients:\n",
            "    - \"age1qqq\"\n",
            "    - \"ssh-ed25519 AAAAC3 alice\"\n",
        )
    );
    assert_eq!(
        Manifest::new("a").to_yaml().as_str(),
        "agent: a\nsecrets: {}\n"
    );
}

#[test]
fn the_editable_text_hides_the_metadata_and_parses_back_without_it() {
    let text = sample().to_editable_yaml();
    assert!(!text.contains("castsync"), "{}", text.as_str());
    let parsed = ok(&text);
    assert_eq!(parsed.manifest.meta, None);
    let mut expected = sample();
    expected.meta = None;
    assert_eq!(parsed.manifest, expected);
}

#[test]
fn to_yaml_round_trips_through_parse() {
    let parsed = ok(&sample().to_yaml());
    assert_eq!(parsed.manifest, sample());
}

#[test]
fn any_string_value_round_trips_exactly() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let fixed = [
        "",
        " ",
        "  lead",
        "trail  ",
        "\ttab",
        "yes",
        "no",
        "on",
        "1.0",
        "1.10",
        "~",
        "null",
        "true",
        "0755",
        "0x1F",
        "2024-01-01",
        ".inf",
        "\n",
        "a\nb",
        "a\n",
        "\n\nx\n\n",
        "\r\n",
        "---",
        "...",
        "- x",
        "#x",
        "x #y",
        "key: value",
        "\"",
        "'",
        "\\",
        "\\n",
        "{a}",
        "[a]",
        "&a",
        "*a",
        "!a",
        "|",
        ">",
        "%x",
        "@x",
        "`x`",
        "\u{0}",
        "\u{1}\u{7f}",
        "\u{85}",
        "\u{a0}",
        "\u{2028}\u{2029}",
        "\u{feff}x",
        "\u{fffe}\u{ffff}",
        "é日🎉",
        CANARY,
    ];
    let alphabet: Vec<char> = "aZ09 _-:#\"'\\\n\r\t~{}[],&*!|>%@`?=.+\u{0}\u{1}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{feff}\u{fffe}\u{ffff}é日🎉"
        .chars()
        .collect();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut values: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    for _ in 0..3000 {
        let len = rng.random_range(0..24);
        values.push(
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect(),
        );
    }
    let keys = ["A", "yes", "on", "null", "True", "y", "N", "_", "K1"];
    for (i, chunk) in values.chunks(keys.len()).enumerate() {
        let mut m = Manifest::new(["bad-agent", "1.10", "yes", "2024-01-01", "0"][i % 5]);
        for (key, v) in keys.iter().zip(chunk) {
            m.secrets
                .insert((*key).to_owned(), SecretValue::new(v.clone()));
        }
        let text = m.to_yaml();
        let mut c = ctx();
        c.expected_agent = m.agent.clone();
        let parsed = parse(&text, &c).unwrap_or_else(|e| panic!("{e}\n{}", text.as_str()));
        assert_eq!(parsed.manifest, m, "{}", text.as_str());
    }
}

/// One input per error variant, each with the canary as a secret value somewhere in it.
fn canary_inputs() -> Vec<String> {
    let c = CANARY;
    vec![
        secrets(&format!(
            "  A: \"{}\"\n",
            c.repeat(MAX_MANIFEST_BYTES / c.len() + 1)
        )),
        secrets(&format!("  A: \"{c}\n")),
        secrets(&format!("  A: \"{c}\\q\"\n")),
        secrets(&format!("  A: {c}\n B: {c}\n")),
        secrets(&format!("  A: {c}\n  - {c}\n")),
        secrets(&format!("  A: [{c}\n")),
        secrets(&format!("  A: *{c}\n")),
        format!("{c}\n"),
        format!("agent: bad-agent\nextra: {c}\n"),
        format!("agent: bad-agent\nagent: {c}x\n"),
        secrets(&format!("  A: {c}\n  A: {c}\n")),
        format!("secrets:\n  A: {c}\n"),
        format!("agent: [{c}]\n"),
        format!("agent: \"{c} \"\nsecrets:\n  A: {c}\n"),
        format!("agent: bad-agent\nsecrets: {c}\n"),
        secrets(&format!("  ? [{c}]\n  : {c}\n")),
        secrets(&format!("  1BAD: {c}\n")),
        secrets(&format!("  A: [{c}]\n")),
        secrets(&format!("  A: {{k: {c}}}\n")),
        secrets(&format!("  A: !custom {c}\n")),
        secrets(&format!("  A: \"{c}{}\"\n", "x".repeat(MAX_VALUE_BYTES))),
        secrets(&format!("  ANTHROPIC_API_KEY: {c}\n")),
        format!("agent: bad-agent\ncastsync: {c}\n"),
        format!("agent: bad-agent\ncastsync:\n  recipients: {c}\n"),
        secrets(&format!("  A: {}{c}{}\n", "[".repeat(40), "]".repeat(40))),
        format!("group: bad-agent\nsecrets:\n  A: {c}\n"),
        format!("agent: bad-agent\nuses: [\"{c} x\"]\nsecrets:\n  A: {c}\n"),
    ]
}

/// Inputs for a shared group's folder, one per group-only error variant.
fn group_canary_inputs() -> Vec<String> {
    let c = CANARY;
    vec![
        format!("secrets:\n  A: {c}\n"),
        format!("group: \"{c} \"\n"),
        format!("group: bad-agent\nuses: [x]\nsecrets:\n  A: {c}\n"),
    ]
}

#[test]
fn no_error_ever_contains_a_secret_value() {
    let mut seen = std::collections::BTreeSet::new();
    let group = ManifestContext {
        kind: Kind::Group,
        ..ctx()
    };
    let agent_errors = canary_inputs().into_iter().map(|text| err(&text));
    let group_errors = group_canary_inputs()
        .into_iter()
        .map(|text| parse(&text, &group).expect_err("refused"));
    let c = CANARY;
    let overlay_errors = [
        format!("agent: bad-agent\nsecrets:\n  A: {c}\n"),
        format!("agent: bad-agent\nenvironment: \"{c} \"\nsecrets:\n  A: {c}\n"),
        format!("agent: bad-agent\nenvironment: staging\nuses: [x]\nsecrets:\n  A: {c}\n"),
    ]
    .into_iter()
    .map(|text| parse(&text, &overlay_ctx()).expect_err("refused"));
    for e in agent_errors.chain(group_errors).chain(overlay_errors) {
        let name = match &e {
            ManifestError::KindMismatch { .. } => "KindMismatch",
            ManifestError::MissingGroup { .. } => "MissingGroup",
            ManifestError::GroupMismatch { .. } => "GroupMismatch",
            ManifestError::UsesInGroup { .. } => "UsesInGroup",
            ManifestError::Uses { .. } => "Uses",
            ManifestError::TooLarge { .. } => "TooLarge",
            ManifestError::Syntax { .. } => "Syntax",
            ManifestError::TooDeep { .. } => "TooDeep",
            ManifestError::NotAMapping { .. } => "NotAMapping",
            ManifestError::UnknownField { .. } => "UnknownField",
            ManifestError::DuplicateField { .. } => "DuplicateField",
            ManifestError::DuplicateKey { .. } => "DuplicateKey",
            ManifestError::MissingAgent { .. } => "MissingAgent",
            ManifestError::InvalidAgent { .. } => "InvalidAgent",
            ManifestError::AgentMismatch { .. } => "AgentMismatch",
            ManifestError::SecretsNotMapping { .. } => "SecretsNotMapping",
            ManifestError::ComplexKey { .. } => "ComplexKey",
            ManifestError::InvalidKey { .. } => "InvalidKey",
            ManifestError::Value { .. } => "Value",
            ManifestError::ValueTooLarge { .. } => "ValueTooLarge",
            ManifestError::UnmanagedKey { .. } => "UnmanagedKey",
            ManifestError::Metadata { .. } => "Metadata",
            ManifestError::MissingEnvironment { .. } => "MissingEnvironment",
            ManifestError::EnvironmentMismatch { .. } => "EnvironmentMismatch",
            ManifestError::UsesInOverlay { .. } => "UsesInOverlay",
        };
        seen.insert(name);
        assert!(!e.to_string().contains("canary"), "{name}: {e}");
        assert!(!format!("{e:?}").contains("canary"), "{name}: {e:?}");
    }
    assert_eq!(seen.len(), 25, "every variant is exercised: {seen:?}");
}

#[test]
fn a_parsed_manifest_never_shows_its_values_in_debug_output() {
    let parsed = ok(&secrets(&format!("  A: {CANARY}\n")));
    assert!(!format!("{parsed:?}").contains("canary"));
}

#[test]
fn an_age_path_is_shown_as_decrypted_and_another_path_as_is() {
    let at = At {
        path: PathBuf::from("agents/x/secrets.yaml.age"),
        line: Some(2),
        column: Some(5),
    };
    assert_eq!(
        at.to_string(),
        "agents/x/secrets.yaml.age (decrypted), line 2, column 5"
    );
    let at = At {
        path: Path::new("/tmp/edit/secrets.yaml").to_path_buf(),
        line: None,
        column: None,
    };
    assert_eq!(at.to_string(), "/tmp/edit/secrets.yaml");
}

mod json_schema;
mod overlay;
mod uses;
