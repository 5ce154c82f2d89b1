//! Shared groups end to end: `shared/GROUP/secrets.yaml.age` manifests, agents taking their
//! keys with `uses:`, through validate, reconcile against the emulator, the authoring commands
//! with `--shared`, access rules for groups, and diff.

use crate::support::*;

const OLD: &str = "canary-shared-old-5c1e";
const NEW: &str = "canary-shared-new-9ab3";
const ORG: &str = "canary-shared-org-77d0";
const CANARIES: &[&str] = &[OLD, NEW, ORG];

/// Four agents around shared group openai:
/// - `alpha` takes every key of the group (`uses: [openai]`);
/// - `beta` takes OPENAI_API_KEY only;
/// - `gamma` takes OPENAI_ORG only;
/// - `delta` uses no group, and has its own OPENAI_API_KEY.
fn four_agents() -> SecretsRepo {
    let repo = SecretsRepo::new("");
    repo.group("openai", &[("OPENAI_API_KEY", OLD), ("OPENAI_ORG", ORG)]);
    repo.agent_using(
        "alpha",
        "[openai]",
        &[("A_OWN", "a-own")],
        &["A_OWN", "OPENAI_API_KEY", "OPENAI_ORG"],
    );
    repo.agent_using(
        "beta",
        "{openai: [OPENAI_API_KEY]}",
        &[],
        &["OPENAI_API_KEY"],
    );
    repo.agent_using(
        "gamma",
        "{openai: [OPENAI_ORG]}",
        &[("G_OWN", "g-own")],
        &["G_OWN", "OPENAI_ORG"],
    );
    repo.agent("delta", &[("OPENAI_API_KEY", "delta-own-key")]);
    repo
}

fn all_output(run: &Run) -> String {
    run.output()
}

#[test]
fn validate_accepts_agents_taking_keys_from_a_group_and_checks_them_against_their_schemas() {
    let repo = four_agents();
    repo.test()
        .arg("validate")
        .run()
        .success()
        .stdout_has("ok: 4 agents valid, 0 warning(s)");

    // A key the agent takes from the group counts for its schema like its own: an empty
    // shared value breaks the agents that require it, and says where to set it.
    repo.group("openai", &[("OPENAI_API_KEY", ""), ("OPENAI_ORG", ORG)]);
    let out = ["alpha", "beta"]
        .into_iter()
        .fold(repo.test().arg("validate").run().failure(), |out, agent| {
            out.stdout_has(format!("agents/{agent}/.env.example:"))
        })
        .stdout_has("the value (taken from shared group openai) is empty but .env.example requires it; set it with `castsync set --shared openai OPENAI_API_KEY`")
        .stdout_lacks("agents/gamma");
    assert_no_canary("validate", &all_output(&out), CANARIES);
}

#[test]
fn bad_references_fail_with_a_message_naming_both_places() {
    let repo = SecretsRepo::new("");
    repo.group("openai", &[("OPENAI_API_KEY", OLD)]);
    repo.group("other", &[("OPENAI_API_KEY", NEW)]);
    repo.agent_using("no-group", "[stripe]", &[], &[]);
    repo.agent_using("no-key", "{openai: [OPENAI_ORG]}", &[], &["OPENAI_ORG"]);
    repo.agent_using(
        "both",
        "[openai]",
        &[("OPENAI_API_KEY", "own")],
        &["OPENAI_API_KEY"],
    );
    repo.agent_using("twice", "[openai, other]", &[], &["OPENAI_API_KEY"]);
    repo.agent_using("unlisted", "[openai]", &[("X", "x")], &["X"]);
    let out = repo.test().arg("validate").run().failure();
    let expected = [
        "agents/no-group/secrets.yaml.age: `uses:` names shared group stripe, but there is no shared/stripe/secrets.yaml.age: create it with `castsync new --shared stripe`",
        "agents/no-key/secrets.yaml.age: key OPENAI_ORG: `uses: openai` takes OPENAI_ORG from shared group openai, but shared/openai/secrets.yaml.age has no such key",
        "agents/both/secrets.yaml.age: key OPENAI_API_KEY: OPENAI_API_KEY is defined both in this manifest's secrets and in shared group openai (shared/openai/secrets.yaml.age)",
        "agents/twice/secrets.yaml.age: key OPENAI_API_KEY: OPENAI_API_KEY comes from two shared groups it uses, openai (shared/openai/secrets.yaml.age) and other (shared/other/secrets.yaml.age)",
        "agents/unlisted/.env.example: key OPENAI_API_KEY: the agent takes it from shared group openai (`uses:`) but .env.example does not list it",
    ];
    let out = expected
        .into_iter()
        .fold(out, |out, line| out.stdout_has(line))
        // A reference problem is reported once, not again as a schema error.
        .stdout_lacks("agents/no-key/.env.example");
    assert_no_canary("validate", &all_output(&out), CANARIES);

    // The JSON findings carry the agent and the key.
    let out = repo.test().args(["validate", "-o", "json"]).run();
    let doc: serde_json::Value = serde_json::from_str(out.stdout()).unwrap();
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["agent"] == "no-key")
        .unwrap();
    assert_eq!(finding["key"], "OPENAI_ORG");
}

