//! age plugins and `CASTSYNC_AGE_KEY_CMD` through the binary.
//!
//! The plugin is `age-plugin-castsynctest` (tests/plugin, built on first use): castsync finds
//! it on PATH for `age1castsynctest1…` recipients in castsync.yaml and
//! `AGE-PLUGIN-CASTSYNCTEST-1…` identities, and talks to it over the real plugin protocol.
//! Its log (`CASTSYNC_TEST_PLUGIN_LOG`) counts how often it was asked to wrap or unwrap.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::plugin::{new_plugin_identity, path_with, plugin_path_dir};
use crate::support::pty::Pty;
use crate::support::*;

const CANARY: &str = "canary-plugin-3e8a-never-print";
const DEADLINE: Duration = Duration::from_secs(60);

/// A repository whose only recipient is a test-plugin key, with the plugin identity in
/// HOME/plugin-key.txt (not the SecretsRepo's native key).
struct PluginRepo {
    repo: SecretsRepo,
    identity_file: PathBuf,
    recipient: String,
    path: std::ffi::OsString,
    log: PathBuf,
}

impl PluginRepo {
    fn new(also_native: bool) -> PluginRepo {
        let repo = SecretsRepo::new("");
        let (identity, recipient) = new_plugin_identity();
        let identity_file = repo.home.join("plugin-key.txt");
        std::fs::write(&identity_file, format!("{identity}\n")).unwrap();
        set_private(&identity_file);
        let recipients = if also_native {
            format!("[{recipient}, {}]", repo.recipient)
        } else {
            format!("[{recipient}]")
        };
        std::fs::write(
            repo.path("castsync.yaml"),
            format!("version: 1\nrecipients: {recipients}\n"),
        )
        .unwrap();
        let path = path_with(&plugin_path_dir(&repo.home));
        let log = repo.home.join("plugin.log");
        PluginRepo {
            repo,
            identity_file,
            recipient,
            path,
            log,
        }
    }

    /// `castsync -C ROOT -i PLUGIN-KEY …` with the plugin on PATH.
    fn test(&self) -> Test {
        Test::at_home(&self.repo.home)
            .arg("-C")
            .arg(&self.repo.root)
            .arg("-i")
            .arg(&self.identity_file)
            .env("PATH", &self.path)
            .env("CASTSYNC_TEST_PLUGIN_LOG", &self.log)
    }

    /// How many `wrap` / `unwrap` calls the plugin logged.
    fn calls(&self, what: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == what)
            .count()
    }

    /// `new AGENT`, an .env.example, and `set AGENT KEY` with `value`: every write goes
    /// through the plugin.
    fn agent(&self, agent: &str, key: &str, value: &str) {
        self.test().args(["new", agent]).run().success();
        self.repo.schema(agent, &format!("{key}=placeholder\n"));
        self.test()
            .args(["set", agent, key])
            .stdin(value)
            .run()
            .success();
    }
}

#[test]
fn castsync_encrypts_to_plugin_recipients_and_decrypts_through_the_plugin() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    assert!(
        p.calls("wrap") >= 2,
        "new and set encrypt through the plugin"
    );

    // Only the plugin opens it: the repository's native key is not a recipient.
    p.repo
        .test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has("none of your identities")
        .no_canary(&[CANARY]);
    p.test()
        .arg("validate")
        .run()
        .success()
        // The plugin's message is shown.
        .stderr_has("age-plugin-castsynctest: touch the castsynctest key")
        .no_canary(&[CANARY]);
    p.test()
        .args(["show", "alpha"])
        .run()
        .success()
        .stdout_has("API_KEY: \"<hidden>\"")
        .no_canary(&[CANARY]);
    p.test()
        .env("CASTARI_API_KEY", "cast_test")
        .args(["reconcile", "--api-url", &emu.url])
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(emu.value("alpha", "API_KEY").as_deref(), Some(CANARY));
}

#[test]
fn a_file_for_a_plugin_and_a_native_key_opens_with_either_and_the_plugin_is_not_asked() {
    let p = PluginRepo::new(true);
    p.agent("alpha", "API_KEY", CANARY);
    let before = p.calls("unwrap");
    // The native key is tried first: the plugin (which might want a touch) is not asked.
    p.repo
        .test()
        .env("PATH", &p.path)
        .arg("validate")
        .run()
        .success();
    p.test()
        .arg("-i")
        .arg(&p.repo.key_file)
        .arg("validate")
        .run()
        .success();
    assert_eq!(p.calls("unwrap"), before);
    p.test().arg("validate").run().success();
    assert_eq!(p.calls("unwrap"), before + 1);
}

