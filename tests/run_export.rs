//! `castsync run` and `castsync export` end to end: what a command's environment holds,
//! exit statuses and signals, no plaintext on disk; every export format read back by the
//! programs people read it with (python-dotenv, node's dotenv, jq, sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::pty::Pty;
use crate::support::tools::python_with;
use crate::support::*;

const CANARY: &str = "canary-run-7f3b9d";

/// An agent with `values`, every key optional in its .env.example (so empty values pass).
fn repo_with(values: &[(&str, &str)]) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    let mut yaml = String::from("agent: bot\nsecrets:\n");
    let mut schema = String::new();
    for (k, v) in values {
        yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
        schema.push_str(&format!("# optional\n{k}=\n"));
    }
    repo.raw_manifest("bot", &yaml);
    repo.schema("bot", &schema);
    repo
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            found.push(path);
        }
    }
    found
}

/// A child that prints each variable of its environment as `NAME=sha256(value)`.
const DIGEST_CHILD: &str = "import hashlib, os\nfor k in sorted(os.environ):\n    print(k + '=' + hashlib.sha256(os.environb[k.encode()]).hexdigest())\n";

fn digests(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn sha256(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `castsync -C ROOT -i KEY ARGS` as a std command (for signals and exact environments).
fn castsync_in(repo: &SecretsRepo) -> std::process::Command {
    let mut cmd = castsync_std(&repo.home);
    cmd.arg("-C").arg(&repo.root).arg("-i").arg(&repo.key_file);
    cmd
}

#[test]
fn the_command_sees_exactly_the_manifests_keys_and_castsyncs_own_secrets_stay_behind() {
    let Some(python) = tool("python3") else {
        return;
    };
    let multi = "a\nb 'c' \"d\"";
    let repo = repo_with(&[("API_KEY", CANARY), ("MULTI", multi), ("EMPTY", "")]);
    let tmp = repo.home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let child = |cmd: &mut std::process::Command| -> BTreeMap<String, String> {
        let out = cmd
            .env("TMPDIR", &tmp)
            .env("KEPT", "kept")
            .args(["--", python.to_str().unwrap(), "-c", DIGEST_CHILD])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains(CANARY) && !String::from_utf8_lossy(&out.stdout).contains(CANARY));
        digests(&String::from_utf8_lossy(&out.stdout))
    };
    let run = |args: &[&str]| {
        child(
            castsync_in(&repo)
                .env("API_KEY", "inherited")
                .env("CASTARI_API_KEY", "cast_not_for_the_child")
                .arg("run")
                .args(args),
        )
    };
    let seen = run(&["bot"]);

    // Exactly: what the child would inherit anyway (castsync's hermetic environment, run
    // by `env` instead of castsync), plus the manifest's keys over it.
    let bare = castsync_std(&repo.home);
    let mut env = std::process::Command::new("env");
    for (k, v) in bare.get_envs() {
        match v {
            Some(v) => env.env(k, v),
            None => env.env_remove(k),
        };
    }
    let mut expected = child(&mut env);
    expected.remove("_");
    let mut seen_all = seen.clone();
    seen_all.remove("_");
    for (k, v) in [("API_KEY", CANARY), ("MULTI", multi), ("EMPTY", "")] {
        expected.insert(k.to_owned(), sha256(v));
    }
    assert_eq!(seen_all, expected);
    assert!(!seen.contains_key("CASTARI_API_KEY"), "{seen:?}");

    let kept = run(&["--keep-env", "bot"]);
    assert_eq!(kept["API_KEY"], sha256("inherited"), "--keep-env");
    let only = run(&["--only", "MULTI", "bot"]);
    assert!(only.contains_key("MULTI") && !only.contains_key("EMPTY"));
    assert_eq!(only["API_KEY"], sha256("inherited"), "not among --only");

    // No plaintext reached the disk: not in the repository, HOME or TMPDIR.
    for dir in [&repo.root, &repo.home, &tmp] {
        assert_eq!(files_containing(dir, CANARY), Vec::<PathBuf>::new());
    }
}

#[test]
fn exit_statuses_pass_through_and_a_missing_command_is_127() {
    let repo = repo_with(&[("API_KEY", CANARY)]);
    for code in [0, 3, 137] {
        repo.test()
            .args(["run", "bot", "--", "sh", "-c", &format!("exit {code}")])
            .run()
            .code(code);
    }
    repo.test()
        .args(["run", "bot", "--", "no-such-command-here"])
        .run()
        .code(127)
        .stderr_has("cannot run no-such-command-here");
}

#[test]
fn a_required_key_missing_stops_run_before_the_command_starts() {
    let repo = repo_with(&[("API_KEY", CANARY)]);
    repo.schema("bot", "API_KEY=\nREQUIRED_TOO=\n");
    let marker = repo.home.join("started");
    repo.test()
        .args(["run", "bot", "--", "touch"])
        .arg(&marker)
        .run()
        .failure()
        .no_canary(&[CANARY])
        .stderr_has("REQUIRED_TOO")
        .stderr_has("nothing was run");
    assert!(!marker.exists(), "the command never started");
    repo.schema("bot", "API_KEY=\n");
    repo.test()
        .args(["run", "--only", "NOPE", "bot", "--", "true"])
        .run()
        .failure()
        .stderr_has("--only NOPE: agent bot");
}

#[test]
fn sigterm_to_castsync_reaches_the_command() {
    let repo = repo_with(&[("API_KEY", CANARY)]);
    let ready = repo.home.join("ready");
    let got = repo.home.join("got-term");
    let script = format!(
        "trap 'echo TERM > {got}; exit 143' TERM; echo ready > {ready}; while :; do sleep 0.05; done",
        got = got.display(),
        ready = ready.display()
    );
    let mut child = castsync_in(&repo)
        .args(["run", "bot", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    send_signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "TERM");
}

/// 30 values built to break a dotenv reader.
const HOSTILE: &[&str] = &[
    "plain",
    "with spaces inside",
    "  leading spaces",
    "trailing spaces  ",
    "",
    "line1\nline2",
    "ends with a newline\n",
    "\nstarts with one",
    "crlf\r\nline",
    "it's",
    "say \"hi\"",
    "back`tick`",
    "'single quoted'",
    "\"double quoted\"",
    "`backticked`",
    "hash # not a comment",
    "#starts-with-hash",
    "$HOME and $PATH",
    "$(whoami)",
    "back\\slash",
    "C:\\path\\to",
    "ends with a backslash\\",
    "\\n is not a newline",
    "it's \"both\" kinds",
    "tab\there",
    "ünïcödé ☃ 🔑",
    "=starts=with=equals=",
    "a;b|c&d>e<f",
    "multi\nline with \"quotes\" and `ticks`",
    "   ",
];

fn hostile_repo() -> (SecretsRepo, Vec<(String, String)>) {
    let values: Vec<(String, String)> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("K{i:02}"), (*v).to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    (repo_with(&pairs), values)
}

#[test]
fn dotenv_export_reads_back_the_same_in_python_dotenv_and_nodes_dotenv() {
    let (repo, values) = hostile_repo();
    let file = repo.home.join("out.env");
    repo.test()
        .args(["export", "bot", "--format", "dotenv", "-o"])
        .arg(&file)
        .run()
        .success()
        .no_canary(&HOSTILE[1..2]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let expected: serde_json::Value = values
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into();

    if let Some(python) = python_with("dotenv", "python3 -m pip install python-dotenv==1.2.2") {
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys\nfrom dotenv import dotenv_values\nprint(json.dumps(dotenv_values(sys.argv[1])))",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(read, expected, "python-dotenv");
    }

    if let Some(node) = tool("node") {
        let script = "const fs = require('fs'); const dotenv = require('dotenv'); process.stdout.write(JSON.stringify(dotenv.parse(fs.readFileSync(process.argv[1]))));";
        let out = std::process::Command::new(&node)
            .args(["-e", script])
            .arg(&file)
            .output()
            .unwrap();
        if out.status.success() {
            let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(read, expected, "node's dotenv");
        } else {
            skip("node's dotenv (npm install dotenv, on NODE_PATH; .ci/run installs it)");
        }
    }

    // An existing file is never replaced without --force.
    repo.test()
        .args(["export", "bot", "--format", "json", "-o"])
        .arg(&file)
        .run()
        .failure()
        .stderr_has("exists: export never replaces a file");
    repo.test()
        .args(["export", "bot", "--format", "json", "--force", "-o"])
        .arg(&file)
        .run()
        .success();
    let read: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(read, expected);
}

#[test]
fn json_and_shell_exports_read_back_through_jq_and_sh() {
    let (repo, values) = hostile_repo();
    let json = repo
        .test()
        .args(["export", "bot", "--format", "json"])
        .run()
        .success();
    let shell = repo
        .test()
        .args(["export", "bot", "--format", "shell"])
        .run()
        .success();
    let dir = repo.home.join("exports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("v.json"), json.stdout()).unwrap();
    std::fs::write(dir.join("v.sh"), shell.stdout()).unwrap();
    for (key, value) in &values {
        if let Some(jq) = tool("jq") {
            let out = std::process::Command::new(jq)
                .args(["-j", &format!(".{key}")])
                .arg(dir.join("v.json"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), *value, "jq {key}");
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &format!(". \"$1\"; printf %s \"${key}\""), "sh"])
            .arg(dir.join("v.sh"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), *value, "sh {key}");
    }
}

#[test]
fn export_to_a_terminal_needs_reveal_and_a_value_dotenv_cannot_carry_is_refused_by_key() {
    let repo = repo_with(&[("API_KEY", CANARY), ("WEIRD", "it's \"x\"\nand more")]);
    let mut cmd = castsync_in(&repo);
    cmd.args(["export", "bot", "--format", "json"]);
    let (status, output) = Pty::spawn(cmd).finish(std::time::Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("stdout is a terminal"), "{output}");
    assert!(!output.contains(CANARY), "{output}");
    let mut cmd = castsync_in(&repo);
    cmd.args(["export", "bot", "--format", "json", "--reveal"]);
    let (status, output) = Pty::spawn(cmd).finish(std::time::Duration::from_secs(30));
    assert!(status.success() && output.contains(CANARY), "{output}");

    repo.test()
        .args(["export", "bot", "--format", "dotenv"])
        .run()
        .failure()
        .no_canary(&[CANARY])
        .stderr_has("key WEIRD: its value cannot be written as dotenv exactly");
    repo.test()
        .args(["export", "bot", "--only", "API_KEY"])
        .run()
        .success()
        .stdout_is(format!("API_KEY='{CANARY}'\n"));
}
