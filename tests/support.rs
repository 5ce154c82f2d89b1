//! Shared test helpers: [`Test`], the fluent builder most tests use; the [`Command`] wrapper
//! beneath it (every run checked for a panic); a running emulator.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

pub mod forge;
pub mod git_http;
pub mod plugin;
pub mod pty;
mod repo;
mod silent;
mod test;
pub mod tls;
pub mod tools;
pub use repo::{SecretsRepo, set_private};
pub use silent::Silent;
pub use test::{Run, Test};
pub use tools::{skip, tool, tools};

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_castsync"))
}

/// The binary with a hermetic environment: no inherited castsync/Castari variables, HOME
/// and XDG dirs pointing into `home` (so no real identity is picked up), no colour.
pub fn castsync(home: &Path) -> Command {
    Command(assert_cmd::Command::from_std(castsync_std(home)))
}

/// Fails the test when a run's stderr shows a panic: a panic is a bug, whatever the exit code
/// the test expected. Every run through [`Command`] (and the emulator's and daemon's logs)
/// passes through here.
pub fn assert_no_panic(what: &str, stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.contains("panicked"), "{what} panicked:\n{text}");
}

/// `assert_cmd::Command` whose every run is checked with [`assert_no_panic`]. It offers the
/// builder methods the tests use; each returns this type, so a run can never bypass the
/// check through `Deref`.
pub struct Command(assert_cmd::Command);

impl Command {
    /// Any program (git running castsync as its driver, say), checked the same way.
    pub fn new(program: impl AsRef<std::ffi::OsStr>) -> Command {
        Command(assert_cmd::Command::new(program))
    }

    pub fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.0.args(args);
        self
    }

    pub fn env(
        &mut self,
        key: impl AsRef<std::ffi::OsStr>,
        value: impl AsRef<std::ffi::OsStr>,
    ) -> &mut Self {
        self.0.env(key, value);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.env_remove(key);
        self
    }

    pub fn env_clear(&mut self) -> &mut Self {
        self.0.env_clear();
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.0.current_dir(dir);
        self
    }

    pub fn write_stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut Self {
        self.0.write_stdin(input);
        self
    }

    pub fn timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        self.0.timeout(timeout);
        self
    }

    /// Runs the command; its stderr is checked for a panic.
    pub fn output(&mut self) -> std::io::Result<std::process::Output> {
        let out = self.0.output()?;
        assert_no_panic("castsync", &out.stderr);
        Ok(out)
    }

    /// Runs the command for `assert_cmd`'s assertions; its stderr is checked for a panic.
    pub fn assert(&mut self) -> assert_cmd::assert::Assert {
        use assert_cmd::assert::OutputAssertExt as _;
        self.output().expect("run castsync").assert()
    }
}

/// [`castsync`] as a plain `std::process::Command`, for tests that need what assert_cmd does
/// not offer (a process group of its own, signals).
pub fn castsync_std(home: &Path) -> StdCommand {
    let mut cmd = StdCommand::new(bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CASTSYNC_") || k.starts_with("CASTARI_") || k == "EDITOR" || k == "VISUAL"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("NO_COLOR", "1");
    cmd
}

/// The emulator's wire profiles (`castsync emulator --wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Exactly the SDK's shapes: unpaged `{"secrets":[{"key"}]}`, no timestamps.
    Sdk,
    /// The docs' variant: paged, timestamped.
    Docs,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Sdk => "sdk",
            Wire::Docs => "docs",
        }
    }
}

