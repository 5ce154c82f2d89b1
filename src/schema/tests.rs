use super::*;
use crate::finding::Severity;

const CANARY: &str = "canary-7f3a91-do-not-print";

fn path() -> PathBuf {
    PathBuf::from("agents/x/.env.example")
}

fn schema(text: &str) -> EnvSchema {
    EnvSchema::parse(text, &path()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every entry as (key, placeholder, line), in file order.
fn keys_placeholders_lines(s: &EnvSchema) -> Vec<(&str, &str, usize)> {
    s.entries
        .iter()
        .map(|e| (e.key.as_str(), e.placeholder.as_str(), e.line))
        .collect()
}

fn entry<'a>(s: &'a EnvSchema, key: &str) -> &'a SchemaEntry {
    s.get(key).unwrap_or_else(|| panic!("no {key}"))
}

fn manifest(pairs: &[(&str, &str)]) -> Manifest {
    let mut m = Manifest::new("x");
    for (k, v) in pairs {
        m.secrets.insert((*k).to_owned(), SecretValue::new(*v));
    }
    m
}

fn run(schema_text: &str, pairs: &[(&str, &str)], strict: bool) -> Vec<Finding> {
    let s = schema(schema_text);
    check(
        Some(&s),
        &manifest(pairs),
        &Default::default(),
        strict,
        &["ANTHROPIC_API_KEY".to_owned()],
        &path(),
    )
}

#[test]
fn keys_values_and_lines_are_read_from_every_supported_form() {
    let s = schema(concat!(
        "# a comment\n",
        "\n",
        "PLAIN=value\n",
        "export EXPORTED=1\n",
        "SINGLE='lit $X \\n #not-comment'\n",
        "DOUBLE=\"a\\nb \\\"q\\\" \\\\ \\$keep\"\n",
        "TRAILING=value # a comment\n",
        "HASH=abc#def\n",
        "EMPTY=\n",
        "  SPACED = padded  \n",
        "URL=postgres://u:p@h/db?x=1\n",
    ));
    let got = keys_placeholders_lines(&s);
    assert_eq!(
        got,
        vec![
            ("PLAIN", "value", 3),
            ("EXPORTED", "1", 4),
            ("SINGLE", "lit $X \\n #not-comment", 5),
            ("DOUBLE", "a\nb \"q\" \\ \\$keep", 6),
            ("TRAILING", "value", 7),
            ("HASH", "abc#def", 8),
            ("EMPTY", "", 9),
            ("SPACED", "padded", 10),
            ("URL", "postgres://u:p@h/db?x=1", 11),
        ]
    );
}

#[test]
fn rotation_is_read_from_the_trailing_comment_or_the_comment_block_right_above() {
    let s = schema(concat!(
        "A=1 # rotate: 30d\n",
        "# rotate: 12w\n",
        "# the billing key\n",
        "B=2\n",
        "C=3\n",
        "# optional, rotate: 90d\n",
        "D=\"4\" # optional # rotate: 7d\n",
        "# Rotate : 2w\n",
        "\n",
        "E=5\n",
        "F= # optional; ROTATE: 1y\n",
        "G=rotate:30d\n",
    ));
    let rotate: Vec<(&str, Option<String>)> = s
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.rotate.map(|p| p.to_string())))
        .collect();
    let days = |d: &str| Some(d.to_owned());
    assert_eq!(
        rotate,
        vec![
            ("A", days("30d")),
            ("B", days("84d")),
            ("C", None),
            ("D", days("7d")),
            ("E", None),
            ("F", days("1year")),
            ("G", None),
        ]
    );
    assert!(entry(&s, "D").optional && entry(&s, "F").optional);
    let err = EnvSchema::parse("# rotate: soon\nA=1\n", Path::new(".env.example")).unwrap_err();
    assert_eq!(
        err.to_string(),
        ".env.example:1: `# rotate:` expected number at 0 (use a period such as 30d, 12w or 6months)"
    );
    // A real .env's comments are not annotations.
    assert!(crate::schema::parse_dotenv("A=1 # rotate: soon\n", Path::new(".env")).is_ok());
}

