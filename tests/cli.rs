//! Command-line conventions: exit codes CI can trust (usage errors exit 1, never 2), help that
//! documents every flag and the environment, `-o json` outputs that match their schemas.

use std::path::Path;

use clap::CommandFactory as _;

use crate::support::*;

const CANARY: &str = "canary-cli-4b1e-never-print";

/// Every subcommand's name, from the parser itself (so a new one cannot be forgotten here).
fn subcommands() -> Vec<String> {
    castsync::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect()
}

fn schema_validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the schema"))
            .expect("the schema is JSON");
    assert!(
        jsonschema::draft202012::meta::is_valid(&schema),
        "{name} is not a valid 2020-12 schema"
    );
    jsonschema::draft202012::new(&schema).expect("compile the schema")
}

/// Parses `stdout` as JSON and checks it against `schema`; returns the document.
pub(crate) fn assert_matches_schema(schema: &str, stdout: &str) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let errors: Vec<String> = schema_validator(schema)
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{doc:#}");
    doc
}

#[test]
fn every_flag_and_argument_is_described_and_every_long_help_ends_with_examples() {
    fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                problems.push(format!("{path}: argument {id} has no help"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                problems.push(format!("{sub_path}: no description"));
            }
            let after = sub
                .get_after_long_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !after.contains("Examples:\n  castsync") && !after.contains("Examples:\n  git") {
                problems.push(format!("{sub_path}: long help does not end with examples"));
            }
            walk(sub, &sub_path, problems);
        }
    }
    let mut problems = Vec::new();
    walk(&castsync::cli::Cli::command(), "castsync", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn long_help_ends_with_the_examples_and_top_level_help_shows_the_exit_status_table() {
    let home = tempfile::tempdir().unwrap();
    let (code, help, _) = outcome(castsync(home.path()).arg("--help"));
    assert_eq!(code, 0);
    assert!(help.contains(castsync::cli::EXIT_STATUS), "{help}");
    for sub in subcommands() {
        let (code, help, stderr) = outcome(castsync(home.path()).args([sub.as_str(), "--help"]));
        assert_eq!(code, 0, "{sub} --help: {stderr}");
        let last_section = help.trim_end().rsplit("\n\n").next().unwrap_or_default();
        assert!(
            last_section.starts_with("Examples:\n  "),
            "{sub} --help ends with:\n{last_section}"
        );
    }
}

#[test]
fn reconcile_help_shows_the_environment_variables_and_never_a_secret_value() {
    let home = tempfile::tempdir().unwrap();
    let (code, help, _) = outcome(
        castsync(home.path())
            .env("CASTARI_API_KEY", CANARY)
            .env("CASTSYNC_AGE_KEY", CANARY)
            .env("CASTARI_API_URL", "http://127.0.0.1:8787")
            .args(["reconcile", "--help"]),
    );
    assert_eq!(code, 0);
    for var in [
        "CASTARI_API_URL",
        "CASTARI_API_KEY",
        "CASTSYNC_AGE_KEY",
        "CASTSYNC_AGE_KEY_FILE",
        "CASTSYNC_LOG",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var}:\n{help}");
    }
    // Not secret: shown, as clap shows a variable's current value.
    assert!(help.contains("[env: CASTARI_API_URL=http://127.0.0.1:8787]"));
    assert_no_canary("reconcile --help", &help, &[CANARY]);
    for flag in ["-o, --output <FORMAT>", "-y, --yes", "--color <WHEN>"] {
        assert!(help.contains(flag), "{flag}:\n{help}");
    }
}

