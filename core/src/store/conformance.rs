//! The conformance suite: the [`Store`] contract, checked the same way on
//! every backend.
//!
//! Each check is a plain async function over a store built by a backend's
//! factory; [`conformance!`] turns the list into one test per check for one
//! backend, so a failure names both the backend and the broken promise.

use std::sync::Arc;

use serde_json::{Value, json};

use super::testdir::TestDir;
use super::{DurableOptions, DurableStore, EventType, Key, MemoryStore, Prefix, Store};
use super::{StoreError, WriteOp};

/// A store under test, and the directory it lives in (dropped after it).
pub struct Subject {
    pub store: Arc<dyn Store>,
    _dir: Option<TestDir>,
}

pub fn memory(window: usize) -> Subject {
    Subject {
        store: Arc::new(MemoryStore::with_window(window)),
        _dir: None,
    }
}

pub fn durable(window: usize) -> Subject {
    let dir = TestDir::new("conformance");
    let options = DurableOptions {
        watch_window: window,
        snapshot_every: 7,
        ..DurableOptions::default()
    };
    Subject {
        store: Arc::new(DurableStore::open_with(dir.path(), options).unwrap()),
        _dir: Some(dir),
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}})
}

fn update(object: Value) -> WriteOp {
    WriteOp::Update {
        expected: None,
        object,
    }
}

pub async fn writes_get_increasing_revisions_stamped_into_the_object(s: Subject) {
    let store = s.store;
    let a = store.write(Key::new("pods", "default", "a"), WriteOp::Create(pod("a")));
    let a = a.await.unwrap();
    let b = store.write(Key::new("pods", "default", "b"), WriteOp::Create(pod("b")));
    let b = b.await.unwrap();
    assert_eq!(b.revision, a.revision + 1);
    assert_eq!(store.revision(), b.revision);
    assert_eq!(
        a.object()["metadata"]["resourceVersion"],
        a.revision.to_string()
    );
    let json: Value = serde_json::from_slice(&b.json).unwrap();
    assert_eq!(json, b.object());
}

pub async fn failed_writes_change_nothing_and_use_no_revision(s: Subject) {
    let store = s.store;
    let key = Key::new("pods", "default", "a");
    store
        .write(key.clone(), WriteOp::Create(pod("a")))
        .await
        .unwrap();
    let before = store.revision();
    let again = store.write(key.clone(), WriteOp::Create(pod("a"))).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(_))));
    let missing = Key::new("pods", "default", "missing");
    let updated = store.write(missing.clone(), update(pod("missing"))).await;
    assert!(matches!(updated, Err(StoreError::NotFound(_))));
    let deleted = store
        .write(missing, WriteOp::Delete { expected: None })
        .await;
    assert!(matches!(deleted, Err(StoreError::NotFound(_))));
    assert_eq!(store.revision(), before);
    let next = store.write(key, update(pod("a"))).await.unwrap();
    assert_eq!(next.revision, before + 1);
}

pub async fn a_stale_expected_revision_is_a_conflict(s: Subject) {
    let store = s.store;
    let key = Key::new("pods", "default", "a");
    let first = store
        .write(key.clone(), WriteOp::Create(pod("a")))
        .await
        .unwrap();
    let op = WriteOp::Update {
        expected: Some(first.revision),
        object: pod("a"),
    };
    store.write(key.clone(), op.clone()).await.unwrap();
    let again = store.write(key.clone(), op).await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })));
    let delete = WriteOp::Delete {
        expected: Some(first.revision),
    };
    assert!(matches!(
        store.write(key.clone(), delete).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.get(&key).is_some());
}

