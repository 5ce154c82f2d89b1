use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};

use super::*;
use crate::crypto::{self, Env, Recipient};

/// A config whose recipients are `recipients`, and identities holding `secret`.
struct Keys {
    config: Config,
    ids: Identities,
    recipient: Recipient,
}

impl Keys {
    fn new() -> Keys {
        let (secret, public) = crypto::generate_identity();
        let env = Env {
            age_key: Some(SecretString::from(secret.expose_secret().to_owned())),
            ..Env::default()
        };
        Keys {
            config: Config {
                recipients: crate::config::Recipients::from_keys([public.clone()]),
                ..Config::default()
            },
            ids: Identities::discover_with(&[], &env).unwrap(),
            recipient: crypto::parse_recipient(&public).unwrap(),
        }
    }

    fn files(&self) -> AgentFiles<'_> {
        AgentFiles::new(Path::new("/nonexistent-repo"), &self.config, "bot").unwrap()
    }

    /// `plaintext`, encrypted to this key.
    fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        crypto::encrypt(plaintext.as_bytes(), std::slice::from_ref(&self.recipient)).unwrap()
    }

    /// A manifest of agent `bot` as castsync writes it (with its recipient record).
    fn sealed(&self, secrets: &[(&str, &str)]) -> Vec<u8> {
        let mut manifest = Manifest::new("bot");
        for (k, v) in secrets {
            manifest.secrets.insert((*k).to_owned(), (*v).into());
        }
        self.files().seal(&mut manifest).unwrap().0
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Manifest {
        let plain = self.ids.decrypt(ciphertext, Path::new("x")).unwrap();
        self.files()
            .parse(std::str::from_utf8(&plain).unwrap())
            .unwrap()
    }

    fn merge(&self, base: &[u8], ours: &[u8], theirs: &[u8]) -> Result<Merged, MergeError> {
        merge_versions(&self.files(), &self.ids, Versions { base, ours, theirs })
    }
}

