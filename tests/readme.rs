//! Walks the README's quickstart and daily-workflow blocks step by step, the commands exactly
//! as written, against the emulator, so the README cannot drift from the binary.
//!
//! A block is a ```sh fence right after a `<!-- readme-test: NAME -->` line. Every line must
//! exit 0, except a line whose comment starts with `# exit N`, which must exit N. The test adds
//! only what the README leaves to the reader (the values in variables, a teammate's key,
//! an old `.env` file), in `setup` snippets that run before a block.

use std::collections::BTreeMap;

use crate::support::*;

const CANARIES: [(&str, &str); 6] = [
    ("OPENAI_API_KEY", "canary-readme-openai-1"),
    ("NEW_OPENAI_API_KEY", "canary-readme-openai-2"),
    ("STRIPE_SECRET_KEY", "canary-readme-stripe"),
    ("BILLING_DATABASE_URL", "postgres://canary-readme-db"),
    ("ZENDESK_TOKEN", "canary-readme-zendesk"),
    ("SERPAPI", "canary-readme-serpapi"),
];

/// The marked blocks of the README, in order.
fn blocks() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- readme-test:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "block {name} must start with ```sh"
        );
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(str::to_owned)
            .collect();
        out.push((name.trim().to_owned(), body));
    }
    out
}

/// One README line as a checked shell step: run it, compare its exit code.
fn step(line: &str) -> Option<String> {
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
        "{line}\nrc=$?; if [ $rc -ne {expected} ]; then echo 'README step exited '$rc' (expected {expected}): {shown}' >&2; exit 99; fi\n"
    ))
}

#[test]
fn the_readme_quickstart_and_daily_workflows_run_as_written() {
    let emu = Emulator::start(&["--auto-create-agents"]);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin_dir = bin().parent().unwrap().to_owned();

    let setup: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "join-leave",
            // A teammate joins: their key goes under `recipients:` in castsync.yaml.
            "R=$(castsync keygen -q -o \"$HOME/teammate.txt\") && \
             sed -i \"s|^recipients:|recipients:\\n  - \\\"$R\\\"|\" castsync.yaml || exit 98\n",
        ),
        (
            "import",
            "printf 'SERPAPI_KEY=%s\\n' \"$SERPAPI\" > ../research.env || exit 98\n",
        ),
    ]);

    let blocks = blocks();
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "quickstart",
            "new-agent",
            "add-rotate",
            "join-leave",
            "import"
        ],
        "the README's tested blocks"
    );
    let mut script = String::from("set -o pipefail\ncd \"$WORK\" || exit 98\n");
    for (name, body) in &blocks {
        if let Some(s) = setup.get(name.as_str()) {
            script.push_str(s);
        }
        for line in body {
            if let Some(s) = step(line) {
                script.push_str(&s);
            }
        }
    }

    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("HOME", &home)
        .env("WORK", work.path())
        .env("NO_COLOR", "1")
        .env("CASTARI_API_URL", &emu.url)
        .env("CASTARI_API_KEY", "cast_dev")
        .env("GIT_AUTHOR_NAME", "Readme Test")
        .env("GIT_AUTHOR_EMAIL", "readme@example.com")
        .env("GIT_COMMITTER_NAME", "Readme Test")
        .env("GIT_COMMITTER_EMAIL", "readme@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null());
    for (var, value) in CANARIES {
        cmd.env(var, value);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    // What the platform holds is what the README's steps put there.
    for (agent, key, value) in [
        ("support-bot", "OPENAI_API_KEY", "canary-readme-openai-2"),
        ("support-bot", "ZENDESK_TOKEN", "canary-readme-zendesk"),
        ("billing-agent", "STRIPE_SECRET_KEY", "canary-readme-stripe"),
        (
            "billing-agent",
            "DATABASE_URL",
            "postgres://canary-readme-db",
        ),
        ("research-agent", "SERPAPI_KEY", "canary-readme-serpapi"),
    ] {
        assert_eq!(
            emu.value(agent, key).as_deref(),
            Some(value),
            "{agent} {key}"
        );
    }
    let repo = work.path().join("agent-secrets");
    assert!(!work.path().join("research.env").exists());
    let config = std::fs::read_to_string(repo.join("castsync.yaml")).unwrap();
    assert_eq!(
        config.matches("  - \"age1").count(),
        2,
        "teammate added:\n{config}"
    );
    let canaries: Vec<&str> = CANARIES.iter().map(|(_, v)| *v).collect();
    assert_no_canary(
        "README walk output",
        &format!("{stdout}{stderr}"),
        &canaries,
    );
}