#[test]
fn a_group_no_agent_uses_is_a_warning_and_a_broken_group_fails_only_its_users() {
    let repo = four_agents();
    repo.group("unused", &[("K", "v")]);
    repo.test().arg("validate").run().success().stdout_has(
        "warning: shared/unused/secrets.yaml.age: shared group unused is used by no agent",
    );

    // A group file that does not parse: the group's own error, and one per agent using it.
    repo.raw_group(
        "openai",
        "group: openai\nsecrets:\n  OPENAI_API_KEY: 1.10\n",
    );
    let out = repo.test().arg("validate").run().failure().stdout_has(
        "error: shared/openai/secrets.yaml.age (decrypted), line 3, column 3: key OPENAI_API_KEY",
    );
    ["alpha", "beta", "gamma"]
        .into_iter()
        .fold(out, |out, agent| {
            out.stdout_has(format!(
                "error: agents/{agent}/secrets.yaml.age: uses shared group openai, which did not load, so this agent is skipped"
            ))
        })
        .stdout_lacks("agents/delta");
}

fn reconcile_plan(repo: &SecretsRepo, url: &str, format: &str) -> Run {
    repo.test_reconcile(url)
        .args(["--dry-run", "-o", format])
        .run()
}

fn rotating_a_shared_key_updates_exactly_the_agents_that_use_it(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta,gamma,delta"]);
    let repo = four_agents();
    let first = repo
        .test_reconcile(&emu.url)
        .run()
        .success()
        .stdout_has("+ OPENAI_API_KEY (from shared/openai)");
    assert_eq!(emu.value("alpha", "OPENAI_API_KEY").as_deref(), Some(OLD));
    assert_eq!(emu.value("alpha", "OPENAI_ORG").as_deref(), Some(ORG));
    assert_eq!(emu.value("beta", "OPENAI_API_KEY").as_deref(), Some(OLD));
    assert_eq!(emu.value("beta", "OPENAI_ORG"), None);
    assert_eq!(emu.value("gamma", "OPENAI_ORG").as_deref(), Some(ORG));
    assert_eq!(emu.value("gamma", "OPENAI_API_KEY"), None);

    // One `set --shared`…
    let set = repo
        .test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(NEW)
        .run()
        .success()
        .stderr_has("updated OPENAI_API_KEY in shared/openai/secrets.yaml.age")
        .stderr_has(
            "used by 3 agent(s), alpha, beta, gamma: one `castsync reconcile` updates them all",
        );

    // … plans one update per agent that takes the key, with the group as the cause.
    let plan = reconcile_plan(&repo, &emu.url, "text");
    assert_eq!(plan.exit_code(), 0, "{}", all_output(&plan));
    let updates: Vec<&str> = plan.stdout().lines().filter(|l| l.contains("~ ")).collect();
    assert_eq!(
        updates,
        [
            "      ~ OPENAI_API_KEY (value changed, from shared/openai)",
            "      ~ OPENAI_API_KEY (value changed, from shared/openai)"
        ],
        "{}",
        plan.stdout()
    );
    let plan = plan
        .stdout_has("  alpha:\n      ~ OPENAI_API_KEY")
        .stdout_has("  beta:\n      ~ OPENAI_API_KEY")
        .stdout_has("gamma: no changes")
        .stdout_has("delta: no changes");

    let json = reconcile_plan(&repo, &emu.url, "json");
    let doc: serde_json::Value = serde_json::from_str(json.stdout()).unwrap();
    assert_plan_schema(&doc);
    let change = &doc["agents"][0]["changes"][0];
    assert_eq!(change["key"], "OPENAI_API_KEY");
    assert_eq!(change["from"]["group"], "openai");
    assert_eq!(change["from"]["path"], "shared/openai");
    assert_eq!(doc["totals"]["update"], 2);

    let md = reconcile_plan(&repo, &emu.url, "markdown")
        .stdout_has("Shared groups behind these changes: shared/openai (2 agents: alpha, beta).");

    // One reconcile writes it to alpha and beta, and nowhere else.
    emu.reset_stats();
    let applied = repo.test_reconcile(&emu.url).run().success();
    assert_eq!(emu.requests("POST"), 2);
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.value("alpha", "OPENAI_API_KEY").as_deref(), Some(NEW));
    assert_eq!(emu.value("beta", "OPENAI_API_KEY").as_deref(), Some(NEW));
    assert_eq!(emu.value("gamma", "OPENAI_API_KEY"), None);
    assert_eq!(
        emu.value("delta", "OPENAI_API_KEY").as_deref(),
        Some("delta-own-key")
    );

    let again = repo
        .test_reconcile(&emu.url)
        .run()
        .stdout_has("No changes.");
    for out in [&first, &set, &plan, &json, &md, &applied, &again] {
        assert_no_canary("reconcile output", &all_output(out), CANARIES);
    }
}

