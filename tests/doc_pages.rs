//! Runs every ```sh block of README.md, the other top-level pages and docs/*.md, exactly as
//! written, against the real binary and the emulator, so the docs cannot drift from castsync.
//! The convention is written for authors in CONTRIBUTING.md ("Docs that run"); in short:
//!
//! - Each page is one test (`doc_pages::docs_reconcile_md`, …). Its blocks run in order in one
//!   bash process (so `cd` and `export` carry over), starting in an empty HOME with castsync
//!   on PATH, an emulator as `CASTARI_API_URL`, and canary values in the variables the
//!   examples read (`$OPENAI_API_KEY`, …). `tests/doc_pages/prelude.sh` sets that up and
//!   defines `docs_repository`, a ready secrets repository for a page's hidden setup.
//! - Every line (a `\` continues it) must exit 0, unless its comment starts with `# exit N`.
//! - Just before a block, HTML comments (invisible to readers) change how it runs:
//!   `<!-- docs-test: setup … -->` runs its shell lines first; `<!-- docs-test: skip REASON -->`
//!   leaves the block out (the reason is required and the skips are counted);
//!   `<!-- docs-test: background -->` starts the block's one command in the background until
//!   the page ends; `<!-- docs-test: output -->` before a ```text block says that block is
//!   the stdout of the block above it, character for character.
//! - The emulator address the docs use, `127.0.0.1:8787`, is replaced by a free port, and in
//!   compared output HOME reads as `/home/you`.

use crate::support::*;

/// Canary values for the variables the examples read. None may appear in any output, except
/// on stdout of a block that reveals values on purpose (`--reveal`).
const CANARIES: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "canary-docs-openai-1"),
    ("NEW_OPENAI_API_KEY", "canary-docs-openai-2"),
    ("STRIPE_SECRET_KEY", "canary-docs-stripe"),
    ("STRIPE_LIVE_KEY", "canary-docs-stripe-live"),
    ("BILLING_DATABASE_URL", "postgres://canary-docs-db"),
    ("DATABASE_URL", "postgres://canary-docs-db-2"),
    ("ZENDESK_TOKEN", "canary-docs-zendesk"),
    ("SERPAPI_KEY", "canary-docs-serpapi"),
    ("TOKEN", "canary-docs-token"),
];

/// Blocks the docs may leave out, each with a reason in its marker. Raise it only for a
/// block that truly cannot run here (it builds castsync, runs forever, needs the internet).
const MAX_SKIPPED: usize = 12;

/// The address the docs give the emulator (its default); replaced by a free port.
const DOCS_EMULATOR: &str = "127.0.0.1:8787";

/// One page per test, so a failure names the page and pages run in parallel.
/// `name => "page.md"`, or `name => "page.md" then check` for a page whose outcome (what the
/// platform holds, say) `check(&Sandbox)` verifies after its blocks ran.
macro_rules! pages {
    ($($test:ident => $path:literal $(then $check:path)?),* $(,)?) => {
        const PAGES: &[&str] = &[$($path),*];
        $( #[test] fn $test() { run_page_then($path, |_s: &Sandbox| { $($check(_s);)? }) } )*
    };
}

pages! {
    readme_md => "README.md" then readme_outcome,
    architecture_md => "ARCHITECTURE.md",
    benchmarks_md => "BENCHMARKS.md",
    changelog_md => "CHANGELOG.md",
    contributing_md => "CONTRIBUTING.md",
    security_md => "SECURITY.md",
    docs_readme_md => "docs/README.md",
    docs_authoring_md => "docs/authoring.md",
    docs_ci_md => "docs/ci.md",
    docs_cli_md => "docs/cli.md",
    docs_config_md => "docs/config.md",
    docs_daemon_md => "docs/daemon.md",
    docs_environments_md => "docs/environments.md",
    docs_git_md => "docs/git.md",
    docs_guard_md => "docs/guard.md",
    docs_install_md => "docs/install.md",
    docs_performance_md => "docs/performance.md",
    docs_platform_md => "docs/platform.md",
    docs_reconcile_md => "docs/reconcile.md",
    docs_rotation_md => "docs/rotation.md",
    docs_security_md => "docs/security.md",
    docs_shared_groups_md => "docs/shared-groups.md",
    docs_troubleshooting_md => "docs/troubleshooting.md",
}

/// How a block runs.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Run,
    Background,
    Skip(String),
    /// A ```text block that must equal the stdout of the run block before it.
    Output,
}

