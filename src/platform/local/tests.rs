use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::platform::batch::{Batch, BatchResult, Written, unobserved};

const CANARY: &str = "canary-7f3a91-do-not-print";

fn open(path: &Path, agents: &[&str]) -> LocalPlatform {
    LocalPlatform::open(path, agents.iter().map(|a| a.to_string()).collect()).unwrap()
}

#[tokio::test]
async fn declared_agents_exist_and_others_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.json");
    let p = open(&path, &["support-bot"]);
    assert_eq!(p.list("support-bot").await.unwrap().keys, vec![]);
    assert!(!path.exists(), "listing writes nothing");
    let err = p.list("billing-agent").await.unwrap_err();
    assert_eq!(
        err,
        PlatformError::AgentNotFound {
            agent: "billing-agent".into()
        }
    );
    assert!(matches!(
        p.set("Bad Slug", "K", &SecretValue::new("v")).await,
        Err(PlatformError::InvalidName { .. })
    ));
    assert!(matches!(
        p.delete("support-bot", "1BAD").await,
        Err(PlatformError::InvalidName { .. })
    ));
    let huge = SecretValue::new("x".repeat(MAX_VALUE_LEN + 1));
    assert!(matches!(
        p.set("support-bot", "BIG", &huge).await,
        Err(PlatformError::InvalidRequest { status: 422, .. })
    ));
}

#[tokio::test]
async fn writes_persist_across_opens_in_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/platform.json");
    let p = open(&path, &["a"]);
    p.set("a", "OPENAI_API_KEY", &SecretValue::new(CANARY))
        .await
        .unwrap();
    p.set("a", "DATABASE_URL", &SecretValue::new("postgres://x"))
        .await
        .unwrap();
    p.delete("a", "DATABASE_URL").await.unwrap();
    p.delete("a", "NEVER_THERE").await.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A new process that does not declare the agent still finds it: it was written.
    let again = open(&path, &[]);
    let keys = again.list("a").await.unwrap().keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, "OPENAI_API_KEY");
    assert_eq!(keys[0].updated_at.as_deref(), keys[0].created_at.as_deref());
    let stored = Store::open(&path).unwrap();
    assert_eq!(
        stored
            .get("a", "OPENAI_API_KEY")
            .unwrap()
            .unwrap()
            .value
            .expose(),
        CANARY
    );
    assert_eq!(again.id(), format!("local://{}", path.display()));
}

#[tokio::test]
async fn rewriting_a_key_moves_its_updated_at() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(&dir.path().join("s.json"), &["a"]);
    p.set("a", "K", &SecretValue::new("1")).await.unwrap();
    let before = p.list("a").await.unwrap().keys.remove(0);
    p.set("a", "K", &SecretValue::new("2")).await.unwrap();
    let after = p.list("a").await.unwrap().keys.remove(0);
    assert_eq!(before.created_at, after.created_at);
    assert!(after.last_write() > before.last_write());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_lose_a_write() {
    // Several rounds, each on a new store: the handles open while the first one creates the
    // database, which is where a lock SQLite does not wait for used to fail a write.
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.json");
        // Separate handles have separate connections, as separate processes would (the
        // integration tests run two processes too).
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..4 {
            let p = LocalPlatform::open(&path, vec!["a".to_owned()])
                .unwrap_or_else(|e| panic!("round {round}, opening handle {writer}: {e}"));
            tasks.spawn(async move {
                for i in 0..15 {
                    let value = SecretValue::new(format!("v{i}"));
                    if let Err(e) = p.set("a", &format!("K_{writer}_{i}"), &value).await {
                        panic!("round {round}, writer {writer}, set {i}: {e}");
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let keys = open(&path, &[]).list("a").await.unwrap().keys;
        assert_eq!(keys.len(), 60, "round {round}");
    }
}

#[test]
fn an_empty_path_or_a_corrupt_store_is_refused_at_open() {
    assert!(matches!(
        LocalPlatform::open(Path::new(""), vec![]),
        Err(OpenError::InvalidUrl { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, "not a store").unwrap();
    assert!(matches!(
        LocalPlatform::open(&path, vec![]),
        Err(OpenError::Store(_))
    ));
}

/// One batch of `sets` and `deletes` to agent `a`.
async fn write_to_a(
    p: &LocalPlatform,
    sets: &[(&str, &SecretValue)],
    deletes: &[&str],
    cancel: &CancellationToken,
) -> BatchResult {
    let batch = Batch {
        sets,
        deletes,
        sent: &unobserved,
    };
    p.write_batch("a", batch, cancel).await
}

#[tokio::test]
async fn a_batch_is_one_transaction_and_a_refused_set_holds_the_deletes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let p = open(&path, &["a"]);
    let (one, two) = (SecretValue::new("1"), SecretValue::new("2"));
    let sets = [("OLD", &one), ("KEEP", &two)];
    let cancel = CancellationToken::new();
    let done = write_to_a(&p, &sets, &[], &cancel).await;
    assert_eq!(done.sets, [Written::Landed, Written::Landed]);

    // A rename: the new key lands and the old one goes, in one commit.
    let sets = [("NEW", &one)];
    let done = write_to_a(&p, &sets, &["OLD"], &cancel).await;
    assert_eq!(done.sets, [Written::Landed]);
    assert_eq!(done.deletes, [Written::Landed]);
    let names = |listing: Listing| listing.keys.into_iter().map(|k| k.key).collect::<Vec<_>>();
    assert_eq!(names(p.list("a").await.unwrap()), ["KEEP", "NEW"]);

    // A set the platform refuses fails alone; the deletes wait.
    let huge = SecretValue::new("x".repeat(MAX_VALUE_LEN + 1));
    let sets = [("BIG", &huge), ("OTHER", &one)];
    let done = write_to_a(&p, &sets, &["KEEP"], &cancel).await;
    assert!(matches!(
        done.sets[0],
        Written::Failed(PlatformError::InvalidRequest { status: 422, .. })
    ));
    assert_eq!(done.sets[1], Written::Landed);
    assert_eq!(done.deletes, [Written::HeldBack]);
    assert_eq!(names(p.list("a").await.unwrap()), ["KEEP", "NEW", "OTHER"]);

    // Once cancelled, nothing is written.
    cancel.cancel();
    let done = write_to_a(&p, &sets, &["KEEP"], &cancel).await;
    assert_eq!(done.sets, [Written::Cancelled, Written::Cancelled]);
    assert_eq!(done.deletes, [Written::HeldBack]);

    // An undeclared agent is not found, for every write of the batch.
    let done = p
        .write_batch(
            "other",
            Batch {
                sets: &[("K", &one)],
                deletes: &["GONE"],
                sent: &unobserved,
            },
            &CancellationToken::new(),
        )
        .await;
    for w in done.sets.iter().chain(&done.deletes) {
        assert!(
            matches!(w, Written::Failed(PlatformError::AgentNotFound { .. })),
            "{w:?}"
        );
    }
}
