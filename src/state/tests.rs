use super::*;

const CANARY: &str = "canary-state-0b7c-never-print";

#[test]
fn a_saved_state_reads_back_with_the_same_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".castsync/state.json");
    let v = SecretValue::new(CANARY);
    {
        let mut s = State::open(&path).unwrap();
        s.record_set("local://x", "bot", "A", &v, Some("t1".into()), Some("abc"));
        s.save().unwrap();
    }
    let s = State::open(&path).unwrap();
    let applied = s.view("local://x").applied("bot", "A", &v).unwrap();
    assert_eq!(
        applied,
        Applied {
            same_value: true,
            observed_at: Some("t1".into())
        }
    );
    let other = SecretValue::new("other");
    assert!(
        !s.view("local://x")
            .applied("bot", "A", &other)
            .unwrap()
            .same_value
    );
    assert!(s.view("https://api").applied("bot", "A", &v).is_none());
}

#[test]
fn the_state_file_is_private_and_never_holds_a_value() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut s = State::open(&path).unwrap();
    s.record_set("p", "bot", "A", &SecretValue::new(CANARY), None, None);
    s.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(CANARY));
    assert!(text.contains("hmac-sha256:"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn fingerprints_are_keyed_per_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = State::open(&dir.path().join("a.json")).unwrap();
    let b = State::open(&dir.path().join("b.json")).unwrap();
    let v = SecretValue::new("same");
    assert_ne!(a.fingerprint("x", "K", &v), b.fingerprint("x", "K", &v));
    assert_ne!(a.fingerprint("x", "K", &v), a.fingerprint("x", "L", &v));
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let _held = State::open(&path).unwrap();
    let err = State::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StateError::Locked { .. }));
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // Readers are never blocked.
    assert!(State::open_read_only(&path).is_ok());
}

#[test]
fn a_newer_state_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"version": 9, "something": "new"}"#).unwrap();
    let err = State::open_read_only(&path).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    let hint = crate::hint::Hinted::hint(&err).unwrap_or_default();
    assert!(hint.contains("upgrade castsync"), "{hint}");
}

#[test]
fn a_corrupt_state_file_is_an_error_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = State::open_read_only(&path).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let hint = crate::hint::Hinted::hint(&err).unwrap_or_default();
    assert!(hint.contains("move it aside"), "{hint}");
}

#[test]
fn a_pending_redeploy_survives_a_save_until_it_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    {
        let mut s = State::open(&path).unwrap();
        s.mark_redeploy_pending("p", "bot");
        s.save().unwrap();
    }
    let mut s = State::open(&path).unwrap();
    assert!(s.redeploy_pending("p", "bot"));
    assert!(s.view("p").redeploy_pending("bot"));
    assert!(!s.redeploy_pending("other", "bot"));
    s.clear_redeploy_pending("p", "bot");
    s.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("redeploy_pending"), "{text}");
}

#[test]
fn deleting_the_last_key_of_an_agent_forgets_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open(&dir.path().join("s.json")).unwrap();
    s.record_set("p", "bot", "A", &SecretValue::new("1"), None, None);
    s.record_delete("p", "bot", "A");
    assert!(s.records("p", "bot").is_none());
}

fn from(revision: &str) -> AppliedFrom {
    AppliedFrom {
        manifest: format!("sha256:{}", "a".repeat(64)),
        schema: "absent".into(),
        settings: format!("sha256:{}", "b".repeat(64)),
        groups: BTreeMap::from([("openai".to_owned(), format!("git-blob:{}", "c".repeat(40)))]),
        revision: revision.into(),
        at: "2026-01-01T00:00:00Z".into(),
    }
}

#[test]
fn what_an_agent_was_applied_from_survives_a_save_until_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    {
        let mut s = State::open(&path).unwrap();
        assert!(
            s.change_tracking_gap("p")
                .unwrap()
                .starts_with("no state file yet")
        );
        s.record_applied_from("p", "bot", from("c1"));
        s.record_applied_from("p", "other", from("c1"));
        s.save().unwrap();
    }
    let mut s = State::open(&path).unwrap();
    assert_eq!(s.applied_from("p", "bot"), Some(&from("c1")));
    assert_eq!(s.change_tracking_gap("p"), None);
    assert!(
        s.change_tracking_gap("q")
            .unwrap()
            .contains("written for another platform")
    );
    s.forget_applied_from("p", "bot");
    assert_eq!(s.applied_from("p", "bot"), None);
    assert_eq!(s.applied_from_all("p").map(BTreeMap::len), Some(1));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 2, "{text}");
}

#[test]
fn a_version_1_state_reads_with_its_fingerprints_and_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    {
        let mut s = State::open(&path).unwrap();
        s.record_set("p", "bot", "A", &SecretValue::new(CANARY), None, None);
        s.save().unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"version\":2", "\"version\":1");
    std::fs::write(&path, text).unwrap();
    let s = State::open(&path).unwrap();
    assert!(
        s.view("p")
            .applied("bot", "A", &SecretValue::new(CANARY))
            .unwrap()
            .same_value
    );
    let gap = s.change_tracking_gap("p").unwrap();
    assert!(gap.contains("state version 1"), "{gap}");
}

#[test]
fn a_repacked_state_holds_and_saves_exactly_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut s = State::open(&path).unwrap();
    s.record_set(
        "p",
        "bot",
        "A",
        &SecretValue::new("1"),
        Some("t".into()),
        Some("c1"),
    );
    s.record_applied_from("p", "bot", from("c1"));
    s.mark_redeploy_pending("p", "bot");
    s.save().unwrap();
    let before = std::fs::read(&path).unwrap();
    s.repack();
    assert!(
        s.view("p")
            .applied("bot", "A", &SecretValue::new("1"))
            .unwrap()
            .same_value
    );
    assert_eq!(s.applied_from("p", "bot"), Some(&from("c1")));
    s.save().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
