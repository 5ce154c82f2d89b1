//! `castsync validate` through the binary. Every input in `tests/data/bad/` becomes a real
//! secrets repository (plaintext vectors are encrypted first, age vectors written byte for
//! byte); `validate` must exit 1, print an `error:` line naming the file and the vector's
//! problem, and never panic. Warning vectors exit 0 with their warning.

use crate::bad_vectors::{self, folder};
use crate::support::*;

const AGENT: &str = "bad-agent";
const MANIFEST: &str = "agents/bad-agent/secrets.yaml.age";
const SCHEMA: &str = "agents/bad-agent/.env.example";

struct Vector {
    name: String,
    text: String,
    expect: String,
}

/// Every vector (`fail_*` and `warn_*`) except the companion manifests.
fn vectors() -> Vec<Vector> {
    bad_vectors::vectors(|n| {
        (n.starts_with("fail_") || n.starts_with("warn_")) && !n.ends_with(".manifest")
    })
    .into_iter()
    .map(|(name, text, expect)| Vector { name, text, expect })
    .collect()
}

/// A repository holding the vector, the `validate` run on it, and the file the error must
/// name.
fn case(v: &Vector) -> (SecretsRepo, Test, &'static str) {
    let repo = SecretsRepo::new("");
    let mut test = repo.test();
    let path = if v.name.ends_with(".castsync.yaml") {
        std::fs::write(repo.path("castsync.yaml"), &v.text).unwrap();
        "castsync.yaml"
    } else if v.name.ends_with(".env.example") {
        let companion = folder().join(v.name.replace(".env.example", ".manifest"));
        let manifest = std::fs::read_to_string(companion)
            .unwrap_or_else(|_| format!("agent: {AGENT}\nsecrets: {{}}\n"));
        repo.raw_manifest(AGENT, &manifest);
        repo.schema(AGENT, &v.text);
        SCHEMA
    } else if v.name.ends_with(".yaml.age") {
        let (_, age_file) = v.text.split_once('\n').unwrap();
        test = test.write(MANIFEST, age_file);
        if v.name.contains("no_identity") {
            // No -i, and HOME holds no default identity: nothing to decrypt with.
            test = Test::at_home(&repo.home).arg("-C").arg(&repo.root);
        }
        MANIFEST
    } else {
        repo.raw_manifest(AGENT, &v.text);
        MANIFEST
    };
    (repo, test.arg("validate"), path)
}

/// Asserts `validate` failed with an `error:` line that names `path` and says `expect`, and
/// ended with the `failed:` summary.
fn assert_fails_with(test: Test, path: &str, expect: &str) {
    let run = test
        .run()
        .failure()
        .stdout_line_with(&["error: ", path, expect]);
    assert!(
        run.stdout()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("failed: "),
        "summary line:\n{}",
        run.stdout()
    );
}

#[test]
fn every_failing_vector_makes_validate_exit_1_naming_its_file_and_problem() {
    let cases: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.name.starts_with("fail_"))
        .collect();
    assert!(cases.len() >= 25, "only {} failing vectors", cases.len());
    for v in &cases {
        let (_repo, test, path) = case(v);
        assert_fails_with(test, path, &v.expect);
    }
}

#[test]
fn the_failing_vectors_cover_every_kind_of_bad_input_the_issue_lists() {
    let names: Vec<String> = vectors().into_iter().map(|v| v.name).collect();
    for kind in [
        "fail_bad_yaml.yaml",
        "fail_wrong_agent.yaml",
        "fail_duplicate_key_nested.yaml",
        "fail_float.yaml",
        "fail_null.yaml",
        "fail_hex.yaml",
        "fail_bad_key_name.yaml",
        "warn_lowercase.yaml",
        "fail_unmanaged_key.yaml",
        "fail_truncated.yaml.age",
        "fail_garbled.yaml.age",
        "fail_wrong_identity.yaml.age",
        "fail_no_identity.yaml.age",
        "fail_no_equals.env.example",
        "fail_placeholder_copy.env.example",
        "fail_missing_required_key.env.example",
        "fail_undeclared_key.env.example",
        "fail_unknown_field.castsync.yaml",
    ] {
        assert!(names.iter().any(|n| n == kind), "missing vector {kind}");
    }
}

