//! Recovery of the durable store: restarts, torn tails, corrupt snapshots.

use std::os::unix::fs::FileExt;

use serde_json::{Value, json};

use super::*;
use crate::store::testdir::TestDir;

fn pod(name: &str, n: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"n": n}})
}

fn key(name: &str) -> Key {
    Key::new("pods", "default", name)
}

fn all_pods(store: &DurableStore) -> Vec<(String, u64, Value)> {
    let prefix = Prefix {
        resource: "pods".into(),
        namespace: None,
    };
    let listed = store.list(&prefix).records.into_iter();
    listed
        .map(|r| (r.key.name.clone(), r.revision, r.object()))
        .collect()
}

/// Creates `count` pods, updates every third and deletes every fifth.
async fn churn(store: &DurableStore, from: u64, count: u64) {
    for i in from..from + count {
        let name = format!("p{i}");
        store
            .write(key(&name), WriteOp::Create(pod(&name, i)))
            .await
            .unwrap();
        if i % 3 == 0 {
            let op = WriteOp::Update {
                expected: None,
                object: pod(&name, i + 1000),
            };
            store.write(key(&name), op).await.unwrap();
        }
        if i % 5 == 0 {
            let op = WriteOp::Delete { expected: None };
            store.write(key(&name), op).await.unwrap();
        }
    }
}

fn quiet() -> DurableOptions {
    DurableOptions {
        snapshot_every: u64::MAX,
        ..DurableOptions::default()
    }
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn acknowledged_writes_come_back_from_the_log_alone() {
    // Written through each IO path, read back (and written on) by the other.
    for (first, second) in [(WalIo::Std, WalIo::IoUring), (WalIo::IoUring, WalIo::Std)] {
        let dir = TestDir::new("durable-log");
        let with = |wal_io| DurableOptions { wal_io, ..quiet() };
        let store = DurableStore::open_with(dir.path(), with(first)).unwrap();
        churn(&store, 0, 50).await;
        let (before, revision) = (all_pods(&store), store.revision());
        store.stop_without_snapshot().await;
        drop(store);
        assert!(files(dir.path(), "snapshot-").is_empty());

        let store = DurableStore::open_with(dir.path(), with(second)).unwrap();
        assert_eq!(all_pods(&store), before, "{first:?} then {second:?}");
        assert_eq!(store.revision(), revision);
        let next = store
            .write(key("new"), WriteOp::Create(pod("new", 0)))
            .await;
        assert_eq!(next.unwrap().revision, revision + 1);
    }
}

#[tokio::test]
async fn a_snapshot_and_the_log_after_it_restore_the_state_together() {
    let dir = TestDir::new("durable-snap");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 0, 40).await;
    let covered = store.snapshot().await.unwrap();
    assert_eq!(covered, store.revision());
    churn(&store, 40, 40).await;
    let (before, revision) = (all_pods(&store), store.revision());
    store.stop_without_snapshot().await;
    drop(store);

    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert_eq!(all_pods(&store), before);
    assert_eq!(store.revision(), revision);
}

#[tokio::test]
async fn a_clean_close_leaves_one_snapshot_and_removes_the_log_it_covers() {
    let dir = TestDir::new("durable-close");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 0, 30).await;
    let before = all_pods(&store);
    store.close().await.unwrap();
    let refused = store
        .write(key("late"), WriteOp::Create(pod("late", 0)))
        .await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))));
    drop(store);
    assert_eq!(files(dir.path(), "snapshot-").len(), 1);
    // Only the fresh, empty segment after the snapshot is left.
    let segments = files(dir.path(), "wal-");
    assert_eq!(segments.len(), 1);
    assert_eq!(std::fs::metadata(&segments[0]).unwrap().len(), 0);

    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert_eq!(all_pods(&store), before);
}

