//! The plaintext bad inputs in `tests/data/bad/` fail through the library API with the message
//! each one expects (see the folder's README). The binary-level `validate` tests reuse them
//! after encrypting them.

use std::path::{Path, PathBuf};

use castsync::config::Config;
use castsync::finding::Severity;
use castsync::manifest::{self, ManifestContext};
use castsync::schema::{self, EnvSchema};

pub fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad")
}

/// `(file name, text, expected substring)` for every vector whose name matches (shared with
/// the binary-level checks in `validate.rs`).
pub fn vectors(matches: impl Fn(&str) -> bool) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| matches(name))
        .map(|name| {
            let text = std::fs::read_to_string(folder().join(&name)).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{name} has no `# expect:` first line"))
                .to_owned();
            (name, text, expect)
        })
        .collect();
    out.sort();
    out
}

fn is_manifest(name: &str) -> bool {
    name.ends_with(".yaml") && !name.ends_with(".castsync.yaml")
}

fn ctx() -> ManifestContext {
    ManifestContext {
        path: PathBuf::from("agents/bad-agent/secrets.yaml.age"),
        expected_agent: "bad-agent".to_owned(),
        kind: castsync::manifest::Kind::Agent,
        unmanaged_keys: vec!["ANTHROPIC_API_KEY".to_owned()],
    }
}

#[test]
fn every_bad_manifest_vector_fails_with_its_expected_message() {
    let cases = vectors(|n| n.starts_with("fail_") && is_manifest(n));
    assert!(cases.len() >= 25, "only {} manifest vectors", cases.len());
    for (name, text, expect) in cases {
        match manifest::parse(&text, &ctx()) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&expect),
                    "{name}:\n  got:    {msg}\n  wanted: {expect}"
                );
                assert!(
                    msg.starts_with("agents/bad-agent/secrets.yaml.age (decrypted)"),
                    "{name}: {msg}"
                );
            }
        }
    }
}

#[test]
fn every_warning_vector_parses_with_its_expected_warning() {
    let cases = vectors(|n| n.starts_with("warn_") && is_manifest(n));
    assert!(!cases.is_empty());
    for (name, text, expect) in cases {
        let parsed = manifest::parse(&text, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            parsed
                .warnings
                .iter()
                .any(|w| w.severity == Severity::Warning && w.to_string().contains(&expect)),
            "{name}: {:?}",
            parsed.warnings
        );
    }
}

#[test]
fn every_bad_schema_vector_fails_to_parse_or_fails_the_check_with_its_expected_message() {
    let cases = vectors(|n| n.starts_with("fail_") && n.ends_with(".env.example"));
    assert!(cases.len() >= 8, "only {} schema vectors", cases.len());
    for (name, text, expect) in cases {
        let schema_path = PathBuf::from("agents/bad-agent/.env.example");
        let companion = folder().join(name.replace(".env.example", ".manifest"));
        let message = match (EnvSchema::parse(&text, &schema_path), companion.exists()) {
            (Err(e), false) => e.to_string(),
            (Ok(schema), true) => {
                let manifest_text = std::fs::read_to_string(&companion).unwrap();
                let parsed = manifest::parse(&manifest_text, &ctx())
                    .unwrap_or_else(|e| panic!("{name}: companion manifest: {e}"));
                let findings = schema::check(
                    Some(&schema),
                    &parsed.manifest,
                    &Default::default(),
                    true,
                    &["ANTHROPIC_API_KEY".to_owned()],
                    &schema_path,
                );
                let errors: Vec<String> = findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(ToString::to_string)
                    .collect();
                assert_eq!(errors.len(), 1, "{name}: {errors:?}");
                errors[0].clone()
            }
            (Ok(_), false) => panic!("{name} parsed and has no companion manifest"),
            (Err(e), true) => panic!("{name} has a companion but does not parse: {e}"),
        };
        assert!(
            message.contains(&expect),
            "{name}:\n  got:    {message}\n  wanted: {expect}"
        );
        assert!(
            message.contains("agents/bad-agent/.env.example"),
            "{name}: {message}"
        );
    }
}

