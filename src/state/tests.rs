use std::os::unix::fs::PermissionsExt;

use super::*;

const CANARY: &str = "canary-state-0b7c-never-print";

fn state_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".castsync/state.db")
}

fn exported(s: &State) -> String {
    let mut out = Vec::new();
    s.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_saved_state_reads_back_with_the_same_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
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
fn the_state_is_private_and_never_holds_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut s = State::open(&path).unwrap();
    s.record_set("p", "bot", "A", &SecretValue::new(CANARY), None, None);
    s.save().unwrap();
    let paths = StorePaths::of(&path);
    for file in [
        paths.db.clone(),
        crate::sqlite::companion(&paths.db, "-wal"),
        paths.legacy.clone(),
    ] {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "{}",
            file.display()
        );
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let text = exported(&s);
    assert!(!text.contains(CANARY));
    assert!(text.contains("hmac-sha256:"));
}

#[test]
fn fingerprints_are_keyed_per_state() {
    let dir = tempfile::tempdir().unwrap();
    let a = State::open(&dir.path().join("a.db")).unwrap();
    let b = State::open(&dir.path().join("b.db")).unwrap();
    let v = SecretValue::new("same");
    assert_ne!(a.fingerprint("x", "K", &v), b.fingerprint("x", "K", &v));
    assert_ne!(a.fingerprint("x", "K", &v), a.fingerprint("x", "L", &v));
    // The key is kept: the same state fingerprints alike once reopened.
    let before = a.fingerprint("x", "K", &v);
    drop(a);
    let a = State::open(&dir.path().join("a.db")).unwrap();
    assert_eq!(a.fingerprint("x", "K", &v), before);
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
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
    // The lock is the one an older castsync took on the file before it.
    assert!(dir.path().join(".castsync/state.json.lock").exists());
}

#[test]
fn a_newer_state_file_or_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"version": 9, "something": "new"}"#).unwrap();
    for err in [
        State::open_read_only(&path).unwrap_err(),
        State::open(&path).unwrap_err(),
    ] {
        assert!(err.to_string().contains("version 9"), "{err}");
        let hint = crate::hint::Hinted::hint(&err).unwrap_or_default();
        assert!(hint.contains("upgrade castsync"), "{hint}");
    }

    let db = dir.path().join("other.db");
    drop(State::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", db::LAYOUT.version + 1)
        .unwrap();
    drop(conn);
    for err in [
        State::open_read_only(&db).unwrap_err(),
        State::open(&db).unwrap_err(),
    ] {
        assert!(matches!(err, StateError::NewerLayout { .. }), "{err:?}");
        assert!(err.to_string().contains("newer castsync"), "{err}");
        let hint = crate::hint::Hinted::hint(&err).unwrap_or_default();
        assert!(hint.contains("upgrade castsync"), "{hint}");
    }
}

#[test]
fn a_corrupt_state_is_an_error_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = State::open_read_only(&path).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let hint = crate::hint::Hinted::hint(&err).unwrap_or_default();
    assert!(hint.contains("move it aside"), "{hint}");

    let db = dir.path().join("garbage.db");
    std::fs::write(&db, "not a database at all").unwrap();
    for err in [
        State::open_read_only(&db).unwrap_err(),
        State::open(&db).unwrap_err(),
    ] {
        assert!(err.to_string().contains("not an SQLite database"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "not a database at all"
    );
}

#[test]
fn a_pending_redeploy_survives_a_save_until_it_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        let mut s = State::open(&path).unwrap();
        s.mark_redeploy_pending("p", "bot");
        s.save().unwrap();
    }
    let mut s = State::open(&path).unwrap();
    assert!(s.redeploy_pending("p", "bot"));
    assert!(s.view("p").redeploy_pending("bot"));
    assert!(!s.redeploy_pending("other", "bot"));
    assert!(exported(&s).contains(r#""redeploy_pending":{"p":["bot"]}"#));
    s.clear_redeploy_pending("p", "bot");
    s.save().unwrap();
    assert!(!exported(&s).contains("redeploy_pending"));
}

#[test]
fn deleting_the_last_key_of_an_agent_forgets_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open(&state_path(&dir)).unwrap();
    s.record_set("p", "bot", "A", &SecretValue::new("1"), None, None);
    assert!(
        s.records("p", "bot").is_some(),
        "a write reads back before its save"
    );
    s.record_delete("p", "bot", "A");
    assert!(s.records("p", "bot").is_none());
}

#[test]
fn only_what_was_saved_survives_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        let mut s = State::open(&path).unwrap();
        s.record_set("p", "saved", "A", &SecretValue::new("1"), None, None);
        s.record_applied_from("p", "saved", from("c1"));
        s.save().unwrap();
        s.record_set("p", "unsaved", "A", &SecretValue::new("1"), None, None);
        s.forget_applied_from("p", "saved");
        // Dropped before its save: as a process killed before the agent's verifying list
        // was recorded.
    }
    let s = State::open(&path).unwrap();
    assert!(s.records("p", "saved").is_some());
    assert!(s.records("p", "unsaved").is_none());
    assert_eq!(s.applied_from("p", "saved"), Some(from("c1")));
}