#[test]
fn a_mistyped_flag_exits_1_for_every_command_even_with_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let mut cases: Vec<Vec<String>> = subcommands()
        .into_iter()
        .map(|sub| vec![sub, "--no-such-flag".to_owned()])
        .collect();
    for line in [
        "reconcile --dry-run --exit-code --agnet x",
        "diff --exit-code --outptu json",
        "reconcile --output yaml",
        "validate -o xml",
        "rekey -o json",
        "watch --interval 5x",
        "watch --resync 0s",
        "reconcile --concurrency 0",
        "reconcile --replace no-slash",
        "reconcile --redeploy --no-redeploy",
        "doctor -o markdown",
        "emulator --wire grpc",
        "completions tcsh",
        "no-such-command",
        "",
    ] {
        cases.push(line.split_whitespace().map(str::to_owned).collect());
    }
    for args in cases {
        let (code, stdout, stderr) = outcome(castsync(home.path()).args(&args));
        assert_eq!(code, 1, "castsync {args:?}:\n{stdout}{stderr}");
        assert!(
            stderr.contains("Usage:") || stderr.contains("error:"),
            "castsync {args:?}: {stderr}"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let home = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["-h"], &["--version"], &["-V"], &["help"]] {
        let (code, stdout, _) = outcome(castsync(home.path()).args(args));
        assert_eq!(code, 0, "{args:?}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_secret_given_as_a_flag_value_is_refused_as_a_usage_error() {
    let repo = SecretsRepo::new("");
    for args in [
        &["reconcile", "--dry-run", "--api-key", CANARY][..],
        &["validate", "--age-key", CANARY],
        &["--age-key", CANARY, "validate"],
    ] {
        let (code, stdout, stderr) = outcome(repo.cmd().args(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("read from the environment only"),
            "{stderr}"
        );
        assert_no_canary("the refusal", &format!("{stdout}{stderr}"), &[CANARY]);
    }
}

#[test]
fn the_age_key_and_api_key_come_from_the_environment_through_clap() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    let key = std::fs::read_to_string(&repo.key_file).unwrap();
    // No -i: the identity comes from CASTSYNC_AGE_KEY, the URL and key from CASTARI_*.
    let (code, stdout, stderr) = outcome(
        castsync(&repo.home)
            .arg("-C")
            .arg(&repo.root)
            .env("CASTSYNC_AGE_KEY", &key)
            .env("CASTARI_API_URL", &emu.url)
            .env("CASTARI_API_KEY", "cast_test")
            .args(["reconcile", "--yes"]),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY));
    assert_no_canary("reconcile", &format!("{stdout}{stderr}"), &[CANARY]);
    // CASTSYNC_AGE_KEY_FILE names a file instead.
    let (code, _, stderr) = outcome(
        castsync(&repo.home)
            .arg("-C")
            .arg(&repo.root)
            .env("CASTSYNC_AGE_KEY_FILE", &repo.key_file)
            .arg("validate"),
    );
    assert_eq!(code, 0, "{stderr}");
    // Set but empty (an unset CI secret): listed as ignored, not a usage error.
    let (code, _, stderr) = outcome(
        repo.cmd()
            .env("CASTSYNC_AGE_KEY_FILE", "")
            .env("CASTSYNC_AGE_KEY", "")
            .env("CASTSYNC_LOG", "")
            .arg("validate"),
    );
    assert_eq!(code, 0, "{stderr}");
}

/// A repository with one valid agent (`alpha`, holding the canary) and a commit.
fn committed_repo() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    repo.commit_all("alpha");
    repo
}