#[derive(Debug, Clone)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    kind: Kind,
    /// Hidden shell lines to run first.
    setup: Vec<String>,
    body: Vec<String>,
}

/// The page's text.
fn read(page: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The marker comment on `line`, if any: (the word after `docs-test:`, the rest).
fn marker(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("<!-- docs-test:")?.trim();
    let rest = rest.strip_suffix("-->").unwrap_or(rest).trim();
    let (word, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((word.to_owned(), arg.trim().to_owned()))
}

/// The blocks of a page that the docs test knows: every ```sh block, and every ```text block
/// marked `output`. Any other spelling of a shell fence is refused, so no block escapes.
fn blocks(page: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let (mut kind, mut setup): (Option<Kind>, Vec<String>) = (None, Vec::new());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some((word, arg)) = marker(line) {
            match word.as_str() {
                "skip" => {
                    assert!(
                        arg.split_whitespace().count() >= 3,
                        "{page}:{}: a skip needs a reason of a few words",
                        i + 1
                    );
                    kind = Some(Kind::Skip(arg));
                }
                "background" => kind = Some(Kind::Background),
                "output" => kind = Some(Kind::Output),
                "setup" => {
                    // The setup's lines run until the comment's end.
                    let first = line.trim().trim_start_matches("<!-- docs-test: setup");
                    let mut body = first.trim_end_matches("-->").trim().to_owned();
                    let mut closed = line.trim_end().ends_with("-->");
                    while !closed {
                        i += 1;
                        let l = lines.get(i).unwrap_or_else(|| {
                            panic!("{page}: a setup comment is never closed with -->")
                        });
                        closed = l.trim_end().ends_with("-->");
                        body.push('\n');
                        body.push_str(l.trim_end().trim_end_matches("-->"));
                    }
                    setup.extend(body.lines().map(str::to_owned));
                }
                other => panic!("{page}:{}: unknown docs-test marker {other:?}", i + 1),
            }
            i += 1;
            continue;
        }
        if let Some((fence, lang)) = fence_open(trimmed) {
            let indent = line.len() - trimmed.len();
            assert!(
                !["bash", "shell", "console", "zsh", "shell-session"].contains(&lang),
                "{page}:{}: write shell blocks as ```sh (they run in the docs test)",
                i + 1
            );
            assert!(
                !lang.is_empty(),
                "{page}:{}: say what a code block holds (```sh runs; ```text, ```yaml… do not)",
                i + 1
            );
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !fence_closes(lines[i].trim(), fence) {
                body.push(
                    lines[i]
                        .get(indent..)
                        .unwrap_or(lines[i].trim_start())
                        .to_owned(),
                );
                i += 1;
            }
            let taken = kind.take();
            let marked_output = taken == Some(Kind::Output);
            if lang == "sh" {
                assert!(
                    !marked_output,
                    "{page}:{}: an output block is ```text",
                    start + 1
                );
                out.push(Block {
                    line: start + 1,
                    kind: taken.unwrap_or(Kind::Run),
                    setup: std::mem::take(&mut setup),
                    body,
                });
            } else if marked_output {
                out.push(Block {
                    line: start + 1,
                    kind: Kind::Output,
                    setup: Vec::new(),
                    body,
                });
            } else {
                assert!(
                    taken.is_none() && setup.is_empty(),
                    "{page}:{}: a docs-test marker stands before a ```{lang} block; it belongs before a ```sh block",
                    start + 1
                );
            }
        }
        i += 1;
    }
    assert!(
        kind.is_none(),
        "{page}: a docs-test marker with no block after it"
    );
    out
}

/// An opening code fence (CommonMark: three or more backticks, an info string without
/// backticks): its length and its language.
fn fence_open(trimmed: &str) -> Option<(usize, &str)> {
    let len = trimmed.len() - trimmed.trim_start_matches('`').len();
    let info = trimmed[len..].trim();
    (len >= 3 && !info.contains('`')).then_some((len, info.split_whitespace().next().unwrap_or("")))
}

/// Whether `trimmed` closes a fence of `len` backticks.
fn fence_closes(trimmed: &str, len: usize) -> bool {
    trimmed.len() >= len && trimmed.chars().all(|c| c == '`')
}

/// The logical lines of a block: a line ending in `\` continues on the next.
fn logical_lines(body: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in body {
        if open {
            let last = out.last_mut().expect("a continued line");
            last.push('\n');
            last.push_str(line);
        } else {
            out.push(line.clone());
        }
        open = line.trim_end().ends_with('\\');
    }
    out
}

/// One line as a checked shell step: run it, compare its exit code with `# exit N` (else 0).
fn step(page: &str, line: &str) -> Option<String> {
    let command = line.split(" # ").next().unwrap_or(line).trim();
    if command.is_empty() || command.starts_with('#') {
        return None;
    }
    let expected = line
        .split(" # ")
        .nth(1)
        .and_then(|c| c.trim().strip_prefix("exit "))
        .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let shown = line.replace('\'', "'\\''");
    Some(format!(
        "{line}\nrc=$?; if [ $rc -ne {expected} ]; then echo '{page}: step exited '$rc' (expected {expected}): {shown}' >&2; exit 99; fi\n"
    ))
}

/// The marker printed on stdout and stderr before block `n`, to cut the output by block.
fn block_marker(n: usize) -> String {
    format!("@@docs-block {n}@@")
}

/// The page as one bash script.
fn script(page: &str, blocks: &[Block], port: u16) -> String {
    let here = format!("127.0.0.1:{port}");
    let mut s = String::from(". \"$DOCS_PRELUDE\"\n");
    for (n, block) in blocks.iter().enumerate() {
        let marker = block_marker(n);
        s.push_str(&format!("echo '{marker}'; echo '{marker}' >&2\n"));
        for line in &block.setup {
            let line = line.replace(DOCS_EMULATOR, &here);
            s.push_str(&format!(
                "{line}\nrc=$?; if [ $rc -ne 0 ]; then echo '{page}:{}: the setup before this block failed ('$rc')' >&2; exit 98; fi\n",
                block.line
            ));
        }
        let lines = logical_lines(&block.body);
        match &block.kind {
            Kind::Skip(_) | Kind::Output => {}
            Kind::Run => {
                for line in &lines {
                    if let Some(step) = step(page, &line.replace(DOCS_EMULATOR, &here)) {
                        s.push_str(&step);
                    }
                }
            }
            Kind::Background => {
                let commands: Vec<&String> =
                    lines.iter().filter(|l| step(page, l).is_some()).collect();
                assert_eq!(
                    commands.len(),
                    1,
                    "{page}:{}: a background block holds one command",
                    block.line
                );
                let command = commands[0].split(" # ").next().unwrap_or(commands[0]);
                let command = command.replace(DOCS_EMULATOR, &here);
                // Started, then waited for until it prints its first line (a server's
                // "listening on …"), for at most 30 s.
                s.push_str(&format!(
                    "{command} >\"$DOCS_TMP/bg-{n}.log\" 2>&1 &\necho $! >>\"$DOCS_TMP/background.pids\"\n\
                     for _ in $(seq 300); do [ -s \"$DOCS_TMP/bg-{n}.log\" ] && break; sleep 0.1; done\n\
                     [ -s \"$DOCS_TMP/bg-{n}.log\" ] || {{ echo '{page}:{}: the background command printed nothing in 30 s' >&2; exit 99; }}\n",
                    block.line
                ));
            }
        }
    }
    s.push_str(&format!("echo '{}'\n", block_marker(blocks.len())));
    s
}

/// The stdout of each block, cut at the markers.
fn stdout_by_block(stdout: &str, count: usize) -> Vec<String> {
    let mut out = vec![String::new(); count + 1];
    let mut current = None;
    for line in stdout.lines() {
        if let Some(n) = line
            .strip_prefix("@@docs-block ")
            .and_then(|r| r.strip_suffix("@@"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            current = Some(n);
            continue;
        }
        if let Some(n) = current {
            out[n].push_str(line);
            out[n].push('\n');
        }
    }
    out
}

/// Runs one page's blocks and checks their exit codes, the outputs they claim and that no
/// canary leaked; then `more` checks on the sandbox while the servers the page started still
/// run.
fn run_page_then(page: &str, more: impl FnOnce(&Sandbox)) {
    let blocks = blocks(page, &read(page));
    let sandbox = Sandbox::new();
    let outcome = sandbox.execute(page, &blocks);
    check(page, &blocks, &outcome);
    more(&sandbox);
}

/// The checks on what a page printed: each output block, and no canary anywhere.
fn check(page: &str, blocks: &[Block], outcome: &Outcome) {
    let by_block = stdout_by_block(&outcome.stdout, blocks.len());
    for (n, block) in blocks.iter().enumerate() {
        if block.kind == Kind::Output {
            let ran = n
                .checked_sub(1)
                .filter(|p| blocks[*p].kind == Kind::Run)
                .unwrap_or_else(|| {
                    panic!("{page}:{}: an output block follows a run block", block.line)
                });
            let actual = by_block[ran]
                .replace(outcome.home.as_str(), "/home/you")
                .replace(&format!("127.0.0.1:{}", outcome.port), DOCS_EMULATOR);
            let expected = block.body.join("\n");
            assert_eq!(
                actual.trim_end(),
                expected.trim_end(),
                "{page}:{}: the block above printed something else than the output shown\n--- shown:\n{expected}\n--- printed:\n{actual}",
                block.line
            );
        }
        let revealing = block.body.iter().any(|l| l.contains("--reveal"));
        if !revealing {
            assert_no_canary(
                &format!("{page}:{} stdout", block.line),
                &by_block[n],
                &canary_values(),
            );
        }
    }
    assert_no_canary(&format!("{page} stderr"), &outcome.stderr, &canary_values());
}

fn canary_values() -> Vec<&'static str> {
    CANARIES.iter().map(|(_, v)| *v).collect()
}

/// What a page's script printed.
struct Outcome {
    stdout: String,
    stderr: String,
    home: String,
    port: u16,
}

/// Where a page runs: a temporary HOME and scratch folder, an emulator, and the free port
/// that stands for the docs' emulator address. Dropping it stops what the page's
/// background blocks started.
struct Sandbox {
    work: tempfile::TempDir,
    emulator: Emulator,
    port: u16,
}

impl Sandbox {
    fn new() -> Sandbox {
        let work = tempfile::tempdir().expect("tempdir");
        for dir in ["home", "tmp"] {
            std::fs::create_dir_all(work.path().join(dir)).expect("create a sandbox folder");
        }
        Sandbox {
            work,
            emulator: Emulator::start(&["--auto-create-agents"]),
            port: free_port(),
        }
    }

    fn home(&self) -> std::path::PathBuf {
        self.work.path().join("home")
    }

    /// The emulator at the docs' address, as the page's blocks reached it.
    fn docs_emulator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs the page's script; fails the test when it does not exit 0.
    fn execute(&self, page: &str, blocks: &[Block]) -> Outcome {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin_dir = bin().parent().expect("the binary's folder").to_owned();
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script(page, blocks, self.port))
            .env_clear()
            .env("PATH", format!("{}:{path}", bin_dir.display()))
            .env("HOME", self.home())
            .env("DOCS_PRELUDE", root.join("tests/doc_pages/prelude.sh"))
            .env("DOCS_TMP", self.work.path().join("tmp"))
            .env("CASTSYNC_SOURCE", root)
            .env("NO_COLOR", "1")
            .env("EDITOR", "true")
            .env("CASTARI_API_URL", &self.emulator.url)
            .env("CASTARI_API_KEY", "cast_dev")
            .env("GIT_AUTHOR_NAME", "Docs Test")
            .env("GIT_AUTHOR_EMAIL", "docs@example.com")
            .env("GIT_COMMITTER_NAME", "Docs Test")
            .env("GIT_COMMITTER_EMAIL", "docs@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .timeout(std::time::Duration::from_secs(300));
        for (var, value) in CANARIES {
            cmd.env(var, value);
        }
        let out = cmd.output().expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{page}: its blocks did not run as written\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
        Outcome {
            stdout,
            stderr,
            home: self.home().display().to_string(),
            port: self.port,
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.work.path().join("tmp/background.pids"));
        for pid in pids.unwrap_or_default().split_whitespace() {
            if let Ok(pid) = pid.parse::<u32>() {
                // Gone already is fine: the page may have stopped it.
                let _ = std::process::Command::new("sh")
                    .args(["-c", "kill \"$1\" 2>/dev/null", "sh"])
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

/// A loopback port that was free a moment ago, for the blocks that start a server at the
/// docs' address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The README's walk put the values of its variables on the platform (the emulator its
/// quickstart started), and a teammate among the recipients.
fn readme_outcome(sandbox: &Sandbox) {
    let url = sandbox.docs_emulator_url();
    for (agent, key, value) in [
        ("support-bot", "OPENAI_API_KEY", "canary-docs-openai-2"),
        ("support-bot", "ZENDESK_TOKEN", "canary-docs-zendesk"),
        ("billing-agent", "STRIPE_SECRET_KEY", "canary-docs-stripe"),
        ("billing-agent", "DATABASE_URL", "postgres://canary-docs-db"),
        ("research-agent", "SERPAPI_KEY", "canary-docs-serpapi"),
    ] {
        let stored = block_on(async {
            reqwest::get(format!("{url}/_emulator/agents/{agent}/secrets/{key}"))
                .await
                .expect("GET an emulator admin route")
                .json::<serde_json::Value>()
                .await
                .expect("JSON")
        });
        assert_eq!(
            stored["value"].as_str(),
            Some(value),
            "{agent} {key}: {stored}"
        );
    }
    let repo = sandbox.home().join("agent-secrets");
    let config = std::fs::read_to_string(repo.join("castsync.yaml")).expect("castsync.yaml");
    assert_eq!(
        config.matches("  - \"age1").count(),
        2,
        "teammate added:\n{config}"
    );
    assert!(
        !repo.join("../research.env").exists(),
        "the plaintext .env is removed"
    );
}

#[test]
fn every_page_is_tested() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for (dir, prefix) in [(root.to_owned(), ""), (root.join("docs"), "docs/")] {
        for entry in std::fs::read_dir(&dir).expect("read a docs folder") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".md") {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = PAGES.iter().map(|p| (*p).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "add each new page to pages! in tests/doc_pages.rs"
    );
}

#[test]
fn skipped_blocks_are_few_and_say_why() {
    let skipped: Vec<String> = PAGES
        .iter()
        .flat_map(|page| {
            blocks(page, &read(page))
                .into_iter()
                .filter_map(move |b| match b.kind {
                    Kind::Skip(reason) => Some(format!("{page}:{}: {reason}", b.line)),
                    _ => None,
                })
        })
        .collect();
    assert!(
        skipped.len() <= MAX_SKIPPED,
        "{} blocks are skipped (at most {MAX_SKIPPED}); give them a setup so they run:\n{}",
        skipped.len(),
        skipped.join("\n")
    );
}

#[test]
fn a_failing_step_fails_its_page_and_exit_comments_are_checked() {
    let page = "<!-- docs-test: setup\ncd \"$HOME\"\n-->\n```sh\ntrue\nfalse   # exit 1\n```\n\n```sh\ncastsync validate   # exit 0, but there is no repository\n```\n";
    let parsed = blocks("synthetic.md", page);
    assert_eq!(parsed.len(), 2);
    let result = std::panic::catch_unwind(|| Sandbox::new().execute("synthetic.md", &parsed));
    let message = result
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        message.contains("step exited 1 (expected 0): castsync validate"),
        "{message}"
    );
}

#[test]
fn an_output_block_must_match_what_was_printed() {
    let page = "```sh\necho plan\n```\n\n<!-- docs-test: output -->\n```text\nplan\n```\n";
    let right = blocks("synthetic.md", page);
    let sandbox = Sandbox::new();
    check(
        "synthetic.md",
        &right,
        &sandbox.execute("synthetic.md", &right),
    );

    let wrong = page.replace("```text\nplan", "```text\nno plan");
    let wrong = blocks("synthetic.md", &wrong);
    let outcome = sandbox.execute("synthetic.md", &wrong);
    let mismatch = std::panic::catch_unwind(|| check("synthetic.md", &wrong, &outcome));
    let message = mismatch
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("printed something else"), "{message}");
}

#[test]
fn the_readme_fits_on_a_few_screens_and_its_contents_list_every_section() {
    let readme = read("README.md");
    assert!(
        readme.len() <= 15 * 1024,
        "README.md is {} bytes: keep it under 15 KiB and move details to a docs/ page",
        readme.len()
    );
    // Every `## ` section is in the table of contents, as GitHub names its anchor.
    for heading in readme.lines().filter_map(|l| l.strip_prefix("## ")) {
        let anchor: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        assert!(
            readme.contains(&format!("[{heading}](#{anchor})")),
            "the contents of README.md lack `[{heading}](#{anchor})`"
        );
    }
}