fn a_broken_group_skips_its_users_whole_and_deletes_nothing(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta,gamma,delta"]);
    let repo = four_agents();
    repo.test_reconcile(&emu.url).run().success();

    // The group is re-encrypted to someone else: nobody here can open it.
    let (_, stranger) = castsync::crypto::generate_identity();
    let stranger = castsync::crypto::parse_recipient(&stranger).unwrap();
    let plaintext = "group: openai\nsecrets: {}\n";
    let ct = castsync::crypto::encrypt(plaintext.as_bytes(), &[stranger]).unwrap();
    std::fs::write(repo.path("shared/openai/secrets.yaml.age"), ct).unwrap();
    repo.agent("delta", &[("OPENAI_API_KEY", "delta-rotated")]);

    emu.reset_stats();
    let out = ["alpha", "beta", "gamma"]
        .into_iter()
        .fold(
            repo.test_reconcile(&emu.url).run().failure(),
            |out, agent| out.stdout_has(format!("! {agent}: skipped, nothing changed")),
        )
        .stdout_has("uses shared group openai, which did not load, so this agent is skipped");
    assert_eq!(emu.requests("DELETE"), 0);
    assert_eq!(emu.requests("POST"), 1, "delta alone is updated");
    assert_eq!(emu.value("alpha", "OPENAI_API_KEY").as_deref(), Some(OLD));
    assert_eq!(emu.value("gamma", "G_OWN").as_deref(), Some("g-own"));
    assert_eq!(
        emu.value("delta", "OPENAI_API_KEY").as_deref(),
        Some("delta-rotated")
    );
    assert_no_canary("reconcile", &all_output(&out), CANARIES);
}

/// `reconcile --changed`: a rotated group refreshes the agents that used it (known from the
/// state, since `uses:` is encrypted) and no other; against a revision (`--since`), which
/// records no `uses:`, a changed group refreshes every agent and says why.
fn changed_refreshes_exactly_the_users_of_a_changed_group(wire: Wire) {
    let emu = Emulator::on(wire, &["--agents", "alpha,beta,gamma,delta"]);
    let repo = four_agents();
    repo.commit_all("four agents");
    let at_head = || repo.test_reconcile(&emu.url).args(["--ref", "HEAD"]);
    let first = at_head().run().success();
    let before = repo.git(&["rev-parse", "HEAD"]);

    let set = repo
        .test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(NEW)
        .run()
        .success();
    repo.commit_all("rotate the shared key");

    emu.reset_stats();
    let changed = at_head()
        .arg("--changed")
        .run()
        .success()
        .stdout_has(format!(
            "1 agent unchanged since {}, not refreshed.",
            &before[..7]
        ))
        .stdout_has("gamma: no changes")
        .stdout_lacks("delta");
    // alpha, beta and gamma use the group: listed, and alpha and beta verified after a write.
    assert_eq!(emu.requests("GET"), 5, "{}", changed.stdout());
    assert_eq!(emu.requests("POST"), 2, "{}", changed.stdout());
    assert_eq!(emu.value("alpha", "OPENAI_API_KEY").as_deref(), Some(NEW));
    assert_eq!(emu.value("beta", "OPENAI_API_KEY").as_deref(), Some(NEW));

    emu.reset_stats();
    let again = at_head().arg("--changed").run().success();
    assert_eq!(emu.requests("GET"), 0, "{}", again.stdout());

    let fresh_state = repo.home.join("elsewhere/state.json");
    let since = at_head()
        .args(["--changed", "--since", "HEAD~1", "--dry-run"])
        .arg("--state")
        .arg(&fresh_state)
        .run()
        .success()
        .stdout_has(format!(
            "full reconcile: shared group openai changed since {before}"
        ));
    for out in [&first, &set, &changed, &again, &since] {
        assert_no_canary("reconcile --changed", &all_output(out), CANARIES);
    }
}