#[test]
fn optional_is_read_from_the_trailing_comment_or_the_comment_line_directly_above() {
    let s = schema(concat!(
        "A=1 # optional\n",
        "# optional\n",
        "B=2\n",
        "C=3\n",
        "# Optional: only in production\n",
        "D=\"4\" # keep\n",
        "# optional\n",
        "\n",
        "E=5\n",
        "F=  # optional\n",
        "# optionally set this\n",
        "G=7\n",
        "H='8' #optional\n",
    ));
    let optional: Vec<(&str, bool)> = s
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.optional))
        .collect();
    assert_eq!(
        optional,
        vec![
            ("A", true),
            ("B", true),
            ("C", false),
            ("D", true),
            ("E", false),
            ("F", true),
            ("G", false),
            ("H", true)
        ]
    );
    assert_eq!(entry(&s, "F").placeholder, "");
}

#[test]
fn a_quoted_value_may_span_lines_and_later_lines_keep_their_numbers() {
    let s = schema("KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=1\r\nLAST='x\r\ny'\n");
    assert_eq!(
        entry(&s, "KEY").placeholder,
        "-----BEGIN-----\nabc\n-----END-----"
    );
    assert_eq!(entry(&s, "NEXT").line, 4);
    assert_eq!(entry(&s, "LAST").line, 5);
    assert_eq!(entry(&s, "LAST").placeholder, "x\ny");
}