/// Generates, for each named `fn NAME(wire: Wire)`, one `#[test]` per wire profile:
/// `sdk::NAME` and `docs::NAME`.
#[macro_export]
macro_rules! on_both_wires {
    ($($name:ident),* $(,)?) => {
        mod sdk {
            $( #[test] fn $name() { super::$name($crate::support::Wire::Sdk) } )*
        }
        mod docs {
            $( #[test] fn $name() { super::$name($crate::support::Wire::Docs) } )*
        }
    };
}

/// A running `castsync emulator` on 127.0.0.1 with a free port; killed on drop.
pub struct Emulator {
    child: Child,
    pub url: String,
    /// The stderr log of [`Emulator::start`], checked for a panic on drop.
    log: Option<tempfile::NamedTempFile>,
}

impl Emulator {
    /// Starts the emulator with extra flags (e.g. `["--agents", "a,b"]`). Its stderr goes to
    /// a temporary log that is checked for a panic when the emulator is dropped.
    pub fn start(args: &[&str]) -> Emulator {
        let log = tempfile::NamedTempFile::new().expect("emulator log");
        let file = log.reopen().expect("reopen the emulator log");
        let mut emulator = Emulator::spawn(args, Stdio::from(file));
        emulator.log = Some(log);
        emulator
    }

    /// Starts the emulator speaking `wire`, with extra flags.
    pub fn on(wire: Wire, args: &[&str]) -> Emulator {
        let mut all = vec!["--wire", wire.name()];
        all.extend_from_slice(args);
        Emulator::start(&all)
    }

    /// Successful redeploys of `agent`.
    pub fn redeploys(&self, agent: &str) -> u64 {
        self.stats()["redeploys"][agent].as_u64().unwrap_or(0)
    }

    /// Pins a fault: `agent`'s calls (with `method` and on `route`, when given) answer
    /// `status` until [`Emulator::clear_faults`].
    pub fn pin_fault(&self, agent: &str, method: Option<&str>, route: Option<&str>, status: u16) {
        let mut body = serde_json::json!({ "agent": agent, "status": status });
        if let Some(m) = method {
            body["method"] = m.into();
        }
        if let Some(r) = route {
            body["route"] = r.into();
        }
        let reply = self.post_json("/_emulator/faults", body);
        assert!(reply.is_success(), "pinning a fault: {reply}");
    }

    /// Pins a delay: `agent`'s calls with `method` are served, and their replies held back
    /// `ms` milliseconds.
    pub fn pin_delay(&self, agent: &str, method: &str, ms: u64) {
        let body = serde_json::json!({ "agent": agent, "method": method, "delay_ms": ms });
        let reply = self.post_json("/_emulator/faults", body);
        assert!(reply.is_success(), "pinning a delay: {reply}");
    }

    pub fn clear_faults(&self) {
        self.request("DELETE", "/_emulator/faults", None, None);
    }

    /// Starts the emulator with its stderr (logs) going to `stderr`.
    fn spawn(args: &[&str], stderr: Stdio) -> Emulator {
        let mut child = StdCommand::new(bin())
            .arg("emulator")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn castsync emulator");
        let url = first_line_url(&mut child);
        Emulator {
            child,
            url,
            log: None,
        }
    }

    /// Raw JSON from an admin or API route, with a bearer token.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        block_on(async {
            reqwest::Client::new()
                .get(format!("{}{}", self.url, path))
                .bearer_auth("cast_test")
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON body")
        })
    }

    pub fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::StatusCode {
        block_on(async {
            reqwest::Client::new()
                .post(format!("{}{}", self.url, path))
                .bearer_auth("cast_test")
                .json(&body)
                .send()
                .await
                .expect("POST")
                .status()
        })
    }

    /// `GET /_emulator/stats`.
    pub fn stats(&self) -> serde_json::Value {
        self.get_json("/_emulator/stats")
    }

    /// Number of /api/v1 requests with this method since start or the last reset.
    pub fn requests(&self, method: &str) -> u64 {
        self.stats()["requests"][method].as_u64().unwrap_or(0)
    }

    pub fn reset_stats(&self) {
        self.post_json("/_emulator/stats/reset", serde_json::json!({}));
    }

    /// The stored value of a key (admin readback), or None when absent.
    pub fn value(&self, agent: &str, key: &str) -> Option<String> {
        let v = self.get_json(&format!("/_emulator/agents/{agent}/secrets/{key}"));
        v.get("value").and_then(|v| v.as_str()).map(str::to_owned)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the emulator with its stderr (logs) going to `log`.
    pub fn start_logging(args: &[&str], log: &Path) -> Emulator {
        let log = std::fs::File::create(log).expect("create the emulator log");
        Emulator::spawn(args, Stdio::from(log))
    }

    /// Sends `signal` (e.g. "TERM") and waits for the emulator to exit.
    pub fn terminate(mut self, signal: &str) -> std::process::ExitStatus {
        send_signal(self.child.id(), signal);
        self.child.wait().expect("wait for the emulator")
    }

    /// Deletes `agent`'s `key` through the API, as someone outside git would: drift for the
    /// next full reconcile to heal.
    pub fn delete_out_of_band(&self, agent: &str, key: &str) -> ApiReply {
        let path = format!("/api/v1/agents/{agent}/secrets/{key}");
        let gone = self.request("DELETE", &path, Some("cast_test"), None);
        assert!(gone.status < 300, "deleting {agent}/{key}: {gone:?}");
        gone
    }

    /// One raw HTTP call: `bearer` None sends no Authorization header.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> ApiReply {
        block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = reqwest::Client::new().request(method, format!("{}{}", self.url, path));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.expect("body");
            ApiReply {
                status,
                headers,
                text,
            }
        })
    }
}

/// A raw HTTP reply from [`Emulator::request`].
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl ApiReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn first_line_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the emulator's first line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the emulator: {line:?}"))
        .to_owned()
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(log) = &self.log
            && !std::thread::panicking()
        {
            let text = std::fs::read(log.path()).unwrap_or_default();
            assert_no_panic("the emulator", &text);
        }
    }
}

/// Sends `signal` (e.g. "TERM") to `pid` with the shell's `kill` builtin: `sh` is on every
/// machine, the `kill` program (procps) is not.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = StdCommand::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal])
        .arg(pid.to_string())
        .status()
        .expect("run sh -c kill");
    assert!(sent.success(), "kill -s {signal} {pid} failed");
}

/// Runs a future to completion on a fresh current-thread runtime (for sync tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Asserts that none of `canaries` occurs in `haystack`; `what` names the output in the panic.
pub fn assert_no_canary(what: &str, haystack: &str, canaries: &[&str]) {
    for c in canaries {
        assert!(
            !haystack.contains(c),
            "canary {c:?} leaked into {what}:\n{haystack}"
        );
    }
}

/// Runs a command: `(exit code, stdout, stderr)`; -1 when it died of a signal. Its stderr is
/// checked for a panic.
pub fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run castsync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Validates a `reconcile --output json` document against `schemas/plan.schema.json`.
pub fn assert_plan_schema(plan: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/plan.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator.iter_errors(plan).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{plan:#}");
}