crate::on_both_wires!(
    rotating_a_shared_key_updates_exactly_the_agents_that_use_it,
    changed_refreshes_exactly_the_users_of_a_changed_group,
    a_broken_group_skips_its_users_whole_and_deletes_nothing,
);

#[test]
fn groups_are_encrypted_to_their_groups_rule_and_never_to_an_agents_rule() {
    let repo = SecretsRepo::new("");
    let (team_secret, team) = castsync::crypto::generate_identity();
    let team_key = repo.home.join("team.txt");
    {
        use secrecy::ExposeSecret as _;
        std::fs::write(&team_key, team_secret.expose_secret()).unwrap();
        set_private(&team_key);
    }
    repo.config(&format!(
        "access:\n  - agents: \"*\"\n    recipients: [{team}]\n  - groups: \"open*\"\n    recipients: [{team}, {}]\n",
        repo.recipient
    ));
    // Our key is in the groups rule only: we can write and read the group…
    repo.test()
        .args(["new", "--shared", "openai"])
        .run()
        .success()
        .stderr_has("created shared/openai/secrets.yaml.age (no secrets yet)");
    let set = repo
        .test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(OLD)
        .run()
        .success()
        .stderr_has("warning: no agent uses shared group openai yet");
    let ct = std::fs::read(repo.path("shared/openai/secrets.yaml.age")).unwrap();
    for key in [&repo.key_file, &team_key] {
        let ids = castsync::crypto::Identities::discover_with(
            std::slice::from_ref(key),
            &castsync::crypto::Env::default(),
        )
        .unwrap();
        let plain = ids.decrypt(&ct, std::path::Path::new("x")).unwrap();
        assert!(String::from_utf8_lossy(&plain).contains("group: openai"));
    }
    // … and a group no `groups:` rule matches goes to the top-level recipients (ours), not to
    // the `agents: "*"` rule.
    repo.test()
        .args(["new", "--shared", "stripe"])
        .run()
        .success();
    let ct = std::fs::read(repo.path("shared/stripe/secrets.yaml.age")).unwrap();
    let team_only = castsync::crypto::Identities::discover_with(
        std::slice::from_ref(&team_key),
        &castsync::crypto::Env::default(),
    )
    .unwrap();
    assert!(team_only.decrypt(&ct, std::path::Path::new("x")).is_err());

    // show --shared hides values; rekey covers groups.
    let show = repo.test().args(["show", "--shared", "openai"]).run();
    assert_eq!(
        show.stdout(),
        "group: openai\nsecrets:\n  OPENAI_API_KEY: \"<hidden>\"\n"
    );
    repo.config(&format!(
        "access:\n  - groups: \"*\"\n    recipients: [{}]\n",
        repo.recipient
    ));
    let check = repo
        .test()
        .args(["rekey", "--check", "-o", "json"])
        .run()
        .failure();
    let doc: serde_json::Value = serde_json::from_str(check.stdout()).unwrap();
    let stale = &doc["files"][0];
    assert_eq!(stale["group"], "openai");
    assert_eq!(stale["agent"], serde_json::Value::Null);
    assert_eq!(stale["file"], "shared/openai/secrets.yaml.age");
    assert_eq!(stale["removed_recipients"][0], team.as_str());
    let rekey = repo
        .test()
        .args(["rekey", "--shared", "openai"])
        .run()
        .success();
    repo.test().args(["rekey", "--check"]).run().success();
    let ct = std::fs::read(repo.path("shared/openai/secrets.yaml.age")).unwrap();
    assert!(team_only.decrypt(&ct, std::path::Path::new("x")).is_err());
    repo.test()
        .args(["rekey", "--shared", "nope"])
        .run()
        .code(1)
        .stderr_has("shared group \"nope\" is not declared");
    for out in [&set, &show, &check, &rekey] {
        assert_no_canary("authoring", &all_output(out), CANARIES);
    }
}

