//! The authoring commands through the binary: init, new, set, unset, show, import, rekey.
//! `edit` and the canary sweep over every command have their own files.

mod canary;
mod edit;

use std::path::Path;

use tempfile::TempDir;

use crate::support::*;

/// `castsync set AGENT KEY` with `value` on stdin.
fn set(repo: &SecretsRepo, agent: &str, key: &str, value: &str) -> (i32, String, String) {
    outcome(repo.cmd().args(["set", agent, key]).write_stdin(value))
}

/// The agent's manifest as `show --reveal --format json` prints it.
fn revealed(repo: &SecretsRepo, agent: &str) -> serde_json::Value {
    let (code, stdout, stderr) = outcome(
        repo.cmd()
            .args(["show", agent, "--reveal", "--format", "json"]),
    );
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn manifest_bytes(repo: &SecretsRepo, agent: &str) -> Vec<u8> {
    std::fs::read(repo.path(&format!("agents/{agent}/secrets.yaml.age"))).unwrap()
}

/// Runs `cmd`, which must fail with exit 1 and leave `agent`'s manifest byte for byte as it
/// was; returns its stderr.
fn refused(repo: &SecretsRepo, agent: &str, cmd: &mut Command) -> String {
    let before = manifest_bytes(repo, agent);
    let (code, stdout, stderr) = outcome(cmd);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_eq!(manifest_bytes(repo, agent), before, "the manifest changed");
    stderr
}

/// The names in an agent's directory: after any command, only the manifest and the schema.
pub fn assert_only_manifest_and_schema(repo: &SecretsRepo, agent: &str) {
    let mut names: Vec<String> = std::fs::read_dir(repo.path(&format!("agents/{agent}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".env.example", "secrets.yaml.age"],
        "agents/{agent}"
    );
}

fn empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn init_writes_config_agents_gitignore_and_gitattributes_and_a_new_identity() {
    let tmp = TempDir::new().unwrap();
    let (home, root) = (tmp.path().join("home"), tmp.path().join("repo"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&root).unwrap();

    let (code, stdout, stderr) = outcome(castsync(&home).arg("-C").arg(&root).arg("init"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    let key_file = home.join(".config/castsync/keys.txt");
    assert!(stderr.contains(&key_file.display().to_string()), "{stderr}");
    for command in [
        "git config diff.castsync.textconv \"castsync textconv\"",
        "git config merge.castsync.driver \"castsync merge-driver %O %A %B %P\"",
    ] {
        assert!(stderr.contains(command), "{stderr}");
    }
    let public = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let config = std::fs::read_to_string(root.join("castsync.yaml")).unwrap();
    assert!(config.contains(&public), "{config}");
    assert!(root.join("agents").is_dir());
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for line in [".castsync/", "*.plain", "*.swp", "*~"] {
        assert!(gitignore.lines().any(|l| l == line), "{line}: {gitignore}");
    }
    let gitattributes = std::fs::read_to_string(root.join(".gitattributes")).unwrap();
    for line in ["*.yaml.age diff=castsync", "*.yaml.age merge=castsync"] {
        assert!(gitattributes.lines().any(|l| l == line), "{gitattributes}");
    }

    // The new repository is usable at once: an agent, a value, a clean validate.
    castsync(&home)
        .arg("-C")
        .arg(&root)
        .args(["new", "bot"])
        .assert()
        .success();
    std::fs::write(root.join("agents/bot/.env.example"), "TOKEN=your-token\n").unwrap();
    castsync(&home)
        .arg("-C")
        .arg(&root)
        .args(["set", "bot", "TOKEN"])
        .write_stdin("t-1")
        .assert()
        .success();
    let (code, stdout, _) = outcome(castsync(&home).arg("-C").arg(&root).arg("validate"));
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn init_lists_the_recipient_of_an_existing_identity_instead_of_making_one() {
    let repo = SecretsRepo::new("");
    let root = repo.home.join("fresh");
    std::fs::create_dir_all(&root).unwrap();
    castsync(&repo.home)
        .arg("-C")
        .arg(&root)
        .arg("-i")
        .arg(&repo.key_file)
        .arg("init")
        .assert()
        .success();
    let config = std::fs::read_to_string(root.join("castsync.yaml")).unwrap();
    assert!(config.contains(&repo.recipient), "{config}");
    assert!(!repo.home.join(".config/castsync/keys.txt").exists());
}

#[test]
fn init_refuses_when_any_file_exists_and_writes_nothing() {
    let tmp = TempDir::new().unwrap();
    let (home, root) = (tmp.path().join("home"), tmp.path().join("repo"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(".gitignore"), "target/\n").unwrap();

    let (code, _, stderr) = outcome(castsync(&home).arg("-C").arg(&root).arg("init"));
    assert_eq!(code, 1);
    assert!(stderr.contains(".gitignore already exist"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        "target/\n"
    );
    for absent in ["castsync.yaml", ".gitattributes", "agents"] {
        assert!(!root.join(absent).exists(), "{absent} was written");
    }
    assert!(empty_dir(&home), "no identity is generated either");
}

#[test]
fn new_creates_an_empty_encrypted_manifest_and_a_commented_schema() {
    let repo = SecretsRepo::new("");
    let (code, _, stderr) = outcome(repo.cmd().args(["new", "support-bot"]));
    assert_eq!(code, 0, "{stderr}");
    assert_only_manifest_and_schema(&repo, "support-bot");
    let ciphertext = String::from_utf8(manifest_bytes(&repo, "support-bot")).unwrap();
    assert!(ciphertext.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!ciphertext.contains("support-bot"), "no plaintext on disk");
    assert_eq!(
        revealed(&repo, "support-bot"),
        serde_json::json!({"agent": "support-bot", "secrets": {}})
    );
    let schema = std::fs::read_to_string(repo.path("agents/support-bot/.env.example")).unwrap();
    assert!(schema.lines().all(|l| l.starts_with('#')), "{schema}");
    // It records the recipients it was encrypted to, so rekey --check finds it current.
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check"]));
    assert_eq!((code, stdout.as_str()), (0, ""));
}

#[test]
fn new_keeps_an_existing_env_example() {
    let repo = SecretsRepo::new("");
    repo.schema("bot", "TOKEN=your-token\n");
    repo.cmd().args(["new", "bot"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(repo.path("agents/bot/.env.example")).unwrap(),
        "TOKEN=your-token\n"
    );
}

#[test]
fn new_refuses_an_invalid_slug_and_an_existing_manifest_writing_nothing() {
    let repo = SecretsRepo::new("");
    for bad in ["Support", "../escape", "a..b", "_hidden", "é"] {
        let (code, _, stderr) = outcome(repo.cmd().args(["new", bad]));
        assert_eq!(code, 1, "{bad}");
        assert!(stderr.contains("invalid agent slug"), "{bad}: {stderr}");
    }
    assert!(empty_dir(&repo.path("agents")));
    assert!(!repo.root.join("escape").exists());

    repo.agent("bot", &[("TOKEN", "t-1")]);
    let stderr = refused(&repo, "bot", repo.cmd().args(["new", "bot"]));
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn set_reads_stdin_and_removes_exactly_one_trailing_newline_unless_raw() {
    let repo = SecretsRepo::new("");
    repo.agent(
        "bot",
        &[("A", "x"), ("B", "x"), ("C", "x"), ("D", "x"), ("E", "x")],
    );
    for (key, input) in [
        ("A", "plain"),
        ("B", "lf\n"),
        ("C", "crlf\r\n"),
        ("D", "two\n\n"),
    ] {
        let (code, _, stderr) = set(&repo, "bot", key, input);
        assert_eq!(code, 0, "{key}: {stderr}");
    }
    let (code, _, _) = outcome(
        repo.cmd()
            .args(["set", "bot", "E", "--raw"])
            .write_stdin("raw\n"),
    );
    assert_eq!(code, 0);
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"A": "plain", "B": "lf", "C": "crlf", "D": "two\n", "E": "raw\n"})
    );
    assert_only_manifest_and_schema(&repo, "bot");
}

#[test]
fn set_with_the_same_value_does_not_rewrite_the_file() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("TOKEN", "t-1")]);
    set(&repo, "bot", "TOKEN", "t-2");
    let before = manifest_bytes(&repo, "bot");
    let (code, _, stderr) = set(&repo, "bot", "TOKEN", "t-2\n");
    assert_eq!(code, 0);
    assert!(stderr.contains("unchanged"), "{stderr}");
    assert_eq!(manifest_bytes(&repo, "bot"), before);
}

#[test]
fn set_refuses_a_key_the_schema_does_not_declare_and_names_the_fix() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("TOKEN", "t-1")]);
    let stderr = refused(
        &repo,
        "bot",
        repo.cmd()
            .args(["set", "bot", "EXTRA_KEY"])
            .write_stdin("x"),
    );
    assert!(
        stderr.contains("key EXTRA_KEY: the manifest declares it but .env.example does not list it; add `EXTRA_KEY=` to .env.example"),
        "{stderr}"
    );
    assert!(stderr.contains("was not changed"), "{stderr}");
}

#[test]
fn set_refuses_invalid_key_names_unmanaged_keys_and_unknown_agents() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("TOKEN", "t-1")]);
    repo.schema("bot", "TOKEN=x\nANTHROPIC_API_KEY=x\n");
    for (agent, key, expect) in [
        ("bot", "1BAD", "invalid key name \"1BAD\""),
        ("bot", "API-KEY", "invalid key name"),
        (
            "bot",
            "ANTHROPIC_API_KEY",
            "Castari injects this key itself",
        ),
        ("nobody", "TOKEN", "castsync new nobody"),
    ] {
        let stderr = refused(
            &repo,
            "bot",
            repo.cmd().args(["set", agent, key]).write_stdin("v"),
        );
        assert!(stderr.contains(expect), "{key}: {stderr}");
    }
    assert!(!repo.path("agents/nobody").exists());
}

