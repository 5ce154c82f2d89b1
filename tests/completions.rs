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
    assert!(script.contains("CASTSYNC_COMPLETE"), "{script}");
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

/// A repository with agents support-bot, sales-bot and billing-agent and a shared group
/// openai.
fn repo_with_agents() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    for agent in ["support-bot", "sales-bot", "billing-agent"] {
        repo.agent(agent, &[("TOKEN", "canary-completion-never-shown")]);
    }
    repo.group(
        "openai",
        &[("OPENAI_API_KEY", "canary-completion-never-shown")],
    );
    repo
}

/// What bash offers on TAB for `words` (bash syntax, the word being completed last) with
/// the cursor on word `cword`, in `dir`: the script of `castsync completions bash` sourced,
/// COMP_WORDS and COMP_CWORD filled, the registered function called, COMPREPLY read. The
/// script calls the `castsync` on PATH back, as it does in a user's shell.
fn bash_complete(dir: &std::path::Path, words: &str, cword: usize) -> Vec<String> {
    let script = stdout_of(&["completions", "bash"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("castsync.bash");
    std::fs::write(&file, &script).expect("write the completion script");
    let program = format!(
        r#"source "$1"
        COMP_WORDS=({words}); COMP_CWORD={cword}
        COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
        fn=$(complete -p castsync | sed -E 's/.*-F ([^ ]+).*/\1/')
        "$fn" castsync "${{COMP_WORDS[$COMP_CWORD]}}" "${{COMP_WORDS[$((COMP_CWORD-1))]}}"
        printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let bin_dir = bin().parent().expect("the binary's folder").to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = StdCommand::new("bash")
        .args(["-c", &program, "bash"])
        .arg(&file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", tmp.path())
        .output()
        .expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut reply: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    reply.sort();
    reply
}

#[test]
fn bash_completion_completes_subcommands_and_their_flags() {
    let repo = repo_with_agents();
    assert_eq!(bash_complete(&repo.root, "castsync reco", 1), ["reconcile"]);
    assert_eq!(
        bash_complete(&repo.root, "castsync reconcile --dry", 2),
        ["--dry-run"]
    );
    let shells = bash_complete(&repo.root, "castsync completions ''", 2);
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
}

#[test]
fn bash_completion_offers_the_repositorys_agent_and_group_names() {
    let repo = repo_with_agents();
    let root = &repo.root;
    for words in [
        "castsync set s",
        "castsync edit s",
        "castsync show s",
        "castsync unset s",
    ] {
        assert_eq!(
            bash_complete(root, words, 2),
            ["sales-bot", "support-bot"],
            "{words}"
        );
    }
    assert_eq!(
        bash_complete(root, "castsync reconcile --agent ''", 3),
        ["billing-agent", "sales-bot", "support-bot"]
    );
    assert_eq!(
        bash_complete(root, "castsync set --shared o", 3),
        ["openai"]
    );
    assert_eq!(
        bash_complete(root, "castsync validate b", 2),
        ["billing-agent"]
    );
    // From a sub-directory, and from outside with -C, as the command itself would find it.
    assert_eq!(
        bash_complete(&root.join("agents/support-bot"), "castsync history b", 2),
        ["billing-agent"]
    );
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let line = format!("castsync -C {} show su", root.display());
    assert_eq!(bash_complete(elsewhere.path(), &line, 4), ["support-bot"]);
    // Outside any repository there is nothing to offer, and nothing goes wrong.
    assert!(bash_complete(elsewhere.path(), "castsync set s", 2).is_empty());
}

#[test]
fn zsh_fish_and_powershell_scripts_ask_castsync_and_it_answers_in_their_protocol() {
    for shell in ["zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("CASTSYNC_COMPLETE") && script.contains("castsync"),
            "{shell} script does not call castsync back:\n{script}"
        );
    }
    // What those scripts run on TAB: castsync with the variable set and the words after --.
    let repo = repo_with_agents();
    for (shell, index) in [("fish", None), ("zsh", Some("2"))] {
        let mut run = Test::at_home(&repo.home)
            .current_dir(&repo.root)
            .env("CASTSYNC_COMPLETE", shell)
            .args(["--", "castsync", "set", "su"]);
        if let Some(index) = index {
            run = run.env("_CLAP_COMPLETE_INDEX", index);
        }
        run.run()
            .success()
            .stdout_has("support-bot")
            .stdout_lacks("billing-agent");
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
        .flat_map(|c| {
            let name = format!("castsync-{}", c.get_name());
            let nested = c
                .get_subcommands()
                .map(move |n| format!("{name}-{}.1", n.get_name()));
            [format!("castsync-{}.1", c.get_name())]
                .into_iter()
                .chain(nested)
        })
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