#[test]
fn each_file_is_unwrapped_by_the_plugin_once_per_run() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let p = PluginRepo::new(false);
    for agent in ["alpha", "beta", "gamma"] {
        p.agent(agent, "API_KEY", CANARY);
    }
    p.repo.commit_all("three agents");
    std::fs::remove_file(&p.log).unwrap();
    // `--base HEAD` opens every manifest twice (the worktree's and HEAD's, the same bytes):
    // the plugin is asked once per file.
    let plan = p
        .test()
        .env("CASTARI_API_KEY", "cast_test")
        .args([
            "reconcile",
            "--dry-run",
            "--base",
            "HEAD",
            "--api-url",
            &emu.url,
        ])
        .run()
        .success()
        .no_canary(&[CANARY]);
    assert_eq!(p.calls("unwrap"), 3, "{}", plan.output());
}

#[test]
fn a_missing_plugin_program_is_named_when_encrypting_and_when_decrypting() {
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    let bare_path = std::env::var_os("PATH").unwrap_or_default();

    p.test()
        .env("PATH", &bare_path)
        .arg("validate")
        .run()
        .failure()
        .stdout_has(
            "age-plugin-castsynctest is not on PATH, and it is needed for your plugin identity",
        )
        .stdout_has("hint: install the plugin");
    p.repo
        .test()
        .env("PATH", &bare_path)
        .args(["new", "beta"])
        .run()
        .failure()
        .stderr_has("age-plugin-castsynctest is not on PATH, and it is needed for recipient age1castsynctest1… in castsync.yaml")
        .stderr_has("\n  hint: install the plugin (its program must be named age-plugin-castsynctest and be on PATH), or use another key\n");
    assert!(!p.repo.path("agents/beta/secrets.yaml.age").exists());
    assert!(p.recipient.starts_with("age1castsynctest1"));
}

/// `setsid`, so that castsync runs in a session of its own: with `-c`, the terminal on its
/// stdin is its controlling terminal (`/dev/tty`, where prompts go); without, it has none.
fn setsid_castsync(p: &PluginRepo, ctty: bool, args: &[&str]) -> Option<std::process::Command> {
    let setsid = tool("setsid")?;
    let plain = castsync_std(&p.repo.home);
    let mut cmd = std::process::Command::new(setsid);
    cmd.arg("-w");
    if ctty {
        cmd.arg("-c");
    }
    cmd.arg(plain.get_program());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.arg("-C")
        .arg(&p.repo.root)
        .arg("-i")
        .arg(&p.identity_file)
        .args(args)
        .env("PATH", &p.path)
        .env("CASTSYNC_TEST_PLUGIN_LOG", &p.log)
        .env("CASTSYNC_TEST_PLUGIN_PIN", "2468");
    Some(cmd)
}

#[test]
fn a_plugin_asking_for_a_pin_gets_a_terminal_prompt() {
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    let Some(cmd) = setsid_castsync(&p, true, &["validate"]) else {
        return;
    };
    let mut pty = Pty::spawn(cmd);
    pty.expect(
        "age-plugin-castsynctest: PIN for the castsynctest key:",
        DEADLINE,
    );
    pty.send("2468\n");
    let (status, output) = pty.finish(DEADLINE);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("ok: 1 agent valid"), "{output}");
    assert!(!output.contains("2468"), "the PIN is not echoed: {output}");
    assert_no_canary("terminal", &output, &[CANARY]);
}

#[test]
fn without_a_terminal_a_plugin_that_needs_one_fails_clearly() {
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    let Some(mut cmd) = setsid_castsync(&p, false, &["validate"]) else {
        return;
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run castsync under setsid");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "age-plugin-castsynctest needs a terminal to ask for a PIN or a confirmation"
        ),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("age-plugin-castsynctest asks for a secret (a PIN or passphrase), but there is no terminal"),
        "{stderr}"
    );
}

