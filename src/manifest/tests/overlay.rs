//! Environment overlays (`secrets.ENV.yaml.age`, `environment: ENV`).
use super::*;

#[test]
fn an_overlay_names_its_environment_and_round_trips() {
    let text = "agent: bad-agent\nenvironment: staging\nsecrets:\n  STRIPE_KEY: sk_test_1\n";
    let parsed = parse(text, &overlay_ctx()).unwrap();
    assert_eq!(parsed.manifest.environment.as_deref(), Some("staging"));
    let written = parsed.manifest.to_yaml();
    assert!(
        written.starts_with("agent: bad-agent\nenvironment: staging\n"),
        "{}",
        *written
    );
    let again = parse(&written, &overlay_ctx()).unwrap().manifest;
    assert_eq!(again, parsed.manifest);
}

#[test]
fn an_overlay_copied_to_another_environment_is_refused() {
    let text = "agent: bad-agent\nenvironment: production\nsecrets:\n  STRIPE_KEY: sk_live_1\n";
    let e = parse(text, &overlay_ctx()).unwrap_err().to_string();
    assert!(
        e.starts_with("agents/bad-agent/secrets.staging.yaml.age (decrypted), line 2, column 1: the overlay says environment \"production\" but it is the overlay of environment \"staging\": an overlay copied or moved from secrets.production.yaml.age is refused"),
        "{e}"
    );
    assert!(e.contains("castsync edit --env staging bad-agent"), "{e}");
}

#[test]
fn the_shared_file_may_not_name_an_environment_and_an_overlay_must() {
    let text = "agent: bad-agent\nenvironment: production\nsecrets: {}\n";
    let e = err(text).to_string();
    assert!(e.contains("this is the file every environment shares, but it says environment \"production\": it may have been copied from secrets.production.yaml.age"), "{e}");
    let e = parse("agent: bad-agent\nsecrets: {}\n", &overlay_ctx())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add `environment: staging` under `agent:`"),
        "{e}"
    );
}

#[test]
fn an_overlay_takes_no_keys_from_shared_groups() {
    let text = "agent: bad-agent\nenvironment: staging\nuses: [openai]\nsecrets: {}\n";
    let e = parse(text, &overlay_ctx()).unwrap_err().to_string();
    assert!(
        e.contains(
            "line 3, column 1: an environment's overlay cannot take keys from shared groups"
        ),
        "{e}"
    );
}

#[test]
fn a_shared_groups_overlay_binds_the_same_way() {
    let ctx = ManifestContext {
        kind: Kind::Group,
        path: PathBuf::from("shared/bad-agent/secrets.staging.yaml.age"),
        ..overlay_ctx()
    };
    parse(
        "group: bad-agent\nenvironment: staging\nsecrets: {}\n",
        &ctx,
    )
    .unwrap();
    let e = parse("group: bad-agent\nenvironment: prod\nsecrets: {}\n", &ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("castsync edit --env staging --shared bad-agent"),
        "{e}"
    );
}
