//! An in-memory store: every record in one ordered map under one lock.
//!
//! It keeps the [`Store`] contract except durability: a restart starts
//! empty. It is the reference the durable backend is tested against (the
//! conformance suite in `conformance.rs` runs on both).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::{
    Event, EventType, Key, Prefix, Prepared, Record, Snapshot, Store, StoreError, WatchCursor,
    WatchLog, WriteOp, decide,
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
        // Encoded before the lock: writers encode in parallel.
        let op = Prepared::new(&key, op);
        let mut state = self.state.lock().expect("store poisoned");
        let current = state.records.get(&key).cloned();
        let revision = state.revision + 1;
        let (kind, record) = decide(&key, op, current.as_ref(), revision)?;
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
        super::snapshot_of(&state.records, prefix, state.revision)
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
