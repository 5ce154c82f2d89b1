//! Command-line conventions: exit codes CI can trust (usage errors exit 1, never 2), help that
//! documents every flag and the environment, `-o json` outputs that match their schemas.

use std::path::Path;

use clap::CommandFactory as _;

use crate::support::*;

const CANARY: &str = "canary-cli-4b1e-never-print";

/// Every subcommand's name, from the parser itself (so a new one cannot be forgotten here);
/// not the hidden `options`, whose help is the global options.
fn subcommands() -> Vec<String> {
    castsync::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
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
            if sub.is_hide_set() {
                continue;
            }
            let after = sub
                .get_after_help()
                .or(sub.get_after_long_help())
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
    Test::new()
        .arg("--help")
        .run()
        .success()
        .stdout_has(castsync::cli::EXIT_STATUS);
    for sub in subcommands() {
        let run = Test::new().args([sub.as_str(), "--help"]).run().success();
        let last_section = run
            .stdout()
            .trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap_or_default();
        assert!(
            last_section.starts_with("Examples:\n  "),
            "{sub} --help ends with:\n{last_section}"
        );
    }
}

#[test]
fn help_shows_the_environment_variables_and_never_a_secret_value() {
    let secret_env = |t: Test| {
        t.env("COLUMNS", "200")
            .env("CASTARI_API_KEY", CANARY)
            .env("CASTSYNC_AGE_KEY", CANARY)
            .env("CASTARI_API_URL", "http://127.0.0.1:8787")
    };
    let mut run = secret_env(Test::new())
        .args(["reconcile", "--help"])
        .run()
        .success()
        // Not secret: shown, as clap shows a variable's current value.
        .stdout_has("[env: CASTARI_API_URL=http://127.0.0.1:8787]")
        .stdout_has("[env: CASTARI_API_KEY]")
        .no_canary(&[CANARY]);
    for flag in [
        "-o, --output <FORMAT>",
        "-y, --yes",
        "castsync help options",
    ] {
        run = run.stdout_has(flag);
    }
    // The options every command accepts, with their variables: in `castsync --help` and
    // `castsync help options`, in full.
    for args in [&["--help"][..], &["help", "options"]] {
        let mut run = secret_env(Test::new())
            .args(args)
            .run()
            .success()
            .no_canary(&[CANARY]);
        for var in [
            "CASTSYNC_AGE_KEY",
            "CASTSYNC_AGE_KEY_FILE",
            "CASTSYNC_AGE_KEY_CMD",
            "CASTSYNC_LOG",
        ] {
            run = run.stdout_has(format!("[env: {var}"));
        }
        run.stdout_has("--color <WHEN>")
            .stdout_has("-C, --repo <DIR>");
    }
}

#[test]
fn top_level_help_groups_the_commands_and_each_command_points_at_the_global_options() {
    let top = Test::new().arg("--help").run().success();
    let text = top.stdout();
    let mut at = 0;
    for heading in [
        "Main commands:",
        "Team and review:",
        "Integration:",
        "Global options:",
    ] {
        let found = text[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} missing or out of order:\n{text}"));
        at += found;
    }
    let listed = |name: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(&format!("{name} ")))
    };
    for sub in subcommands() {
        assert!(
            listed(&sub),
            "{sub} is not listed in castsync --help:\n{text}"
        );
    }
    for sub in subcommands() {
        let help = Test::new().args([sub.as_str(), "--help"]).run().success();
        let lines = help.stdout().lines().count();
        let limit = match sub.as_str() {
            "keygen" => 25,
            _ => 60,
        };
        assert!(
            lines <= limit,
            "{sub} --help has {lines} lines (at most {limit})"
        );
        help.stdout_has("Global options (-C DIR, -i FILE")
            .stdout_has("castsync help options")
            .stdout_lacks("--age-key-cmd")
            .stdout_lacks("--log-format");
    }
}

#[test]
fn a_mistyped_flag_exits_1_for_every_command_even_with_exit_code() {
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
        let run = Test::new().args(&args).run().failure();
        assert!(
            run.stderr().contains("Usage:") || run.stderr().contains("error:"),
            "castsync {args:?}: {}",
            run.stderr()
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["-h"], &["--version"], &["-V"], &["help"]] {
        let run = Test::new().args(args).run().success();
        assert!(!run.stdout().is_empty(), "{args:?}");
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
        repo.test()
            .args(args)
            .run()
            .failure()
            .stderr_has("read from the environment only")
            .no_canary(&[CANARY]);
    }
}

