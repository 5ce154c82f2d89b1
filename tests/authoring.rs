//! The authoring commands through the binary: init, new, set, unset, show, import, rekey.
//! `edit` and the canary sweep over every command have their own files.

mod canary;
mod edit;

use std::path::Path;

use tempfile::TempDir;

use crate::support::*;

/// `castsync set AGENT KEY` with `value` on stdin.
fn set(repo: &SecretsRepo, agent: &str, key: &str, value: &str) -> Run {
    repo.test().args(["set", agent, key]).stdin(value).run()
}

/// The agent's manifest as `show --reveal --format json` prints it.
fn revealed(repo: &SecretsRepo, agent: &str) -> serde_json::Value {
    repo.test()
        .args(["show", agent, "--reveal", "--format", "json"])
        .run()
        .success()
        .json()
}

fn manifest_bytes(repo: &SecretsRepo, agent: &str) -> Vec<u8> {
    std::fs::read(repo.path(&format!("agents/{agent}/secrets.yaml.age"))).unwrap()
}

/// Runs `test`, which must fail with exit 1 and leave `agent`'s manifest byte for byte as it
/// was.
fn refused(repo: &SecretsRepo, agent: &str, test: Test) -> Run {
    let before = manifest_bytes(repo, agent);
    let run = test.run().failure();
    assert_eq!(manifest_bytes(repo, agent), before, "the manifest changed");
    run
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

/// A HOME and an empty repository folder beside it: `castsync -C repo` with that HOME.
struct Fresh {
    _tmp: TempDir,
    home: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Fresh {
    fn new() -> Fresh {
        let tmp = TempDir::new().unwrap();
        let (home, root) = (tmp.path().join("home"), tmp.path().join("repo"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        Fresh {
            _tmp: tmp,
            home,
            root,
        }
    }

    /// `castsync -C REPO`; `write` writes into the repository.
    fn test(&self) -> Test {
        Test::with(castsync(&self.home), &self.root, &self.home)
            .arg("-C")
            .arg(&self.root)
    }
}

#[test]
fn init_writes_config_agents_gitignore_and_gitattributes_and_a_new_identity() {
    let fresh = Fresh::new();
    let (home, root) = (&fresh.home, &fresh.root);
    let key_file = home.join(".config/castsync/keys.txt");
    fresh
        .test()
        .arg("init")
        .run()
        .success()
        .stdout_is("")
        .stderr_has(key_file.display().to_string())
        .stderr_has("git config diff.castsync.textconv \"castsync textconv\"")
        .stderr_has("git config merge.castsync.driver \"castsync merge-driver %O %A %B %P\"");
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
    fresh.test().args(["new", "bot"]).run().success();
    fresh
        .test()
        .write("agents/bot/.env.example", "TOKEN=your-token\n")
        .args(["set", "bot", "TOKEN"])
        .stdin("t-1")
        .run()
        .success();
    fresh.test().arg("validate").run().success();
}

#[test]
fn init_lists_the_recipient_of_an_existing_identity_instead_of_making_one() {
    let repo = SecretsRepo::new("");
    let root = repo.home.join("fresh");
    std::fs::create_dir_all(&root).unwrap();
    Test::at_home(&repo.home)
        .arg("-C")
        .arg(&root)
        .arg("-i")
        .arg(&repo.key_file)
        .arg("init")
        .run()
        .success();
    let config = std::fs::read_to_string(root.join("castsync.yaml")).unwrap();
    assert!(config.contains(&repo.recipient), "{config}");
    assert!(!repo.home.join(".config/castsync/keys.txt").exists());
}

#[test]
fn init_refuses_when_any_file_exists_and_writes_nothing() {
    let fresh = Fresh::new();
    let root = &fresh.root;
    std::fs::write(root.join(".gitignore"), "target/\n").unwrap();

    fresh
        .test()
        .arg("init")
        .run()
        .failure()
        .stderr_has(".gitignore already exist")
        .stderr_has("nothing was written");
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        "target/\n"
    );
    for absent in ["castsync.yaml", ".gitattributes", "agents"] {
        assert!(!root.join(absent).exists(), "{absent} was written");
    }
    assert!(empty_dir(&fresh.home), "no identity is generated either");
}

#[test]
fn new_creates_an_empty_encrypted_manifest_and_a_commented_schema() {
    let repo = SecretsRepo::new("");
    repo.test().args(["new", "support-bot"]).run().success();
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
    repo.test()
        .args(["rekey", "--check"])
        .run()
        .success()
        .stdout_is("");
}

#[test]
fn new_keeps_an_existing_env_example() {
    let repo = SecretsRepo::new("");
    repo.schema("bot", "TOKEN=your-token\n");
    repo.test().args(["new", "bot"]).run().success();
    assert_eq!(
        std::fs::read_to_string(repo.path("agents/bot/.env.example")).unwrap(),
        "TOKEN=your-token\n"
    );
}

#[test]
fn new_refuses_an_invalid_slug_and_an_existing_manifest_writing_nothing() {
    let repo = SecretsRepo::new("");
    for bad in ["Support", "../escape", "a..b", "_hidden", "é"] {
        repo.test()
            .args(["new", bad])
            .run()
            .failure()
            .stderr_has("invalid agent slug");
    }
    assert!(empty_dir(&repo.path("agents")));
    assert!(!repo.root.join("escape").exists());

    repo.agent("bot", &[("TOKEN", "t-1")]);
    refused(&repo, "bot", repo.test().args(["new", "bot"])).stderr_has("already exists");
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
        set(&repo, "bot", key, input).success();
    }
    repo.test()
        .args(["set", "bot", "E", "--raw"])
        .stdin("raw\n")
        .run()
        .success();
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
    set(&repo, "bot", "TOKEN", "t-2").success();
    let before = manifest_bytes(&repo, "bot");
    set(&repo, "bot", "TOKEN", "t-2\n")
        .success()
        .stderr_has("unchanged");
    assert_eq!(manifest_bytes(&repo, "bot"), before);
}

#[test]
fn set_refuses_a_key_the_schema_does_not_declare_and_names_the_fix() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("TOKEN", "t-1")]);
    refused(
        &repo,
        "bot",
        repo.test().args(["set", "bot", "EXTRA_KEY"]).stdin("x"),
    )
    .stderr_has("key EXTRA_KEY: the manifest declares it but .env.example does not list it; add `EXTRA_KEY=` to .env.example")
    .stderr_has("was not changed");
}