#[tokio::test]
async fn background_snapshots_bound_the_log_and_lose_nothing() {
    let dir = TestDir::new("durable-background");
    let options = DurableOptions {
        snapshot_every: 25,
        segment_bytes: 4096,
        ..DurableOptions::default()
    };
    let store = DurableStore::open_with(dir.path(), options.clone()).unwrap();
    churn(&store, 0, 300).await;
    let (before, revision) = (all_pods(&store), store.revision());
    store.stop_without_snapshot().await;
    drop(store);
    assert!(files(dir.path(), "snapshot-").len() <= 2);

    let store = DurableStore::open_with(dir.path(), options).unwrap();
    assert_eq!(all_pods(&store), before);
    assert_eq!(store.revision(), revision);
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_at_the_last_whole_record() {
    let dir = TestDir::new("durable-torn");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 0, 20).await;
    let (before, revision) = (all_pods(&store), store.revision());
    store.stop_without_snapshot().await;
    drop(store);

    // Half a frame of a write that was never acknowledged.
    let mut frame = Vec::new();
    let entry = WalEntry {
        revision: revision + 1,
        resource: "pods".into(),
        namespace: "default".into(),
        name: "half".into(),
        deleted: false,
        json: br#"{"metadata":{"name":"half"}}"#.to_vec(),
    };
    wal::encode_frame(&entry, &mut frame);
    let segment = files(dir.path(), "wal-").pop().unwrap();
    let scanned = wal::scan_segment(&segment, |_| Ok::<_, ()>(()));
    let whole = scanned.unwrap().unwrap().valid_len;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.write_all_at(&frame[..frame.len() / 2], whole).unwrap();
    drop(file);

    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert_eq!(all_pods(&store), before);
    assert_eq!(store.revision(), revision);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
    // The revision of the cut write is handed out again, to a new write.
    let next = store
        .write(key("after"), WriteOp::Create(pod("after", 0)))
        .await;
    assert_eq!(next.unwrap().revision, revision + 1);
    store.stop_without_snapshot().await;
    drop(store);
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert!(store.get(&key("after")).is_some());
    assert!(store.get(&key("half")).is_none());
}

#[tokio::test]
async fn a_corrupt_snapshot_is_refused_with_an_error() {
    let dir = TestDir::new("durable-corrupt");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 0, 20).await;
    store.close().await.unwrap();
    drop(store);

    let snapshot = files(dir.path(), "snapshot-").pop().unwrap();
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();
    let opened = DurableStore::open_with(dir.path(), quiet());
    assert!(matches!(
        opened,
        Err(OpenError::Snapshot(SnapshotError::Corrupt { .. }))
    ));
}

#[tokio::test]
async fn a_second_store_on_the_same_directory_is_refused() {
    let dir = TestDir::new("durable-lock");
    let _store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    let second = DurableStore::open_with(dir.path(), quiet());
    assert!(matches!(
        second,
        Err(OpenError::Lock(LockError::Held { .. }))
    ));
}

#[tokio::test]
async fn a_watch_from_before_a_restart_is_expired() {
    let dir = TestDir::new("durable-watch");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 0, 5).await;
    let revision = store.revision();
    drop(store);
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert!(matches!(
        store.watch(revision - 1),
        Err(StoreError::Expired { .. })
    ));
    let mut cursor = store.watch(revision).unwrap();
    store
        .write(key("new"), WriteOp::Create(pod("new", 0)))
        .await
        .unwrap();
    let batch = cursor.next_batch().await.unwrap();
    assert_eq!(batch[0].record.revision, revision + 1);
}