#[test]
fn set_allows_a_manifest_to_be_filled_one_key_at_a_time() {
    let repo = SecretsRepo::new("");
    repo.cmd().args(["new", "bot"]).assert().success();
    repo.schema("bot", "FIRST=x\nSECOND=y\n");
    let (code, _, stderr) = set(&repo, "bot", "FIRST", "one");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not set yet: SECOND"), "{stderr}");

    let (code, stdout, _) = outcome(repo.cmd().arg("validate"));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("key SECOND: required by .env.example but missing"),
        "{stdout}"
    );
    set(&repo, "bot", "SECOND", "two");
    repo.cmd().arg("validate").assert().success();
}

#[test]
fn unset_removes_a_key_and_refuses_an_absent_one_unless_idempotent() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("KEEP", "k"), ("DROP", "d")]);
    repo.schema("bot", "KEEP=x\nDROP=y # optional\n");
    repo.cmd().args(["unset", "bot", "DROP"]).assert().success();
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"KEEP": "k"})
    );

    let before = manifest_bytes(&repo, "bot");
    let stderr = refused(&repo, "bot", repo.cmd().args(["unset", "bot", "DORP"]));
    assert!(
        stderr.contains("key DORP is not in agents/bot/secrets.yaml.age"),
        "{stderr}"
    );
    let (code, _, _) = outcome(repo.cmd().args(["unset", "bot", "DROP", "--idempotent"]));
    assert_eq!(code, 0);
    assert_eq!(manifest_bytes(&repo, "bot"), before);
    assert_only_manifest_and_schema(&repo, "bot");
}