/// A script that prints the repository's key (as a password manager would), and says
/// something on stderr.
fn key_script(repo: &SecretsRepo, body: &str) -> PathBuf {
    let script = repo.home.join("vault.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    script
}

fn without_identity_flag(repo: &SecretsRepo) -> Test {
    Test::at_home(&repo.home).arg("-C").arg(&repo.root)
}

#[test]
fn castsync_age_key_cmd_supplies_the_identity_from_a_command() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("API_KEY", CANARY)]);
    let key_text = std::fs::read_to_string(&repo.key_file).unwrap();
    let secret_line = key_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    let script = key_script(
        &repo,
        &format!(
            "echo 'vault: unlocked' >&2\ncat '{}'",
            repo.key_file.display()
        ),
    );
    let key_cmd = |command: &std::path::Path| {
        without_identity_flag(&repo).env("CASTSYNC_AGE_KEY_CMD", command)
    };
    let no_secret: &[&str] = &[CANARY, &secret_line];
    key_cmd(&script)
        .arg("validate")
        .run()
        .success()
        // The command's stderr passes through.
        .stderr_has("vault: unlocked")
        .no_canary(no_secret);
    // The flag form works too, and a shell pipeline is fine.
    without_identity_flag(&repo)
        .arg("--age-key-cmd")
        .arg(format!("cat '{}' | cat", repo.key_file.display()))
        .args(["show", "alpha"])
        .run()
        .success()
        .no_canary(no_secret);

    let failing = key_script(&repo, "echo 'vault: locked' >&2\nexit 4");
    key_cmd(&failing)
        .arg("validate")
        .run()
        .failure()
        .stderr_has(
            "CASTSYNC_AGE_KEY_CMD failed (exit status 4; its own message, if any, is above)",
        )
        .stderr_has("vault: locked")
        .stderr_has("\n  hint: it must print an identity")
        .no_canary(no_secret);

    let slow = key_script(&repo, "sleep 30");
    key_cmd(&slow)
        .env("CASTSYNC_AGE_KEY_CMD_TIMEOUT", "1")
        .arg("validate")
        .run()
        .failure()
        .stderr_has("did not finish within 1s and was stopped")
        .no_canary(no_secret);

    let garbage = key_script(&repo, "echo not-a-key");
    key_cmd(&garbage)
        .arg("validate")
        .run()
        .failure()
        .stderr_has("CASTSYNC_AGE_KEY_CMD is not a usable identity: line 1 is not an identity")
        .no_canary(no_secret);
}

/// A stand-in for the test plugin: a script named like it, in a directory of its own.
fn fake_plugin(p: &PluginRepo, name: &str, body: &str) -> std::ffi::OsString {
    let dir = p.repo.home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(crate::support::plugin::PLUGIN_BINARY);
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    path_with(&dir)
}

#[test]
fn a_plugin_that_exits_or_prints_garbage_is_blamed_not_the_file() {
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    for (name, body) in [
        ("exits", "exit 3"),
        ("garbage", "printf 'HTTP/1.1 200 OK\\r\\n\\033[2J\\n'"),
        ("half", "printf -- '-> ok\\n'; exit 0"),
    ] {
        let run = p
            .test()
            .env("PATH", fake_plugin(&p, name, body))
            .arg("validate")
            .run()
            .failure()
            .stdout_has("age-plugin-castsynctest")
            .stdout_lacks("not a valid age file")
            .no_canary(&[CANARY]);
        assert!(!run.output().contains('\u{1b}'), "{name}: {}", run.output());
    }
}

#[test]
fn a_plugin_that_never_answers_is_stopped_at_the_run_timeout() {
    let emu = Emulator::start(&["--agents", "alpha"]);
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    let hang = fake_plugin(&p, "hang", "exec sleep 600");
    let started = std::time::Instant::now();
    p.test()
        .env("PATH", &hang)
        .env("CASTARI_API_KEY", "cast_test")
        .args([
            "reconcile",
            "--api-url",
            &emu.url,
            "--yes",
            "--timeout",
            "3s",
        ])
        .timeout(DEADLINE)
        .run()
        .failure()
        .stdout_has("age-plugin-castsynctest did not answer within 3s")
        .no_canary(&[CANARY]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emu.value("alpha", "API_KEY"), None, "nothing applied");
}

#[test]
fn a_key_command_that_leaves_a_background_child_on_its_stdout_answers_at_once() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("API_KEY", CANARY)]);
    // A password manager that starts its agent in the background, stdout inherited (its
    // stderr is not, or the test would wait for the agent to end to read castsync's).
    let script = key_script(
        &repo,
        &format!(
            "cat '{}'\n(sleep 40) 2>/dev/null &",
            repo.key_file.display()
        ),
    );
    let started = std::time::Instant::now();
    without_identity_flag(&repo)
        .env("CASTSYNC_AGE_KEY_CMD", &script)
        .env("CASTSYNC_AGE_KEY_CMD_TIMEOUT", "3")
        .args(["show", "alpha"])
        .timeout(DEADLINE)
        .run()
        .success()
        .stdout_has("API_KEY")
        .no_canary(&[CANARY]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Encryption is bounded too: a plugin recipient's program that never answers fails
/// `castsync new` after the plugin time limit, naming the program, and writes nothing.
#[test]
fn a_plugin_that_never_answers_while_encrypting_is_stopped_and_named() {
    let p = PluginRepo::new(false);
    let hang = fake_plugin(&p, "hang", "exec sleep 600");
    let started = std::time::Instant::now();
    p.test()
        .env("PATH", &hang)
        .args(["new", "beta"])
        .timeout(DEADLINE + Duration::from_secs(30))
        .run()
        .failure()
        .stderr_has("age-plugin-castsynctest did not answer within 60s");
    assert!(
        started.elapsed() < DEADLINE + Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !p.repo.path("agents/beta/secrets.yaml.age").exists(),
        "no manifest was written"
    );
}
