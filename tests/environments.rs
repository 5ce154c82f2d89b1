//! Environments end to end (docs/environments.md): two emulators as the staging and the
//! production account, each with its own API key variable; overlays laid over the shared
//! file; per-environment state and history; a staging-only identity.

use std::path::PathBuf;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::*;

const STAGING_TOKEN: &str = "cast_staging_token";
const PRODUCTION_TOKEN: &str = "cast_production_token";
const SHARED: &str = "canary-env-shared-41c2";
const BASE_BOTH: &str = "canary-env-base-both-7e10";
const PROD_BOTH: &str = "canary-env-prod-both-c3a9";
const TEST_STRIPE: &str = "canary-env-sk-test-5d8e";
const LIVE_STRIPE: &str = "canary-env-sk-live-0b6f";
const CANARIES: &[&str] = &[SHARED, BASE_BOTH, PROD_BOTH, TEST_STRIPE, LIVE_STRIPE];

/// A repository with environments staging and production, agent support-bot, and the two
/// accounts. `repo.key_file` is a staging identity (a recipient of the shared files and of
/// the staging overlays); `production_key` reads the production overlays too.
struct TwoEnvs {
    repo: SecretsRepo,
    staging: Emulator,
    production: Emulator,
    production_key: PathBuf,
}

impl TwoEnvs {
    fn new() -> TwoEnvs {
        let staging = Emulator::start(&[
            "--token",
            STAGING_TOKEN,
            "--agents",
            "support-bot-staging,billing-staging",
        ]);
        let production = Emulator::start(&[
            "--token",
            PRODUCTION_TOKEN,
            "--agents",
            "support-bot,billing",
        ]);
        let (secret, production_recipient) = castsync::crypto::generate_identity();
        let repo = SecretsRepo::new(&format!(
            "environments:
  staging:
    platform:
      url: {}
      api_key_env: CASTARI_API_KEY_STAGING
    agent_slug: \"{{agent}}-staging\"
  production:
    platform:
      url: {}
      api_key_env: CASTARI_API_KEY_PRODUCTION
    recipients:
      - {production_recipient}
",
            staging.url, production.url
        ));
        let production_key = repo.home.join("production-key.txt");
        std::fs::write(&production_key, secret.expose_secret()).unwrap();
        set_private(&production_key);
        repo.raw_manifest(
            "support-bot",
            &format!("agent: support-bot\nsecrets:\n  SHARED: {SHARED}\n  BOTH: {BASE_BOTH}\n"),
        );
        repo.schema("support-bot", "SHARED=\nBOTH=\nSTRIPE_KEY=\n");
        let envs = TwoEnvs {
            repo,
            staging,
            production,
            production_key,
        };
        envs.set("staging", "STRIPE_KEY", TEST_STRIPE);
        envs.set("production", "STRIPE_KEY", LIVE_STRIPE);
        envs.set("production", "BOTH", PROD_BOTH);
        envs
    }

    /// A run with both identities (a production recipient) and both API keys.
    fn test(&self) -> Test {
        self.repo
            .test()
            .args(["-i".as_ref(), self.production_key.as_os_str()])
            .env("CASTARI_API_KEY_STAGING", STAGING_TOKEN)
            .env("CASTARI_API_KEY_PRODUCTION", PRODUCTION_TOKEN)
    }

    /// A run as the staging-only identity, with both API keys.
    fn staging_only(&self) -> Test {
        self.repo
            .test()
            .env("CASTARI_API_KEY_STAGING", STAGING_TOKEN)
            .env("CASTARI_API_KEY_PRODUCTION", PRODUCTION_TOKEN)
    }

    fn set(&self, env: &str, key: &str, value: &str) {
        self.test()
            .args(["set", "--env", env, "support-bot", key])
            .stdin(value)
            .run()
            .success()
            .no_canary(CANARIES);
    }

    fn writes(emu: &Emulator) -> u64 {
        emu.requests("POST") + emu.requests("PUT") + emu.requests("DELETE")
    }
}