fn values(manifest: &Manifest) -> Vec<(String, String)> {
    manifest
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_merge_is_encrypted_to_the_configured_recipients_with_a_fresh_record() {
    let keys = Keys::new();
    let base = keys.sealed(&[("A", "a0"), ("B", "b0")]);
    let ours = keys.sealed(&[("A", "a1"), ("B", "b0")]);
    // Written by hand (no record): the record is recomputed, not merged.
    let theirs = keys.encrypt("agent: bot\nsecrets:\n  A: a0\n  B: b2\n");
    let merged = keys.merge(&base, &ours, &theirs).unwrap();
    assert_eq!(merged.from_ours, ["A"]);
    assert_eq!(merged.from_theirs, ["B"]);
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
    let result = keys.decrypt(&merged.ciphertext.unwrap());
    assert_eq!(values(&result), pairs(&[("A", "a1"), ("B", "b2")]));
    assert_eq!(
        result.meta.unwrap().recipients,
        vec![keys.recipient.as_str().to_owned()]
    );
}

#[test]
fn a_side_that_already_is_the_result_is_kept_byte_for_byte() {
    let keys = Keys::new();
    let base = keys.sealed(&[("A", "a0")]);
    let changed = keys.sealed(&[("A", "a1")]);
    // Their version only gained a record; ours changed A: ours is the result.
    let hand_written = keys.encrypt("agent: bot\nsecrets:\n  A: a0\n");
    let merged = keys.merge(&hand_written, &changed, &base).unwrap();
    assert!(merged.ciphertext.is_none());
    // The other way round, theirs is the result and is taken as it is.
    let merged = keys.merge(&hand_written, &base, &changed).unwrap();
    assert_eq!(merged.ciphertext.as_deref(), Some(changed.as_slice()));
}

#[test]
fn an_empty_ancestor_means_both_sides_added_the_file() {
    let keys = Keys::new();
    let ours = keys.sealed(&[("A", "same"), ("B", "b")]);
    let theirs = keys.sealed(&[("A", "same"), ("C", "c")]);
    let merged = keys.merge(b"", &ours, &theirs).unwrap();
    let result = keys.decrypt(&merged.ciphertext.unwrap());
    assert_eq!(
        values(&result),
        pairs(&[("A", "same"), ("B", "b"), ("C", "c")])
    );
}

#[test]
fn a_conflict_names_the_agent_and_keys_and_what_was_not_applied() {
    let keys = Keys::new();
    let base = keys.sealed(&[("A", "canary-a0"), ("B", "canary-b0")]);
    let ours = keys.sealed(&[("A", "canary-a1"), ("B", "canary-b0")]);
    let theirs = keys.sealed(&[("A", "canary-a2"), ("B", "canary-b2")]);
    let err = keys.merge(&base, &ours, &theirs).unwrap_err();
    let hint = crate::hint::Hinted::hint(&err)
        .unwrap_or_default()
        .into_owned();
    let text = format!("{err} {err:?} {hint}");
    assert!(text.contains("cannot merge agent bot key by key"), "{text}");
    assert!(text.contains("key A changed on both sides"), "{text}");
    assert!(text.contains("without their changes to B"), "{text}");
    assert!(
        hint.starts_with("settle it with `castsync edit bot`"),
        "{hint}"
    );
    assert!(!text.contains("canary"), "{text}");
}

#[test]
fn a_side_that_does_not_decrypt_or_parse_is_named() {
    let keys = Keys::new();
    let stranger = Keys::new();
    let good = keys.sealed(&[("A", "a")]);
    let foreign = stranger.sealed(&[("A", "canary-foreign")]);
    let err = keys.merge(&good, &good, &foreign).unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Decrypt {
                side: Side::Theirs,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("their version does not decrypt"),
        "{err}"
    );

    let broken = keys.encrypt("agent: bot\nsecrets:\n  A: 1.10\n");
    let err = keys.merge(&broken, &good, &good).unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Invalid {
                side: Side::Base,
                ..
            }
        ),
        "{err:?}"
    );
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("secrets.yaml.age (common ancestor)"),
        "{chain}"
    );

    let err = keys.merge(&good, b"not an age file", &good).unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Decrypt {
                side: Side::Ours,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_version_bound_to_another_agent_is_a_binding_conflict() {
    let keys = Keys::new();
    let base = keys.sealed(&[("A", "a")]);
    let moved = keys.encrypt("agent: billing\nsecrets:\n  A: a\n  B: b\n");
    let err = keys.merge(&base, &base, &moved).unwrap_err();
    let MergeError::Conflict { conflicts, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        conflicts.binding,
        Some(("bot".to_owned(), "billing".to_owned()))
    );
    // Both sides bound elsewhere: the result would not belong in this folder.
    let err = keys.merge(&base, &moved, &moved).unwrap_err();
    assert!(matches!(err, MergeError::MergedInvalid { .. }), "{err:?}");
}

#[test]
fn the_merged_path_must_be_an_agents_manifest() {
    let config = Config::default();
    assert_eq!(
        agent_of(&config, Path::new("agents/bot/secrets.yaml.age")).unwrap(),
        "bot"
    );
    assert_eq!(
        agent_of(&config, Path::new("./agents/bot/secrets.yaml.age")).unwrap(),
        "bot"
    );
    for bad in [
        "agents/secrets.yaml.age",
        "agents/bot/other.yaml.age",
        "elsewhere/bot/secrets.yaml.age",
        "agents/bot/nested/secrets.yaml.age",
        "secrets.yaml.age",
    ] {
        let err = agent_of(&config, Path::new(bad)).unwrap_err();
        assert!(err.to_string().contains("not a manifest"), "{bad}: {err}");
    }
    let nested = Config {
        agents_dir: "secrets/agents".into(),
        ..Config::default()
    };
    assert_eq!(
        agent_of(&nested, Path::new("secrets/agents/bot/secrets.yaml.age")).unwrap(),
        "bot"
    );
    assert_eq!(
        manifest_of(&config, Path::new("shared/openai/secrets.yaml.age")).unwrap(),
        (Kind::Group, "openai".to_owned())
    );
    assert!(agent_of(&config, Path::new("shared/openai/secrets.yaml.age")).is_err());
}

#[test]
fn a_shared_groups_manifest_merges_key_by_key_and_stays_bound_to_its_group() {
    let keys = Keys::new();
    let files = AgentFiles::group(Path::new("/nonexistent-repo"), &keys.config, "openai").unwrap();
    let sealed = |secrets: &[(&str, &str)]| {
        let mut m = Manifest::new_group("openai");
        for (k, v) in secrets {
            m.secrets.insert((*k).to_owned(), (*v).into());
        }
        files.seal(&mut m).unwrap().0
    };
    let base = sealed(&[("A", "a0"), ("B", "b0")]);
    let ours = sealed(&[("A", "a1"), ("B", "b0")]);
    let theirs = sealed(&[("A", "a0"), ("B", "b2")]);
    let merged = merge_versions(
        &files,
        &keys.ids,
        Versions {
            base: &base,
            ours: &ours,
            theirs: &theirs,
        },
    )
    .unwrap();
    let plain = keys
        .ids
        .decrypt(&merged.ciphertext.unwrap(), Path::new("x"))
        .unwrap();
    let result = files.parse(std::str::from_utf8(&plain).unwrap()).unwrap();
    assert_eq!(result.kind, Kind::Group);
    assert_eq!(values(&result), pairs(&[("A", "a1"), ("B", "b2")]));
}

#[test]
fn an_agents_uses_merges_as_a_whole() {
    let keys = Keys::new();
    let with_uses = |uses: &[&str], secrets: &[(&str, &str)]| {
        let mut m = Manifest::new("bot");
        for g in uses {
            m.uses.insert((*g).to_owned(), manifest::UsedKeys::All);
        }
        for (k, v) in secrets {
            m.secrets.insert((*k).to_owned(), (*v).into());
        }
        keys.files().seal(&mut m).unwrap().0
    };
    let base = with_uses(&[], &[("A", "a0")]);
    let ours = with_uses(&["openai"], &[("A", "a0")]);
    let theirs = with_uses(&[], &[("A", "a2")]);
    let merged = keys.merge(&base, &ours, &theirs).unwrap();
    let result = keys.decrypt(&merged.ciphertext.unwrap());
    assert_eq!(result.uses.keys().collect::<Vec<_>>(), ["openai"]);
    assert_eq!(values(&result), pairs(&[("A", "a2")]));

    let other = with_uses(&["stripe"], &[("A", "a0")]);
    match keys.merge(&base, &ours, &other) {
        Err(MergeError::Conflict { conflicts, .. }) => {
            assert!(conflicts.uses);
            assert!(
                conflicts
                    .to_string()
                    .contains("the `uses:` block changed on both sides")
            );
        }
        other => panic!("expected a conflict: {other:?}"),
    }
}