#[test]
fn show_without_reveal_prints_key_names_in_every_format() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("A_KEY", "value-a"), ("B_KEY", "value-b")]);
    let show = |format: &str| {
        let (code, stdout, _) = outcome(repo.cmd().args(["show", "bot", "--format", format]));
        assert_eq!(code, 0);
        assert!(!stdout.contains("value-"), "{format}: {stdout}");
        stdout
    };
    assert_eq!(
        show("yaml"),
        "agent: bot\nsecrets:\n  A_KEY: \"<hidden>\"\n  B_KEY: \"<hidden>\"\n"
    );
    assert_eq!(show("dotenv"), "A_KEY='<hidden>'\nB_KEY='<hidden>'\n");
    let json: serde_json::Value = serde_json::from_str(&show("json")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"agent": "bot", "secrets": {"A_KEY": "<hidden>", "B_KEY": "<hidden>"}})
    );
}

#[test]
fn show_reveal_as_dotenv_imports_back_to_the_same_values() {
    let repo = SecretsRepo::new("");
    let tricky = [
        ("QUOTES", "it's \"quoted\" $HOME"),
        ("LINES", "line one\nline two"),
        ("SPACES", "  padded # not a comment"),
    ];
    repo.agent("source", &tricky);
    let (code, dotenv, _) = outcome(
        repo.cmd()
            .args(["show", "source", "--reveal", "--format", "dotenv"]),
    );
    assert_eq!(code, 0);
    let (code, _, stderr) = outcome(
        repo.cmd()
            .args(["import", "copy", "--from-dotenv", "-"])
            .write_stdin(dotenv),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        revealed(&repo, "copy")["secrets"],
        revealed(&repo, "source")["secrets"]
    );
    let (code, yaml, _) = outcome(repo.cmd().args(["show", "source", "--reveal"]));
    assert_eq!(code, 0);
    assert!(
        yaml.contains("QUOTES: \"it's \\\"quoted\\\" $HOME\""),
        "{yaml}"
    );
}

