//! The ways castsync is installed: `scripts/install.sh` (people's `curl | sh`, and the GitHub
//! Action's install) against a fake release served on loopback from the real archive that
//! `scripts/build-release` made, the Action's steps run as GitHub runs them, the container
//! image's build context, and what the crate package ships.
//!
//! The install tests need that archive: `.ci/run` builds it before the tests
//! (`scripts/build-release --target x86_64-unknown-linux-musl`); elsewhere a test without it
//! prints one `skipped:` line (and fails with `CI` set).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::sync::{Arc, Mutex};

use crate::support::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The release target of the machine the tests run on.
fn host_target() -> String {
    format!("{}-unknown-linux-musl", std::env::consts::ARCH)
}

fn archive_name() -> String {
    format!("castsync-{VERSION}-{}.tar.gz", host_target())
}

/// The archive scripts/build-release made for this machine (in `dist/`, or the directory
/// `CASTSYNC_DIST` names), or None after a `skipped:` line.
fn built_archive() -> Option<PathBuf> {
    let dist = std::env::var_os("CASTSYNC_DIST").map_or_else(|| root().join("dist"), PathBuf::from);
    let archive = dist.join(archive_name());
    if archive.is_file() {
        return Some(archive);
    }
    skip(&format!(
        "{} (scripts/build-release --target {})",
        archive.display(),
        host_target()
    ));
    None
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An HTTP server on loopback that answers GETs from a fixed table of paths: a release laid
/// out as GitHub serves it. It records every path asked for.
struct FakeRelease {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
}

enum Answer {
    File(Vec<u8>),
    Redirect(String),
}

impl FakeRelease {
    /// `releases/download/vVERSION/{archive, SHA256SUMS}` and the `releases/latest` redirect,
    /// under `/castsync/castsync/`. `sums` is the SHA256SUMS text to serve.
    fn start(archive: &[u8], sums: String) -> FakeRelease {
        let base = "/castsync/castsync/releases";
        let mut table = BTreeMap::new();
        let download = format!("{base}/download/v{VERSION}");
        table.insert(
            format!("{download}/{}", archive_name()),
            Answer::File(archive.to_vec()),
        );
        table.insert(
            format!("{download}/SHA256SUMS"),
            Answer::File(sums.into_bytes()),
        );
        table.insert(
            format!("{base}/latest"),
            Answer::Redirect(format!("{base}/tag/v{VERSION}")),
        );
        table.insert(
            format!("{base}/tag/v{VERSION}"),
            Answer::File(b"the release page".to_vec()),
        );
        // The release workflow attaches the install script to every release.
        let script = std::fs::read(root().join("scripts/install.sh")).unwrap();
        table.insert(
            format!("{base}/latest/download/install.sh"),
            Answer::File(script),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The rest of the head; curl sends no body with a GET.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(path.clone());
                let reply = match table.get(&path) {
                    Some(Answer::File(body)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    Some(Answer::Redirect(to)) => format!(
                        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .into_bytes(),
                    None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nNot Found"
                        .to_vec(),
                };
                let _ = stream.write_all(&reply);
            }
        });
        FakeRelease { url, asked }
    }

    /// The fake release of the real archive, with the SHA256SUMS line build-release wrote.
    fn of(archive: &Path) -> FakeRelease {
        let bytes = std::fs::read(archive).expect("read the archive");
        let sums = std::fs::read_to_string(archive.with_file_name("SHA256SUMS"))
            .expect("build-release writes SHA256SUMS beside the archive");
        let line = sums
            .lines()
            .find(|l| l.ends_with(&format!("  {}", archive_name())))
            .expect("SHA256SUMS lists the archive");
        assert_eq!(line.split(' ').next(), Some(sha256_hex(&bytes).as_str()));
        FakeRelease::start(&bytes, format!("{line}\n"))
    }

    fn releases(&self) -> String {
        format!("{}/castsync/castsync/releases", self.url)
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// Runs scripts/install.sh with `args`, HOME in `home`, the fake release as the source and
/// `path_first` (if any) ahead of PATH.
fn install(release: &FakeRelease, home: &Path, path_first: Option<&Path>, args: &[&str]) -> Output {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = match path_first {
        Some(dir) => std::env::join_paths(
            std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .unwrap(),
        None => path,
    };
    StdCommand::new("sh")
        .arg(root().join("scripts/install.sh"))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("CASTSYNC_RELEASES_URL", release.releases())
        .output()
        .expect("run install.sh")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn install_script_installs_the_release_archive_after_checking_its_checksum() {
    let (Some(archive), Some(_)) = (built_archive(), tool("curl")) else {
        return;
    };
    let release = FakeRelease::of(&archive);
    let home = tempfile::tempdir().unwrap();
    let out = install(&release, home.path(), None, &["--version", VERSION]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let installed = home.path().join(".local/bin/castsync");
    assert!(
        stderr.contains(&format!(
            "installed castsync {VERSION} ({}, sha256 verified) as {}",
            host_target(),
            installed.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("is not on PATH"), "{stderr}");
    let version = StdCommand::new(&installed)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("castsync {VERSION}")
    );
    // What was installed is the archive's binary, byte for byte.
    let unpacked = tempfile::tempdir().unwrap();
    let status = StdCommand::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(status.success());
    let inner = unpacked
        .path()
        .join(archive_name().trim_end_matches(".tar.gz"))
        .join("castsync");
    assert_eq!(
        std::fs::read(&inner).unwrap(),
        std::fs::read(&installed).unwrap()
    );
    for file in ["LICENSE", "README.md"] {
        assert!(
            inner.with_file_name(file).is_file(),
            "the archive has {file}"
        );
    }
}

#[test]
fn install_script_refuses_an_archive_whose_checksum_does_not_match_and_installs_nothing() {
    let (Some(archive), Some(_)) = (built_archive(), tool("curl")) else {
        return;
    };
    // The real archive, one byte changed on the way (SHA256SUMS still names the real one).
    let mut bytes = std::fs::read(&archive).unwrap();
    let real = sha256_hex(&bytes);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = sha256_hex(&bytes);
    let release = FakeRelease::start(&bytes, format!("{real}  {}\n", archive_name()));
    let home = tempfile::tempdir().unwrap();
    let out = install(
        &release,
        home.path(),
        None,
        &["--version", &format!("v{VERSION}")],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: checksum mismatch for {}: SHA256SUMS says {real}, the download is {tampered}",
            archive_name()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: nothing was installed"), "{stderr}");
    assert!(
        !home.path().join(".local/bin").exists(),
        "nothing installed"
    );
}

#[test]
fn install_script_refuses_a_release_whose_sha256sums_does_not_list_the_archive() {
    let (Some(archive), Some(_)) = (built_archive(), tool("curl")) else {
        return;
    };
    let bytes = std::fs::read(&archive).unwrap();
    let other = format!("{}  castsync-{VERSION}-other.tar.gz\n", sha256_hex(&bytes));
    let release = FakeRelease::start(&bytes, other);
    let home = tempfile::tempdir().unwrap();
    let out = install(&release, home.path(), None, &["--version", VERSION]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: SHA256SUMS of v{VERSION} has no line for {}",
            archive_name()
        )),
        "{stderr}"
    );
    assert!(!home.path().join(".local/bin").exists());
}

/// A directory holding a `uname` that answers `-s` with `os` and `-m` with `arch`.
fn fake_uname(os: &str, arch: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let uname = dir.path().join("uname");
    std::fs::write(
        &uname,
        format!("#!/bin/sh\ncase $1 in -s) echo {os} ;; -m) echo {arch} ;; *) exit 1 ;; esac\n"),
    )
    .unwrap();
    std::fs::set_permissions(&uname, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn install_script_names_a_platform_it_has_no_release_for_and_downloads_nothing() {
    let release = FakeRelease::start(b"unused", String::new());
    let home = tempfile::tempdir().unwrap();
    for (os, arch) in [
        ("FreeBSD", "amd64"),
        ("Linux", "riscv64"),
        ("MINGW64_NT-10.0", "x86_64"),
    ] {
        let uname = fake_uname(os, arch);
        let out = install(
            &release,
            home.path(),
            Some(uname.path()),
            &["--version", VERSION],
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{os} {arch}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: no castsync release for this platform ({os} {arch})"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("cargo install --locked castsync"),
            "{stderr}"
        );
    }
    assert!(release.asked().is_empty(), "{:?}", release.asked());
    // The targets it does know, as the Action asks for them.
    for (os, arch, target) in [
        ("Linux", "x86_64", "x86_64-unknown-linux-musl"),
        ("Linux", "aarch64", "aarch64-unknown-linux-musl"),
        ("Darwin", "arm64", "aarch64-apple-darwin"),
        ("Darwin", "x86_64", "x86_64-apple-darwin"),
    ] {
        let uname = fake_uname(os, arch);
        let out = install(
            &release,
            home.path(),
            Some(uname.path()),
            &["--print-target"],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), target);
    }
}

#[test]
fn install_script_finds_the_latest_release_through_the_releases_redirect() {
    let (Some(archive), Some(_)) = (built_archive(), tool("curl")) else {
        return;
    };
    let release = FakeRelease::of(&archive);
    let home = tempfile::tempdir().unwrap();
    let bin_dir = home.path().join("bin");
    let out = install(
        &release,
        home.path(),
        None,
        &["--bin-dir", bin_dir.to_str().unwrap()],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(bin_dir.join("castsync").is_file());
    assert_eq!(
        release.asked()[..2],
        [
            "/castsync/castsync/releases/latest".to_owned(),
            format!("/castsync/castsync/releases/tag/v{VERSION}")
        ]
    );
}

#[test]
fn install_script_says_which_release_is_missing() {
    let Some(_) = tool("curl") else { return };
    let release = FakeRelease::start(b"unused", String::new());
    let home = tempfile::tempdir().unwrap();
    let out = install(&release, home.path(), None, &["--version", "v9.9.9"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot download SHA256SUMS of v9.9.9 from {}/download/v9.9.9/",
            release.releases()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check that release v9.9.9 exists"),
        "{stderr}"
    );
    let out = install(&release, home.path(), None, &["--version", "nightly"]);
    assert!(text(&out).1.contains("error: not a version: nightly"));
}

/// A GitHub runner for action.yml's steps: its `run:` steps are run as GitHub runs a `bash`
/// step (`bash --noprofile --norc -eo pipefail FILE`), with the `${{ }}` expressions of their
/// `env:`, `if:` and `working-directory:` evaluated from `inputs`, `github.*`, `runner.*` and
/// the outputs of earlier steps. `actions/cache` always misses (a first run). An expression
/// the runner does not know fails the test, so a change to action.yml cannot slip past it.
struct ActionRun {
    dir: tempfile::TempDir,
    values: BTreeMap<String, String>,
    log: String,
    /// The exit code of the first failing step, or 0.
    code: i32,
}

impl ActionRun {
    fn new(release: &FakeRelease, action_ref: &str, inputs: &[(&str, &str)]) -> ActionRun {
        let dir = tempfile::tempdir().unwrap();
        let mut values = BTreeMap::from([
            ("github.action_ref".to_owned(), action_ref.to_owned()),
            (
                "github.action_repository".to_owned(),
                "castsync/castsync".to_owned(),
            ),
            ("github.server_url".to_owned(), release.url.clone()),
            ("inputs.version".to_owned(), String::new()),
            ("inputs.command".to_owned(), String::new()),
            ("inputs.working-directory".to_owned(), ".".to_owned()),
        ]);
        for (k, v) in inputs {
            values.insert(format!("inputs.{k}"), (*v).to_owned());
        }
        ActionRun {
            dir,
            values,
            log: String::new(),
            code: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `text` with every `${{ expr }}` replaced (expressions are plain lookups, or `A != 'B'`).
    fn eval(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("closed expression") + start;
            out.push_str(&self.value(rest[start + 3..end].trim()));
            rest = &rest[end + 2..];
        }
        out + rest
    }

    fn value(&self, expr: &str) -> String {
        if let Some((left, right)) = expr.split_once("!=") {
            let right = right.trim().trim_matches('\'');
            return (self.value(left.trim()) != right).to_string();
        }
        self.values
            .get(expr)
            .cloned()
            .unwrap_or_else(|| panic!("the test's runner does not know the expression {expr:?}"))
    }

    /// Runs every step up to the first that fails (its exit code is `code`).
    fn run(&mut self) {
        let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
        let action: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
        let tool_cache = self.path("tool-cache");
        self.values.insert(
            "runner.tool_cache".to_owned(),
            tool_cache.display().to_string(),
        );
        for step in action["runs"]["steps"].as_sequence().unwrap() {
            if let Some(cond) = step["if"].as_str()
                && self.value(cond) != "true"
            {
                continue;
            }
            if let Some(uses) = step["uses"].as_str() {
                assert!(uses.starts_with("actions/cache@"), "unexpected step {uses}");
                let id = step["id"].as_str().unwrap();
                self.values
                    .insert(format!("steps.{id}.outputs.cache-hit"), "false".to_owned());
                continue;
            }
            self.code = self.run_step(step, &tool_cache);
            if self.code != 0 {
                return;
            }
        }
    }

    fn run_step(&mut self, step: &serde_yaml::Value, tool_cache: &Path) -> i32 {
        let script = step["run"].as_str().expect("a run step");
        // Inputs reach the scripts through env: only (no expression inside a script).
        assert!(
            !script.contains("${{"),
            "an expression inside run:\n{script}"
        );
        assert_eq!(step["shell"].as_str(), Some("bash"));
        let file = self.path("step.sh");
        std::fs::write(&file, script).unwrap();
        let output = self.path("github-output");
        std::fs::write(&output, "").unwrap();
        let cwd = step["working-directory"].as_str().map_or_else(
            || self.dir.path().to_path_buf(),
            |d| PathBuf::from(self.eval(d)),
        );
        let mut cmd = StdCommand::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_PATH", self.path("github-path"))
            .env("GITHUB_ACTION_PATH", root())
            .env("RUNNER_TOOL_CACHE", tool_cache);
        if let Some(env) = step["env"].as_mapping() {
            for (k, v) in env {
                cmd.env(k.as_str().unwrap(), self.eval(v.as_str().unwrap()));
            }
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        self.log.push_str(&format!("{stdout}{stderr}"));
        if let Some(id) = step["id"].as_str() {
            for line in std::fs::read_to_string(&output).unwrap().lines() {
                let (k, v) = line.split_once('=').expect("key=value");
                self.values
                    .insert(format!("steps.{id}.outputs.{k}"), v.to_owned());
            }
        }
        out.status.code().unwrap_or(-1)
    }
}

/// A copy of the demo repository, its identity private, in `dir`.
fn demo_copy(dir: &Path) -> PathBuf {
    let demo = dir.join("demo");
    let status = StdCommand::new("cp")
        .arg("-R")
        .arg(root().join("examples/demo"))
        .arg(&demo)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(demo.join(".castsync"));
    set_private(&demo.join("DEMO-ONLY-identity.txt"));
    demo
}

/// The Action, used at `action_ref` with `inputs`, run on a copy of the demo repository (the
/// working directory) against a fake release of the built archive; None when skipped.
fn action_on_demo(action_ref: &str, inputs: &[(&str, &str)]) -> Option<(FakeRelease, ActionRun)> {
    let (Some(archive), Some(_)) = (built_archive(), tool("curl")) else {
        return None;
    };
    let release = FakeRelease::of(&archive);
    let work = tempfile::tempdir().unwrap();
    let demo = demo_copy(work.path());
    let mut inputs = inputs.to_vec();
    inputs.push(("working-directory", demo.to_str().unwrap()));
    let mut action = ActionRun::new(&release, action_ref, &inputs);
    action.run();
    Some((release, action))
}

#[test]
fn the_action_installs_the_release_of_its_own_tag_and_runs_the_command() {
    let tag = format!("v{VERSION}");
    let command = ("command", "-i DEMO-ONLY-identity.txt validate");
    let Some((release, action)) = action_on_demo(&tag, &[command]) else {
        return;
    };
    assert_eq!(action.code, 0, "{}", action.log);
    assert!(action.log.contains("ok: 3 agents valid"), "{}", action.log);
    let bin_dir = action.path(&format!("tool-cache/castsync/{VERSION}/{}", host_target()));
    assert!(bin_dir.join("castsync").is_file());
    assert_eq!(
        std::fs::read_to_string(action.path("github-path")).unwrap(),
        format!("{}\n", bin_dir.display())
    );
    // The cache key names the version and the platform.
    assert_eq!(action.value("steps.plan.outputs.version"), VERSION);
    assert_eq!(action.value("steps.plan.outputs.target"), host_target());
    assert!(release.asked().contains(&format!(
        "/castsync/castsync/releases/download/v{VERSION}/SHA256SUMS"
    )));
}

#[test]
fn the_action_fails_the_step_when_the_command_fails() {
    let version = format!("v{VERSION}");
    let inputs = [
        ("version", version.as_str()),
        (
            "command",
            "-i DEMO-ONLY-identity.txt validate no-such-agent",
        ),
    ];
    let Some((_, action)) = action_on_demo("main", &inputs) else {
        return;
    };
    assert_eq!(action.code, 1, "{}", action.log);
    assert!(action.log.contains("no-such-agent"), "{}", action.log);
}

#[test]
fn the_action_at_a_branch_without_a_version_says_what_to_pin() {
    let release = FakeRelease::start(b"unused", String::new());
    let mut action = ActionRun::new(&release, "main", &[]);
    action.run();
    assert_eq!(action.code, 1, "{}", action.log);
    assert!(
        action.log.contains(
            "::error title=castsync::no castsync version to install: the action is used at 'main', which is not a release tag"
        ),
        "{}",
        action.log
    );
    assert!(release.asked().is_empty());
}

#[test]
fn the_crate_package_ships_what_the_build_needs_and_no_tests_or_fixtures() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = StdCommand::new(cargo)
        .args([
            "package",
            "--list",
            "--locked",
            "--allow-dirty",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let files: Vec<&str> = stdout.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "LICENSE",
        "README.md",
        "src/main.rs",
        "src/lib.rs",
        "schemas/plan.schema.json",
    ] {
        assert!(files.contains(&needed), "{needed} missing from:\n{stdout}");
    }
    // Every module of the library is in it: each .rs file git tracks under src/, but the
    // unit tests.
    let tracked = StdCommand::new("git")
        .args(["ls-files", "src"])
        .current_dir(root())
        .output()
        .unwrap();
    let sources: Vec<String> = String::from_utf8_lossy(&tracked.stdout)
        .lines()
        .filter(|f| f.ends_with(".rs") && !f.ends_with("/tests.rs") && !f.contains("/tests/"))
        .map(str::to_owned)
        .collect();
    assert!(sources.len() > 50, "{sources:?}");
    for source in &sources {
        assert!(files.contains(&source.as_str()), "{source} missing");
    }
    for file in &files {
        assert!(
            !file.starts_with("tests/")
                && !file.starts_with("examples/")
                && !file.starts_with("fuzz/")
                && !file.starts_with("bench/")
                && !file.starts_with(".github/")
                && !file.starts_with("dist/")
                && !file.ends_with("/tests.rs")
                && !file.contains("/tests/"),
            "{file} is shipped"
        );
    }
}

#[test]
fn build_release_checksums_are_what_sha256sum_checks() {
    let Some(sha256sum) = tool("sha256sum") else {
        return;
    };
    let dist = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("castsync-1.2.3-x86_64-unknown-linux-musl.tar.gz", "a"),
        ("castsync-1.2.3-aarch64-apple-darwin.tar.gz", "b"),
    ] {
        std::fs::write(dist.path().join(name), body).unwrap();
    }
    std::fs::write(dist.path().join("notes.txt"), "not an archive").unwrap();
    let out = StdCommand::new(root().join("scripts/build-release"))
        .arg("--checksums")
        .arg(dist.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let sums = std::fs::read_to_string(dist.path().join("SHA256SUMS")).unwrap();
    assert_eq!(
        sums,
        format!(
            "{}  castsync-1.2.3-aarch64-apple-darwin.tar.gz\n{}  castsync-1.2.3-x86_64-unknown-linux-musl.tar.gz\n",
            sha256_hex(b"b"),
            sha256_hex(b"a")
        )
    );
    let check = StdCommand::new(&sha256sum)
        .args(["-c", "SHA256SUMS"])
        .current_dir(dist.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check).0);

    let empty = tempfile::tempdir().unwrap();
    let out = StdCommand::new(root().join("scripts/build-release"))
        .arg("--checksums")
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no castsync-*.tar.gz in"));
}

/// A release archive as build-release lays it out, holding `binary` as its castsync.
fn fake_archive(dist: &Path, target: &str, binary: &[u8]) {
    let name = format!("castsync-{VERSION}-{target}");
    let stage = tempfile::tempdir().unwrap();
    std::fs::create_dir(stage.path().join(&name)).unwrap();
    std::fs::write(stage.path().join(&name).join("castsync"), binary).unwrap();
    let status = StdCommand::new("tar")
        .arg("-czf")
        .arg(dist.join(format!("{name}.tar.gz")))
        .arg("-C")
        .arg(stage.path())
        .arg(&name)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn docker_context_holds_each_platforms_binary_where_the_dockerfile_copies_it_from() {
    let dist = tempfile::tempdir().unwrap();
    fake_archive(dist.path(), "x86_64-unknown-linux-musl", b"amd64 binary");
    fake_archive(dist.path(), "aarch64-unknown-linux-musl", b"arm64 binary");
    fake_archive(dist.path(), "aarch64-apple-darwin", b"mac binary");
    let sums = StdCommand::new(root().join("scripts/build-release"))
        .arg("--checksums")
        .arg(dist.path())
        .status()
        .unwrap();
    assert!(sums.success());
    let context = tempfile::tempdir().unwrap();
    let context_dir = context.path().join("ctx");
    let run = || {
        StdCommand::new(root().join("scripts/docker-context"))
            .arg(dist.path())
            .arg(&context_dir)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out).1);

    // The Dockerfile's COPY of the binary, with TARGETPLATFORM as buildx sets it.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let copy = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY") && l.contains("/usr/local/bin/castsync"))
        .expect("the COPY of the binary");
    let source = copy.split_whitespace().rev().nth(1).unwrap();
    for (platform, binary) in [
        ("linux/amd64", "amd64 binary"),
        ("linux/arm64", "arm64 binary"),
    ] {
        let path = context_dir.join(source.replace("${TARGETPLATFORM}", platform));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            binary,
            "{}",
            path.display()
        );
    }

    // An archive that does not match SHA256SUMS stops it.
    fake_archive(dist.path(), "aarch64-unknown-linux-musl", b"swapped");
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains(&format!(
            "checksum mismatch for castsync-{VERSION}-aarch64-unknown-linux-musl.tar.gz"
        )),
        "{}",
        text(&out).1
    );
}

#[test]
fn the_release_image_holds_only_the_static_binary_and_a_ca_bundle_and_runs_as_non_root() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    let last = stages.last().expect("a final stage");
    assert!(last.starts_with("scratch\n"), "the image is FROM scratch");
    let copies: Vec<&str> = last.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(
        copies[0]
            .ends_with("/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt")
    );
    assert!(copies[1].contains("--chown=10001:10001 /out/ /"));
    assert!(copies[2].ends_with("${TARGETPLATFORM}/castsync /usr/local/bin/castsync"));
    assert!(last.contains("\nUSER 10001:10001\n"));
    assert!(last.contains("\nENTRYPOINT [\"castsync\"]\n"));
    for label in [
        "title",
        "description",
        "licenses",
        "version",
        "revision",
        "source",
    ] {
        assert!(
            last.contains(&format!("org.opencontainers.image.{label}=")),
            "label {label}"
        );
    }
    // The certs stage creates only the (empty) data directory besides the bundle.
    assert!(text.contains("install -d -m 0700 /out/var/lib/castsync\n"));
}

/// The marker of the docs' download blocks, which the docs test leaves to this file.
const RUNS_HERE: &str = "<!-- docs-test: skip downloads from github.com; tests/release.rs runs it against a local copy of the release -->";

/// The ```sh blocks of `page` right after a [`RUNS_HERE`] marker.
fn download_blocks(page: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(page)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == RUNS_HERE {
            assert_eq!(lines.get(i + 1), Some(&"```sh"), "{page}:{}", i + 2);
            let body: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| **l != "```")
                .copied()
                .collect();
            blocks.push(body.join("\n"));
        }
    }
    blocks
}

#[test]
fn the_docs_download_commands_install_castsync_from_the_release() {
    let (Some(archive), Some(_), Some(_)) = (built_archive(), tool("curl"), tool("sha256sum"))
    else {
        return;
    };
    let release = FakeRelease::of(&archive);
    let mut ran = 0;
    for page in ["README.md", "docs/install.md"] {
        for block in download_blocks(page) {
            // The docs name this release and the x86_64 Linux archive.
            if block.contains("version=") {
                assert!(
                    block.contains(&format!("version={VERSION} ")),
                    "{page}: {block}"
                );
            }
            let script = block
                .replace(
                    "https://github.com/castsync/castsync/releases",
                    &release.releases(),
                )
                .replace(
                    "target=x86_64-unknown-linux-musl",
                    &format!("target={}", host_target()),
                );
            let home = tempfile::tempdir().unwrap();
            let out = StdCommand::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
                .current_dir(home.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", home.path())
                // The install script, fetched from the release, fetches from it too.
                .env("CASTSYNC_RELEASES_URL", release.releases())
                .output()
                .unwrap();
            let (stdout, stderr) = text(&out);
            assert!(
                out.status.success(),
                "{page}:\n{script}\n{stdout}\n{stderr}"
            );
            let version = StdCommand::new(home.path().join(".local/bin/castsync"))
                .arg("--version")
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&version.stdout).trim(),
                format!("castsync {VERSION}"),
                "{page}"
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 3, "the README's block and install.md's two");
}