/// Writes issued back to back, each decided while the ones before it may
/// still be on their way to the disk, see those writes as if they were
/// done: the outcomes are those of running them one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_are_decided_against_the_writes_not_yet_synced_before_them() {
    let dir = TestDir::new("durable-pipelined");
    let store = Arc::new(DurableStore::open_with(dir.path(), quiet()).unwrap());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..40 {
                let name = format!("t{task}-{round}");
                let k = || key(&name);
                let update = |expected| WriteOp::Update {
                    expected,
                    object: pod(&name, 1),
                };
                // Sent in this order before any is awaited.
                let created = store.write(k(), WriteOp::Create(pod(&name, 0)));
                let again = store.write(k(), WriteOp::Create(pod(&name, 0)));
                let blind = store.write(k(), update(None));
                let stale = store.write(k(), update(Some(1)));
                let deleted = store.write(k(), WriteOp::Delete { expected: None });
                let gone = store.write(k(), update(None));
                let recreated = store.write(k(), WriteOp::Create(pod(&name, 2)));

                let created = created.await.unwrap().revision;
                assert!(matches!(again.await, Err(StoreError::AlreadyExists(_))));
                let blind = blind.await.unwrap().revision;
                assert!(blind > created);
                match stale.await {
                    Err(StoreError::Conflict { current, .. }) => assert_eq!(current, blind),
                    other => panic!("a stale update gave {other:?}"),
                }
                assert!(deleted.await.unwrap().revision > blind);
                assert!(matches!(gone.await, Err(StoreError::NotFound(_))));
                recreated.await.unwrap();
            }
        }));
    }
    // Compare-and-swap increments of one counter from every task: each
    // success saw the one before it, acknowledged or not.
    store
        .write(key("counter"), WriteOp::Create(pod("counter", 0)))
        .await
        .unwrap();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 25 {
                let current = store.get(&key("counter")).unwrap();
                let n = current.object()["spec"]["n"].as_u64().unwrap();
                let op = WriteOp::Update {
                    expected: Some(current.revision),
                    object: pod("counter", n + 1),
                };
                match store.write(key("counter"), op).await {
                    Ok(_) => done += 1,
                    Err(StoreError::Conflict { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counter = store.get(&key("counter")).unwrap().object();
    assert_eq!(counter["spec"]["n"], 200);
    let before = all_pods(&store);
    assert_eq!(before.len(), 8 * 40 + 1);

    // The log holds the same outcomes.
    store.stop_without_snapshot().await;
    drop(store);
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert_eq!(all_pods(&store), before);
}

/// A refused write is answered after the writes decided before it are
/// applied: what it conflicted with can be read when its writer hears of it
/// (as the apiserver's retry of a patch needs).
#[tokio::test]
async fn a_conflict_is_answered_once_the_write_it_met_can_be_read() {
    let dir = TestDir::new("durable-conflict-order");
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    for round in 0..50 {
        let name = format!("p{round}");
        let created = store
            .write(key(&name), WriteOp::Create(pod(&name, 0)))
            .await
            .unwrap();
        let update = |expected| WriteOp::Update {
            expected,
            object: pod(&name, 1),
        };
        let first = store.write(key(&name), update(None));
        let stale = store.write(key(&name), update(Some(created.revision)));
        match stale.await {
            Err(StoreError::Conflict { current, .. }) => {
                assert_eq!(store.get(&key(&name)).unwrap().revision, current);
            }
            other => panic!("a stale update gave {other:?}"),
        }
        first.await.unwrap();
    }
}

/// A start appends to the last log segment when the log goes on from its
/// end, instead of leaving a new, almost empty segment behind each time (a
/// crash loop grew the directory by 4 MiB a start); what the restarts
/// logged reads back as one run's writes would.
#[tokio::test]
async fn restarts_append_to_the_last_segment() {
    let dir = TestDir::new("durable-resume");
    for round in 0..10 {
        let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
        churn(&store, round * 10, 10).await;
        // As a crash leaves it: no snapshot.
        store.stop_without_snapshot().await;
        drop(store);
    }
    let segments = files(dir.path(), "wal-");
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert!(std::fs::metadata(&segments[0]).unwrap().len() <= 4 * 1024 * 1024);

    let once = TestDir::new("durable-resume-once");
    let reference = DurableStore::open_with(once.path(), quiet()).unwrap();
    churn(&reference, 0, 100).await;
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    assert_eq!(all_pods(&store), all_pods(&reference));
    assert_eq!(store.revision(), reference.revision());

    // After a clean close the empty segment after the snapshot goes on too.
    store.close().await.unwrap();
    drop(store);
    let store = DurableStore::open_with(dir.path(), quiet()).unwrap();
    churn(&store, 100, 5).await;
    drop(store);
    assert_eq!(files(dir.path(), "wal-").len(), 1);
}