#[test]
fn a_value_on_the_command_line_is_a_usage_error_that_never_echoes_it() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    let manifest = repo.path("agents/alpha/secrets.yaml.age");
    let before = std::fs::read(&manifest).unwrap();
    let key_value = format!("A1={CANARY}");
    for (args, says) in [
        (
            &["set", "alpha", "A1", CANARY][..],
            "unexpected argument (27 characters, not shown",
        ),
        (&["set", "alpha", "A1", "--", CANARY], "not shown"),
        (&["set", "alpha", "A1", "--raw", CANARY], "not shown"),
        (&["unset", "alpha", "A1", CANARY], "not shown"),
        (&["reconcile", "--dry-run", CANARY], "not shown"),
        (
            &["set", "alpha", &key_value],
            "key \"A1=…\" carries a value after '=' (not shown)",
        ),
    ] {
        repo.test()
            .args(args)
            .stdin("")
            .run()
            .failure()
            .stderr_has(says)
            .stderr_has("hint: ")
            .no_canary(&[CANARY]);
    }
    assert_eq!(std::fs::read(&manifest).unwrap(), before, "nothing written");
    // An unknown flag is still named: it is not a value.
    repo.test()
        .args(["set", "alpha", "A1", "--vaule", "x"])
        .run()
        .failure()
        .stderr_has("unexpected argument '--vaule' found");
}

#[test]
fn an_empty_api_url_is_a_usage_error_not_the_default_platform() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    for (flag, env) in [(None, Some("")), (Some(""), None), (Some("  "), None)] {
        let mut test = repo
            .test()
            .env("CASTARI_API_KEY", CANARY)
            .args(["reconcile", "--dry-run"]);
        if let Some(url) = flag {
            test = test.args(["--api-url", url]);
        }
        if let Some(url) = env {
            test = test.env("CASTARI_API_URL", url);
        }
        test.run()
            .code(1)
            .stderr_has("for '--api-url <URL>': an empty URL")
            .stderr_lacks("api.castari.com:")
            .no_canary(&[CANARY]);
    }
}

#[test]
fn the_age_key_and_api_key_come_from_the_environment_through_clap() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    let key = std::fs::read_to_string(&repo.key_file).unwrap();
    // No -i: the identity comes from CASTSYNC_AGE_KEY, the URL and key from CASTARI_*.
    let without_identity = || Test::at_home(&repo.home).arg("-C").arg(&repo.root);
    without_identity()
        .env("CASTSYNC_AGE_KEY", &key)
        .env("CASTARI_API_URL", &emu.url)
        .env("CASTARI_API_KEY", "cast_test")
        .args(["reconcile", "--yes"])
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(emu.value("alpha", "A1").as_deref(), Some(CANARY));
    // CASTSYNC_AGE_KEY_FILE names a file instead.
    without_identity()
        .env("CASTSYNC_AGE_KEY_FILE", &repo.key_file)
        .arg("validate")
        .run()
        .success();
    // Set but empty (an unset CI secret): listed as ignored, not a usage error.
    repo.test()
        .env("CASTSYNC_AGE_KEY_FILE", "")
        .env("CASTSYNC_AGE_KEY", "")
        .env("CASTSYNC_LOG", "")
        .arg("validate")
        .run()
        .success();
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
    let run = |args: &[&str], stdin: Option<&str>| -> Run {
        let mut test = repo
            .test()
            .env("CASTARI_API_KEY", "cast_test")
            .env("CASTARI_API_URL", &emu.url)
            .env("EDITOR", "true")
            .args(args);
        if let Some(input) = stdin {
            test = test.stdin(input);
        }
        test.run().no_canary(&[CANARY])
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
        ("audit", &["audit"], None, 0),
        (
            "audit --exit-code with nothing to rotate",
            &["audit", "--exit-code", "-o", "json"],
            None,
            0,
        ),
        ("audit with a bad format", &["audit", "-o", "yaml"], None, 1),
        ("guard with nothing found", &["guard"], None, 0),
        (
            "guard --staged -o json",
            &["guard", "--staged", "-o", "json"],
            None,
            0,
        ),
        (
            "guard --staged --history",
            &["guard", "--staged", "--history"],
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
        let done = run(args, *stdin);
        assert_eq!(done.exit_code(), *expected, "{what}: {done:#?}");
    }
    // diff --exit-code between identical revisions: 0.
    repo.commit_all("everything");
    run(&["diff", "HEAD", "HEAD", "--exit-code"], None).success();
    // init: 0 in an empty directory.
    Test::at_home(&repo.home)
        .arg("-C")
        .arg(&stranger)
        .arg("-i")
        .arg(&repo.key_file)
        .arg("init")
        .run()
        .success();
}