#[test]
fn a_group_change_that_would_break_an_agent_is_refused_naming_the_agent() {
    let repo = four_agents();
    let path = repo.path("shared/openai/secrets.yaml.age");
    let before = std::fs::read(&path).unwrap();

    // beta names OPENAI_API_KEY in its `uses:`, and alpha's schema requires it: removing it
    // from the group would break both.
    repo.test()
        .args(["unset", "--shared", "openai", "OPENAI_API_KEY"])
        .run()
        .failure()
        .stderr_has("would break agent beta: agents/beta/secrets.yaml.age: key OPENAI_API_KEY: `uses: openai` takes OPENAI_API_KEY from shared group openai, but shared/openai/secrets.yaml.age has no such key")
        .stderr_has("would break agent alpha: agents/alpha/.env.example: key OPENAI_API_KEY: required by .env.example but it would no longer get it");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");

    // alpha takes every key of the group and its (strict) schema does not list EXTRA: adding
    // EXTRA to the group would break alpha, and no other agent.
    repo.test()
        .args(["set", "--shared", "openai", "EXTRA"])
        .stdin("x")
        .run()
        .failure()
        .stderr_has("would break agent alpha: agents/alpha/.env.example: key EXTRA: the agent takes it from shared group openai")
        .stderr_lacks("agent beta");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");

    // A change that breaks nobody goes through.
    repo.test()
        .args(["set", "--shared", "openai", "OPENAI_ORG"])
        .stdin(NEW)
        .run()
        .success();
    repo.test().arg("validate").run().success();
}

#[test]
fn edit_shared_opens_the_group_and_an_agents_edit_checks_its_uses() {
    let repo = four_agents();
    let script = repo.home.join("editor.sh");
    // Adds a key to the group's YAML.
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/^secrets:$/secrets:\\n  OPENAI_BASE: \"https:\\/\\/api\"/' \"$1\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // alpha takes every key and its schema does not list OPENAI_BASE: refused, naming alpha.
    repo.test()
        .env("EDITOR", &script)
        .args(["edit", "--shared", "openai"])
        .run()
        .failure()
        .stderr_has("would break agent alpha");

    repo.schema(
        "alpha",
        "A_OWN=x\nOPENAI_API_KEY=x\nOPENAI_ORG=x\nOPENAI_BASE=x\n",
    );
    repo.test()
        .env("EDITOR", &script)
        .args(["edit", "--shared", "openai"])
        .run()
        .success()
        .stderr_has("saved shared/openai/secrets.yaml.age: added OPENAI_BASE");
    repo.test().arg("validate").run().success();

    // An agent's edit that names a key the group lacks is refused with both places.
    let script2 = repo.home.join("editor2.sh");
    std::fs::write(
        &script2,
        "#!/bin/sh\nsed -i 's/OPENAI_API_KEY]/OPENAI_API_KEY, NOPE]/' \"$1\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script2, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = std::fs::read(repo.path("agents/beta/secrets.yaml.age")).unwrap();
    let out = repo
        .test()
        .env("EDITOR", &script2)
        .args(["edit", "beta"])
        .run()
        .failure()
        .stderr_has("key NOPE: `uses: openai` takes NOPE from shared group openai, but shared/openai/secrets.yaml.age has no such key");
    assert_eq!(
        std::fs::read(repo.path("agents/beta/secrets.yaml.age")).unwrap(),
        before
    );
    assert_no_canary("edit", &all_output(&out), CANARIES);
}

#[test]
fn diff_and_textconv_show_the_group_as_the_cause() {
    let repo = four_agents();
    repo.commit_all("four agents");
    let set = repo
        .test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(NEW)
        .run()
        .success();

    let diff = repo
        .test()
        .arg("diff")
        .run()
        .success()
        .stdout_has("a/shared/openai/secrets.yaml.age (HEAD)")
        .stdout_has("-OPENAI_API_KEY ")
        .stdout_has("# castsync: shared group openai (shared/openai) is the cause of changes to 2 agent(s): alpha (OPENAI_API_KEY), beta (OPENAI_API_KEY)");
    let json = repo.test().args(["diff", "-o", "json"]).run();
    let doc: serde_json::Value = serde_json::from_str(json.stdout()).unwrap();
    let file = &doc["files"][0];
    assert_eq!(file["group"], "openai");
    assert_eq!(file["agent"], serde_json::Value::Null);
    assert_eq!(file["keys"]["changed"][0], "OPENAI_API_KEY");
    assert_eq!(file["affects"][1]["agent"], "beta");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/diff.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    assert!(
        validator.is_valid(&doc),
        "{:?}",
        validator.validate(&doc).err()
    );

    // textconv (git's diff driver) shows an agent's uses: and a group's binding.
    let agent = repo
        .test()
        .arg("textconv")
        .arg(repo.path("agents/beta/secrets.yaml.age"))
        .run();
    assert_eq!(
        agent.stdout(),
        "agent: beta\nuses: openai (OPENAI_API_KEY)\n"
    );
    let group = repo
        .test()
        .arg("textconv")
        .arg(repo.path("shared/openai/secrets.yaml.age"))
        .run();
    assert!(
        group.stdout().starts_with("group: openai\nOPENAI_API_KEY "),
        "{}",
        group.stdout()
    );
    for out in [&set, &diff, &json, &agent, &group] {
        assert_no_canary("diff", &all_output(out), CANARIES);
    }
}

#[test]
fn a_pull_request_plan_with_base_shows_a_rotation_through_the_group() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma,delta"]);
    let repo = four_agents();
    let base = repo.commit_all("before");
    repo.test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(NEW)
        .run()
        .success();
    repo.commit_all("rotate");
    repo.test_reconcile(&emu.url).run().success();
    let plan = repo
        .test_reconcile(&emu.url)
        .args(["--dry-run", "--ref", "HEAD", "--base", &base])
        .run()
        .success();
    let updates = plan
        .stdout()
        .lines()
        .filter(|l| l.contains("~ OPENAI_API_KEY (value changed, from shared/openai)"))
        .count();
    assert_eq!(updates, 2, "{}", plan.stdout());
    assert_no_canary("plan", &all_output(&plan), CANARIES);
}