#[test]
fn set_refuses_invalid_key_names_unmanaged_keys_and_unknown_agents() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("TOKEN", "t-1")]);
    repo.schema("bot", "TOKEN=x\nANTHROPIC_API_KEY=x\n");
    for (agent, key, expect) in [
        (
            "bot",
            "1BAD",
            "invalid key name (4 characters, not shown in case it is a value): it starts with a digit",
        ),
        (
            "bot",
            "API-KEY",
            "invalid key name (7 characters, not shown in case it is a value): character 4 is '-'",
        ),
        (
            "bot",
            "sk-canary-7c1e9f0a",
            "the value goes on stdin or at the prompt",
        ),
        (
            "bot",
            "ANTHROPIC_API_KEY",
            "Castari injects this key itself",
        ),
        ("nobody", "TOKEN", "castsync new nobody"),
    ] {
        refused(
            &repo,
            "bot",
            repo.test().args(["set", agent, key]).stdin("v"),
        )
        .stderr_has(expect);
    }
    assert!(!repo.path("agents/nobody").exists());

    // A value typed where the key goes is refused without being repeated.
    let canary = "sk-CANARY-typed-as-a-key-5d1f";
    refused(
        &repo,
        "bot",
        repo.test().args(["set", "bot", canary]).stdin("v"),
    )
    .stderr_has("not shown in case it is a value")
    .stderr_lacks(canary)
    .stdout_lacks(canary);
}

#[test]
fn set_allows_a_manifest_to_be_filled_one_key_at_a_time() {
    let repo = SecretsRepo::new("");
    repo.test().args(["new", "bot"]).run().success();
    repo.schema("bot", "FIRST=x\nSECOND=y\n");
    set(&repo, "bot", "FIRST", "one")
        .success()
        .stderr_has("not set yet: SECOND");

    repo.test()
        .arg("validate")
        .run()
        .failure()
        .stdout_has("key SECOND: required by .env.example but missing");
    set(&repo, "bot", "SECOND", "two").success();
    repo.test().arg("validate").run().success();
}

#[test]
fn unset_removes_a_key_and_refuses_an_absent_one_unless_idempotent() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("KEEP", "k"), ("DROP", "d")]);
    repo.schema("bot", "KEEP=x\nDROP=y # optional\n");
    repo.test().args(["unset", "bot", "DROP"]).run().success();
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"KEEP": "k"})
    );

    let before = manifest_bytes(&repo, "bot");
    refused(&repo, "bot", repo.test().args(["unset", "bot", "DORP"]))
        .stderr_has("key DORP is not in agents/bot/secrets.yaml.age");
    repo.test()
        .args(["unset", "bot", "DROP", "--idempotent"])
        .run()
        .success();
    assert_eq!(manifest_bytes(&repo, "bot"), before);
    assert_only_manifest_and_schema(&repo, "bot");
}