#[test]
fn a_line_without_equals_is_an_error_with_its_line_number() {
    let e = EnvSchema::parse("A=1\nJUSTTEXT\n", &path()).unwrap_err();
    assert_eq!(
        e,
        SchemaError::MissingEquals {
            path: path(),
            line: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "agents/x/.env.example:2: expected KEY=value, a # comment or a blank line (there is no `=`)"
    );
}

#[test]
fn a_bad_key_name_is_an_error_with_its_line_number() {
    for (text, line) in [
        ("1A=x\n", 1),
        ("A=1\nMY-KEY=x\n", 2),
        ("A B=x\n", 1),
        ("=x\n", 1),
    ] {
        let e = EnvSchema::parse(text, &path()).unwrap_err();
        assert!(
            matches!(e, SchemaError::InvalidKey { line: l, key: Some(_), .. } if l == line),
            "{text}: {e}"
        );
    }
}

#[test]
fn an_unterminated_quote_is_an_error_at_the_line_it_opens() {
    let e = EnvSchema::parse("A=1\nB=\"open\nC=2\n", &path()).unwrap_err();
    assert_eq!(
        e,
        SchemaError::UnterminatedQuote {
            path: path(),
            line: 2,
            quote: '"'
        }
    );
    let e = EnvSchema::parse("A='open\n", &path()).unwrap_err();
    assert!(
        e.to_string().contains("opening ' quote is never closed"),
        "{e}"
    );
    let e = EnvSchema::parse("A=\"ends with backslash\\", &path()).unwrap_err();
    assert!(matches!(e, SchemaError::UnterminatedQuote { .. }), "{e}");
}

#[test]
fn text_after_a_closing_quote_is_an_error() {
    let e = EnvSchema::parse("A='x'y\n", &path()).unwrap_err();
    assert_eq!(
        e,
        SchemaError::TrailingText {
            path: path(),
            line: 1
        }
    );
    assert!(EnvSchema::parse("A='x'   \nB=\"y\"# c\n", &path()).is_ok());
}

#[test]
fn a_duplicate_key_in_an_example_is_a_warning_and_the_last_one_counts() {
    // As python-dotenv, node's dotenv and godotenv read it.
    let s = schema("A=1\nB=2\nexport A=3 # optional\n");
    let a = entry(&s, "A");
    assert_eq!((a.placeholder.as_str(), a.line, a.optional), ("3", 3, true));
    assert_eq!(s.entries.len(), 2);
    assert_eq!(
        s.repeated,
        [Repeated {
            key: "A".into(),
            line: 3,
            first_line: 1
        }]
    );
}

#[test]
fn a_duplicate_key_in_a_real_dotenv_file_is_an_error_naming_both_lines() {
    let e = match parse_dotenv("A=1\nB=2\nexport A=3\n", Path::new(".env")) {
        Err(e) => e,
        Ok(_) => panic!("a duplicate key was accepted"),
    };
    assert_eq!(
        e.to_string(),
        ".env:3: duplicate key A (first at line 1); keep one"
    );
}

#[test]
fn bare_carriage_returns_end_lines_as_in_python_dotenv() {
    // Old Mac line endings: three keys, not one whose value holds the other two.
    let text = "SERVER=localhost\rPASSWORD=pw\rDB=t\r";
    let s = schema(text);
    let got = keys_placeholders_lines(&s);
    assert_eq!(
        got,
        [
            ("SERVER", "localhost", 1),
            ("PASSWORD", "pw", 2),
            ("DB", "t", 3)
        ]
    );
    let secrets = parse_dotenv(text, Path::new(".env")).unwrap();
    assert_eq!(secrets.len(), 3);
    // Mixed endings, and a line break inside quotes read as `\n` whatever its form.
    let s = schema("A=1\r\nB=\"x\r\ny\ry\"\rC=3\n");
    assert_eq!(entry(&s, "B").placeholder, "x\ny\ny");
    assert_eq!(entry(&s, "C").line, 5);
}

#[test]
fn escapes_follow_python_dotenv_in_both_quotes() {
    let s = schema(concat!(
        "SINGLE='it\\'s \\\\ \\n'\n",
        "DOUBLE=\"\\a\\b\\f\\v\\' \\$x\"\n",
    ));
    assert_eq!(entry(&s, "SINGLE").placeholder, "it's \\ \\n");
    assert_eq!(
        entry(&s, "DOUBLE").placeholder,
        "\u{7}\u{8}\u{c}\u{b}' \\$x"
    );
}

#[test]
fn a_backtick_value_that_spans_lines_is_refused_at_its_own_line() {
    let e = EnvSchema::parse("A=1\nKEY=`first\nsecond`\nB=2\n", &path()).unwrap_err();
    assert_eq!(e.line(), 2);
    assert!(e.to_string().contains("backtick"), "{e}");
    // On one line, python-dotenv reads backticks as part of the value; so does castsync.
    assert_eq!(entry(&schema("K=`x`\n"), "K").placeholder, "`x`");
}

#[test]
fn only_a_placeholder_that_looks_like_one_counts_as_copied() {
    for placeholder in [
        "your-key-here",
        "sk-...",
        "sk-xxxxxxxx",
        "changeme",
        "CHANGE_ME",
        "xxx",
        "<token>",
        "TODO",
        "replace-with-your-token",
        "***",
        "…",
    ] {
        assert!(looks_like_placeholder(placeholder), "{placeholder}");
        let findings = run(&format!("K={placeholder}\n"), &[("K", placeholder)], true);
        assert_eq!(findings.len(), 1, "{placeholder}: {findings:?}");
    }
    for default in [
        "3306",
        "local",
        "smtp",
        "localhost",
        "127.0.0.1",
        "true",
        "mysql",
        "laravel",
        "http://localhost",
        "hello@example.com",
        "${APP_NAME}",
        "null",
        "stack",
    ] {
        assert!(!looks_like_placeholder(default), "{default}");
        let findings = run(&format!("K={default}\n"), &[("K", default)], true);
        assert!(findings.is_empty(), "{default}: {findings:?}");
    }
}

#[test]
fn a_matching_manifest_has_no_findings() {
    let findings = run(
        "A=your-key\nB= # optional\n",
        &[("A", "real"), ("B", "")],
        true,
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_missing_required_key_is_an_error_at_its_schema_line() {
    let findings = run("A=x\nB=y\n", &[("A", "real")], true);
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(
        (f.severity, f.line, f.key.as_deref()),
        (Severity::Error, Some(2), Some("B"))
    );
    assert!(
        f.to_string()
            .starts_with("error: agents/x/.env.example:2: key B: required by .env.example"),
        "{f}"
    );
    assert!(f.message.contains("castsync set x B"), "{f}");
}

#[test]
fn a_missing_optional_key_is_fine() {
    assert!(run("A=x\nB=y # optional\n", &[("A", "real")], true).is_empty());
}

#[test]
fn an_undeclared_key_is_an_error_when_strict_and_a_warning_otherwise() {
    let strict = run("A=x\n", &[("A", "real"), ("EXTRA", "v")], true);
    assert_eq!(strict.len(), 1);
    assert_eq!(
        (strict[0].severity, strict[0].key.as_deref()),
        (Severity::Error, Some("EXTRA"))
    );
    assert!(
        strict[0].message.contains("does not list it"),
        "{}",
        strict[0]
    );
    let lax = run("A=x\n", &[("A", "real"), ("EXTRA", "v")], false);
    assert_eq!(lax.len(), 1);
    assert_eq!(lax[0].severity, Severity::Warning);
}

#[test]
fn a_value_equal_to_the_placeholder_is_an_error_without_showing_either() {
    let placeholder = format!("your-{CANARY}-here");
    let findings = run(
        &format!("A={placeholder}\nB=\n"),
        &[("A", &placeholder), ("B", "")],
        true,
    );
    let copied: Vec<_> = findings
        .iter()
        .filter(|f| f.key.as_deref() == Some("A"))
        .collect();
    assert_eq!(copied.len(), 1);
    assert!(
        copied[0].message.contains("someone copied the example"),
        "{}",
        copied[0]
    );
    for f in &findings {
        assert!(!f.to_string().contains("canary"), "{f}");
    }
}

#[test]
fn an_empty_placeholder_never_counts_as_copied() {
    let findings = run("A= # optional\n", &[("A", "")], true);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn an_empty_value_is_an_error_only_for_a_required_key() {
    let findings = run("A=x\nB=y # optional\n", &[("A", ""), ("B", "")], true);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].key.as_deref(), Some("A"));
    assert!(
        findings[0].message.contains("the value is empty"),
        "{}",
        findings[0]
    );
}

#[test]
fn an_unmanaged_key_listed_in_the_schema_is_not_required() {
    assert!(
        run(
            "ANTHROPIC_API_KEY=sk-ant-...\nA=x\n",
            &[("A", "real")],
            true
        )
        .is_empty()
    );
}

#[test]
fn an_agent_without_a_schema_gets_one_warning() {
    let findings = check(
        None,
        &manifest(&[("A", "v")]),
        &Default::default(),
        true,
        &[],
        &path(),
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(
        findings[0].to_string().contains("no .env.example"),
        "{}",
        findings[0]
    );
}

#[test]
fn findings_list_schema_keys_in_file_order_then_undeclared_keys() {
    let findings = run("Z=1\nA=2\n", &[("M", "v"), ("B", "v")], true);
    let keys: Vec<_> = findings.iter().map(|f| f.key.clone().unwrap()).collect();
    assert_eq!(keys, ["Z", "A", "B", "M"]);
}

#[test]
fn a_dotenv_file_is_read_as_secret_values_in_file_order() {
    let pairs = parse_dotenv(
        "# env\nexport B=\"two\\nlines\"\nA=one # note\n",
        Path::new(".env"),
    )
    .unwrap();
    let got: Vec<(&str, &str, usize)> = pairs
        .iter()
        .map(|(k, v, l)| (k.as_str(), v.expose(), *l))
        .collect();
    assert_eq!(got, vec![("B", "two\nlines", 2), ("A", "one", 3)]);
}

#[test]
fn dotenv_errors_never_show_a_value_or_a_key_that_may_be_one() {
    for text in [
        format!("{CANARY}\n"),
        format!("{CANARY}/x=1\n"),
        format!("A=\"{CANARY}\n"),
        format!("A='{CANARY}'{CANARY}\n"),
        format!("A={CANARY}\nA={CANARY}\n"),
    ] {
        let e = parse_dotenv(&text, Path::new(".env")).unwrap_err();
        assert!(!e.to_string().contains("canary"), "{e}");
        assert!(!format!("{e:?}").contains("canary"), "{e:?}");
    }
}
