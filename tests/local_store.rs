//! The embedded `local://` store through the binary: several processes on one store, the
//! emulator serving it with `--data`, and a file that is not a store.

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
        repo.test()
            .args(["reconcile", "--dry-run", "--exit-code", "--api-url", &url])
            .run()
            .success();
    }
}

#[test]
fn a_file_that_is_not_a_castsync_store_is_refused_and_left_as_it_was() {
    let repo = SecretsRepo::new("");
    repo.agent("support-bot", &[("OPENAI_API_KEY", CANARY)]);
    let store = repo.path(".castsync/platform.json");
    std::fs::create_dir_all(store.parent().unwrap()).unwrap();
    let before = format!(r#"{{"agents": {{"support-bot": {{"OPENAI_API_KEY": "{CANARY}"}}}}}}"#);
    std::fs::write(&store, &before).unwrap();
    let url = format!("local://{}", store.display());
    repo.test()
        .args(["reconcile", "--api-url", &url])
        .run()
        .failure()
        .stderr_has("platform.json")
        .stderr_has("not an SQLite database")
        .no_canary(&[CANARY]);
    assert_eq!(std::fs::read_to_string(&store).unwrap(), before);
}
