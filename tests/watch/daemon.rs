//! A running `castsync watch` for tests: hermetic environment, logs to a file, the HTTP
//! address read from its first stdout line; killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{SecretsRepo, bin, block_on, send_signal};

pub const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

/// `castsync -i KEY watch …` for `repo`'s identity, with a clean environment and the
/// emulator's API key.
pub fn watch_command(repo: &SecretsRepo) -> StdCommand {
    let mut cmd = StdCommand::new(bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CASTSYNC_") || k.starts_with("CASTARI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", &repo.home)
        .env("XDG_CONFIG_HOME", repo.home.join(".config"))
        .env("XDG_STATE_HOME", repo.home.join(".local/state"))
        .env("NO_COLOR", "1")
        .env("CASTARI_API_KEY", "cast_test")
        .env("CASTSYNC_LOG", "info")
        .arg("-i")
        .arg(&repo.key_file);
    cmd
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `deadline`.
pub fn eventually(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` (a `watch` command line with `--listen 127.0.0.1:0` added here).
    pub fn start(mut cmd: StdCommand, log: &Path) -> Daemon {
        let log_file = std::fs::File::create(log).expect("create the daemon log");
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn castsync watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the daemon's first line");
        let url = match line.trim().strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let logged = std::fs::read_to_string(log).unwrap_or_default();
                panic!("castsync watch did not start: {line:?}\n{logged}");
            }
        };
        Daemon {
            child: Some(child),
            url,
            log: log.to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        block_on(async {
            let resp = reqwest::get(format!("{}{path}", self.url))
                .await
                .expect("GET the daemon");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("body"))
        })
    }

    pub fn readyz(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.get("/readyz");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        // Every answer, ready or not, matches the published schema.
        let errors: Vec<String> = readyz_schema()
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "/readyz: {errors:#?}\n{json:#}");
        (status, json)
    }

    /// POSTs `body` to /hooks/git, signed with `secret` when given.
    pub fn webhook(&self, body: &str, secret: Option<&str>) -> u16 {
        let signature = secret.map(|s| {
            castsync::daemon::WebhookSecret::new(s.as_bytes().to_vec()).sign(body.as_bytes())
        });
        block_on(async {
            let mut req = reqwest::Client::new()
                .post(format!("{}/hooks/git", self.url))
                .header("X-GitHub-Event", "push")
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(sig) = signature {
                req = req.header("X-Hub-Signature-256", sig);
            }
            req.send()
                .await
                .expect("POST the webhook")
                .status()
                .as_u16()
        })
    }

    /// A signed push notification for `main`, as GitHub would send it.
    pub fn push(&self) -> u16 {
        self.webhook(r#"{"ref":"refs/heads/main"}"#, Some(WEBHOOK_SECRET))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running").id(), signal);
    }

    /// Waits for the process to exit, at most `deadline`.
    pub fn wait_exit(mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "castsync watch did not exit within {deadline:?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let log = std::fs::read(&self.log).unwrap_or_default();
            crate::support::assert_no_panic("the daemon", &log);
        }
    }
}

/// schemas/readyz.schema.json, compiled once.
fn readyz_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/readyz.schema.json"
        ))
        .expect("read schemas/readyz.schema.json");
        let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("compile the schema")
    })
}