#[test]
fn validate_prints_versioned_json_that_matches_its_schema() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one"), ("A2", CANARY)]);
    let run = repo.test().args(["validate", "-o", "json"]).run().success();
    let doc = assert_matches_schema("validate.schema.json", run.stdout());
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["agents_checked"], 1);

    // An invalid agent: exit 1, the finding named, still valid JSON, no value.
    repo.raw_manifest(
        "beta",
        &format!("agent: beta\nsecrets:\n  B1: 1.10\n  B2: {CANARY}\n"),
    );
    repo.schema("beta", "B1=x\nB2=y\nB3=z\n");
    let run = repo
        .test()
        .args(["validate", "--output", "json"])
        .run()
        .failure()
        .no_canary(&[CANARY]);
    let doc = assert_matches_schema("validate.schema.json", run.stdout());
    assert_eq!(doc["ok"], false);
    let findings = doc["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["agent"] == "beta"
            && f["severity"] == "error"
            && f["message"].as_str().unwrap().contains("key B1")),
        "{doc:#}"
    );

    // A broken config: no agent read, agents_checked is null.
    let run = repo
        .test()
        .write("castsync.yaml", "version: 7\n")
        .args(["validate", "-o", "json"])
        .run()
        .failure();
    let doc = assert_matches_schema("validate.schema.json", run.stdout());
    assert_eq!(doc["agents_checked"], serde_json::Value::Null);

    let run = repo
        .test()
        .args(["validate", "-o", "markdown"])
        .run()
        .failure();
    assert!(
        run.stdout().starts_with("### castsync validate: failed"),
        "{}",
        run.stdout()
    );
}

#[test]
fn doctor_prints_versioned_json_that_matches_its_schema() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = committed_repo();
    let doctor = || {
        repo.test()
            .env("CASTARI_API_KEY", "cast_test")
            .args(["doctor", "-o", "json", "--api-url", &emu.url])
            .run()
    };
    let run = doctor().success();
    let doc = assert_matches_schema("doctor.schema.json", run.stdout());
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["agents"][0]["agent"], "alpha");

    // A problem: exit 1, still valid JSON, the failed check carries its fix.
    repo.agent("ghost", &[("G1", "g")]);
    let run = doctor().failure();
    let doc = assert_matches_schema("doctor.schema.json", run.stdout());
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
    let run = Test::at_home(&repo.home)
        .current_dir(stranger.path())
        .args(["doctor", "-o", "json"])
        .run()
        .failure()
        .no_canary(&[CANARY]);
    let doc = assert_matches_schema("doctor.schema.json", run.stdout());
    assert_eq!(doc["checks"][0]["check"], "repository");
}

#[test]
fn diff_prints_versioned_json_with_key_level_changes_and_exit_code_2() {
    let repo = committed_repo();
    repo.agent("alpha", &[("A1", "a-one-v2"), ("A3", "new")]);
    let run = repo
        .test()
        .args(["diff", "-o", "json", "--exit-code"])
        .run()
        .code(2)
        .no_canary(&[CANARY, "a-one-v2"]);
    let doc = assert_matches_schema("diff.schema.json", run.stdout());
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

    repo.test()
        .args(["diff", "-o", "markdown"])
        .run()
        .success()
        .stdout_has("```diff\n");
}

