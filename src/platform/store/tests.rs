use std::os::unix::fs::PermissionsExt;

use super::*;

const CANARY: &str = "canary-7f3a91-do-not-print";

#[test]
fn writes_set_created_once_and_updated_every_time() {
    let mut store = Store::new();
    assert!(store.ensure_agent("a"));
    assert!(!store.ensure_agent("a"));
    let first = store.set("a", "K", SecretValue::new("1")).unwrap().clone();
    let second = store.set("a", "K", SecretValue::new("2")).unwrap().clone();
    assert_eq!(first.created_at, second.created_at);
    assert!(
        second.updated_at > first.updated_at,
        "two writes in a row must differ"
    );
    assert_eq!(store.get("a", "K").unwrap().value.expose(), "2");
    assert!(store.delete("a", "K").unwrap());
    assert!(!store.delete("a", "K").unwrap());
    assert_eq!(
        store.set("b", "K", SecretValue::new("x")).unwrap_err(),
        NoSuchAgent
    );
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    let stamp = now_stamp();
    assert_eq!(stamp.len(), "2026-11-29T15:44:43.123456Z".len(), "{stamp}");
    assert!(stamp.ends_with('Z'));
    assert!(OffsetDateTime::parse(&stamp, &Rfc3339).is_ok());
}

#[test]
fn pages_walk_keys_in_name_order() {
    let mut store = Store::new();
    store.ensure_agent("a");
    for k in ["C", "A", "B", "D"] {
        store.set("a", k, SecretValue::new("v")).unwrap();
    }
    let names = |p: Vec<RemoteKey>| p.into_iter().map(|k| k.key).collect::<Vec<_>>();
    assert_eq!(names(store.page("a", 0, 3).unwrap()), ["A", "B", "C"]);
    assert_eq!(names(store.page("a", 3, 3).unwrap()), ["D"]);
    assert!(store.page("a", 9, 3).unwrap().is_empty());
    assert_eq!(store.page("zz", 0, 3), Err(NoSuchAgent));
}

#[test]
fn a_saved_store_loads_back_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.json");
    assert_eq!(
        Store::load(&path).unwrap().agents().count(),
        0,
        "missing file = empty store"
    );
    let mut store = Store::new();
    store.ensure_agent("support-bot");
    store
        .set("support-bot", "OPENAI_API_KEY", SecretValue::new(CANARY))
        .unwrap();
    store.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = Store::load(&path).unwrap();
    assert_eq!(
        loaded
            .get("support-bot", "OPENAI_API_KEY")
            .unwrap()
            .value
            .expose(),
        CANARY
    );
    // Only the store file remains: the temp file was renamed over it.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn writes_after_a_reload_stay_later_than_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.json");
    let mut store = Store::new();
    store.ensure_agent("a");
    let first = store
        .set("a", "K", SecretValue::new("1"))
        .unwrap()
        .updated_at
        .clone();
    store.save(&path).unwrap();
    let mut again = Store::load(&path).unwrap();
    let second = again
        .set("a", "K", SecretValue::new("2"))
        .unwrap()
        .updated_at
        .clone();
    assert!(second > first);
}

#[test]
fn a_corrupt_store_is_an_error_that_never_quotes_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.json");
    std::fs::write(
        &path,
        format!(r#"{{"version":1,"agents":{{"a":{{"K":{{"value":7,"x":"{CANARY}"}}}}}}}}"#),
    )
    .unwrap();
    let err = Store::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("store.json") && text.contains("line 1"),
        "{text}"
    );
    assert!(!text.contains(CANARY), "{text}");
    std::fs::write(&path, r#"{"version":9,"agents":{}}"#).unwrap();
    assert!(
        Store::load(&path)
            .unwrap_err()
            .to_string()
            .contains("version 9")
    );
}

#[test]
fn debug_output_masks_values() {
    let mut store = Store::new();
    store.ensure_agent("a");
    store.set("a", "K", SecretValue::new(CANARY)).unwrap();
    assert!(!format!("{store:?}").contains(CANARY));
}