#[test]
fn a_refused_write_fails_the_save_and_records_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut s = State::open(&path).unwrap();
    // Something the database refuses half-way through one agent's save.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON keys WHEN NEW.key = 'BAD'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    drop(other);
    s.record_set("p", "bot", "A", &SecretValue::new("1"), None, None);
    s.record_set("p", "bot", "BAD", &SecretValue::new("1"), None, None);
    s.record_set("p", "bot", "C", &SecretValue::new("1"), None, None);
    let err = s.save().unwrap_err();
    assert!(matches!(err, StateError::Database { .. }), "{err:?}");
    assert!(s.records("p", "bot").is_none(), "the whole save is undone");
    // The next agent's save works.
    s.record_set("p", "next", "A", &SecretValue::new("1"), None, None);
    s.save().unwrap();
    drop(s);
    let s = State::open(&path).unwrap();
    assert!(s.records("p", "bot").is_none());
    assert!(s.records("p", "next").is_some());
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
    let path = state_path(&dir);
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
    assert_eq!(s.applied_from("p", "bot"), Some(from("c1")));
    assert_eq!(s.change_tracking_gap("p"), None);
    assert!(
        s.change_tracking_gap("q")
            .unwrap()
            .contains("written for another platform")
    );
    s.forget_applied_from("p", "bot");
    assert_eq!(s.applied_from("p", "bot"), None);
    assert_eq!(s.applied_from_all("p").map(|m| m.len()), Some(1));
    let v: serde_json::Value = serde_json::from_str(&exported(&s)).unwrap();
    assert_eq!(v["version"], 2);
}

/// A state file as castsync 0.1 wrote it: compact JSON, one line.
fn file_of_0_1(version: u32) -> String {
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let fp = |b: u8| format!("hmac-sha256:{}", hex::encode([b; 32]));
    let applied = if version >= 2 {
        format!(
            r#","applied_from":{{"https://api.example":{{"bot":{}}}}}"#,
            serde_json::to_string(&from("c1")).unwrap()
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"version":{version},"hmac_key":"{key}","platforms":{{"https://api.example":{{"bot":{{"A":{{"fingerprint":"{}","observed_at":"2026-01-01T00:00:01Z","revision":"c1","applied_at":"2026-01-01T00:00:02Z"}},"B":{{"fingerprint":"{}","applied_at":"2026-01-01T00:00:03Z"}}}},"zed":{{"Z":{{"fingerprint":"{}","revision":"worktree","applied_at":"t"}}}}}},"local:///x":{{"bot":{{"A":{{"fingerprint":"legacy-form","applied_at":"t"}}}}}}}},"redeploy_pending":{{"https://api.example":["zed"]}}{applied}}}
"#,
        fp(1),
        fp(2),
        fp(3)
    )
}

#[test]
fn a_state_file_migrates_in_place_keeping_a_copy_and_exports_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("state.json");
    let text = file_of_0_1(2);
    std::fs::write(&old, &text).unwrap();
    // Scripts named the file: `--state state.json` opens the database beside it.
    let s = State::open(&old).unwrap();
    assert_eq!(s.path(), dir.path().join("state.db"));
    assert_eq!(exported(&s), text, "export prints what the file held");
    assert_eq!(s.change_tracking_gap("https://api.example"), None);
    drop(s);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state.json.migrated")).unwrap(),
        text
    );
    let stub = std::fs::read_to_string(&old).unwrap();
    let stub: serde_json::Value = serde_json::from_str(&stub).unwrap();
    assert_eq!(stub["version"], STUB_VERSION);
    assert_eq!(stub["moved_to"], "state.db");
    assert_eq!(mode(&old), 0o600);
    // The database path names the same state.
    let s = State::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(exported(&s), text);
    assert!(!dir.path().join("state.db.migrating").exists());
}

#[test]
fn an_older_castsync_reading_the_stub_finds_a_version_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    drop(State::open(&path).unwrap());
    // What castsync 0.1 did first with its state file: read `version`, refuse anything past
    // the version it wrote (2) as "too new" with the hint to upgrade.
    let stub = std::fs::read_to_string(dir.path().join(".castsync/state.json")).unwrap();
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<serde_json::Value>,
    }
    let version = serde_json::from_str::<VersionOnly>(&stub)
        .unwrap()
        .version
        .and_then(|v| v.as_u64())
        .unwrap();
    assert!(version > u64::from(STATE_VERSION), "{stub}");
    assert!(stub.contains("castsync state export"), "{stub}");
}