pub async fn a_watch_sees_every_change_after_its_revision_in_order(s: Subject) {
    let store = s.store;
    let key = Key::new("pods", "default", "a");
    let created = store
        .write(key.clone(), WriteOp::Create(pod("a")))
        .await
        .unwrap();
    let mut cursor = store.watch(created.revision).unwrap();
    store.write(key.clone(), update(pod("a"))).await.unwrap();
    let deleted = store.write(key.clone(), WriteOp::Delete { expected: None });
    let deleted = deleted.await.unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        events.extend(cursor.next_batch().await.unwrap());
    }
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventType::Modified, EventType::Deleted]);
    // A delete carries the last state, re-stamped with its own revision.
    let last = &events[1];
    assert_eq!(last.record.revision, deleted.revision);
    assert_eq!(
        last.record.object()["metadata"]["resourceVersion"],
        deleted.revision.to_string()
    );
    assert_eq!(
        last.previous.as_ref().unwrap().revision,
        deleted.revision - 1
    );
    assert!(store.get(&key).is_none());
}

pub async fn a_watch_from_before_the_window_is_expired(s: Subject) {
    let store = s.store;
    for name in ["a", "b", "c", "d"] {
        let key = Key::new("pods", "default", name);
        store.write(key, WriteOp::Create(pod(name))).await.unwrap();
    }
    assert!(matches!(store.watch(1), Err(StoreError::Expired { .. })));
    assert!(store.watch(store.revision() - 1).is_ok());
}

pub async fn list_is_limited_to_its_resource_and_namespace(s: Subject) {
    let store = s.store;
    for (resource, namespace, name) in [("pods", "a", "x"), ("pods", "b", "y"), ("nodes", "", "n")]
    {
        let key = Key::new(resource, namespace, name);
        store.write(key, WriteOp::Create(pod(name))).await.unwrap();
    }
    let prefix = Prefix {
        resource: "pods".into(),
        namespace: Some("b".into()),
    };
    let listed = store.list(&prefix);
    let names: Vec<_> = listed.records.iter().map(|r| r.key.name.as_str()).collect();
    assert_eq!(names, vec!["y"]);
    assert_eq!(listed.revision, store.revision());
    let all = Prefix {
        resource: "pods".into(),
        namespace: None,
    };
    assert_eq!(store.list(&all).records.len(), 2);
}

pub async fn concurrent_writers_get_distinct_consecutive_revisions(s: Subject) {
    let store = s.store;
    let start = store.revision();
    let mut tasks = Vec::new();
    for writer in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..20 {
                let name = format!("w{writer}-{i}");
                let key = Key::new("pods", "default", &name);
                let record = store.write(key, WriteOp::Create(pod(&name))).await.unwrap();
                revisions.push(record.revision);
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (start + 1..=start + 320).collect::<Vec<_>>());
    let prefix = Prefix {
        resource: "pods".into(),
        namespace: None,
    };
    assert_eq!(store.list(&prefix).records.len(), 320);
}

/// One `#[tokio::test]` per check, for the backend built by `$make`.
macro_rules! conformance {
    ($make:path) => {
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn writes_get_increasing_revisions_stamped_into_the_object() {
            super::writes_get_increasing_revisions_stamped_into_the_object($make(100)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn failed_writes_change_nothing_and_use_no_revision() {
            super::failed_writes_change_nothing_and_use_no_revision($make(100)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stale_expected_revision_is_a_conflict() {
            super::a_stale_expected_revision_is_a_conflict($make(100)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_watch_sees_every_change_after_its_revision_in_order() {
            super::a_watch_sees_every_change_after_its_revision_in_order($make(100)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_watch_from_before_the_window_is_expired() {
            super::a_watch_from_before_the_window_is_expired($make(2)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn list_is_limited_to_its_resource_and_namespace() {
            super::list_is_limited_to_its_resource_and_namespace($make(100)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_writers_get_distinct_consecutive_revisions() {
            super::concurrent_writers_get_distinct_consecutive_revisions($make(100)).await;
        }
    };
}

mod memory_store {
    conformance!(memory);
}

mod durable_store {
    conformance!(durable);
}