#[test]
fn show_without_reveal_prints_key_names_in_every_format() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("A_KEY", "value-a"), ("B_KEY", "value-b")]);
    let show = |format: &str| {
        repo.test()
            .args(["show", "bot", "--format", format])
            .run()
            .success()
            .no_canary(&["value-"])
    };
    show("yaml").stdout_is("agent: bot\nsecrets:\n  A_KEY: \"<hidden>\"\n  B_KEY: \"<hidden>\"\n");
    show("dotenv").stdout_is("A_KEY='<hidden>'\nB_KEY='<hidden>'\n");
    assert_eq!(
        show("json").json(),
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
    let dotenv = repo
        .test()
        .args(["show", "source", "--reveal", "--format", "dotenv"])
        .run()
        .success();
    repo.test()
        .args(["import", "copy", "--from-dotenv", "-"])
        .stdin(dotenv.stdout())
        .run()
        .success();
    assert_eq!(
        revealed(&repo, "copy")["secrets"],
        revealed(&repo, "source")["secrets"]
    );
    repo.test()
        .args(["show", "source", "--reveal"])
        .run()
        .success()
        .stdout_has("QUOTES: \"it's \\\"quoted\\\" $HOME\"");
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
    repo.test()
        .args(["import", "bot", "--from-dotenv"])
        .arg(&env_file)
        .run()
        .success()
        .stderr_has("skipped ANTHROPIC_API_KEY");
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"OPENAI_API_KEY": "sk-1", "DATABASE_URL": "postgres://u:p@db/app"})
    );
    // No schema yet: a warning, not an error.
    repo.test().arg("validate").run().success();
}

#[test]
fn import_refuses_a_different_value_without_overwrite_naming_keys_not_values() {
    let repo = SecretsRepo::new("");
    repo.agent("bot", &[("SAME", "same-value"), ("DIFF", "old-value-x1")]);
    repo.schema("bot", "SAME=a\nDIFF=b\nNEW=c\n");
    let input = "SAME=same-value\nDIFF=new-value-x2\nNEW=fresh\n";
    refused(
        &repo,
        "bot",
        repo.test()
            .args(["import", "bot", "--from-dotenv", "-"])
            .stdin(input),
    )
    .stderr_has("already holds DIFF with a different value")
    .stderr_has("--overwrite")
    .no_canary(&["old-value-x1", "new-value-x2"]);

    repo.test()
        .args(["import", "bot", "--from-dotenv", "-", "--overwrite"])
        .stdin(input)
        .run()
        .success();
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"SAME": "same-value", "DIFF": "new-value-x2", "NEW": "fresh"})
    );
    assert_only_manifest_and_schema(&repo, "bot");
}

#[test]
fn import_reports_a_malformed_line_by_number_without_its_text() {
    let repo = SecretsRepo::new("");
    repo.test()
        .args(["import", "bot", "--from-dotenv", "-"])
        .stdin("GOOD=1\nsecret-text-without-equals\n")
        .run()
        .failure()
        .stderr_has("(stdin):2: expected KEY=value")
        .no_canary(&["secret-text"]);
    assert!(!repo.path("agents/bot").exists());
}

/// Issue 21, point 4: old Mac files end lines with a bare CR; python-dotenv and node read
/// three keys here, and so does `import` (it once read one key holding the other two).
#[test]
fn import_reads_lines_ended_by_a_bare_carriage_return() {
    let repo = SecretsRepo::new("");
    repo.test()
        .args(["import", "bot", "--from-dotenv", "-"])
        .stdin("SERVER=localhost\rPASSWORD=canary-cr-pw\rDB=t\r")
        .run()
        .success()
        .no_canary(&["canary-cr-pw"]);
    assert_eq!(
        revealed(&repo, "bot")["secrets"],
        serde_json::json!({"SERVER": "localhost", "PASSWORD": "canary-cr-pw", "DB": "t"})
    );
    // A key twice is refused in a real .env: which value is meant?
    repo.test()
        .args(["import", "other", "--from-dotenv", "-"])
        .stdin("K=canary-one\nK=canary-two\n")
        .run()
        .failure()
        .stderr_has("(stdin):2: duplicate key K (first at line 1)")
        .no_canary(&["canary-one", "canary-two"]);
}