#[test]
fn import_creates_a_manifest_from_a_dotenv_file_skipping_unmanaged_keys() {
    let repo = SecretsRepo::new("");
    let env_file = repo.home.join("prod.env");
    std::fs::write(
        &env_file,
        "# production\nexport OPENAI_API_KEY=sk-1\nDATABASE_URL=\"postgres://u:p@db/app\"\nANTHROPIC_API_KEY=sk-ant\n",
    )
    .unwrap();
    let (code, _, stderr) = outcome(
        repo.cmd()
            .args(["import", "bot", "--from-dotenv"])
            .arg(&env_file),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("skipped ANTHROPIC_API_KEY"), "{stderr}");
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"OPENAI_API_KEY": "sk-1", "DATABASE_URL": "postgres://u:p@db/app"})
    );
    // No schema yet: a warning, not an error.
    let (code, stdout, _) = outcome(repo.cmd().arg("validate"));
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn import_refuses_a_different_value_without_overwrite_naming_keys_not_values() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("SAME", "same-value"), ("DIFF", "old-value-x1")]);
    repo.schema("bot", "SAME=a\nDIFF=b\nNEW=c\n");
    let input = "SAME=same-value\nDIFF=new-value-x2\nNEW=fresh\n";
    let stderr = refused(
        &repo,
        "bot",
        repo.cmd()
            .args(["import", "bot", "--from-dotenv", "-"])
            .write_stdin(input),
    );
    assert!(
        stderr.contains("already holds DIFF with a different value"),
        "{stderr}"
    );
    assert!(stderr.contains("--overwrite"), "{stderr}");
    assert_no_canary("stderr", &stderr, &["old-value-x1", "new-value-x2"]);

    let (code, _, stderr) = outcome(
        repo.cmd()
            .args(["import", "bot", "--from-dotenv", "-", "--overwrite"])
            .write_stdin(input),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"SAME": "same-value", "DIFF": "new-value-x2", "NEW": "fresh"})
    );
    assert_only_manifest_and_schema(&repo, "bot");
}