#[test]
fn one_reconcile_applies_every_environment_to_its_own_platform_with_its_own_values() {
    let envs = TwoEnvs::new();
    let (staging, production) = (&envs.staging, &envs.production);
    assert!(
        envs.repo
            .path("agents/support-bot/secrets.production.yaml.age")
            .exists()
    );
    let out = envs.test().arg("reconcile").run().success();
    let out = out.no_canary(CANARIES);
    out.stdout_has("castsync plan for environment staging at ")
        .stdout_has("castsync plan for environment production at ");

    // Base only, overlay only, both (the overlay wins), each on its own platform; staging's
    // agent is support-bot-staging there (agent_slug).
    let staged = |k| staging.value("support-bot-staging", k);
    assert_eq!(staged("SHARED").as_deref(), Some(SHARED));
    assert_eq!(staged("BOTH").as_deref(), Some(BASE_BOTH));
    assert_eq!(staged("STRIPE_KEY").as_deref(), Some(TEST_STRIPE));
    let live = |k| production.value("support-bot", k);
    assert_eq!(live("SHARED").as_deref(), Some(SHARED));
    assert_eq!(live("BOTH").as_deref(), Some(PROD_BOTH));
    assert_eq!(live("STRIPE_KEY").as_deref(), Some(LIVE_STRIPE));
    assert_eq!(staging.value("support-bot", "STRIPE_KEY"), None);

    // With -o json, one plan document per environment, each naming it.
    let json = envs
        .test()
        .args(["reconcile", "--dry-run", "-o", "json"])
        .run()
        .success();
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(json.stdout())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let named: Vec<&str> = docs
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["staging", "production"]);
    for doc in &docs {
        assert_plan_schema(doc);
        assert_eq!(doc["has_changes"], false, "{doc:#}");
    }

    // State and history per environment; nothing under the names of a repository without
    // environments.
    let state = envs.repo.path(".castsync");
    for file in [
        "state.staging.db",
        "state.production.db",
        "state.staging.history.jsonl",
        "state.production.history.jsonl",
    ] {
        assert!(state.join(file).exists(), "{file}");
    }
    assert!(!state.join("state.db").exists());

    // `unset --env production` removes the key from the overlay only: production falls back
    // to the shared value, and `--env production` touches nothing of staging's.
    envs.test()
        .args(["unset", "--env", "production", "support-bot", "BOTH"])
        .run()
        .success();
    let staging_state = std::fs::read(state.join("state.staging.json")).unwrap();
    staging.reset_stats();
    envs.test()
        .args(["reconcile", "--env", "production"])
        .run()
        .success()
        .no_canary(CANARIES)
        .stdout_lacks("environment staging");
    assert_eq!(live("BOTH").as_deref(), Some(BASE_BOTH));
    assert_eq!(staged("BOTH").as_deref(), Some(BASE_BOTH));
    assert_eq!(staging.requests("GET"), 0, "staging was not even listed");
    assert_eq!(
        std::fs::read(state.join("state.staging.json")).unwrap(),
        staging_state
    );

    // Each environment's history is its own.
    let history = envs
        .test()
        .args(["history", "--env", "production", "-o", "json"])
        .run()
        .success();
    let entries = history.json()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["key"] == "BOTH"),
        "{}",
        history.stdout()
    );
}

#[test]
fn a_staging_only_identity_applies_staging_and_gets_one_clear_error_per_production_agent() {
    let envs = TwoEnvs::new();
    envs.repo.raw_manifest(
        "billing",
        "agent: billing\nsecrets:\n  SHARED: shared-billing\n",
    );
    envs.repo
        .schema("billing", "SHARED=\nLIVE_ONLY=  # optional\n");
    envs.test()
        .args(["set", "--env", "production", "billing", "LIVE_ONLY"])
        .stdin("live-only-value")
        .run()
        .success();
    // A key on production that castsync would prune if it took the agent as empty.
    let planted = envs.production.request(
        "POST",
        "/api/v1/agents/support-bot/secrets",
        Some(PRODUCTION_TOKEN),
        Some(json!({ "key": "PLANTED", "value": "planted" })),
    );
    assert!(planted.status < 300, "{}", planted.status);

    envs.staging_only()
        .args(["validate", "--env", "staging"])
        .run()
        .success()
        .stdout_has("ok: 2 agents valid");
    let message = "is encrypted to the production recipients; you are not one";
    envs.staging_only()
        .arg("validate")
        .run()
        .failure()
        .stdout_has(format!("secrets.production.yaml.age {message}"));

    envs.production.reset_stats();
    let out = envs.staging_only().arg("reconcile").run().failure();
    let out = out.no_canary(CANARIES);
    for agent in ["support-bot", "billing"] {
        let line = out
            .output()
            .lines()
            .filter(|l| l.contains(message) && l.contains(&format!("agents/{agent}/")))
            .count();
        assert!(line >= 1, "{agent}: {}", out.output());
    }
    assert_eq!(
        TwoEnvs::writes(&envs.production),
        0,
        "no write reached production"
    );
    assert_eq!(
        envs.production.value("support-bot", "PLANTED").as_deref(),
        Some("planted"),
        "never a prune"
    );
    // Staging was applied all the same.
    assert_eq!(
        envs.staging
            .value("support-bot-staging", "STRIPE_KEY")
            .as_deref(),
        Some(TEST_STRIPE)
    );
    assert_eq!(
        envs.staging.value("billing-staging", "SHARED").as_deref(),
        Some("shared-billing")
    );

    // `--env staging` alone is a success.
    envs.staging_only()
        .args(["reconcile", "--env", "staging"])
        .run()
        .success();
}

