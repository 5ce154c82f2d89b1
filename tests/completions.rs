//! `castsync completions SHELL` and `castsync man`.

use std::process::Command as StdCommand;

use clap::CommandFactory as _;

use crate::support::*;

/// What `castsync ARGS` prints; it must succeed and print nothing on stderr.
fn stdout_of(args: &[&str]) -> String {
    Test::new()
        .args(args)
        .run()
        .success()
        .stderr_is("")
        .stdout()
        .to_owned()
}

#[test]
fn bash_completion_is_valid_bash_syntax() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("reconcile"), "{script}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("castsync.bash");
    std::fs::write(&file, &script).expect("write the completion script");

    let check = StdCommand::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "bash -n rejected the completion script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn bash_completion_completes_subcommands_and_their_flags() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("castsync.bash");
    std::fs::write(&file, &script).expect("write the completion script");

    // What bash does on TAB: fill COMP_WORDS/COMP_CWORD, call the registered function with
    // (command, word being completed, previous word), read COMPREPLY.
    let complete = |words: &str, cword: usize| {
        let program = format!(
            r#"source "$1"
            COMP_WORDS=({words}); COMP_CWORD={cword}
            COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
            fn=$(complete -p castsync | sed -E 's/.*-F ([^ ]+).*/\1/')
            "$fn" castsync "${{COMP_WORDS[$COMP_CWORD]}}" "${{COMP_WORDS[$((COMP_CWORD-1))]}}"
            printf '%s\n' "${{COMPREPLY[@]}}""#
        );
        let out = StdCommand::new("bash")
            .args(["-c", &program, "bash"])
            .arg(&file)
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("castsync reco", 1), vec!["reconcile"]);
    assert_eq!(complete("castsync reconcile --dry", 2), vec!["--dry-run"]);
    let shells = complete("castsync completions ''", 2);
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
}

#[test]
fn zsh_fish_and_powershell_completions_know_the_subcommands() {
    for shell in ["zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for word in ["reconcile", "validate", "--dry-run"] {
            assert!(
                script.contains(word),
                "{shell} script lacks {word}:\n{script}"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_listing_the_choices() {
    // 1, like every usage error: 2 means "changes" under --exit-code.
    Test::new()
        .args(["completions", "tcsh"])
        .run()
        .failure()
        .stderr_has("bash")
        .stderr_has("powershell");
}

#[test]
fn man_page_is_roff_and_documents_reconcile() {
    let page = stdout_of(&["man"]);
    // roff may open with the `.ie`/`.el` pair that defines the apostrophe string; the
    // title must be the first thing after it.
    let body = page
        .lines()
        .skip_while(|l| l.starts_with(".ie ") || l.starts_with(".el "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        body.starts_with(".TH castsync 1"),
        "not a roff page:\n{page}"
    );
    assert!(page.contains("castsync"), "{page}");
    assert!(page.contains("reconcile"), "{page}");
    assert!(page.contains("SUBCOMMANDS"), "{page}");
    assert!(page.contains("castsync\\-reconcile(1)"), "{page}");
    // The global options are documented here, in full.
    assert!(page.contains("\\-\\-age\\-key\\-cmd"), "{page}");
}

#[test]
fn man_dir_writes_a_page_per_command_and_every_reference_resolves() {
    let run = Test::new()
        .args(["man", "--dir", "man/man1"])
        .run()
        .success();
    let dir = run.path("man/man1");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .expect("the man directory")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    pages.sort();
    let mut expected: Vec<String> = castsync::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| format!("castsync-{}.1", c.get_name()))
        .chain(["castsync.1".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(pages, expected);

    // Every page's references to castsync(1) and castsync-COMMAND(1) name a page written.
    let mut references = 0;
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).expect("read a page");
        let text = text.replace("\\-", "-");
        for (at, _) in text.match_indices("(1)") {
            let start = text[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &text[start..at];
            if name.starts_with("castsync") {
                references += 1;
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} refers to {name}(1), which has no page"
                );
            }
        }
    }
    assert!(
        references > pages.len(),
        "only {references} references found"
    );

    // A command's page has its own flags and points at castsync(1) for the global ones.
    let reconcile = std::fs::read_to_string(dir.join("castsync-reconcile.1")).expect("page");
    assert!(reconcile.contains("\\-\\-dry\\-run"), "{reconcile}");
    assert!(reconcile.contains("castsync(1)"), "{reconcile}");
    assert!(!reconcile.contains("\\-\\-age\\-key\\-cmd"), "{reconcile}");
}

#[test]
fn man_page_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;

    let home = tempfile::tempdir().expect("tempdir");
    let mut child = StdCommand::new(bin())
        .arg("man")
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn castsync man");
    // Read nothing and close our end: the write sees a broken pipe (Rust ignores SIGPIPE).
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait for castsync man");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "exit {status:?}: {stderr}");
}
