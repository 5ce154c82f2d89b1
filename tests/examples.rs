//! The CI and deployment examples, the release workflow, the Action and the Dockerfile: every
//! workflow file passes action-validator and actionlint, action.yml action-validator, the
//! Dockerfile hadolint, the Kubernetes manifest yamllint and its API schema, the systemd unit
//! `systemd-analyze verify` and a hardening score, the scripts shellcheck; and every
//! `castsync` command line in them is one the binary accepts.
//!
//! The linters are external programs. `.ci/run` installs them all; with `CI` set a missing one
//! fails its test (so a broken install can never pass as a skipped check). On a developer's
//! machine without them, the test prints one `skipped:` line naming what to install and
//! passes (`support::tool`).

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use serde::Deserialize as _;

use crate::support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args…` in the repository root and fails the test, with its output, unless
/// it exits 0. Returns stdout and stderr.
fn run_ok(program: &Path, args: &[&str]) -> (String, String) {
    let out = StdCommand::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        program.display(),
        out.status
    );
    (stdout, stderr)
}

/// Files under `dir` (relative to the repository root) whose name ends with one of `exts`.
fn files(dir: &str, exts: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| exts.iter().any(|ext| name.ends_with(ext)))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    found.sort();
    found
}

#[test]
fn every_workflow_file_passes_action_validator() {
    let mut workflows = files(".github/workflows", &[".yml", ".yaml"]);
    workflows.extend(files("examples/github-actions", &[".yml", ".yaml"]));
    for expected in [
        ".github/workflows/ci.yml",
        "examples/github-actions/pr-plan.yml",
        "examples/github-actions/apply-on-merge.yml",
    ] {
        assert!(workflows.iter().any(|w| w == expected), "{workflows:?}");
    }
    let Some(validator) = tool("action-validator") else {
        return;
    };
    for workflow in &workflows {
        run_ok(&validator, &[workflow]);
    }
}

#[test]
fn every_workflow_file_passes_actionlint() {
    let mut workflows = files(".github/workflows", &[".yml", ".yaml"]);
    workflows.extend(files("examples/github-actions", &[".yml", ".yaml"]));
    assert!(
        workflows
            .iter()
            .any(|w| w == ".github/workflows/release.yml")
    );
    let Some(actionlint) = tool("actionlint") else {
        return;
    };
    // actionlint also runs shellcheck (on PATH with the other linters) on every run: step,
    // and reads action.yml for the inputs a `uses: ./` step passes.
    let mut args = vec!["-no-color"];
    args.extend(workflows.iter().map(String::as_str));
    run_ok(&actionlint, &args);
}

#[test]
fn the_action_passes_action_validator() {
    let Some(validator) = tool("action-validator") else {
        return;
    };
    run_ok(&validator, &["action.yml"]);
}

#[test]
fn workflow_scripts_and_the_ci_entry_point_pass_shellcheck() {
    let mut scripts = files("examples/github-actions/scripts", &[".sh"]);
    assert_eq!(scripts.len(), 5, "{scripts:?}");
    scripts.push(".ci/run".to_owned());
    scripts.push(".ci/install-linters".to_owned());
    for script in ["build-release", "docker-context", "install.sh"] {
        scripts.push(format!("scripts/{script}"));
    }
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let mut args = vec!["--severity=style"];
    args.extend(scripts.iter().map(String::as_str));
    run_ok(&shellcheck, &args);
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    run_ok(&hadolint, &["--failure-threshold", "style", "Dockerfile"]);
}

#[test]
fn kubernetes_manifest_passes_yamllint() {
    let Some(yamllint) = tool("yamllint") else {
        return;
    };
    run_ok(&yamllint, &["--strict", "examples/deploy/kubernetes.yaml"]);
}

#[test]
fn kubernetes_manifest_passes_the_kubernetes_schemas() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    // --strict: a misspelt field is an error, not silently dropped.
    let (stdout, stderr) = run_ok(&validate, &["--strict", "examples/deploy/kubernetes.yaml"]);
    let passed = format!("{stdout}{stderr}")
        .matches(" passed for resource ")
        .count();
    assert_eq!(passed, 4, "{stdout}\n{stderr}");
}

/// The unit with ExecStart pointing at the binary under test (verify checks that the
/// program exists), in a temp dir.
fn unit_for_test() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(root().join("examples/deploy/castsync-watch.service"))
        .expect("read the unit");
    assert!(text.contains("ExecStart=/usr/local/bin/castsync watch"));
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("castsync-watch.service");
    let text = text.replace(
        "/usr/local/bin/castsync",
        bin().to_str().expect("UTF-8 path"),
    );
    std::fs::write(&unit, text).expect("write the unit");
    (dir, unit)
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let (_dir, unit) = unit_for_test();
    // verify exits 0 on an unknown or misspelt directive and only warns: no output at all.
    let (stdout, stderr) = run_ok(&analyze, &["verify", unit.to_str().expect("UTF-8 path")]);
    assert_eq!(
        format!("{stdout}{stderr}").trim(),
        "",
        "warnings from verify"
    );
}

#[test]
fn systemd_unit_is_rated_hardened_by_systemd_analyze_security() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let (_dir, unit) = unit_for_test();
    // Exposure is rated 0.0 (locked down) to 10.0 (fully exposed); --threshold is ten times
    // that scale. 2.0 and under is what systemd calls "OK".
    run_ok(
        &analyze,
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            unit.to_str().expect("UTF-8 path"),
        ],
    );
}

/// Asserts that the binary accepts `args` (a `castsync …` line from an example) by parsing
/// it with `--help` appended: clap rejects an unknown flag or a bad value before it prints
/// help, so this checks every flag without starting the daemon.
fn assert_castsync_accepts(origin: &str, args: &[String]) {
    let run = Test::new().args(args).arg("--help").run();
    assert_eq!(
        run.exit_code(),
        0,
        "{origin}: castsync rejects {args:?}:\n{}",
        run.stderr()
    );
}

#[test]
fn kubernetes_container_args_are_flags_castsync_watch_accepts() {
    let text = std::fs::read_to_string(root().join("examples/deploy/kubernetes.yaml"))
        .expect("read the manifest");
    let mut checked = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc = serde_yaml::Value::deserialize(doc).expect("valid YAML");
        if doc["kind"].as_str() != Some("Deployment") {
            continue;
        }
        assert_eq!(doc["spec"]["replicas"].as_u64(), Some(1));
        assert_eq!(doc["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
        let container = &doc["spec"]["template"]["spec"]["containers"][0];
        // The release image, at this version, run as the user the Dockerfile names.
        assert_eq!(
            container["image"].as_str(),
            Some(concat!(
                "ghcr.io/castsync/castsync:v",
                env!("CARGO_PKG_VERSION")
            ))
        );
        let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
        let pod = &doc["spec"]["template"]["spec"]["securityContext"];
        let user = format!(
            "USER {}:{}",
            pod["runAsUser"].as_u64().unwrap(),
            pod["runAsGroup"].as_u64().unwrap()
        );
        assert!(dockerfile.lines().any(|l| l == user), "{user}");
        let args: Vec<String> = container["args"]
            .as_sequence()
            .expect("container args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect();
        assert_eq!(args.first().map(String::as_str), Some("watch"));
        assert!(args.windows(2).any(|w| w == ["--listen", "0.0.0.0:9464"]));
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz")
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz")
        );
        assert_castsync_accepts("kubernetes.yaml", &args);
        checked += 1;
    }
    assert_eq!(checked, 1, "one Deployment");
}

#[test]
fn dockerfile_cmd_is_a_command_line_castsync_accepts() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("read the Dockerfile");
    let cmd = text
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD line");
    let args: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec (JSON) form");
    assert!(text.contains(r#"ENTRYPOINT ["castsync"]"#));
    assert_castsync_accepts("Dockerfile CMD", &args);
}

#[test]
fn systemd_exec_start_is_a_command_line_castsync_accepts() {
    let text = std::fs::read_to_string(root().join("examples/deploy/castsync-watch.service"))
        .expect("read the unit");
    let exec = text.replace("\\\n", " ");
    let line = exec
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/castsync "))
        .expect("an ExecStart line");
    // systemd expands ${STATE_DIRECTORY} and ${CREDENTIALS_DIRECTORY}; any path parses.
    let args: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            w.replace("${STATE_DIRECTORY}", "/var/lib/castsync")
                .replace("${CREDENTIALS_DIRECTORY}", "/run/credentials/castsync")
        })
        .collect();
    assert_castsync_accepts("castsync-watch.service", &args);
}

/// The steps of a job of a workflow file, by name.
fn workflow_steps(file: &str, job: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(root().join(file)).expect("read the workflow");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    doc["jobs"][job]["steps"]
        .as_sequence()
        .expect("steps")
        .clone()
}

fn step<'a>(steps: &'a [serde_yaml::Value], name: &str) -> &'a serde_yaml::Value {
    steps
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no step {name:?}"))
}

#[test]
fn the_plan_artifact_the_pull_request_keeps_is_the_one_the_merge_looks_for() {
    let plan = workflow_steps("examples/github-actions/pr-plan.yml", "plan");
    let saved = step(&plan, "Validate and plan")["env"]["CASTSYNC_PLAN_FILE"]
        .as_str()
        .expect("pr-plan.sh saves the plan");
    let upload = step(&plan, "Keep the plan");
    assert!(
        upload["uses"]
            .as_str()
            .unwrap()
            .starts_with("actions/upload-artifact@")
    );
    assert_eq!(upload["with"]["path"].as_str(), Some(saved));
    assert_eq!(
        upload["with"]["name"].as_str(),
        Some("castsync-plan-${{ github.event.pull_request.head.sha }}")
    );
    // fetch-plan.sh looks for that name with the merged pull request's head commit.
    let fetch =
        std::fs::read_to_string(root().join("examples/github-actions/scripts/fetch-plan.sh"))
            .unwrap();
    assert!(fetch.contains("name=\"castsync-plan-$head\""), "{fetch}");
    assert!(fetch.contains("plan.json -d \"$dir\""), "{fetch}");

    let apply = workflow_steps("examples/github-actions/apply-on-merge.yml", "apply");
    let found = step(&apply, "Find the reviewed plan");
    assert_eq!(
        found["run"].as_str(),
        Some(".github/castsync/fetch-plan.sh \"$RUNNER_TEMP/castsync-plan\"")
    );
    assert_eq!(
        step(&apply, "Reconcile")["env"]["CASTSYNC_PLAN_FILE"].as_str(),
        Some("${{ runner.temp }}/castsync-plan/plan.json")
    );
    let names: Vec<&str> = apply.iter().filter_map(|s| s["name"].as_str()).collect();
    let position = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(position("Find the reviewed plan") < position("Reconcile"));
    // The pr-plan.sh line that saves it passes the flag castsync has.
    let script =
        std::fs::read_to_string(root().join("examples/github-actions/scripts/pr-plan.sh")).unwrap();
    assert!(script.contains("--save-plan \"$CASTSYNC_PLAN_FILE\""));
    assert_castsync_accepts(
        "pr-plan.sh",
        &[
            "reconcile",
            "--dry-run",
            "--base",
            "origin/main",
            "--save-plan",
            "p.json",
        ]
        .map(String::from),
    );
    assert_castsync_accepts(
        "apply.sh",
        &[
            "reconcile",
            "--plan",
            "p.json",
            "--dry-run",
            "--state",
            "s.json",
        ]
        .map(String::from),
    );
}

#[test]
fn the_example_workflows_install_castsync_with_the_action_at_this_release() {
    for (file, job, first_use) in [
        (
            "examples/github-actions/pr-plan.yml",
            "plan",
            "Validate and plan",
        ),
        (
            "examples/github-actions/apply-on-merge.yml",
            "apply",
            "Find the reviewed plan",
        ),
    ] {
        let steps = workflow_steps(file, job);
        let install = step(&steps, "Install castsync");
        // The same pinned release in both, so a plan and its apply run the same castsync.
        assert_eq!(
            install["uses"].as_str(),
            Some(concat!("castsync/castsync@v", env!("CARGO_PKG_VERSION"))),
            "{file}"
        );
        let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
        let position = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(position("Install castsync") < position(first_use), "{file}");
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(!text.contains("cargo install"), "{file} builds castsync");
    }
}
