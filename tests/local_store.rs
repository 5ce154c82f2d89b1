//! The embedded `local://` store through the binary: several processes on one store, the
//! emulator serving it with `--data`, and the import of a castsync 0.1 JSON store.

use std::io::Read;
use std::process::Stdio;

use crate::support::*;

const CANARY: &str = "canary-local-store-51c7-never-print";
const AGENTS: usize = 12;
const KEYS: usize = 3;

/// A repo of `AGENTS` agents named `{prefix}-N`, each with `KEYS` keys.
fn repo(prefix: &str) -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for a in 0..AGENTS {
        let secrets: Vec<(String, String)> = (0..KEYS)
            .map(|k| (format!("KEY_{k}"), format!("{prefix}-{a}-{k}-{CANARY}")))
            .collect();
        let refs: Vec<(&str, &str)> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        repo.agent(&format!("{prefix}-{a}"), &refs);
    }
    repo
}

fn local_reconcile(repo: &SecretsRepo, url: &str) -> std::process::Child {
    let mut cmd = castsync_std(&repo.home);
    cmd.arg("-C")
        .arg(&repo.root)
        .arg("-i")
        .arg(&repo.key_file)
        .args(["reconcile", "--api-url", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn castsync reconcile")
}

fn finish(mut child: std::process::Child) -> (i32, String) {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out)
}

#[test]
fn two_reconciles_and_an_emulator_share_one_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("shared/platform.db");
    let url = format!("local://{}", store.display());
    // The emulator opens the store first and keeps its connection while the others write.
    let emu = Emulator::start(&["--data", store.to_str().unwrap()]);
    let (red, blue) = (repo("red"), repo("blue"));

    let runs = [local_reconcile(&red, &url), local_reconcile(&blue, &url)];
    for run in runs {
        let (code, out) = finish(run);
        assert_eq!(code, 0, "{out}");
        assert_no_canary("reconcile output", &out, &[CANARY]);
    }
    // Every write of both processes landed, and the emulator serves them.
    for prefix in ["red", "blue"] {
        for a in 0..AGENTS {
            let agent = format!("{prefix}-{a}");
            let keys = emu.get_json(&format!("/_emulator/agents/{agent}/secrets"));
            assert_eq!(keys.as_array().map(Vec::len), Some(KEYS), "{agent}: {keys}");
            assert_eq!(
                emu.value(&agent, "KEY_1").as_deref(),
                Some(format!("{prefix}-{a}-1-{CANARY}").as_str())
            );
        }
    }
    // And each repo now sees no change.
    for repo in [&red, &blue] {
        repo.cmd()
            .args(["reconcile", "--dry-run", "--exit-code", "--api-url", &url])
            .assert()
            .code(0);
    }
}

#[test]
fn a_json_store_of_castsync_0_1_is_imported_on_first_use() {
    let repo = SecretsRepo::new("");
    repo.agent(
        "support-bot",
        &[("OPENAI_API_KEY", CANARY), ("NEW_KEY", "n")],
    );
    let store = repo.path(".castsync/platform.json");
    std::fs::create_dir_all(store.parent().unwrap()).unwrap();
    std::fs::write(
        &store,
        format!(
            r#"{{"version": 1, "agents": {{"support-bot": {{"OPENAI_API_KEY": {{"value": "{CANARY}",
               "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00.000000Z"}},
               "STALE": {{"value": "s", "created_at": "2026-01-01T00:00:00.000000Z",
               "updated_at": "2026-01-01T00:00:00.000000Z"}}}}}}}}"#
        ),
    )
    .unwrap();
    let url = format!("local://{}", store.display());
    let (code, stdout, stderr) = outcome(repo.cmd().args(["-v", "reconcile", "--api-url", &url]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("imported the JSON store"),
        "the import is logged: {stderr}"
    );
    assert_no_canary("reconcile output", &format!("{stdout}{stderr}"), &[CANARY]);
    // STALE was pruned, NEW_KEY created: the imported store behaved as the platform.
    assert!(
        stdout.contains("+ NEW_KEY") && stdout.contains("- STALE"),
        "{stdout}"
    );
    let head = std::fs::read(&store).unwrap();
    assert!(head.starts_with(b"SQLite format 3\0"));

    let emu = Emulator::start(&["--data", store.to_str().unwrap()]);
    assert_eq!(
        emu.value("support-bot", "OPENAI_API_KEY").as_deref(),
        Some(CANARY)
    );
    assert_eq!(emu.value("support-bot", "STALE"), None);
}
