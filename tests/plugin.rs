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
    fn cmd(&self) -> Command {
        let mut c = castsync(&self.repo.home);
        c.arg("-C")
            .arg(&self.repo.root)
            .arg("-i")
            .arg(&self.identity_file)
            .env("PATH", &self.path)
            .env("CASTSYNC_TEST_PLUGIN_LOG", &self.log);
        c
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
        let new = outcome(self.cmd().args(["new", agent]));
        assert_eq!(new.0, 0, "{}\n{}", new.1, new.2);
        self.repo.schema(agent, &format!("{key}=placeholder\n"));
        let set = outcome(self.cmd().args(["set", agent, key]).write_stdin(value));
        assert_eq!(set.0, 0, "{}\n{}", set.1, set.2);
    }
}

fn both(out: &(i32, String, String)) -> String {
    format!("{}\n{}", out.1, out.2)
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
    let native = outcome(p.repo.cmd().arg("validate"));
    assert_eq!(native.0, 1, "{}", both(&native));
    assert!(native.1.contains("none of your identities"), "{}", native.1);

    let validate = outcome(p.cmd().arg("validate"));
    assert_eq!(validate.0, 0, "{}", both(&validate));
    assert!(
        validate
            .2
            .contains("age-plugin-castsynctest: touch the castsynctest key"),
        "the plugin's message is shown: {}",
        validate.2
    );
    let show = outcome(p.cmd().args(["show", "alpha"]));
    assert!(show.1.contains("API_KEY: \"<hidden>\""), "{}", show.1);

    let reconcile = outcome(p.cmd().env("CASTARI_API_KEY", "cast_test").args([
        "reconcile",
        "--api-url",
        &emu.url,
    ]));
    assert_eq!(reconcile.0, 0, "{}", both(&reconcile));
    assert_eq!(emu.value("alpha", "API_KEY").as_deref(), Some(CANARY));
    for out in [&native, &validate, &show, &reconcile] {
        assert_no_canary("plugin run", &both(out), &[CANARY]);
    }
}

#[test]
fn a_file_for_a_plugin_and_a_native_key_opens_with_either_and_the_plugin_is_not_asked() {
    let p = PluginRepo::new(true);
    p.agent("alpha", "API_KEY", CANARY);
    let before = p.calls("unwrap");
    // The native key is tried first: the plugin (which might want a touch) is not asked.
    let native = outcome(p.repo.cmd().env("PATH", &p.path).arg("validate"));
    assert_eq!(native.0, 0, "{}", both(&native));
    let both_keys = outcome(p.cmd().arg("-i").arg(&p.repo.key_file).arg("validate"));
    assert_eq!(both_keys.0, 0, "{}", both(&both_keys));
    assert_eq!(p.calls("unwrap"), before);
    let plugin_only = outcome(p.cmd().arg("validate"));
    assert_eq!(plugin_only.0, 0, "{}", both(&plugin_only));
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
    let plan = outcome(p.cmd().env("CASTARI_API_KEY", "cast_test").args([
        "reconcile",
        "--dry-run",
        "--base",
        "HEAD",
        "--api-url",
        &emu.url,
    ]));
    assert_eq!(plan.0, 0, "{}", both(&plan));
    assert_eq!(p.calls("unwrap"), 3, "{}", both(&plan));
    assert_no_canary("plan", &both(&plan), &[CANARY]);
}

#[test]
fn a_missing_plugin_program_is_named_when_encrypting_and_when_decrypting() {
    let p = PluginRepo::new(false);
    p.agent("alpha", "API_KEY", CANARY);
    let bare_path = std::env::var_os("PATH").unwrap_or_default();

    let validate = outcome(p.cmd().env("PATH", &bare_path).arg("validate"));
    assert_eq!(validate.0, 1, "{}", both(&validate));
    assert!(
        validate.1.contains(
            "age-plugin-castsynctest is not on PATH, and it is needed for your plugin identity"
        ),
        "{}",
        validate.1
    );
    let new = outcome(p.repo.cmd().env("PATH", &bare_path).args(["new", "beta"]));
    assert_eq!(new.0, 1, "{}", both(&new));
    assert!(
        new.2.contains(
            "age-plugin-castsynctest is not on PATH, and it is needed for recipient age1castsynctest1… in castsync.yaml"
        ),
        "{}",
        new.2
    );
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

fn without_identity_flag(repo: &SecretsRepo) -> Command {
    let mut c = castsync(&repo.home);
    c.arg("-C").arg(&repo.root);
    c
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
    let ok = outcome(
        without_identity_flag(&repo)
            .env("CASTSYNC_AGE_KEY_CMD", &script)
            .arg("validate"),
    );
    assert_eq!(ok.0, 0, "{}", both(&ok));
    assert!(
        ok.2.contains("vault: unlocked"),
        "stderr passes through: {}",
        ok.2
    );
    // The flag form works too, and a shell pipeline is fine.
    let flag = outcome(
        without_identity_flag(&repo)
            .arg("--age-key-cmd")
            .arg(format!("cat '{}' | cat", repo.key_file.display()))
            .args(["show", "alpha"]),
    );
    assert_eq!(flag.0, 0, "{}", both(&flag));

    let failing = key_script(&repo, "echo 'vault: locked' >&2\nexit 4");
    let failed = outcome(
        without_identity_flag(&repo)
            .env("CASTSYNC_AGE_KEY_CMD", &failing)
            .arg("validate"),
    );
    assert_eq!(failed.0, 1, "{}", both(&failed));
    assert!(
        failed.2.contains(
            "CASTSYNC_AGE_KEY_CMD failed (exit status 4; its own message, if any, is above)"
        ),
        "{}",
        failed.2
    );
    assert!(failed.2.contains("vault: locked"), "{}", failed.2);

    let slow = key_script(&repo, "sleep 30");
    let timed_out = outcome(
        without_identity_flag(&repo)
            .env("CASTSYNC_AGE_KEY_CMD", &slow)
            .env("CASTSYNC_AGE_KEY_CMD_TIMEOUT", "1")
            .arg("validate"),
    );
    assert_eq!(timed_out.0, 1, "{}", both(&timed_out));
    assert!(
        timed_out
            .2
            .contains("did not finish within 1s and was stopped"),
        "{}",
        timed_out.2
    );

    let garbage = key_script(&repo, "echo not-a-key");
    let bad = outcome(
        without_identity_flag(&repo)
            .env("CASTSYNC_AGE_KEY_CMD", &garbage)
            .arg("validate"),
    );
    assert_eq!(bad.0, 1, "{}", both(&bad));
    assert!(
        bad.2
            .contains("CASTSYNC_AGE_KEY_CMD is not a usable identity: line 1 is not an identity"),
        "{}",
        bad.2
    );
    for out in [&ok, &flag, &failed, &timed_out, &bad] {
        assert_no_canary("key cmd", &both(out), &[CANARY, &secret_line]);
    }
}
