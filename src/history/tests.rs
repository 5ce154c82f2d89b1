use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn entry(agent: &str, key: &str) -> Entry {
    Entry {
        time: "2026-11-20T10:00:00Z".into(),
        commit: Some("c0ffee".into()),
        platform: "local://x".into(),
        agent: agent.into(),
        key: Some(key.into()),
        action: "create".into(),
        reason: None,
        result: "applied".into(),
        error_class: None,
        error: None,
    }
}

#[test]
fn the_history_sits_next_to_the_state() {
    assert_eq!(
        path_for_state(Path::new(".castsync/state.json")),
        Path::new(".castsync/state.history.jsonl")
    );
    assert_eq!(
        path_for_state(Path::new("/tmp/ci-state")),
        Path::new("/tmp/ci-state.history.jsonl")
    );
    assert_eq!(
        rotated(Path::new("/d/state.history.jsonl")),
        Path::new("/d/state.history.jsonl.1")
    );
}

#[test]
fn appends_are_private_line_by_line_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.history.jsonl");
    append(&path, &[entry("a", "A1"), entry("a", "A2")]).unwrap();
    append(&path, &[entry("b", "B1")]).unwrap();
    append(&path, &[]).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.ends_with('\n'));
    let read = read(&path).unwrap();
    let keys: Vec<_> = read
        .entries
        .iter()
        .map(|e| e.key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["A1", "A2", "B1"]);
    assert_eq!((read.skipped, read.truncated), (0, false));
}

#[test]
fn a_wider_mode_is_narrowed_on_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    append(&path, &[entry("a", "A1")]).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_torn_last_line_is_skipped_and_closed_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    append(&path, &[entry("a", "A1")]).unwrap();
    // A crash in the middle of the next line.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"time":"2026-11-20T10:00:01Z","comm"#)
        .unwrap();
    drop(f);
    let torn = read(&path).unwrap();
    assert_eq!(torn.entries.len(), 1);
    assert_eq!(torn.skipped, 1);

    append(&path, &[entry("a", "A2")]).unwrap();
    let healed = read(&path).unwrap();
    let keys: Vec<_> = healed
        .entries
        .iter()
        .map(|e| e.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["A1", "A2"],
        "the torn line does not spoil the next one"
    );
    assert_eq!(healed.skipped, 1);
}

#[test]
fn a_full_file_rotates_to_one_older_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    // A file at the cap, made of whole lines.
    let line = format!("{}\n", serde_json::to_string(&entry("old", "O")).unwrap());
    let count = usize::try_from(MAX_FILE).unwrap() / line.len() + 1;
    std::fs::write(&path, line.repeat(count)).unwrap();
    append(&path, &[entry("new", "N1")]).unwrap();
    assert!(rotated(&path).exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    // The last entries come from both generations, newest last.
    let last = last(&path, 3).unwrap();
    let agents: Vec<_> = last.entries.iter().map(|e| e.agent.as_str()).collect();
    assert_eq!(agents, ["old", "old", "new"]);
    // A second rotation replaces the older generation: two files at most.
    let big = std::fs::read(rotated(&path)).unwrap();
    std::fs::write(&path, &big).unwrap();
    append(&path, &[entry("newer", "N2")]).unwrap();
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2);
}

#[test]
fn a_read_is_bounded_and_drops_the_partial_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let line = format!("{}\n", serde_json::to_string(&entry("a", "K")).unwrap());
    std::fs::write(&path, line.repeat(2000)).unwrap();
    let tail = read_tail(&path, 1000).unwrap();
    assert!(tail.truncated);
    assert_eq!(tail.skipped, 0);
    assert_eq!(tail.entries.len(), 1000 / line.len());
    assert_eq!(last(&path, 5).unwrap().entries.len(), 5);
}

#[test]
fn a_missing_history_is_empty_and_a_directory_in_its_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.jsonl");
    assert!(read(&path).unwrap().entries.is_empty());
    std::fs::create_dir(dir.path().join("dir.jsonl")).unwrap();
    let err = read(&dir.path().join("dir.jsonl")).unwrap_err();
    assert!(
        matches!(
            err,
            HistoryError::Read(fsread::ReadError::NotRegular { .. })
        ),
        "{err}"
    );
    let err = append(&dir.path().join("dir.jsonl"), &[entry("a", "A")]).unwrap_err();
    assert!(matches!(err, HistoryError::NotRegular { .. }), "{err}");
}

#[test]
fn entries_from_a_newer_castsync_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    std::fs::write(
        &path,
        "{\"time\":\"t\",\"platform\":\"p\",\"agent\":\"a\",\"action\":\"rename\",\"result\":\"queued\",\"new_field\":1}\nnot json\n",
    )
    .unwrap();
    let read = read(&path).unwrap();
    assert_eq!(read.entries.len(), 1);
    assert_eq!(read.entries[0].action, "rename");
    assert_eq!(read.skipped, 1);
}

#[test]
fn a_selection_keeps_one_agents_entries_since_a_time() {
    let mut late = entry("billing", "B");
    late.time = "2026-11-21T10:00:00Z".into();
    let mut unparsable = entry("billing", "C");
    unparsable.time = "yesterday".into();
    let read = Read {
        entries: vec![
            entry("support", "A"),
            entry("billing", "A"),
            late,
            unparsable,
        ],
        ..Read::default()
    };
    let keys = |entries: Vec<&Entry>| -> Vec<String> {
        entries
            .iter()
            .map(|e| format!("{}/{}", e.agent, e.key.as_deref().unwrap_or("")))
            .collect()
    };
    assert_eq!(read.select(None, None).len(), 4);
    assert_eq!(
        keys(read.select(Some("billing"), None)),
        ["billing/A", "billing/B", "billing/C"]
    );
    let since = OffsetDateTime::parse("2026-11-21T00:00:00Z", &Rfc3339).unwrap();
    assert_eq!(
        keys(read.select(Some("billing"), Some(since))),
        ["billing/B"]
    );
    assert_eq!(read.agents(), ["billing", "support"]);
}