#[test]
fn every_warning_schema_vector_parses_with_its_warning_and_passes_the_check() {
    let cases = vectors(|n| n.starts_with("warn_") && n.ends_with(".env.example"));
    assert!(!cases.is_empty());
    for (name, text, expect) in cases {
        let schema_path = PathBuf::from("agents/bad-agent/.env.example");
        let schema =
            EnvSchema::parse(&text, &schema_path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let warnings: Vec<String> = schema.repeated.iter().map(|r| r.message()).collect();
        assert!(
            warnings.iter().any(|w| w.contains(&expect)),
            "{name}: {warnings:?}"
        );
        let companion = folder().join(name.replace(".env.example", ".manifest"));
        let manifest_text = std::fs::read_to_string(&companion).unwrap();
        let parsed = manifest::parse(&manifest_text, &ctx()).unwrap();
        let findings = schema::check(
            Some(&schema),
            &parsed.manifest,
            &Default::default(),
            true,
            &[],
            &schema_path,
        );
        assert!(
            findings.iter().all(|f| f.severity != Severity::Error),
            "{name}: {findings:?}"
        );
    }
}

#[test]
fn every_bad_config_vector_fails_with_its_expected_message() {
    let cases = vectors(|n| n.starts_with("fail_") && n.ends_with(".castsync.yaml"));
    assert!(cases.len() >= 2);
    for (name, _text, expect) in cases {
        let path = folder().join(&name);
        let e = Config::load(Path::new("/nonexistent"), Some(&path)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&expect),
            "{name}:\n  got:    {msg}\n  wanted: {expect}"
        );
        assert!(msg.contains(&name), "{name}: {msg}");
    }
}

#[test]
fn the_folder_holds_at_least_25_failing_inputs() {
    assert!(vectors(|n| n.starts_with("fail_") && !n.ends_with(".manifest")).len() >= 25);
}

#[test]
fn an_oversized_value_and_an_oversized_manifest_fail() {
    let big_value = format!(
        "agent: bad-agent\nsecrets:\n  BLOB: \"{}\"\n",
        "x".repeat(manifest::MAX_VALUE_BYTES + 1)
    );
    let e = manifest::parse(&big_value, &ctx()).unwrap_err();
    assert!(
        e.to_string()
            .contains("key BLOB: the value is 65537 bytes, over the 64 KiB limit"),
        "{e}"
    );

    let mut big_file = String::from("agent: bad-agent\nsecrets:\n");
    for i in 0..20 {
        big_file.push_str(&format!("  BLOB_{i}: \"{}\"\n", "x".repeat(60 * 1024)));
    }
    let e = manifest::parse(&big_file, &ctx()).unwrap_err();
    assert!(e.to_string().contains("over the 1 MiB limit"), "{e}");
}

#[test]
fn no_parser_panics_on_arbitrary_input() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let pieces = [
        "agent",
        "secrets",
        "castsync",
        "recipients",
        "bad-agent",
        ":",
        ": ",
        "\n",
        "\n  ",
        "\r\n",
        " ",
        "\t",
        "-",
        "- ",
        "?",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\"",
        "'",
        "\\",
        "#",
        "&a",
        "*a",
        "!",
        "!!float",
        "|",
        ">-",
        "~",
        "1.10",
        "0x1F",
        "2024-01-01",
        "=",
        "export ",
        "KEY",
        "A_B",
        "é",
        "\u{a0}",
        "\u{2028}",
        "\u{feff}",
        "\u{0}",
        "---",
        "...",
        "%YAML 1.2",
        "<<",
        "@",
        "`",
        "# optional",
        "version",
        "prune",
        "access",
        "agents",
    ];
    let mut rng = StdRng::seed_from_u64(0xbad);
    let schema_path = Path::new("agents/bad-agent/.env.example");
    for _ in 0..5000 {
        let n = rng.random_range(0..40);
        let text: String = (0..n)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let _ = manifest::parse(&text, &ctx());
        let _ = EnvSchema::parse(&text, schema_path);
        let _ = schema::parse_dotenv(&text, schema_path);
        let _ = Config::from_yaml(&text, Path::new("castsync.yaml"));
    }
    for deep in [
        "[".repeat(10_000),
        "a:\n".to_owned() + &" - ".repeat(5_000),
        "{a: ".repeat(5_000),
    ] {
        let _ = manifest::parse(&deep, &ctx());
        let _ = Config::from_yaml(&deep, Path::new("castsync.yaml"));
    }
}
