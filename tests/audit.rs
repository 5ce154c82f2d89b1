//! `castsync audit` against repositories whose history was written with real `git commit`s
//! dated over simulated months (GIT_AUTHOR_DATE / GIT_COMMITTER_DATE): each key's last change
//! checked against the generator's own record, rotation periods, and the values a removed
//! recipient could read. Every value is a canary that no output, report or cache may hold.

use std::collections::BTreeMap;

use crate::support::*;

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(time: i64) -> String {
    castsync::audit::model::rfc3339(time)
}

/// A repository written over months, and what its generator knows.
struct Generated {
    repo: SecretsRepo,
    /// (agent or `shared/GROUP`, key) → (commit, time) of the value's last change.
    truth: BTreeMap<(String, String), (String, i64)>,
    /// Every value ever set.
    canaries: Vec<String>,
    now: i64,
}

impl Generated {
    fn set(&mut self, target: &str, key: &str, step: usize) {
        let value = format!("canary-audit-{target}-{key}-{step}-{}", self.canaries.len());
        let value = value.replace('/', "-");
        let mut args = vec!["set"];
        if let Some(group) = target.strip_prefix("shared/") {
            args.extend(["--shared", group]);
        } else {
            args.push(target);
        }
        args.push(key);
        self.repo
            .test()
            .args(&args)
            .stdin(value.clone())
            .run()
            .success();
        self.canaries.push(value);
    }

    /// Commits `days_ago` days (and a minute) before the test began; `changed` keys get this
    /// commit as their last change.
    fn commit(&mut self, days_ago: i64, step: usize, changed: &[(&str, &str)]) -> String {
        let time = self.now - days_ago * DAY - 60;
        let commit = self.repo.commit_all_at(&format!("step {step}"), time);
        for (target, key) in changed {
            self.truth.insert(
                ((*target).to_owned(), (*key).to_owned()),
                (commit.clone(), time),
            );
        }
        commit
    }

    fn canaries(&self) -> Vec<&str> {
        self.canaries.iter().map(String::as_str).collect()
    }

    fn audit_json(&self) -> serde_json::Value {
        let run = self
            .repo
            .test()
            .args(["audit", "-o", "json"])
            .run()
            .success()
            .no_canary(&self.canaries());
        let doc = run.json();
        assert_audit_schema(&doc);
        doc
    }
}

/// A small deterministic generator (a linear congruential one): the same history every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

const KEYS: &[(&str, &[&str])] = &[
    ("alpha", &["A1", "A2", "A3"]),
    ("beta", &["B1", "B2"]),
    ("shared/openai", &["OPENAI_API_KEY"]),
];

/// Six months of history: everything created 200 days ago, then random changes every two
/// weeks, a rekey of everything (new ciphertexts, the same values), and the last changes
/// placed where the rotation tests need them.
fn generate() -> Generated {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n").unwrap();
    repo.schema(
        "alpha",
        "A1=placeholder-a1 # rotate: 30d\nA2=placeholder-a2\nA3=placeholder-a3\n",
    );
    repo.schema(
        "beta",
        "# rotate: 30d\nB1=placeholder-b1\nB2=placeholder-b2\n",
    );
    let mut g = Generated {
        repo,
        truth: BTreeMap::new(),
        canaries: Vec::new(),
        now: now(),
    };
    for agent in ["alpha", "beta"] {
        g.repo.test().args(["new", agent]).run().success();
    }
    g.repo
        .test()
        .args(["new", "--shared", "openai"])
        .run()
        .success();
    let mut all = Vec::new();
    for (target, keys) in KEYS {
        for key in *keys {
            g.set(target, key, 0);
            all.push((*target, *key));
        }
    }
    // gamma takes the group's key, and asks for it to be rotated every 60 days.
    g.repo.agent_using(
        "gamma",
        "[openai]",
        &[("G1", "canary-audit-gamma-g1")],
        &["G1"],
    );
    g.canaries.push("canary-audit-gamma-g1".to_owned());
    g.repo.schema(
        "gamma",
        "G1=placeholder-g1\nOPENAI_API_KEY=sk-... # rotate: 60d\n",
    );
    g.repo.test().args(["rekey", "gamma"]).run().success();
    all.push(("gamma", "G1"));
    g.commit(200, 0, &all);

    let mut rng = Lcg(26);
    for (step, days_ago) in (1..).zip((80..=185).rev().step_by(15)) {
        let mut changed = Vec::new();
        for _ in 0..=rng.next(2) {
            let (target, keys) = KEYS[rng.next(2)];
            let key = keys[rng.next(keys.len())];
            g.set(target, key, step);
            changed.push((target, key));
        }
        g.commit(days_ago, step, &changed);
    }
    // The shared key last changed 100 days ago: over gamma's 60 days.
    g.set("shared/openai", "OPENAI_API_KEY", 20);
    g.commit(100, 20, &[("shared/openai", "OPENAI_API_KEY")]);
    // CI joins: every file re-encrypted (new blobs, the same values): no value changes here.
    let (_, ci) = castsync::crypto::generate_identity();
    g.repo.config(&format!("  - {ci}"));
    g.repo.test().arg("rekey").run().success();
    g.commit(70, 21, &[]);
    g.set("alpha", "A1", 22);
    g.commit(45, 22, &[("alpha", "A1")]);
    g.set("beta", "B1", 23);
    g.commit(20, 23, &[("beta", "B1")]);
    g.set("alpha", "A3", 24);
    g.commit(3, 24, &[("alpha", "A3")]);
    g
}