#[test]
fn a_version_1_state_file_migrates_with_its_fingerprints_and_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, file_of_0_1(1)).unwrap();
    let s = State::open(&path).unwrap();
    let bot = s.records("https://api.example", "bot").unwrap();
    assert_eq!(
        bot["A"].fingerprint,
        format!("hmac-sha256:{}", "01".repeat(32))
    );
    assert!(s.redeploy_pending("https://api.example", "zed"));
    let gap = s.change_tracking_gap("https://api.example").unwrap();
    assert!(gap.contains("state version 1"), "{gap}");
    drop(s);
    let gap = State::open(&path)
        .unwrap()
        .change_tracking_gap("https://api.example")
        .unwrap();
    assert!(gap.contains("records no agent applied"), "{gap}");
}

#[test]
fn a_migration_killed_before_its_stub_finishes_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("state.json");
    let text = file_of_0_1(2);
    std::fs::write(&old, &text).unwrap();
    drop(State::open(&old).unwrap());
    // The database and the copy are in place; the file itself was not replaced yet.
    std::fs::write(&old, &text).unwrap();
    let s = State::open(&old).unwrap();
    assert_eq!(exported(&s), text);
    drop(s);
    assert!(std::fs::read_to_string(&old).unwrap().contains("moved_to"));
    assert!(!dir.path().join("state.json.ignored").exists());

    // A state file an older castsync wrote since is set aside, and the database kept.
    let other = file_of_0_1(1);
    std::fs::write(&old, &other).unwrap();
    let s = State::open(&old).unwrap();
    assert_eq!(exported(&s), text);
    drop(s);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state.json.ignored")).unwrap(),
        other
    );
    assert!(std::fs::read_to_string(&old).unwrap().contains("moved_to"));
}

#[test]
fn a_read_only_open_reads_a_state_file_as_it_is_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("state.json");
    let text = file_of_0_1(2);
    std::fs::write(&old, &text).unwrap();
    let s = State::open_read_only(&old).unwrap();
    assert_eq!(exported(&s), text);
    drop(s);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["state.json"]);
    assert_eq!(std::fs::read_to_string(&old).unwrap(), text);

    // Nothing at all: an empty state, still nothing written.
    let none = dir.path().join("none/state.db");
    let s = State::open_read_only(&none).unwrap();
    assert!(
        s.change_tracking_gap("p")
            .unwrap()
            .starts_with("no state file yet")
    );
    assert!(!dir.path().join("none").exists());
}

#[test]
fn a_stub_without_its_database_starts_an_empty_state_and_a_lost_stub_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let stub = dir.path().join(".castsync/state.json");
    {
        let mut s = State::open(&path).unwrap();
        s.record_set("p", "bot", "A", &SecretValue::new("1"), None, None);
        s.save().unwrap();
    }
    std::fs::remove_file(&stub).unwrap();
    assert!(State::open(&path).unwrap().records("p", "bot").is_some());
    assert!(std::fs::read_to_string(&stub).unwrap().contains("moved_to"));

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::sqlite::companion(&path, suffix));
    }
    assert!(
        State::open_read_only(&path)
            .unwrap()
            .records("p", "bot")
            .is_none()
    );
    let s = State::open(&path).unwrap();
    assert!(s.records("p", "bot").is_none());
    assert!(
        s.change_tracking_gap("p")
            .unwrap()
            .starts_with("no state file yet")
    );
}

#[test]
fn an_export_migrates_back_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open(&state_path(&dir)).unwrap();
    for (platform, agent, key) in [("p", "a", "K"), ("p", "b", "K"), ("q", "a", "L")] {
        s.record_set(
            platform,
            agent,
            key,
            &SecretValue::new(CANARY),
            Some("t".into()),
            Some("c"),
        );
    }
    s.record_applied_from("p", "a", from("c1"));
    s.mark_redeploy_pending("q", "a");
    s.save().unwrap();
    let text = exported(&s);
    let copy = dir.path().join("copy/state.json");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, &text).unwrap();
    let back = State::open(&copy).unwrap();
    assert_eq!(exported(&back), text);
    let v = SecretValue::new(CANARY);
    assert_eq!(back.fingerprint("a", "K", &v), s.fingerprint("a", "K", &v));
}

#[test]
fn every_state_path_names_its_database_file_and_lock() {
    let of = |p: &str| {
        let paths = StorePaths::of(Path::new(p));
        (
            paths.db.display().to_string(),
            paths.legacy.display().to_string(),
            paths.lock().display().to_string(),
        )
    };
    let triple = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        of("d/state.db"),
        triple("d/state.db", "d/state.json", "d/state.json.lock")
    );
    assert_eq!(
        of("d/state.json"),
        triple("d/state.db", "d/state.json", "d/state.json.lock")
    );
    assert_eq!(
        of("d/state"),
        triple("d/state.db", "d/state", "d/state.lock")
    );
    assert_eq!(
        crate::history::path_for_state(Path::new("d/state.db")),
        crate::history::path_for_state(Path::new("d/state.json"))
    );
}