/// Each command's exit codes, run for real: (what, command line, expected code). `2` appears
/// only with `--exit-code` and changes. Long-running commands (watch, emulator) exit 0 on
/// SIGTERM: tests/watch.rs and tests/emulator.rs check that.
#[test]
fn each_command_exits_0_on_success_1_on_error_and_2_only_for_exit_code_with_changes() {
    let emu = Emulator::start(&["--auto-create-agents"]);
    let repo = committed_repo();
    let run = |args: &[&str], stdin: Option<&str>| -> (i32, String) {
        let mut cmd = repo.cmd();
        cmd.env("CASTARI_API_KEY", "cast_test")
            .env("CASTARI_API_URL", &emu.url)
            .env("EDITOR", "true")
            .args(args);
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let (code, stdout, stderr) = outcome(&mut cmd);
        assert_no_canary("output", &format!("{stdout}{stderr}"), &[CANARY]);
        (code, format!("{stdout}{stderr}"))
    };
    let fresh = tempfile::tempdir().unwrap();
    let fresh_key = fresh.path().join("fresh.txt");
    let fresh_key = fresh_key.to_str().unwrap();
    let dotenv = repo.home.join("import.env");
    // The value `set` gives A1 below: importing it changes nothing.
    std::fs::write(&dotenv, "A1=a-one-v2\n").unwrap();
    let dotenv = dotenv.to_str().unwrap();
    let plan_file = fresh.path().join("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    let stranger = fresh.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();

    let cases: &[(&str, &[&str], Option<&str>, i32)] = &[
        ("keygen", &["keygen", "-q", "-o", fresh_key], None, 0),
        ("keygen over a file", &["keygen", "-o", fresh_key], None, 1),
        ("init in a repository", &["init"], None, 1),
        ("new", &["new", "beta"], None, 0),
        ("new again", &["new", "beta"], None, 1),
        ("set", &["set", "alpha", "A1"], Some("a-one-v2"), 0),
        ("set a bad key", &["set", "alpha", "1BAD"], Some("x"), 1),
        ("unset absent", &["unset", "alpha", "NOPE"], None, 1),
        (
            "unset --idempotent",
            &["unset", "--idempotent", "alpha", "NOPE"],
            None,
            0,
        ),
        ("edit", &["edit", "alpha"], None, 0),
        ("edit unknown", &["edit", "nope"], None, 1),
        ("show", &["show", "alpha"], None, 0),
        ("show unknown", &["show", "nope"], None, 1),
        (
            "import",
            &["import", "alpha", "--from-dotenv", dotenv],
            None,
            0,
        ),
        (
            "import a missing file",
            &["import", "alpha", "--from-dotenv", "/nonexistent/x.env"],
            None,
            1,
        ),
        ("rekey --check", &["rekey", "--check"], None, 0),
        ("rekey", &["rekey"], None, 0),
        ("rekey unknown", &["rekey", "nope"], None, 1),
        ("validate", &["validate"], None, 0),
        ("validate unknown", &["validate", "nope"], None, 1),
        (
            "diff --exit-code with changes",
            &["diff", "--exit-code"],
            None,
            2,
        ),
        ("diff with changes", &["diff"], None, 0),
        ("diff a bad revision", &["diff", "no-such-rev"], None, 1),
        (
            "reconcile --dry-run --exit-code with changes",
            &["reconcile", "--dry-run", "--exit-code"],
            None,
            2,
        ),
        ("reconcile --dry-run", &["reconcile", "--dry-run"], None, 0),
        ("reconcile", &["reconcile"], None, 0),
        (
            "reconcile --dry-run --exit-code in sync",
            &["reconcile", "--dry-run", "--exit-code"],
            None,
            0,
        ),
        (
            "reconcile --dry-run --save-plan",
            &["reconcile", "--dry-run", "--save-plan", plan_file],
            None,
            0,
        ),
        (
            "reconcile --plan --dry-run",
            &["reconcile", "--plan", plan_file, "--dry-run"],
            None,
            0,
        ),
        (
            "reconcile --plan",
            &["reconcile", "--plan", plan_file],
            None,
            0,
        ),
        (
            "reconcile --plan of a missing file",
            &["reconcile", "--plan", "/nonexistent/plan.json"],
            None,
            1,
        ),
        (
            "reconcile --save-plan without --dry-run",
            &["reconcile", "--save-plan", plan_file],
            None,
            1,
        ),
        (
            "reconcile an unknown agent",
            &["reconcile", "--agent", "nope"],
            None,
            1,
        ),
        ("history", &["history"], None, 0),
        (
            "history -o json",
            &["history", "alpha", "-o", "json"],
            None,
            0,
        ),
        (
            "history with a bad duration",
            &["history", "--since", "soon"],
            None,
            1,
        ),
        ("doctor", &["doctor"], None, 0),
        ("doctor -o json", &["doctor", "-o", "json"], None, 0),
        (
            "doctor with an unreadable API key file",
            &["doctor", "--api-key-file", "/nonexistent/key"],
            None,
            1,
        ),
        (
            "reconcile --replace of an undeclared key",
            &["reconcile", "--replace", "alpha/NOPE"],
            None,
            1,
        ),
        (
            "reconcile --dry-run --replace-all --exit-code",
            &["reconcile", "--dry-run", "--replace-all", "--exit-code"],
            None,
            2,
        ),
        (
            "reconcile --replace-all --redeploy",
            &["reconcile", "--replace-all", "--redeploy"],
            None,
            0,
        ),
        ("textconv", &["textconv", "/nonexistent"], None, 0),
        ("completions", &["completions", "zsh"], None, 0),
        ("man", &["man"], None, 0),
        (
            "watch with a bad flag pair",
            &["watch", "--ssh-key", "k"],
            None,
            1,
        ),
        (
            "emulator with a bad rate",
            &["emulator", "--rate-limit", "0/1"],
            None,
            1,
        ),
    ];
    for (what, args, stdin, expected) in cases {
        let (code, output) = run(args, *stdin);
        assert_eq!(code, *expected, "{what}: castsync {args:?}\n{output}");
    }
    // diff --exit-code between identical revisions: 0.
    repo.commit_all("everything");
    let (code, output) = run(&["diff", "HEAD", "HEAD", "--exit-code"], None);
    assert_eq!(code, 0, "{output}");
    // init: 0 in an empty directory.
    let (code, _, output) = outcome(
        castsync(&repo.home)
            .arg("-C")
            .arg(&stranger)
            .arg("-i")
            .arg(&repo.key_file)
            .arg("init"),
    );
    assert_eq!(code, 0, "{output}");
}

#[test]
fn validate_prints_versioned_json_that_matches_its_schema() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    let (code, stdout, stderr) = outcome(repo.cmd().args(["validate", "-o", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let doc = assert_matches_schema("validate.schema.json", &stdout);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["agents_checked"], 1);

    // An invalid agent: exit 1, the finding named, still valid JSON, no value.
    repo.raw_manifest(
        "beta",
        &format!("agent: beta\nsecrets:\n  B1: 1.10\n  B2: {CANARY}\n"),
    );
    repo.schema("beta", "B1=x\nB2=y\nB3=z\n");
    let (code, stdout, _) = outcome(repo.cmd().args(["validate", "--output", "json"]));
    assert_eq!(code, 1);
    let doc = assert_matches_schema("validate.schema.json", &stdout);
    assert_eq!(doc["ok"], false);
    let findings = doc["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["agent"] == "beta"
            && f["severity"] == "error"
            && f["message"].as_str().unwrap().contains("key B1")),
        "{doc:#}"
    );
    assert_no_canary("validate -o json", &stdout, &[CANARY]);

    // A broken config: no agent read, agents_checked is null.
    std::fs::write(repo.path("castsync.yaml"), "version: 7\n").unwrap();
    let (code, stdout, _) = outcome(repo.cmd().args(["validate", "-o", "json"]));
    assert_eq!(code, 1);
    let doc = assert_matches_schema("validate.schema.json", &stdout);
    assert_eq!(doc["agents_checked"], serde_json::Value::Null);

    let (_, md, _) = outcome(repo.cmd().args(["validate", "-o", "markdown"]));
    assert!(md.starts_with("### castsync validate: failed"), "{md}");
}

#[test]
fn doctor_prints_versioned_json_that_matches_its_schema() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = committed_repo();
    let doctor = |extra: &[&str]| {
        let mut cmd = repo.cmd();
        cmd.env("CASTARI_API_KEY", "cast_test")
            .args(["doctor", "-o", "json", "--api-url", &emu.url])
            .args(extra);
        outcome(&mut cmd)
    };
    let (code, stdout, stderr) = doctor(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let doc = assert_matches_schema("doctor.schema.json", &stdout);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["agents"][0]["agent"], "alpha");

    // A problem: exit 1, still valid JSON, the failed check carries its fix.
    repo.agent("ghost", &[("G1", "g")]);
    let (code, stdout, _) = doctor(&[]);
    assert_eq!(code, 1, "{stdout}");
    let doc = assert_matches_schema("doctor.schema.json", &stdout);
    assert_eq!(doc["ok"], false);
    let failed = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(failed["agent"], "ghost");
    assert!(failed["fix"].is_string(), "{doc:#}");

    // Outside any repository: the report says so, as JSON too.
    let stranger = tempfile::tempdir().unwrap();
    let (code, stdout, _) = outcome(
        castsync(&repo.home)
            .current_dir(stranger.path())
            .args(["doctor", "-o", "json"]),
    );
    assert_eq!(code, 1, "{stdout}");
    let doc = assert_matches_schema("doctor.schema.json", &stdout);
    assert_eq!(doc["checks"][0]["check"], "repository");
    assert_no_canary("doctor -o json", &stdout, &[CANARY]);
}