#[test]
fn a_saved_plan_is_refused_after_a_group_it_depends_on_changed() {
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma,delta"]);
    let repo = four_agents();
    std::fs::write(repo.path(".gitignore"), ".castsync/\n*.plan.json\n").unwrap();
    repo.commit_all("four agents");
    let file = repo.path("pr.plan.json");
    repo.test_reconcile(&emu.url)
        .args(["--dry-run", "--save-plan"])
        .arg(&file)
        .run()
        .success();
    // The key is rotated in the group after the review: the reviewed plan no longer holds.
    repo.test()
        .args(["set", "--shared", "openai", "OPENAI_API_KEY"])
        .stdin(NEW)
        .run()
        .success();
    repo.commit_all("rotate after the review");
    emu.reset_stats();
    let applied = repo
        .test_reconcile(&emu.url)
        .args(["--yes", "--plan"])
        .arg(&file)
        .run()
        .failure()
        .stderr_has("shared/openai/secrets.yaml.age (agent alpha) changed since the plan");
    assert_eq!(emu.requests("POST") + emu.requests("DELETE"), 0);
    assert_no_canary("saved plan", &all_output(&applied), CANARIES);
    assert_no_canary(
        "the plan file",
        &std::fs::read_to_string(&file).unwrap(),
        CANARIES,
    );
}

/// A change to the group's shared file reaches every environment: each is checked, with the
/// agents' overlays there. Production's overlay of alpha defines EXTRA itself, so a group
/// that starts giving EXTRA breaks alpha in production only.
#[test]
fn a_group_change_is_checked_in_every_environment_it_reaches() {
    let repo = four_agents();
    let config = std::fs::read_to_string(repo.path("castsync.yaml")).unwrap();
    std::fs::write(
        repo.path("castsync.yaml"),
        format!(
            "{config}environments:\n  staging:\n    agent_slug: \"{{agent}}-staging\"\n  production: {{}}\n"
        ),
    )
    .unwrap();
    repo.schema(
        "alpha",
        "A_OWN=\nOPENAI_API_KEY=\nOPENAI_ORG=\nEXTRA= # optional\n",
    );
    repo.test()
        .args(["set", "--env", "production", "alpha", "EXTRA"])
        .stdin("canary-alpha-production-extra")
        .run()
        .success();
    repo.test().arg("validate").run().success();
    let path = repo.path("shared/openai/secrets.yaml.age");
    let before = std::fs::read(&path).unwrap();

    repo.test()
        .args(["set", "--shared", "openai", "EXTRA"])
        .stdin("canary-group-extra")
        .run()
        .failure()
        .stderr_has("would break agent alpha in environment production: ")
        .stderr_lacks("would break agent alpha in environment staging")
        .no_canary(&["canary-alpha-production-extra", "canary-group-extra"]);
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");
}