#[test]
fn import_reports_a_malformed_line_by_number_without_its_text() {
    let repo = SecretsRepo::new("");
    let (code, _, stderr) = outcome(
        repo.cmd()
            .args(["import", "bot", "--from-dotenv", "-"])
            .write_stdin("GOOD=1\nsecret-text-without-equals\n"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("(stdin):2: expected KEY=value"), "{stderr}");
    assert!(!stderr.contains("secret-text"), "{stderr}");
    assert!(!repo.path("agents/bot").exists());
}

/// A second identity and its recipient, written under the repo's HOME.
fn second_identity(repo: &SecretsRepo) -> (std::path::PathBuf, String) {
    use secrecy::ExposeSecret;
    let (secret, recipient) = castsync::crypto::generate_identity();
    let path = repo.home.join("second.txt");
    std::fs::write(&path, secret.expose_secret()).unwrap();
    set_private(&path);
    (path, recipient)
}

#[test]
fn rekey_check_lists_stale_files_and_rekey_makes_them_current() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.agent("beta", &[("B", "b")]);

    // Written without metadata: no record of their recipients.
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check"]));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("agents/alpha/secrets.yaml.age: stale: no record"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agents/beta/secrets.yaml.age: stale"),
        "{stdout}"
    );
    repo.cmd().arg("rekey").assert().success();
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check"]));
    assert_eq!((code, stdout.as_str()), (0, ""));

    // Someone joins: the check names them, rekey lets them decrypt.
    let (other_key, other) = second_identity(&repo);
    repo.config(&format!(
        "access:\n  - agents: \"beta\"\n    recipients: [{}, {other}]",
        repo.recipient
    ));
    let show_as_other = || {
        let mut cmd = castsync(&repo.home);
        cmd.arg("-C")
            .arg(&repo.root)
            .arg("-i")
            .arg(&other_key)
            .args(["show", "beta"]);
        cmd
    };
    let before_alpha = manifest_bytes(&repo, "alpha");
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check"]));
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        format!("agents/beta/secrets.yaml.age: stale: for {other}\n")
    );
    show_as_other().assert().failure();
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "beta"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("agents/beta/secrets.yaml.age: re-encrypted"),
        "{stdout}"
    );
    assert_eq!(
        manifest_bytes(&repo, "alpha"),
        before_alpha,
        "alpha untouched"
    );
    show_as_other().assert().success();

    // The first one leaves beta: after rekey, their key no longer opens it.
    repo.config(&format!(
        "access:\n  - agents: \"beta\"\n    recipients: [{other}]"
    ));
    let (code, stdout, stderr) = outcome(repo.cmd().args(["rekey", "beta"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("no longer for {}", repo.recipient)),
        "{stdout}"
    );
    assert!(stderr.contains("none of them yours"), "{stderr}");
    repo.cmd().args(["show", "beta"]).assert().failure();
    assert_only_manifest_and_schema(&repo, "beta");
}

#[test]
fn rekey_reports_a_file_it_cannot_decrypt_and_still_rekeys_the_others() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.agent("broken", &[("B", "b")]);
    std::fs::write(
        repo.path("agents/broken/secrets.yaml.age"),
        "not an age file\n",
    )
    .unwrap();
    let (code, stdout, stderr) = outcome(repo.cmd().arg("rekey"));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("agents/alpha/secrets.yaml.age: re-encrypted"),
        "{stdout}"
    );
    assert!(
        stderr.contains("agents/broken/secrets.yaml.age is not a valid age file"),
        "{stderr}"
    );
    let (code, stdout, _) = outcome(repo.cmd().args(["rekey", "--check", "alpha"]));
    assert_eq!((code, stdout.as_str()), (0, ""));
    let (code, _, stderr) = outcome(repo.cmd().args(["rekey", "nobody"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("agent \"nobody\" is not declared"),
        "{stderr}"
    );
}