#[test]
fn rekey_check_prints_versioned_json_naming_stale_files() {
    let repo = committed_repo();
    // Written by castsync's own tooling: carries the recipients record, so it is current.
    repo.test()
        .args(["set", "alpha", "A1"])
        .stdin("v2")
        .run()
        .success();
    let run = repo
        .test()
        .args(["rekey", "--check", "-o", "json"])
        .run()
        .success();
    let doc = assert_matches_schema("rekey-check.schema.json", run.stdout());
    assert_eq!(doc["stale"], 0);
    assert_eq!(doc["format_version"], 1);

    // beta was written without the record: unrecorded, exit 1.
    repo.agent("beta", &[("B1", "b-one")]);
    let run = repo
        .test()
        .args(["rekey", "--check", "-o", "json"])
        .run()
        .failure()
        .no_canary(&[CANARY]);
    let doc = assert_matches_schema("rekey-check.schema.json", run.stdout());
    assert_eq!(doc["stale"], 1);
    assert_eq!(doc["files"][0]["agent"], "beta");
    assert_eq!(doc["files"][0]["status"], "unrecorded");
}

#[test]
fn color_follows_the_color_flag_and_no_color() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", "a-one")]);
    let plan = |color: Option<&str>, no_color: Option<&str>| -> String {
        let mut test = repo
            .test()
            .env("CASTARI_API_KEY", "cast_test")
            .env_remove("NO_COLOR")
            .args(["reconcile", "--api-url", &emu.url, "--dry-run"]);
        if let Some(no_color) = no_color {
            test = test.env("NO_COLOR", no_color);
        }
        if let Some(when) = color {
            test = test.args(["--color", when]);
        }
        test.run().success().stdout().to_owned()
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
        let mut test = repo.test().args(["show", "alpha", "--format", "json"]);
        if reveal {
            test = test.arg("--reveal");
        }
        let mut run = test.run().success();
        if !reveal {
            run = run.no_canary(&[CANARY]);
        }
        let doc = assert_matches_schema("manifest.schema.json", run.stdout());
        assert_eq!(doc["agent"], "alpha");
    }
}

/// `castsync ARGS` failed before it had a result: exit 1, the error as text on stderr and as
/// the JSON document of error.schema.json on stdout; returns the document's `error`.
fn json_failure(run: Run) -> serde_json::Value {
    let run = run.failure().no_canary(&[CANARY]);
    assert!(run.stderr().contains("error: "), "{}", run.stderr());
    let doc = assert_matches_schema("error.schema.json", run.stdout());
    doc["error"].clone()
}

/// The error document's `field` (message or hint) says `text`.
fn says(error: &serde_json::Value, field: &str, text: &str) {
    let said = error[field].as_str().unwrap_or_default();
    assert!(said.contains(text), "{field} lacks {text:?}: {error}");
}

#[test]
fn every_json_command_that_fails_prints_the_error_as_json() {
    // Outside any repository.
    let nowhere = tempfile::tempdir().expect("tempdir");
    for args in [
        &["validate", "-o", "json"][..],
        &["reconcile", "-o", "json", "--dry-run"],
        &["diff", "-o", "json"],
        &["rekey", "--check", "-o", "json"],
        &["history", "-o", "json"],
    ] {
        let error = json_failure(Test::at_home(nowhere.path()).args(args).run());
        says(&error, "message", "no castsync.yaml");
        says(&error, "hint", "castsync init");
    }

    // A config that does not parse, under reconcile -o json.
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    std::fs::write(repo.path("castsync.yaml"), "version: 1\nrecipients: [\n").unwrap();
    let error = json_failure(
        repo.test()
            .args(["reconcile", "-o", "json", "--api-url", "local://dev.db"])
            .run(),
    );
    says(&error, "message", "castsync.yaml");

    // A diff of a revision that does not exist; a history whose --state is not there.
    let repo = committed_repo();
    let error = json_failure(
        repo.test()
            .args(["diff", "no-such-rev", "-o", "json"])
            .run(),
    );
    says(&error, "message", "no-such-rev");
    let error = json_failure(
        repo.test()
            .args(["history", "-o", "json", "--state", "missing/state.json"])
            .run(),
    );
    says(&error, "hint", "check the path");
}

#[test]
fn a_saved_plan_that_no_longer_matches_fails_as_json_under_o_json() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A1", CANARY)]);
    let plan = repo.path("plan.json");
    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--save-plan"])
        .arg(&plan)
        .run()
        .success();
    repo.agent("alpha", &[("A1", CANARY), ("A2", "moved-on")]);
    let error = json_failure(
        repo.test_reconcile(&emu.url)
            .args(["-o", "json", "--plan"])
            .arg(&plan)
            .run(),
    );
    says(&error, "message", "does not match");
    says(&error, "hint", "plan afresh");
    assert_eq!(emu.requests("POST"), 0);
}
