use super::*;

const AGE: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
const AGE2: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
const SSH: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake alice@laptop";

fn keys(list: &Recipients) -> Vec<&str> {
    list.keys().collect()
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("castsync.yaml"))
}

fn full_example() -> String {
    format!(
        "version: 1
agents_dir: secrets/agents
shared_dir: secrets/shared
platform:
  url: https://api.castari.com
recipients:
  - {AGE}
  - alice: {SSH}
access:
  - agents: \"billing-*\"
    recipients: [{AGE2}]
    redeploy: never
    rotate_after: 30d
  - groups: \"openai\"
    recipients:
      ci-prod: {AGE2}
prune: false
strict: false
unmanaged_keys: [ANTHROPIC_API_KEY, CASTARI_TOKEN]
max_delete_fraction: 0.25
self_heal: false
redeploy: on-change
rotate_after: 90d
notify:
  - github_status: {{ token_env: GITHUB_TOKEN }}
  - gitlab_status:
      token_env: GITLAB_TOKEN
      api_url: https://gitlab.example.com/api/v4
      repository: platform/secrets/agents
  - gitea_status: {{ token_env: GITEA_TOKEN, repository: acme/secrets }}
  - webhook: {{ url: https://hooks.example.com/castsync, secret_env: NOTIFY_SECRET, events: [apply, failure] }}
  - webhook: {{ url_env: HOOK_URL }}
  - slack: {{ url_env: SLACK_WEBHOOK_URL, events: [failure, drift] }}
environments:
  staging:
    platform: {{ url: https://staging.example.com, api_key_env: CASTARI_API_KEY_STAGING }}
    agent_slug: \"{{agent}}-staging\"
  production:
    platform:
      api_key_env: CASTARI_API_KEY_PRODUCTION
    recipients: [{AGE2}]
    access:
      - agents: \"billing-*\"
        recipients: [{AGE}]
"
    )
}

#[test]
fn an_absent_config_file_means_every_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(dir.path(), None).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.version, 1);
    assert_eq!(config.agents_dir, PathBuf::from("agents"));
    assert_eq!(config.platform.url, None);
    assert!(config.recipients.is_empty() && config.access.is_empty());
    assert!(config.prune && config.strict && config.self_heal);
    assert_eq!(config.unmanaged_keys, vec!["ANTHROPIC_API_KEY".to_owned()]);
    assert_eq!(config.max_delete_fraction, 0.5);
}

#[test]
fn an_explicit_config_file_that_does_not_exist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("other.yaml");
    let err = Config::load(dir.path(), Some(&missing)).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("other.yaml"), "{err}");
}

#[test]
fn the_default_file_at_the_repository_root_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "prune: false\n").unwrap();
    let config = Config::load(dir.path(), None).unwrap();
    assert!(!config.prune);
    assert!(config.strict, "fields not in the file keep their defaults");
}

#[test]
fn an_explicit_config_file_is_read_instead_of_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "prune: false\n").unwrap();
    let other = dir.path().join("ci.yaml");
    std::fs::write(&other, "strict: false\n").unwrap();
    let config = Config::load(dir.path(), Some(&other)).unwrap();
    assert!(config.prune && !config.strict);
}

#[test]
fn an_empty_or_comment_only_file_means_every_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing yet\n").unwrap(), Config::default());
}

#[test]
fn every_field_of_a_full_config_is_read() {
    let config = parse(&full_example()).unwrap();
    assert_eq!(config.agents_dir, PathBuf::from("secrets/agents"));
    assert_eq!(
        config.platform.url.as_deref(),
        Some("https://api.castari.com")
    );
    assert_eq!(keys(&config.recipients), [AGE, SSH]);
    assert_eq!(config.shared_dir, PathBuf::from("secrets/shared"));
    assert_eq!(config.access.len(), 2);
    assert_eq!(config.access[0].agents.as_deref(), Some("billing-*"));
    assert_eq!(config.access[1].groups.as_deref(), Some("openai"));
    assert!(!config.prune && !config.strict && !config.self_heal);
    assert_eq!(config.unmanaged_keys.len(), 2);
    assert_eq!(config.max_delete_fraction, 0.25);
    assert_eq!(config.redeploy, Redeploy::OnChange);
    assert_eq!(config.access[0].redeploy, Some(Redeploy::Never));
}