#[test]
fn warning_vectors_exit_0_and_print_their_warning() {
    let cases: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.name.starts_with("warn_"))
        .collect();
    assert!(!cases.is_empty());
    for v in &cases {
        let (_repo, test, path) = case(v);
        test.run()
            .success()
            .stdout_line_with(&["warning: ", path, &v.expect])
            .stdout_has("ok: 1 agent valid");
    }
}

#[test]
fn an_oversized_value_fails_validate() {
    let repo = SecretsRepo::new("");
    repo.raw_manifest(
        AGENT,
        &format!(
            "agent: {AGENT}\nsecrets:\n  BLOB: \"{}\"\n",
            "x".repeat(64 * 1024 + 1)
        ),
    );
    assert_fails_with(
        repo.test().arg("validate"),
        MANIFEST,
        "key BLOB: the value is 65537 bytes, over the 64 KiB limit",
    );
}

#[test]
fn an_oversized_manifest_fails_validate() {
    let repo = SecretsRepo::new("");
    let mut text = format!("agent: {AGENT}\nsecrets:\n");
    for i in 0..20 {
        text.push_str(&format!("  BLOB_{i}: \"{}\"\n", "x".repeat(60 * 1024)));
    }
    repo.raw_manifest(AGENT, &text);
    assert_fails_with(
        repo.test().arg("validate"),
        MANIFEST,
        "over the 1 MiB limit",
    );
}

#[test]
fn a_clean_repository_validates_with_exit_0_and_a_summary() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    repo.agent("beta", &[("B_KEY", "b")]);
    repo.test()
        .arg("validate")
        .run()
        .success()
        .stdout_is("ok: 2 agents valid, 0 warning(s)\n");
}

#[test]
fn validate_reports_every_bad_agent_not_only_the_first() {
    let repo = SecretsRepo::new("");
    repo.raw_manifest("alpha", "agent: alpha\nsecrets:\n  RATE: 1.10\n");
    repo.agent("beta", &[("B_KEY", "b")]);
    repo.raw_manifest("gamma", "agent: beta\nsecrets: {}\n");
    let run = repo
        .test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has("error: agents/alpha/secrets.yaml.age (decrypted), line 3, column 3: key RATE")
        .stdout_has("error: agents/gamma/secrets.yaml.age (decrypted)")
        .stdout_lacks("agents/beta/");
    assert!(
        run.stdout()
            .ends_with("failed: 3 agents checked, 2 error(s), 0 warning(s)\n"),
        "{}",
        run.stdout()
    );
}

#[test]
fn validate_checks_only_the_named_agents_and_refuses_an_unknown_one() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    repo.raw_manifest("broken", "not: [valid");

    repo.test()
        .args(["validate", "alpha"])
        .run()
        .success()
        .stdout_is("ok: 1 agent valid, 0 warning(s)\n");

    repo.test()
        .args(["validate", "alpah"])
        .run()
        .failure()
        .stderr_has("agent \"alpah\" is not declared");
}

#[test]
fn validate_reports_a_recipient_castsync_cannot_encrypt_to() {
    let repo = SecretsRepo::new("");
    let text = std::fs::read_to_string(repo.path("castsync.yaml")).unwrap();
    let text = text.replace(
        "recipients:\n",
        "recipients:\n  - age1pq1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\n",
    );
    std::fs::write(repo.path("castsync.yaml"), text).unwrap();
    repo.agent("alpha", &[("A_KEY", "a")]);
    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_line_with(&["error: castsync.yaml: recipients[0]:", "post-quantum"]);
}

/// Issue 21, point 4: an `.env.example` syntax error gives its line in JSON too, not only
/// in the message.
#[test]
fn an_env_example_syntax_error_carries_its_line_in_json() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.schema("alpha", "A=x\n\nB=\"never closed\nC=3\n");
    let doc = repo
        .test()
        .args(["validate", "-o", "json"])
        .run()
        .failure()
        .json();
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["file"]
                .as_str()
                .is_some_and(|p| p.ends_with(".env.example"))
        })
        .unwrap_or_else(|| panic!("{doc:#}"))
        .clone();
    assert_eq!(finding["line"], 3, "{finding:#}");
    assert_eq!(finding["severity"], "error", "{finding:#}");
}
