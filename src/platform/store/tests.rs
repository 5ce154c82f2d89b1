use std::os::unix::fs::PermissionsExt;

use super::*;

const CANARY: &str = "canary-7f3a91-do-not-print";

fn v(s: &str) -> SecretValue {
    SecretValue::new(s)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn writes_set_created_once_and_updated_every_time() {
    let mut store = Store::in_memory().unwrap();
    assert!(store.ensure_agent("a").unwrap());
    assert!(!store.ensure_agent("a").unwrap());
    let first = store.set("a", "K", &v("1")).unwrap();
    let second = store.set("a", "K", &v("2")).unwrap();
    assert_eq!(first.created_at, second.created_at);
    assert!(
        second.updated_at > first.updated_at,
        "two writes in a row must differ"
    );
    assert_eq!(store.get("a", "K").unwrap().unwrap().value.expose(), "2");
    assert!(store.delete("a", "K").unwrap());
    assert!(!store.delete("a", "K").unwrap());
    assert!(store.get("a", "K").unwrap().is_none());
    for missing in [
        store.set("b", "K", &v("x")).map(|_| ()),
        store.delete("b", "K").map(|_| ()),
        store.list("b").map(|_| ()),
    ] {
        assert!(
            matches!(missing, Err(StoreError::NoSuchAgent { ref agent }) if agent == "b"),
            "{missing:?}"
        );
    }
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
    let mut store = Store::in_memory().unwrap();
    store.ensure_agent("a").unwrap();
    for k in ["C", "A", "b", "B", "D"] {
        store.set("a", k, &v("v")).unwrap();
    }
    let names = |p: Vec<RemoteKey>| p.into_iter().map(|k| k.key).collect::<Vec<_>>();
    // Byte order, as the JSON store's BTreeMap had it: uppercase before lowercase.
    assert_eq!(names(store.page("a", 0, 3).unwrap()), ["A", "B", "C"]);
    assert_eq!(names(store.page("a", 3, 3).unwrap()), ["D", "b"]);
    assert!(store.page("a", 9, 3).unwrap().is_empty());
    assert_eq!(store.list("a").unwrap().len(), 5);
    assert!(matches!(
        store.page("zz", 0, 3),
        Err(StoreError::NoSuchAgent { .. })
    ));
    assert_eq!(store.agents().unwrap(), ["a"]);
}

#[test]
fn a_transaction_lands_whole_or_not_at_all() {
    let mut store = Store::in_memory().unwrap();
    store.ensure_agent("a").unwrap();
    let failed = store.write(|tx| {
        tx.set("a", "FIRST", &v("1"))?;
        tx.set("missing-agent", "SECOND", &v("2"))
    });
    assert!(matches!(failed, Err(StoreError::NoSuchAgent { .. })));
    assert!(store.list("a").unwrap().is_empty(), "FIRST was rolled back");
    store
        .write(|tx| {
            tx.ensure_agent("b")?;
            tx.set("b", "ONE", &v("1"))?;
            tx.set("b", "TWO", &v("2"))?;
            tx.delete("b", "ONE")
        })
        .unwrap();
    let keys = store.list("b").unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, "TWO");
}

#[test]
fn a_store_file_and_its_wal_are_mode_0600_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/store.db");
    assert!(Store::open_existing(&path).unwrap().is_none());
    assert!(!path.exists(), "open_existing creates nothing");
    let mut store = Store::open(&path).unwrap();
    store.ensure_agent("support-bot").unwrap();
    store
        .set("support-bot", "OPENAI_API_KEY", &v(CANARY))
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    for suffix in ["-wal", "-shm"] {
        let file = companion(&path, suffix);
        assert!(file.exists(), "WAL mode: {} exists", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(store);
    let again = Store::open_existing(&path).unwrap().unwrap();
    let entry = again.get("support-bot", "OPENAI_API_KEY").unwrap().unwrap();
    assert_eq!(entry.value.expose(), CANARY);
}

#[test]
fn a_store_others_could_read_is_narrowed_to_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    Store::open(&path).unwrap().ensure_agent("a").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Store::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn writes_after_a_reopen_stay_later_than_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut store = Store::open(&path).unwrap();
    store.ensure_agent("a").unwrap();
    // A stored clock far in the future: the next write must still be later.
    store
        .write(|tx| {
            tx.set("a", "K", &v("1"))?;
            Ok(())
        })
        .unwrap();
    store
        .conn
        .execute(
            "UPDATE meta SET value = '2999-01-01T00:00:00.000000Z' WHERE name = 'clock'",
            [],
        )
        .unwrap();
    drop(store);
    let mut again = Store::open(&path).unwrap();
    let second = again.set("a", "K", &v("2")).unwrap();
    assert_eq!(second.updated_at, "2999-01-01T00:00:00.000001Z");
}

#[test]
fn two_connections_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut one = Store::open(&path).unwrap();
    let mut two = Store::open(&path).unwrap();
    one.ensure_agent("a").unwrap();
    let first = one.set("a", "K", &v("1")).unwrap();
    let second = two.set("a", "K", &v("2")).unwrap();
    assert!(second.updated_at > first.updated_at);
    assert_eq!(one.get("a", "K").unwrap().unwrap().value.expose(), "2");
}

#[test]
fn a_file_that_is_no_castsync_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, format!("{CANARY}\n")).unwrap();
    let text = Store::open(&path).unwrap_err().to_string();
    assert!(text.contains("not an SQLite database"), "{text}");
    assert!(!text.contains(CANARY), "{text}");

    let other = dir.path().join("other.db");
    let conn = Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    drop(conn);
    let text = Store::open(&other).unwrap_err().to_string();
    assert!(text.contains("another program"), "{text}");

    let newer = dir.path().join("newer.db");
    Store::open(&newer).unwrap();
    let conn = Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let text = Store::open(&newer).unwrap_err().to_string();
    assert!(text.contains("newer castsync"), "{text}");
}

#[test]
fn debug_output_masks_values() {
    let mut store = Store::in_memory().unwrap();
    store.ensure_agent("a").unwrap();
    let entry = store.set("a", "K", &v(CANARY)).unwrap();
    assert!(!format!("{entry:?}").contains(CANARY));
    assert!(!format!("{store:?}").contains(CANARY));
}