#[test]
fn redeploy_defaults_to_never_and_the_first_matching_access_rule_overrides_it() {
    assert_eq!(Config::default().redeploy, Redeploy::Never);
    let config = parse(&format!(
        "redeploy: on-change
access:
  - agents: \"billing-*\"
    recipients: [{AGE2}]
    redeploy: never
  - agents: \"billing-eu\"
    recipients: [{AGE2}]
    redeploy: on-change
  - agents: \"support-*\"
    recipients: [{AGE2}]
"
    ))
    .unwrap();
    assert_eq!(config.redeploy_for("billing-eu"), Redeploy::Never);
    assert_eq!(config.redeploy_for("support-1"), Redeploy::OnChange);
    assert_eq!(config.redeploy_for("other"), Redeploy::OnChange);
    let err = parse("redeploy: always\n").unwrap_err().to_string();
    assert!(err.contains("never") && err.contains("on-change"), "{err}");
}

#[test]
fn null_lists_and_sections_mean_their_defaults() {
    let config = parse("platform:\nrecipients:\naccess:\nunmanaged_keys:\n").unwrap();
    assert_eq!(config.platform, PlatformConfig::default());
    assert!(config.recipients.is_empty() && config.access.is_empty());
    assert!(
        config.unmanaged_keys.is_empty(),
        "an explicit empty list stays empty"
    );
}