#[test]
fn each_environment_reads_its_own_api_key_variable_and_a_missing_one_stops_only_it() {
    let envs = TwoEnvs::new();
    let out = envs
        .test()
        .env_remove("CASTARI_API_KEY_PRODUCTION")
        .arg("reconcile")
        .run()
        .failure();
    out.stderr_has("environment production was not reconciled")
        .stderr_has("set CASTARI_API_KEY_PRODUCTION");
    assert_eq!(
        envs.staging
            .value("support-bot-staging", "SHARED")
            .as_deref(),
        Some(SHARED)
    );
    assert_eq!(TwoEnvs::writes(&envs.production), 0);

    // A flag that names one platform cannot serve a run over every environment.
    envs.test()
        .args(["reconcile", "--api-url", &envs.staging.url])
        .run()
        .failure()
        .stderr_has("--api-url (or CASTARI_API_URL) names one platform")
        .stderr_has("--env ENV");
    envs.test()
        .args(["reconcile", "--env", "prod"])
        .run()
        .failure()
        .stderr_has("environment \"prod\" is not declared in castsync.yaml")
        .stderr_has("did you mean --env production?");
}

#[test]
fn diff_between_environments_names_missing_keys_and_reused_values_never_the_values() {
    let envs = TwoEnvs::new();
    envs.repo.schema(
        "support-bot",
        "SHARED=\nBOTH=\nSTRIPE_KEY=\n# optional\nSENTRY_DSN=\n",
    );
    envs.set("production", "SENTRY_DSN", "https://sentry.example/1");
    // A production value reused in staging.
    envs.set("staging", "STRIPE_KEY", LIVE_STRIPE);
    const DIFF: [&str; 5] = ["diff", "--env", "staging", "--env", "production"];
    let out = envs
        .test()
        .args(DIFF)
        .args(["-o", "json"])
        .run()
        .success()
        .no_canary(CANARIES);
    let doc = crate::cli::assert_matches_schema("compare.schema.json", out.stdout());
    let bot = &doc["agents"][0];
    assert_eq!(bot["agent"], "support-bot");
    assert_eq!(bot["only_in"]["production"], json!(["SENTRY_DSN"]));
    assert_eq!(bot["only_in"]["staging"], json!([]));
    let same: Vec<&str> = bot["same_value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    // STRIPE_KEY is set by both overlays to one value; SHARED comes from the shared file,
    // the same by design.
    assert_eq!(same, ["STRIPE_KEY"], "{doc:#}");
    let fingerprint = bot["same_value"][0]["fingerprint"].as_str().unwrap();
    assert!(!fingerprint.is_empty());
    assert!(!out.stdout().contains(&sha256_hex(LIVE_STRIPE)));

    let text = envs
        .test()
        .args(DIFF)
        .arg("--exit-code")
        .run()
        .code(2)
        .no_canary(CANARIES);
    text.stdout_has("  only in production: SENTRY_DSN")
        .stdout_has(format!(
            "  same value in staging and production: STRIPE_KEY (fingerprint {fingerprint})"
        ));

    // A staging-only identity cannot read production: said per agent, exit 1.
    envs.staging_only()
        .args(DIFF)
        .run()
        .failure()
        .stdout_has("cannot read production")
        .no_canary(CANARIES);
}

fn sha256_hex(value: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

#[test]
fn watch_follows_one_environment_and_refuses_to_guess_which() {
    use crate::watch::daemon::{Daemon, eventually, watch_command};
    use std::time::Duration;
    let envs = TwoEnvs::new();
    envs.repo.commit_all("two environments");
    let url = format!("file://{}", envs.repo.root.display());
    let watch = |extra: &[&str], log: &str| {
        let mut cmd = watch_command(&envs.repo);
        cmd.arg("-i")
            .arg(&envs.production_key)
            .env("CASTARI_API_KEY_STAGING", STAGING_TOKEN)
            .env("CASTARI_API_KEY_PRODUCTION", PRODUCTION_TOKEN)
            .args(["watch", "--git-url", &url, "--interval", "1h", "--data-dir"])
            .arg(envs.repo.home.join(log))
            .args(extra);
        Daemon::start(cmd, &envs.repo.home.join(format!("{log}.log")))
    };
    let production = watch(&["--env", "production"], "data-production");
    eventually(Duration::from_secs(20), "production converges", || {
        envs.production
            .value("support-bot", "STRIPE_KEY")
            .as_deref()
            == Some(LIVE_STRIPE)
    });
    assert_eq!(
        TwoEnvs::writes(&envs.staging),
        0,
        "staging is another daemon's"
    );
    assert!(!production.log().contains(LIVE_STRIPE));
    drop(production);

    let unnamed = watch(&[], "data-unnamed");
    eventually(Duration::from_secs(20), "the refusal", || {
        unnamed
            .log()
            .contains("watch needs to know which environment")
    });
    assert_eq!(TwoEnvs::writes(&envs.staging), 0);
}

#[test]
fn guard_searches_each_environments_overlays_too() {
    let envs = TwoEnvs::new();
    envs.repo.commit_all("two environments");
    std::fs::write(
        envs.repo.path("notes.txt"),
        format!("live key for the demo: {LIVE_STRIPE}\n"),
    )
    .unwrap();
    let out = envs
        .test()
        .args(["guard", "-o", "json"])
        .run()
        .failure()
        .no_canary(CANARIES);
    let doc = out.json();
    let findings = doc["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["path"] == "notes.txt"
            && f["declared_by"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["key"] == "STRIPE_KEY")),
        "{doc:#}"
    );
}

#[test]
fn the_authoring_commands_take_env_and_rekey_knows_each_overlays_recipients() {
    let envs = TwoEnvs::new();
    envs.repo.raw_manifest(
        "billing",
        "agent: billing\nsecrets:\n  SHARED: shared-billing\n",
    );
    envs.repo
        .schema("billing", "SHARED=\n# optional\nLIVE_ONLY=\n");
    // An overlay lays keys over the shared file: that file comes first.
    envs.test()
        .args(["new", "--env", "staging", "nobody"])
        .run()
        .failure()
        .stderr_has("castsync new nobody");
    envs.test()
        .args(["new", "--env", "staging", "billing"])
        .run()
        .success();
    assert!(
        envs.repo
            .path("agents/billing/secrets.staging.yaml.age")
            .exists()
    );
    envs.test()
        .args([
            "import",
            "--env",
            "production",
            "billing",
            "--from-dotenv",
            "-",
        ])
        .stdin("LIVE_ONLY=live-only-value\n")
        .run()
        .success();
    let shown = envs
        .test()
        .args(["show", "--env", "production", "billing", "--format", "json"])
        .run()
        .success();
    assert_eq!(shown.json()["secrets"]["LIVE_ONLY"], "<hidden>");
    assert!(
        shown.json()["secrets"].get("SHARED").is_none(),
        "the overlay alone"
    );

    // The shared file need not hold what the overlays give each environment.
    envs.test()
        .args(["set", "support-bot", "SHARED"])
        .stdin("another-shared-value")
        .run()
        .success()
        .stderr_has("not in the file every environment shares: STRIPE_KEY")
        .stderr_lacks("`castsync validate` fails");
    // The files written by hand first get their recipients recorded.
    envs.test().arg("rekey").run().success();
    envs.test().args(["rekey", "--check"]).run().success();
    // Production gets a reader of its own: only its overlays are stale.
    let (_, reader) = castsync::crypto::generate_identity();
    let config = std::fs::read_to_string(envs.repo.path("castsync.yaml")).unwrap();
    let config = config.replace(
        "    recipients:\n",
        &format!("    recipients:\n      - {reader}\n"),
    );
    std::fs::write(envs.repo.path("castsync.yaml"), config).unwrap();
    let check = envs.test().args(["rekey", "--check"]).run().failure();
    check
        .stdout_has("agents/support-bot/secrets.production.yaml.age")
        .stdout_has("agents/billing/secrets.production.yaml.age")
        .stdout_lacks("secrets.staging.yaml.age")
        .stdout_lacks("agents/billing/secrets.yaml.age");
    envs.test()
        .args(["rekey", "--env", "production"])
        .run()
        .success();
    envs.test().args(["rekey", "--check"]).run().success();
}
