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

/// A repository holding the vector, the command that validates it, and the file the error
/// must name.
fn case(v: &Vector) -> (SecretsRepo, Command, &'static str) {
    let repo = SecretsRepo::new("");
    let mut cmd = repo.cmd();
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
        std::fs::create_dir_all(repo.path("agents/bad-agent")).unwrap();
        std::fs::write(repo.path(MANIFEST), age_file).unwrap();
        if v.name.contains("no_identity") {
            // No -i, and HOME holds no default identity: nothing to decrypt with.
            cmd = castsync(&repo.home);
            cmd.arg("-C").arg(&repo.root);
        }
        MANIFEST
    } else {
        repo.raw_manifest(AGENT, &v.text);
        MANIFEST
    };
    cmd.arg("validate");
    (repo, cmd, path)
}

/// Asserts `validate` failed with an `error:` line that names `path` and says `expect`.
fn assert_fails_with(name: &str, cmd: &mut Command, path: &str, expect: &str) {
    let (code, stdout, stderr) = outcome(cmd);
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    assert_eq!(code, 1, "{name}: exit code\n{stdout}\n{stderr}");
    let found = stdout
        .lines()
        .any(|l| l.starts_with("error: ") && l.contains(path) && l.contains(expect));
    assert!(
        found,
        "{name}: no `error:` line naming {path} and saying {expect:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.lines().last().unwrap_or("").starts_with("failed: "),
        "{name}: summary line\n{stdout}"
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
        let (_repo, mut cmd, path) = case(v);
        assert_fails_with(&v.name, &mut cmd, path, &v.expect);
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
        let (_repo, mut cmd, path) = case(v);
        let (code, stdout, stderr) = outcome(&mut cmd);
        assert_eq!(code, 0, "{}:\n{stdout}\n{stderr}", v.name);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(path) && l.contains(&v.expect)),
            "{}:\n{stdout}",
            v.name
        );
        assert!(stdout.contains("ok: 1 agent valid"), "{stdout}");
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
    let mut cmd = repo.cmd();
    cmd.arg("validate");
    assert_fails_with(
        "oversized value",
        &mut cmd,
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
    let mut cmd = repo.cmd();
    cmd.arg("validate");
    assert_fails_with(
        "oversized manifest",
        &mut cmd,
        MANIFEST,
        "over the 1 MiB limit",
    );
}

#[test]
fn a_clean_repository_validates_with_exit_0_and_a_summary() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    repo.agent("beta", &[("B_KEY", "b")]);
    let (code, stdout, stderr) = outcome(repo.cmd().arg("validate"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout, "ok: 2 agents valid, 0 warning(s)\n");
}

#[test]
fn validate_reports_every_bad_agent_not_only_the_first() {
    let repo = SecretsRepo::new("");
    repo.raw_manifest("alpha", "agent: alpha\nsecrets:\n  RATE: 1.10\n");
    repo.agent("beta", &[("B_KEY", "b")]);
    repo.raw_manifest("gamma", "agent: beta\nsecrets: {}\n");
    let (code, stdout, _) = outcome(repo.cmd().arg("validate"));
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "error: agents/alpha/secrets.yaml.age (decrypted), line 3, column 3: key RATE"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: agents/gamma/secrets.yaml.age (decrypted)"),
        "{stdout}"
    );
    assert!(!stdout.contains("agents/beta/"), "{stdout}");
    assert!(
        stdout.ends_with("failed: 3 agents checked, 2 error(s), 0 warning(s)\n"),
        "{stdout}"
    );
}

#[test]
fn validate_checks_only_the_named_agents_and_refuses_an_unknown_one() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A_KEY", "a")]);
    repo.raw_manifest("broken", "not: [valid");

    let (code, stdout, _) = outcome(repo.cmd().args(["validate", "alpha"]));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout, "ok: 1 agent valid, 0 warning(s)\n");

    let (code, _, stderr) = outcome(repo.cmd().args(["validate", "alpah"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("agent \"alpah\" is not declared"),
        "{stderr}"
    );
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
    let (code, stdout, _) = outcome(repo.cmd().arg("validate"));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("error: castsync.yaml: recipients[0]:") && stdout.contains("post-quantum"),
        "{stdout}"
    );
}