#[test]
fn an_unknown_top_level_field_is_an_error_that_suggests_the_nearest_name() {
    let err = parse("prunne: false\n").unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"unknown field "prunne" in castsync.yaml: did you mean "prune"?"#),
        "{err}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn an_unknown_field_under_platform_names_the_section() {
    let err = parse("platform:\n  ur: https://x\n").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(r#"unknown field "ur""#) && msg.contains("under platform"),
        "{msg}"
    );
    assert!(
        msg.contains(r#"did you mean "url"?"#) && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn an_unknown_field_in_an_access_rule_names_the_rule() {
    let err = parse(&format!(
        "access:\n  - agents: a*\n    recipient: [{AGE}]\n"
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("access[0]") && msg.contains(r#"did you mean "recipients"?"#),
        "{msg}"
    );
}

#[test]
fn an_unknown_field_with_no_close_match_lists_the_valid_fields() {
    let err = parse("zzzzzz: 1\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("valid fields are version, agents_dir"),
        "{err}"
    );
}

#[test]
fn a_version_other_than_one_is_a_clear_error() {
    for text in [
        "version: 2\n",
        "version: 0\n",
        "version: \"1\"\n",
        "version: 2\nnew_thing: x\n",
    ] {
        let err = parse(text).unwrap_err();
        assert!(
            matches!(err, ConfigError::UnsupportedVersion { .. }),
            "{text}: {err}"
        );
        assert!(
            err.to_string().contains("this castsync reads version 1"),
            "{err}"
        );
    }
    assert!(parse("version: 1\n").is_ok());
}

#[test]
fn a_field_of_the_wrong_type_names_the_field_and_line() {
    let err = parse("strict: true\nprune: maybe\n").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Type { .. }), "{msg}");
    assert!(msg.contains("prune") && msg.contains("line 2"), "{msg}");
}

#[test]
fn a_duplicate_field_is_refused() {
    let err = parse("prune: true\nprune: false\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn invalid_yaml_is_an_error_with_its_position() {
    let err = parse("prune: [true\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    assert!(matches!(
        parse("- a\n- b\n"),
        Err(ConfigError::NotAMapping { .. })
    ));
    assert!(matches!(
        parse("just text\n"),
        Err(ConfigError::NotAMapping { .. })
    ));
}

#[test]
fn max_delete_fraction_must_be_between_zero_and_one() {
    for ok in ["0", "0.0", "1", "1.0", "0.3"] {
        assert!(
            parse(&format!("max_delete_fraction: {ok}\n")).is_ok(),
            "{ok}"
        );
    }
    for bad in ["-0.1", "1.5", "2", ".nan", ".inf"] {
        let err = parse(&format!("max_delete_fraction: {bad}\n")).unwrap_err();
        assert!(
            err.to_string().contains("max_delete_fraction"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn agents_dir_must_be_relative_and_stay_inside_the_repository() {
    for ok in ["agents", "deploy/agents", "./agents"] {
        assert!(parse(&format!("agents_dir: {ok}\n")).is_ok(), "{ok}");
    }
    for bad in ["/etc/agents", "../agents", "a/../../b", "\"\""] {
        let err = parse(&format!("agents_dir: {bad}\n")).unwrap_err();
        assert!(err.to_string().contains("agents_dir"), "{bad}: {err}");
    }
}

#[test]
fn recipients_must_look_like_age_or_ssh_public_keys() {
    assert!(recipient_problem(AGE).is_none());
    assert!(recipient_problem(SSH).is_none());
    assert!(recipient_problem("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob").is_none());
    for bad in [
        "",
        "age1",
        "age1UPPERCASE0000000",
        "ssh-ed25519",
        "ssh-ed25519 notbase64!",
        "ssh-dss AAAAB3",
        "bob@example.com",
    ] {
        assert!(recipient_problem(bad).is_some(), "{bad}");
    }
    let err = parse("recipients: [bob@example.com]\n").unwrap_err();
    assert!(err.to_string().contains("recipients[0]"), "{err}");
    let err = parse(&format!(
        "access:\n  - agents: x\n    recipients: [{AGE}, nope]\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("access[0].recipients[1]"), "{err}");
}

#[test]
fn a_private_key_pasted_as_a_recipient_is_refused_without_echoing_it() {
    let secret = "AGE-SECRET-KEY-1CANARY7F3A91DONOTPRINTQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let err = parse(&format!("recipients: [{secret}]\n")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("private key"), "{msg}");
    assert!(!msg.contains("CANARY"), "{msg}");
    assert!(!format!("{err:?}").contains("CANARY"));
}

#[test]
fn an_access_rule_needs_a_valid_glob_and_at_least_one_recipient() {
    let err = parse(&format!(
        "access:\n  - agents: \"[\"\n    recipients: [{AGE}]\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("not a valid glob"), "{err}");
    let err = parse("access:\n  - agents: x\n    recipients: []\n").unwrap_err();
    assert!(err.to_string().contains("no recipients"), "{err}");
    let err = parse("access:\n  - agents: x\n").unwrap_err();
    assert!(err.to_string().contains("recipients"), "{err}");
}

#[test]
fn unmanaged_keys_must_be_valid_key_names() {
    let err = parse("unmanaged_keys: [NOT-A-KEY]\n").unwrap_err();
    assert!(err.to_string().contains("unmanaged_keys[0]"), "{err}");
}

#[test]
fn the_first_matching_access_rule_decides_an_agents_recipients() {
    let config = parse(&format!(
        "recipients: [{AGE}]
access:
  - agents: \"billing-*\"
    recipients: [{AGE2}]
  - agents: \"billing-eu\"
    recipients: [{SSH}]
  - agents: \"support-?\"
    recipients: [{SSH}]
"
    ))
    .unwrap();
    assert_eq!(keys(config.recipients_for("billing-eu")), [AGE2]);
    assert_eq!(keys(config.recipients_for("billing-us")), [AGE2]);
    assert_eq!(keys(config.recipients_for("support-1")), [SSH]);
    assert_eq!(keys(config.recipients_for("support-10")), [AGE]);
    assert_eq!(keys(config.recipients_for("other")), [AGE]);
}

#[test]
fn groups_rules_assign_shared_groups_and_agents_rules_never_do() {
    let config = parse(&format!(
        "access:
  - agents: \"*\"
    recipients: [{AGE2}]
  - groups: \"open*\"
    recipients: [{SSH}]
"
    ))
    .unwrap();
    assert_eq!(config.shared_dir, PathBuf::from("shared"));
    assert_eq!(keys(config.recipients_for("openai")), [AGE2]);
    assert_eq!(keys(config.recipients_for_group("openai")), [SSH]);
    // No groups rule matches: the top-level recipients, never an agents rule's.
    assert!(config.recipients_for_group("stripe").is_empty());
}

#[test]
fn an_access_rule_names_agents_or_groups_exactly_once() {
    for (text, expected) in [
        (
            format!("access:\n  - agents: a\n    groups: b\n    recipients: [{AGE}]\n"),
            "names both `agents:` and `groups:`",
        ),
        (
            format!("access:\n  - recipients: [{AGE}]\n"),
            "names neither `agents:` nor `groups:`",
        ),
        (
            format!("access:\n  - groups: b\n    recipients: [{AGE}]\n    redeploy: on-change\n"),
            "a `groups:` rule cannot set redeploy",
        ),
        (
            "access:\n  - groups: b\n    recipients: []\n".to_owned(),
            "nobody could decrypt those groups",
        ),
        ("shared_dir: ../x\n".to_owned(), "shared_dir"),
        (
            "shared_dir: agents\n".to_owned(),
            "must differ from agents_dir",
        ),
    ] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

mod json_schema {
    use super::*;
    use serde_json::Value as Json;
    use std::collections::BTreeSet;

    fn schema() -> Json {
        let text = include_str!("../../schemas/config.schema.json");
        serde_json::from_str(text).unwrap()
    }

    fn property_names(schema: &Json) -> BTreeSet<String> {
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn field_names(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }

    fn yaml_to_json(text: &str) -> Json {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn the_schema_is_a_valid_draft_2020_12_schema() {
        assert!(jsonschema::draft202012::meta::is_valid(&schema()));
    }

    #[test]
    fn the_schema_lists_exactly_the_fields_of_the_rust_type_at_every_level() {
        let s = schema();
        assert_eq!(property_names(&s), field_names(fields_of::<Config>()));
        assert_eq!(
            property_names(&s["properties"]["platform"]),
            field_names(fields_of::<PlatformConfig>())
        );
        assert_eq!(
            property_names(&s["properties"]["access"]["items"]),
            field_names(fields_of::<AccessRule>())
        );
        let notify = &s["properties"]["notify"]["items"];
        assert_eq!(
            property_names(notify),
            field_names(fields_of::<NotifyEntry>())
        );
        assert_eq!(
            property_names(&notify["properties"]["webhook"]),
            field_names(fields_of::<WebhookTarget>())
        );
        assert_eq!(
            property_names(&notify["properties"]["slack"]),
            field_names(fields_of::<SlackTarget>())
        );
        assert_eq!(
            property_names(&s["$defs"]["commit_status"]),
            field_names(fields_of::<CommitStatus>())
        );
        assert_eq!(
            property_names(&s["properties"]["environments"]["additionalProperties"]),
            field_names(fields_of::<EnvironmentConfig>())
        );
    }

    #[test]
    fn the_schema_defaults_match_the_rust_defaults() {
        let s = schema();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (name, property) in s["properties"].as_object().unwrap() {
            if let Some(default) = property.get("default") {
                assert_eq!(default, &defaults[name], "default of {name}");
            }
        }
    }

    #[test]
    fn a_full_example_config_validates_and_an_unknown_field_fails() {
        let validator = jsonschema::draft202012::new(&schema()).unwrap();
        let full = yaml_to_json(&full_example());
        assert!(
            validator.is_valid(&full),
            "{:?}",
            validator.validate(&full).err()
        );
        assert!(validator.is_valid(&serde_json::to_value(Config::default()).unwrap()));
        assert!(validator.is_valid(&Json::Object(Default::default())));
        for bad in [
            "prunne: true\n",
            "platform:\n  ur: x\n",
            "access:\n  - agents: x\n    recipients: [age1qqqqqqqqqqqq]\n    extra: 1\n",
            "version: 2\n",
            "max_delete_fraction: 2\n",
            "agents_dir: ../x\n",
            "recipients: [nope]\n",
            "access:\n  - agents: a\n    groups: b\n    recipients: [age1qqqqqqqqqqqq]\n",
            "access:\n  - recipients: [age1qqqqqqqqqqqq]\n",
            "access:\n  - groups: b\n    recipients: [age1qqqqqqqqqqqq]\n    redeploy: never\n",
            "notify:\n  - {}\n",
            "notify:\n  - github_status: { token_env: A }\n    slack: { url_env: B }\n",
            "notify:\n  - github_status: { token_env: CASTARI_API_KEY }\n",
            "notify:\n  - gitea_status: { token_env: T, tokn: x }\n",
            "notify:\n  - slack: { url: https://hooks.slack.com/x }\n",
            "notify:\n  - webhook: { url: https://x, url_env: Y }\n",
            "notify:\n  - webhook: { url: https://x, events: [deploy] }\n",
            "notify:\n  - teams: { url_env: X }\n",
            "environments:\n  Staging: {}\n",
            "environments:\n  staging:\n    agent_slg: x\n",
            "environments:\n  staging:\n    agent_slug: staging\n",
            "environments:\n  staging:\n    platform: { api_key_env: CASTSYNC_AGE_KEY }\n",
            "environments:\n  staging:\n    recipients: []\n",
            "environments:\n  staging:\n    access:\n      - agents: a\n        recipients: []\n",
        ] {
            let instance = yaml_to_json(bad);
            assert!(!validator.is_valid(&instance), "schema accepted {bad:?}");
            assert!(parse(bad).is_err(), "castsync accepted {bad:?}");
        }
    }
}

mod environments {
    use super::*;
    use crate::environment::Environment;

    #[test]
    fn a_config_without_environments_has_one_implicit_environment() {
        let config = parse("prune: true\n").unwrap();
        assert!(!config.has_environments());
        assert_eq!(config.all_environments(), vec![Environment::IMPLICIT]);
        assert_eq!(
            config.environments_in_run(&[]).unwrap(),
            vec![Environment::IMPLICIT]
        );
        let err = config.environments_in_run(&["staging".into()]).unwrap_err();
        assert!(
            matches!(err, EnvironmentError::NoneDeclared { .. }),
            "{err}"
        );
        assert_eq!(
            config.api_key_env(&Environment::IMPLICIT),
            crate::platform::API_KEY_ENV
        );
    }

    #[test]
    fn environments_keep_the_file_order_and_fall_back_to_the_top_level() {
        let config = parse(&full_example()).unwrap();
        let (staging, production) = (
            Environment::named("staging"),
            Environment::named("production"),
        );
        assert_eq!(
            config.all_environments(),
            vec![staging.clone(), production.clone()]
        );
        assert_eq!(
            config.platform_url(&staging),
            Some("https://staging.example.com")
        );
        assert_eq!(
            config.platform_url(&production),
            Some("https://api.castari.com")
        );
        assert_eq!(
            config.api_key_env(&production),
            "CASTARI_API_KEY_PRODUCTION"
        );
        assert_eq!(config.slug_template(&staging), Some("{agent}-staging"));
        assert_eq!(config.slug_template(&production), None);
        // Overlay recipients: the environment's rule, its list, else the agent's own.
        assert_eq!(
            keys(config.overlay_recipients_for(&production, "billing-x")),
            [AGE]
        );
        assert_eq!(
            keys(config.overlay_recipients_for(&production, "support")),
            [AGE2]
        );
        assert_eq!(
            config.overlay_recipients_for(&staging, "support"),
            config.recipients_for("support")
        );
    }

    #[test]
    fn an_unknown_environment_is_named_with_a_suggestion() {
        let config = parse(&full_example()).unwrap();
        let err = config.environments_in_run(&["stagign".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment \"stagign\" is not declared in castsync.yaml"
        );
        use crate::hint::Hinted;
        assert_eq!(err.hint().unwrap(), "did you mean --env staging?");
        let err = config.one_environment("run", None, true).unwrap_err();
        assert!(err.to_string().contains("staging, production"), "{err}");
    }

    #[test]
    fn two_environments_writing_the_same_agents_are_refused() {
        let err = parse("environments:\n  staging: {}\n  production: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environments.production: writes the same agents on the same platform as environment staging"),
            "{err}"
        );
        parse("environments:\n  staging: { agent_slug: \"{agent}-staging\" }\n  production: {}\n")
            .unwrap();
        parse("environments:\n  staging: { platform: { url: \"http://127.0.0.1:1\" } }\n  production: {}\n")
            .unwrap();
    }

    #[test]
    fn bad_environment_settings_name_the_field() {
        for (text, expected) in [
            (
                "environments:\n  Prod: {}\n",
                "environments.Prod: \"Prod\" is not a valid environment name",
            ),
            (
                "environments:\n  staging:\n    agent_slug: \"x\"\n",
                "environments.staging.agent_slug: must contain {agent}",
            ),
            (
                "environments:\n  staging:\n    agent_slug: \"{agent}/x\"\n",
                "does not make valid platform slugs",
            ),
            (
                "environments:\n  staging:\n    platform: { api_key_env: CASTSYNC_AGE_KEY }\n",
                "environments.staging.platform.api_key_env: CASTSYNC_AGE_KEY is one of castsync's own",
            ),
            (
                "platform: { api_key_env: \"A-B\" }\n",
                "platform.api_key_env: \"A-B\" is not an environment variable name",
            ),
            (
                "environments:\n  staging:\n    access:\n      - agents: a\n        recipients: [nope]\n",
                "environments.staging.access[0].recipients[0]",
            ),
            (
                "environments:\n  staging:\n    acess: []\n",
                "unknown field \"acess\" in castsync.yaml (under environments.staging): did you mean \"access\"?",
            ),
            (
                "environments:\n  staging:\n    platform: { urll: x }\n",
                "(under environments.staging.platform)",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}

#[test]
fn recipients_may_be_named_and_reports_find_the_names() {
    let config = parse(&full_example()).unwrap();
    assert_eq!(keys(&config.recipients), [AGE, SSH]);
    assert_eq!(keys(config.recipients_for_group("openai")), [AGE2]);
    let names = config.names();
    assert_eq!(names.label(SSH), "alice");
    assert_eq!(names.label(AGE2), "ci-prod");
    assert_eq!(names.label(AGE), short_label(AGE));
    // Named or not, the keys are the same: a plain list means what it always meant.
    let plain = parse(&format!("recipients: [{AGE}, {SSH}]\n")).unwrap();
    assert!(plain.names().is_empty());
    assert_eq!(
        plain.recipients.keys().collect::<Vec<_>>(),
        keys(&config.recipients)
    );
}

#[test]
fn a_name_is_one_key_and_a_key_has_one_name() {
    for (text, expected) in [
        (
            format!("recipients:\n  - alice: {AGE}\n  - alice: {AGE2}\n"),
            "recipients[1]: the name \"alice\" stands for another key at recipients[0]",
        ),
        (
            format!(
                "recipients:\n  alice: {AGE}\naccess:\n  - agents: x\n    recipients:\n      - bob: {AGE}\n"
            ),
            "access[0].recipients[0]: this key is named \"alice\" at recipients[0]",
        ),
        (
            format!("recipients:\n  - {AGE}: alice\n"),
            "recipients[0]: the name looks like a key",
        ),
        (
            "recipients:\n  - alice: AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQ\n".to_owned(),
            "recipients[0]: this is a private key",
        ),
    ] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!err.contains("AGE-SECRET-KEY-1Q"), "{err}");
    }
    // The same key named once and listed bare elsewhere is fine: the name applies to both.
    let config = parse(&format!(
        "recipients:\n  - alice: {AGE}\naccess:\n  - agents: x\n    recipients: [{AGE}]\n"
    ))
    .unwrap();
    assert_eq!(config.names().label(AGE), "alice");
}

#[test]
fn rotation_periods_come_from_the_first_matching_rule_then_the_top_level() {
    let config = parse(&full_example()).unwrap();
    let days = |d, from: &str| Some((Period::days(d), from.to_owned()));
    assert_eq!(
        config.rotate_after_for("billing-eu"),
        days(30, "access[0].rotate_after")
    );
    assert_eq!(config.rotate_after_for("support"), days(90, "rotate_after"));
    assert_eq!(
        config.rotate_after_for_group("openai"),
        days(90, "rotate_after")
    );
    assert!(config.has_rotation_policy());
    assert!(!Config::default().has_rotation_policy());
    let err = parse("rotate_after: soon\n").unwrap_err().to_string();
    assert!(err.contains("30d, 12w or 6months"), "{err}");
}

#[test]
fn an_empty_platform_url_is_an_error_not_the_default_platform() {
    let recipients = format!("recipients: [{AGE}]\n");
    for (text, field) in [
        ("platform:\n  url: \"\"\n".to_owned(), "platform.url"),
        ("platform:\n  url: \"  \"\n".to_owned(), "platform.url"),
        (
            "environments:\n  staging:\n    platform:\n      url: \"\"\n".to_owned(),
            "environments.staging.platform.url",
        ),
    ] {
        let err = parse(&format!("{recipients}{text}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field) && err.contains("is empty"), "{err}");
    }
    let config = parse(&format!("{recipients}platform:\n  url: local://store\n")).unwrap();
    assert_eq!(config.platform.url.as_deref(), Some("local://store"));
}