/// Issue 21, point 4: real defaults copied from the example are fine; only a placeholder
/// that looks like one is "someone copied the example" (a stock Laravel .env once gave 39).
#[test]
fn import_accepts_real_defaults_equal_to_the_example_and_refuses_copied_placeholders() {
    let repo = SecretsRepo::new("");
    repo.test().args(["new", "shop"]).run().success();
    repo.schema(
        "shop",
        "APP_ENV=local\nDB_PORT=3306\nMAIL_MAILER=smtp\nOPENAI_API_KEY=sk-...\n",
    );
    repo.test()
        .args(["import", "shop", "--from-dotenv", "-"])
        .stdin("APP_ENV=local\nDB_PORT=3306\nMAIL_MAILER=smtp\nOPENAI_API_KEY=sk-real-canary\n")
        .run()
        .success()
        .no_canary(&["sk-real-canary"]);
    repo.test()
        .args(["import", "shop", "--from-dotenv", "-", "--overwrite"])
        .stdin("APP_ENV=local\nDB_PORT=3306\nMAIL_MAILER=smtp\nOPENAI_API_KEY=sk-...\n")
        .run()
        .failure()
        .stderr_has("someone copied the example");
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
    let check = || repo.test().args(["rekey", "--check"]).run();

    // Written without metadata: no record of their recipients.
    check()
        .failure()
        .stdout_has("agents/alpha/secrets.yaml.age: stale: no record")
        .stdout_has("agents/beta/secrets.yaml.age: stale");
    repo.test().arg("rekey").run().success();
    check().success().stdout_is("");

    // Someone joins: the check names them, rekey lets them decrypt.
    let (other_key, other) = second_identity(&repo);
    repo.config(&format!(
        "access:\n  - agents: \"beta\"\n    recipients: [{}, {other}]",
        repo.recipient
    ));
    let show_as_other = || {
        Test::at_home(&repo.home)
            .arg("-C")
            .arg(&repo.root)
            .arg("-i")
            .arg(&other_key)
            .args(["show", "beta"])
            .run()
    };
    let before_alpha = manifest_bytes(&repo, "alpha");
    check().failure().stdout_is(format!(
        "agents/beta/secrets.yaml.age: stale: for {other}\n"
    ));
    show_as_other().failure();
    repo.test()
        .args(["rekey", "beta"])
        .run()
        .success()
        .stdout_has("agents/beta/secrets.yaml.age: re-encrypted");
    assert_eq!(
        manifest_bytes(&repo, "alpha"),
        before_alpha,
        "alpha untouched"
    );
    show_as_other().success();

    // The first one leaves beta: after rekey, their key no longer opens it.
    repo.config(&format!(
        "access:\n  - agents: \"beta\"\n    recipients: [{other}]"
    ));
    repo.test()
        .args(["rekey", "beta"])
        .run()
        .success()
        .stdout_has(format!("no longer for {}", repo.recipient))
        .stderr_has("none of them yours");
    repo.test().args(["show", "beta"]).run().failure();
    assert_only_manifest_and_schema(&repo, "beta");
}

#[test]
fn rekey_check_names_the_recipients_the_config_names_even_once_removed() {
    let repo = SecretsRepo::new("");
    let (_, ci) = castsync::crypto::generate_identity();
    let (_, bare) = castsync::crypto::generate_identity();
    let named = |extra: &str| {
        let text = format!(
            "version: 1\nrecipients:\n  - me: {}\n{extra}",
            repo.recipient
        );
        std::fs::write(repo.path("castsync.yaml"), text).unwrap();
    };
    named(&format!("  - ci-prod: {ci}\n"));
    repo.agent("alpha", &[("A", "a")]);
    repo.test().arg("rekey").run().success();
    repo.commit_all("alpha for me and ci-prod");

    // ci-prod leaves (the name survives in the committed config), a bare key joins.
    named(&format!("  - {bare}\n"));
    let short = castsync::config::short_label(&bare);
    assert!(short.contains('…') && short.len() < bare.len(), "{short}");
    repo.test()
        .args(["rekey", "--check"])
        .run()
        .failure()
        .stdout_is(format!(
            "agents/alpha/secrets.yaml.age: stale: for {short}; no longer for ci-prod\n"
        ));
    let json = repo.test().args(["rekey", "--check", "-o", "json"]).run();
    let doc = json.json();
    assert_eq!(doc["files"][0]["removed_recipients"][0], ci.as_str());
    assert_eq!(
        doc["files"][0]["description"],
        format!("for {short}; no longer for ci-prod").as_str()
    );
}

#[test]
fn rekey_reports_a_file_it_cannot_decrypt_and_still_rekeys_the_others() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "a")]);
    repo.agent("broken", &[("B", "b")]);
    repo.test()
        .write("agents/broken/secrets.yaml.age", "not an age file\n")
        .arg("rekey")
        .run()
        .failure()
        .stdout_has("agents/alpha/secrets.yaml.age: re-encrypted")
        .stderr_has("agents/broken/secrets.yaml.age is not a valid age file");
    repo.test()
        .args(["rekey", "--check", "alpha"])
        .run()
        .success()
        .stdout_is("");
    repo.test()
        .args(["rekey", "nobody"])
        .run()
        .failure()
        .stderr_has("agent \"nobody\" is not declared");
}