#[test]
fn diff_prints_versioned_json_with_key_level_changes_and_exit_code_2() {
    let repo = committed_repo();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A3", "new")]);
    let (code, stdout, stderr) = outcome(repo.cmd().args(["diff", "-o", "json", "--exit-code"]));
    assert_eq!(code, 2, "{stderr}");
    let doc = assert_matches_schema("diff.schema.json", &stdout);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["has_changes"], true);
    let manifest = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "agents/alpha/secrets.yaml.age")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(
        manifest["keys"],
        serde_json::json!({"added": ["A3"], "removed": ["A2"], "changed": ["A1"]})
    );
    assert_no_canary("diff -o json", &stdout, &[CANARY, "a-one-v2"]);

    let (code, md, _) = outcome(repo.cmd().args(["diff", "-o", "markdown"]));
    assert_eq!(code, 0);
    assert!(md.contains("```diff\n"), "{md}");
}

#[test]
fn rekey_check_prints_versioned_json_naming_stale_files() {
    let repo = committed_repo();
    // Written by castsync's own tooling: carries the recipients record, so it is current.
    let (code, stdout, stderr) = outcome(repo.cmd().args(["set", "alpha", "A1"]).write_stdin("v2"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check", "-o", "json"]));
    assert_eq!(code, 0);
    let doc = assert_matches_schema("rekey-check.schema.json", &stdout);
    assert_eq!(doc["stale"], 0);
    assert_eq!(doc["format_version"], 1);

    // beta was written without the record: unrecorded, exit 1.
    repo.agent("beta", &[("B1", "b-one")]);
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check", "-o", "json"]));
    assert_eq!(code, 1);
    let doc = assert_matches_schema("rekey-check.schema.json", &stdout);
    assert_eq!(doc["stale"], 1);
    assert_eq!(doc["files"][0]["agent"], "beta");
    assert_eq!(doc["files"][0]["status"], "unrecorded");
    assert_no_canary("rekey --check -o json", &stdout, &[CANARY]);
}

#[test]
fn color_follows_the_color_flag_and_no_color() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    let plan = |color: Option<&str>, no_color: Option<&str>| -> String {
        let mut cmd = repo.reconcile(&emu.url);
        cmd.env_remove("NO_COLOR").arg("--dry-run");
        if let Some(no_color) = no_color {
            cmd.env("NO_COLOR", no_color);
        }
        if let Some(when) = color {
            cmd.args(["--color", when]);
        }
        let (code, stdout, stderr) = outcome(&mut cmd);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let escape = "\u{1b}[";
    assert!(plan(Some("always"), None).contains(escape));
    // --color always is an explicit request: it wins over NO_COLOR.
    assert!(plan(Some("always"), Some("1")).contains(escape));
    assert!(!plan(Some("never"), None).contains(escape));
    // auto: not a terminal here, so no colour either way.
    assert!(!plan(None, None).contains(escape));
    assert!(!plan(Some("auto"), Some("1")).contains(escape));
}

#[test]
fn show_format_json_is_a_manifest_as_its_schema_describes() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    for reveal in [false, true] {
        let mut cmd = repo.cmd();
        cmd.args(["show", "alpha", "--format", "json"]);
        if reveal {
            cmd.arg("--reveal");
        }
        let (code, stdout, stderr) = outcome(&mut cmd);
        assert_eq!(code, 0, "{stderr}");
        let doc = assert_matches_schema("manifest.schema.json", &stdout);
        assert_eq!(doc["agent"], "alpha");
        if !reveal {
            assert_no_canary("show --format json", &stdout, &[CANARY]);
        }
    }
}