#[test]
fn audit_dates_every_key_by_the_commit_where_its_value_last_changed() {
    let g = generate();
    let doc = g.audit_json();
    let mut seen = 0;
    for source in doc["sources"].as_array().unwrap() {
        let target = match source["kind"].as_str().unwrap() {
            "group" => format!("shared/{}", source["name"].as_str().unwrap()),
            _ => source["name"].as_str().unwrap().to_owned(),
        };
        for key in source["keys"].as_array().unwrap() {
            let name = key["key"].as_str().unwrap().to_owned();
            let (commit, time) = &g.truth[&(target.clone(), name.clone())];
            assert_eq!(
                key["last_changed"]["commit"],
                commit.as_str(),
                "{target} {name}"
            );
            assert_eq!(
                key["last_changed"]["date"],
                rfc3339(*time),
                "{target} {name}"
            );
            assert_eq!(key["exact"], true, "{target} {name}");
            seen += 1;
        }
    }
    assert_eq!(seen, g.truth.len(), "every key is reported");
    assert_eq!(doc["summary"]["keys"], g.truth.len());
    // Nothing was removed from anyone: no exposure (the rekey only re-encrypted).
    assert_eq!(doc["exposures"], serde_json::json!([]));
}

#[test]
fn a_key_rotated_every_30_days_and_last_changed_45_days_ago_is_overdue_and_exit_code_gives_2() {
    let g = generate();
    let doc = g.audit_json();
    let key = |target: &str, name: &str| {
        doc["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == target)
            .and_then(|s| {
                s["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["key"] == name)
            })
            .cloned()
            .unwrap_or_else(|| panic!("{target} {name} missing"))
    };
    let a1 = key("alpha", "A1");
    assert_eq!(a1["status"], "overdue");
    assert_eq!(a1["age_days"], 45);
    assert_eq!(a1["rotate_after"], "30d");
    assert_eq!(a1["policy_from"], "agents/alpha/.env.example:1");
    assert_eq!(key("beta", "B1")["status"], "due-soon");
    assert_eq!(key("alpha", "A2")["status"], "no-policy");
    // The group's key: gamma's .env.example asks for 60 days; it is 100 days old.
    let shared = key("openai", "OPENAI_API_KEY");
    assert_eq!(shared["status"], "overdue");
    assert_eq!(shared["policy_from"], "agents/gamma/.env.example:2");
    assert_eq!(doc["summary"]["overdue"], 2);
    assert_eq!(doc["summary"]["due_soon"], 1);

    g.repo
        .test()
        .args(["audit", "--exit-code"])
        .run()
        .code(2)
        .stdout_line_with(&["alpha", "A1", "45 days ago", "rotate: 30d"])
        .no_canary(&g.canaries());
    g.repo.test().arg("audit").run().success();
    // validate warns about the overdue keys (and still passes).
    g.repo
        .test()
        .arg("validate")
        .run()
        .success()
        .stdout_line_with(&[
            "warning",
            "A1",
            "last changed",
            "over its rotation period of 30d",
        ])
        .stdout_has("castsync set alpha A1")
        .no_canary(&g.canaries());
}

#[test]
fn a_second_audit_reads_only_the_new_commits_and_the_cache_holds_no_value() {
    let mut g = generate();
    let first = g.audit_json();
    let cache = g.repo.path(".castsync/audit-cache.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert_no_canary("the audit cache", &text, &g.canaries());

    // Nothing new: the same report, and nothing read again.
    let again = g
        .repo
        .test()
        .args(["--log", "debug", "audit", "-o", "json"])
        .run()
        .success();
    assert_eq!(again.json()["sources"], first["sources"]);
    assert!(!again.stderr().contains("decrypting"), "{}", again.stderr());
    assert!(again.stderr().contains("commits=0"), "{}", again.stderr());

    g.set("beta", "B2", 30);
    let commit = g.commit(1, 30, &[("beta", "B2")]);
    let run = g
        .repo
        .test()
        .args(["--log", "debug", "audit", "-o", "json"])
        .run()
        .success()
        .stderr_has("commits=1")
        .stderr_has("blobs=1")
        .no_canary(&g.canaries());
    let doc = run.json();
    let beta = doc["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "beta")
        .unwrap();
    let b2 = beta["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "B2")
        .unwrap();
    assert_eq!(b2["last_changed"]["commit"], commit.as_str());
    assert_no_canary(
        "the audit cache",
        &std::fs::read_to_string(&cache).unwrap(),
        &g.canaries(),
    );
}

/// `me` and `bob` read alpha; beta is for `me` only; carol is listed nowhere.
fn offboarding_repo() -> (SecretsRepo, String, Vec<String>) {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n").unwrap();
    let (_, bob) = castsync::crypto::generate_identity();
    let config = |bob_line: &str| {
        format!(
            "version: 1\nrecipients:\n  - me: {me}\n{bob_line}access:\n  - agents: beta\n    recipients:\n      me: {me}\n",
            me = repo.recipient
        )
    };
    std::fs::write(
        repo.path("castsync.yaml"),
        config(&format!("  - bob: {bob}\n")),
    )
    .unwrap();
    repo.schema("alpha", "A1=p1\nA2=p2\nA3=p3\n");
    repo.schema("beta", "B1=p1\n");
    let mut canaries = Vec::new();
    for (agent, keys) in [("alpha", &["A1", "A2", "A3"][..]), ("beta", &["B1"][..])] {
        repo.test().args(["new", agent]).run().success();
        for key in keys {
            let value = format!("canary-offboard-{agent}-{key}");
            repo.test()
                .args(["set", agent, key])
                .stdin(value.clone())
                .run()
                .success();
            canaries.push(value);
        }
    }
    let t = now();
    repo.commit_all_at("alpha for me and bob, beta for me", t - 30 * DAY);
    // bob leaves: out of the config, every file re-encrypted.
    std::fs::write(repo.path("castsync.yaml"), config("")).unwrap();
    repo.test().arg("rekey").run().success();
    let removal = repo.commit_all_at("bob leaves", t - 20 * DAY);
    (repo, removal, canaries)
}

fn exposed_keys(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["exposures"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            let who = e["reader"]["label"].as_str().unwrap().to_owned();
            e["values"].as_array().unwrap().iter().map(move |v| {
                (
                    who.clone(),
                    v["name"].as_str().unwrap().to_owned(),
                    v["key"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn a_removed_recipient_is_shown_exactly_the_values_they_could_read_until_each_is_rotated() {
    let (repo, removal, canaries) = offboarding_repo();
    let canaries: Vec<&str> = canaries.iter().map(String::as_str).collect();
    let audit = |args: &[&str]| repo.test().arg("audit").args(args).run();
    let doc = audit(&["-o", "json"]).success().no_canary(&canaries).json();
    assert_audit_schema(&doc);
    let triple = |k: &str| ("bob".to_owned(), "alpha".to_owned(), k.to_owned());
    // beta was never encrypted to bob: none of its values are his.
    assert_eq!(
        exposed_keys(&doc),
        vec![triple("A1"), triple("A2"), triple("A3")]
    );
    assert_eq!(
        doc["exposures"][0]["lost_access"]["commit"],
        removal.as_str()
    );
    assert_eq!(doc["exposures"][0]["reader"]["name"], "bob");
    let alpha = &doc["sources"][0];
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["readers"].as_array().unwrap().len(), 1);
    assert_eq!(alpha["readers"][0]["label"], "me");
    assert_eq!(alpha["readers_recorded"], true);
    audit(&["--exit-code"])
        .code(2)
        .stdout_has("Rotate these 3 value(s) that bob could read")
        .no_canary(&canaries);

    // A2 rotated: it leaves bob's list.
    repo.test()
        .args(["set", "alpha", "A2"])
        .stdin("canary-offboard-rotated")
        .run()
        .success();
    repo.commit_all_at("rotate A2", now() - 10 * DAY);
    let doc = audit(&["-o", "json"]).success().json();
    assert_eq!(exposed_keys(&doc), vec![triple("A1"), triple("A3")]);
    let markdown = audit(&["-o", "markdown"]).success().no_canary(&canaries);
    assert!(
        markdown
            .stdout()
            .contains("### Rotate these 2 value(s) that bob could read"),
        "{}",
        markdown.stdout()
    );

    // The other two rotated: nothing left, exit 0 even with --exit-code.
    for key in ["A1", "A3"] {
        repo.test()
            .args(["set", "alpha", key])
            .stdin(format!("canary-offboard-new-{key}"))
            .run()
            .success();
    }
    repo.commit_all_at("rotate the rest", now() - DAY);
    audit(&["--exit-code"])
        .success()
        .stdout_has("0 value(s) exposed to 0 former reader(s)");
}

#[test]
fn audit_outside_git_or_without_commits_says_what_to_do() {
    let repo = SecretsRepo::new("");
    repo.agent("alpha", &[("A", "canary-audit-nogit")]);
    repo.test()
        .arg("audit")
        .run()
        .failure()
        .stderr_has("is not in a git repository")
        .stderr_has("hint: run it in a clone of the secrets repository");
    repo.git(&["init", "-q"]);
    repo.test()
        .arg("audit")
        .run()
        .failure()
        .stderr_has("has no commits yet");
}

/// Validates an `audit -o json` document against `schemas/audit.schema.json`.
fn assert_audit_schema(doc: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/audit.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// An environment's overlay is audited beside the file every environment shares: its keys
/// dated by its own history, its readers those the environment assigns, and a reader removed
/// from the environment is shown the overlay's values only (never the shared file's, which
/// was not encrypted to them).
#[test]
fn overlays_are_audited_per_environment_with_their_own_readers_and_exposures() {
    let repo = SecretsRepo::new("");
    std::fs::write(repo.path(".gitignore"), ".castsync/\n").unwrap();
    let (_, bob) = castsync::crypto::generate_identity();
    let config = |bob_line: &str| {
        format!(
            "version: 1\nrecipients:\n  - me: {me}\nenvironments:\n  staging:\n    agent_slug: \"{{agent}}-staging\"\n  production:\n    recipients:\n      - me: {me}\n{bob_line}",
            me = repo.recipient
        )
    };
    std::fs::write(
        repo.path("castsync.yaml"),
        config(&format!("      - bob: {bob}\n")),
    )
    .unwrap();
    repo.schema("alpha", "A1=p1\nA2=p2\n");
    repo.test().args(["new", "alpha"]).run().success();
    let canaries = ["canary-overlay-base-A1", "canary-overlay-prod-A2"];
    repo.test()
        .args(["set", "alpha", "A1"])
        .stdin(canaries[0])
        .run()
        .success();
    repo.test()
        .args(["set", "--env", "production", "alpha", "A2"])
        .stdin(canaries[1])
        .run()
        .success();
    let t = now();
    let first = repo.commit_all_at(
        "alpha, with a production overlay for me and bob",
        t - 30 * DAY,
    );
    std::fs::write(repo.path("castsync.yaml"), config("")).unwrap();
    repo.test().arg("rekey").run().success();
    let removal = repo.commit_all_at("bob leaves production", t - 20 * DAY);

    let doc = repo
        .test()
        .args(["audit", "-o", "json"])
        .run()
        .success()
        .no_canary(&canaries)
        .json();
    assert_audit_schema(&doc);
    let sources = doc["sources"].as_array().unwrap();
    let described: Vec<(String, Option<String>, String, Vec<String>)> = sources
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["environment"].as_str().map(str::to_owned),
                s["file"].as_str().unwrap().to_owned(),
                s["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["key"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            (
                "alpha".to_owned(),
                None,
                "agents/alpha/secrets.yaml.age".to_owned(),
                vec!["A1".to_owned()]
            ),
            (
                "alpha".to_owned(),
                Some("production".to_owned()),
                "agents/alpha/secrets.production.yaml.age".to_owned(),
                vec!["A2".to_owned()]
            ),
        ]
    );
    // The overlay's value dates from the first commit (the rekey kept it), its readers are
    // the environment's.
    assert_eq!(
        sources[1]["keys"][0]["last_changed"]["commit"],
        first.as_str()
    );
    assert_eq!(sources[1]["readers"].as_array().unwrap().len(), 1);
    assert_eq!(sources[1]["readers"][0]["label"], "me");
    // bob could read the production overlay only.
    let exposures = doc["exposures"].as_array().unwrap();
    assert_eq!(exposures.len(), 1, "{exposures:?}");
    assert_eq!(exposures[0]["reader"]["label"], "bob");
    assert_eq!(exposures[0]["lost_access"]["commit"], removal.as_str());
    let values = exposures[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(values[0]["environment"], "production");
    assert_eq!(values[0]["key"], "A2");
    assert_eq!(doc["summary"]["exposed_values"], 1);
    repo.test()
        .args(["audit", "--exit-code"])
        .run()
        .code(2)
        .stdout_has("agent alpha (production)  A2  unchanged since")
        .no_canary(&canaries);
}
