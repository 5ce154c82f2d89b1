//! `castsync completions SHELL` and `castsync man`.

use std::process::Command as StdCommand;

use crate::support::*;

fn stdout_of(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let out = castsync(home.path())
        .args(args)
        .output()
        .expect("run castsync");
    assert!(
        out.status.success(),
        "castsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "castsync {args:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("UTF-8 output")
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
    let home = tempfile::tempdir().expect("tempdir");
    let out = castsync(home.path())
        .args(["completions", "tcsh"])
        .output()
        .expect("run castsync");
    // 1, like every usage error: 2 means "changes" under --exit-code.
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("powershell"),
        "{stderr}"
    );
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
    assert!(page.contains("castsync reconcile \\-\\-help"), "{page}");
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
