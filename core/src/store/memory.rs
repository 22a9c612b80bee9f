//! An in-memory store: every record in one ordered map under one lock.
//!
//! It keeps the [`Store`] contract except durability: a restart starts
//! empty. It is the reference the durable backend is tested against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;

use super::{
    Event, EventType, Key, Prefix, Record, Snapshot, Store, StoreError, WatchCursor, WatchLog,
    WriteOp, stamp_revision,
};

/// Default number of events a watch can resume across.
pub const DEFAULT_WATCH_WINDOW: usize = 100_000;

pub struct MemoryStore {
    state: Mutex<State>,
    log: Arc<WatchLog>,
}

struct State {
    records: BTreeMap<Key, Record>,
    revision: u64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::with_window(DEFAULT_WATCH_WINDOW)
    }

    pub fn with_window(window: usize) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State {
                records: BTreeMap::new(),
                revision: 1,
            }),
            log: WatchLog::new(window, 1),
        }
    }

    fn apply(&self, key: Key, op: WriteOp) -> Result<Record, StoreError> {
        let mut state = self.state.lock().expect("store poisoned");
        let current = state.records.get(&key).cloned();
        let check = |expected: Option<u64>, current: &Record| match expected {
            Some(expected) if expected != current.revision => Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                current: current.revision,
            }),
            _ => Ok(()),
        };
        let revision = state.revision + 1;
        let (kind, record) = match op {
            WriteOp::Create(object) => {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists(key));
                }
                (EventType::Added, encode(key.clone(), revision, object))
            }
            WriteOp::Update { expected, object } => {
                let Some(current) = &current else {
                    return Err(StoreError::NotFound(key));
                };
                check(expected, current)?;
                (EventType::Modified, encode(key.clone(), revision, object))
            }
            WriteOp::Delete { expected } => {
                let Some(current) = &current else {
                    return Err(StoreError::NotFound(key));
                };
                check(expected, current)?;
                let last = (*current.object).clone();
                (EventType::Deleted, encode(key.clone(), revision, last))
            }
        };
        state.revision = revision;
        if kind == EventType::Deleted {
            state.records.remove(&key);
        } else {
            state.records.insert(key, record.clone());
        }
        // Appending under the state lock keeps the log in revision order.
        self.log.append(Event {
            kind,
            record: record.clone(),
            previous: current,
        });
        Ok(record)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

fn encode(key: Key, revision: u64, mut object: Value) -> Record {
    stamp_revision(&mut object, revision);
    let json = Bytes::from(serde_json::to_vec(&object).expect("JSON values always encode"));
    Record {
        key,
        revision,
        object: Arc::new(object),
        json,
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key) -> Option<Record> {
        self.state
            .lock()
            .expect("store poisoned")
            .records
            .get(key)
            .cloned()
    }

    fn list(&self, prefix: &Prefix) -> Snapshot {
        let state = self.state.lock().expect("store poisoned");
        let start = Key::new(
            &prefix.resource,
            prefix.namespace.as_deref().unwrap_or(""),
            "",
        );
        let records = state
            .records
            .range(start..)
            .take_while(|(k, _)| k.resource == prefix.resource)
            .filter(|(k, _)| prefix.contains(k))
            .map(|(_, r)| r.clone())
            .collect();
        Snapshot {
            records,
            revision: state.revision,
        }
    }

    fn revision(&self) -> u64 {
        self.state.lock().expect("store poisoned").revision
    }

    fn write(&self, key: Key, op: WriteOp) -> BoxFuture<'_, Result<Record, StoreError>> {
        let result = self.apply(key, op);
        Box::pin(async move { result })
    }

    fn watch(&self, after: u64) -> Result<WatchCursor, StoreError> {
        self.log.cursor(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}})
    }

    #[tokio::test]
    async fn writes_get_increasing_revisions_stamped_into_the_object() {
        let store = MemoryStore::new();
        let a = store
            .write(Key::new("pods", "default", "a"), WriteOp::Create(pod("a")))
            .await;
        let b = store
            .write(Key::new("pods", "default", "b"), WriteOp::Create(pod("b")))
            .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(b.revision > a.revision);
        assert_eq!(
            a.object["metadata"]["resourceVersion"],
            a.revision.to_string()
        );
    }

    #[tokio::test]
    async fn a_stale_expected_revision_is_a_conflict() {
        let store = MemoryStore::new();
        let key = Key::new("pods", "default", "a");
        let first = store
            .write(key.clone(), WriteOp::Create(pod("a")))
            .await
            .unwrap();
        let update = WriteOp::Update {
            expected: Some(first.revision),
            object: pod("a"),
        };
        store.write(key.clone(), update.clone()).await.unwrap();
        let again = store.write(key, update).await;
        assert!(matches!(again, Err(StoreError::Conflict { .. })));
    }

    #[tokio::test]
    async fn a_watch_sees_every_change_after_its_revision_in_order() {
        let store = MemoryStore::new();
        let key = Key::new("pods", "default", "a");
        let created = store
            .write(key.clone(), WriteOp::Create(pod("a")))
            .await
            .unwrap();
        let mut cursor = store.watch(created.revision).unwrap();
        store
            .write(
                key.clone(),
                WriteOp::Update {
                    expected: None,
                    object: pod("a"),
                },
            )
            .await
            .unwrap();
        store
            .write(key, WriteOp::Delete { expected: None })
            .await
            .unwrap();
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            kinds.extend(
                cursor
                    .next_batch()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.kind),
            );
        }
        assert_eq!(kinds, vec![EventType::Modified, EventType::Deleted]);
    }

    #[tokio::test]
    async fn a_watch_from_before_the_window_is_expired() {
        let store = MemoryStore::with_window(2);
        for name in ["a", "b", "c", "d"] {
            store
                .write(
                    Key::new("pods", "default", name),
                    WriteOp::Create(pod(name)),
                )
                .await
                .unwrap();
        }
        assert!(matches!(store.watch(1), Err(StoreError::Expired { .. })));
        assert!(store.watch(store.revision() - 1).is_ok());
    }

    #[tokio::test]
    async fn list_is_limited_to_its_namespace() {
        let store = MemoryStore::new();
        store
            .write(Key::new("pods", "a", "x"), WriteOp::Create(pod("x")))
            .await
            .unwrap();
        store
            .write(Key::new("pods", "b", "y"), WriteOp::Create(pod("y")))
            .await
            .unwrap();
        store
            .write(Key::new("nodes", "", "n"), WriteOp::Create(pod("n")))
            .await
            .unwrap();
        let prefix = Prefix {
            resource: "pods".into(),
            namespace: Some("b".into()),
        };
        let names: Vec<_> = store
            .list(&prefix)
            .records
            .into_iter()
            .map(|r| r.key.name)
            .collect();
        assert_eq!(names, vec!["y"]);
        let all = Prefix {
            resource: "pods".into(),
            namespace: None,
        };
        assert_eq!(store.list(&all).records.len(), 2);
    }
}
