//! The store: the one source of truth of the cluster.
//!
//! Callers may rely on this contract, whatever the backend:
//!
//! * every accepted write gets the next global revision, and the record's
//!   `metadata.resourceVersion` is that revision;
//! * a write that names an expected revision fails with
//!   [`StoreError::Conflict`] when the record has moved on (compare and swap);
//! * a write is visible to readers and watchers only after it is
//!   acknowledged, and watchers see writes in revision order;
//! * a watch can start from any revision still inside the retained window,
//!   and gets [`StoreError::Expired`] for an older one.
//!
//! Two backends keep it: [`MemoryStore`] (everything in memory, gone at
//! exit; the reference) and [`DurableStore`] (a write-ahead log synced before
//! every acknowledgement, snapshots, recovery; what `coxswain apiserver` and
//! `coxswain up` run on). The conformance suite (`conformance.rs`) runs the
//! same checks on both.
//!
//! Records carry the object twice: as parsed JSON for in-process readers
//! (selectors, admission) and as the encoded bytes that every response and
//! watch event shares. Writes are async so that a durable backend can wait
//! for its log to reach the disk before it acknowledges.

#[cfg(test)]
mod conformance;
mod durable;
mod lock;
mod memory;
mod snapshot;
#[cfg(test)]
mod testdir;
mod wal;
mod watch;

pub use durable::{DurableOptions, DurableStore, OpenError};
pub use lock::{DataDirLock, LockError};
pub use memory::MemoryStore;
pub use snapshot::SnapshotError;
pub use wal::WalError;
pub use watch::{WatchCursor, WatchLog};

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;

/// Where a record lives: resource (with group, `apps/deployments`), namespace
/// ("" for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Key {
        Key {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.resource, self.namespace, self.name)
    }
}

/// A set of keys: one resource, optionally one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub resource: String,
    pub namespace: Option<String>,
}

impl Prefix {
    pub fn contains(&self, key: &Key) -> bool {
        key.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| ns.is_empty() || *ns == key.namespace)
    }
}

/// One stored object at one revision.
#[derive(Clone, Debug)]
pub struct Record {
    pub key: Key,
    pub revision: u64,
    pub object: Arc<Value>,
    /// The object's JSON, encoded once and shared by every reader.
    pub json: Bytes,
}

/// What a write does.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Create; fails with `AlreadyExists` when the key is taken.
    Create(Value),
    /// Replace; fails with `NotFound` when the key is absent, and with
    /// `Conflict` when `expected` is given and differs from the current
    /// revision.
    Update {
        expected: Option<u64>,
        object: Value,
    },
    /// Delete; same preconditions as `Update`.
    Delete { expected: Option<u64> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it. A delete carries the last state of the
/// object, re-stamped with the delete's revision.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventType,
    pub record: Record,
    /// The state before this change, for watchers whose filter the object
    /// enters or leaves.
    pub previous: Option<Record>,
}

/// A consistent list: the records and the revision they were read at.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub records: Vec<Record>,
    pub revision: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(Key),
    #[error("{0} already exists")]
    AlreadyExists(Key),
    #[error("{key} is at revision {current}, not {expected}")]
    Conflict {
        key: Key,
        expected: u64,
        current: u64,
    },
    #[error("revision {requested} is older than the oldest retained revision {oldest}")]
    Expired { requested: u64, oldest: u64 },
    #[error("store is unavailable: {0}")]
    Unavailable(String),
}

/// The storage backend behind the apiserver.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &Key) -> Option<Record>;
    fn list(&self, prefix: &Prefix) -> Snapshot;
    /// The revision of the latest acknowledged write.
    fn revision(&self) -> u64;
    /// Applies one write and resolves once it is acknowledged.
    fn write(&self, key: Key, op: WriteOp) -> BoxFuture<'_, Result<Record, StoreError>>;
    /// A cursor over every change with a revision greater than `after`.
    fn watch(&self, after: u64) -> Result<WatchCursor, StoreError>;
}

/// Sets `metadata.resourceVersion` of an object to a revision.
pub(crate) fn stamp_revision(object: &mut Value, revision: u64) {
    if let Some(map) = object.as_object_mut() {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
        }
    }
}

/// Checks a write against the current state of its key and builds the record
/// it leaves behind (for a delete: the last state, re-stamped), at
/// `revision`. Every backend decides writes here, so they agree on
/// preconditions.
pub(crate) fn decide(
    key: &Key,
    op: WriteOp,
    current: Option<&Record>,
    revision: u64,
) -> Result<(EventType, Record), StoreError> {
    let check = |expected: Option<u64>, current: &Record| match expected {
        Some(expected) if expected != current.revision => Err(StoreError::Conflict {
            key: key.clone(),
            expected,
            current: current.revision,
        }),
        _ => Ok(()),
    };
    match op {
        WriteOp::Create(object) => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            Ok((EventType::Added, encode(key.clone(), revision, object)))
        }
        WriteOp::Update { expected, object } => {
            let Some(current) = current else {
                return Err(StoreError::NotFound(key.clone()));
            };
            check(expected, current)?;
            Ok((EventType::Modified, encode(key.clone(), revision, object)))
        }
        WriteOp::Delete { expected } => {
            let Some(current) = current else {
                return Err(StoreError::NotFound(key.clone()));
            };
            check(expected, current)?;
            let last = (*current.object).clone();
            Ok((EventType::Deleted, encode(key.clone(), revision, last)))
        }
    }
}

/// Stamps the revision into the object and encodes its JSON once.
pub(crate) fn encode(key: Key, revision: u64, mut object: Value) -> Record {
    stamp_revision(&mut object, revision);
    let json = Bytes::from(serde_json::to_vec(&object).expect("JSON values always encode"));
    Record {
        key,
        revision,
        object: Arc::new(object),
        json,
    }
}

/// The records of `prefix` in an ordered map of every record, as a
/// snapshot at `revision`: the one range scan every backend shares.
pub(crate) fn snapshot_of(
    records: &std::collections::BTreeMap<Key, Record>,
    prefix: &Prefix,
    revision: u64,
) -> Snapshot {
    let start = Key::new(
        &prefix.resource,
        prefix.namespace.as_deref().unwrap_or(""),
        "",
    );
    let records = records
        .range(start..)
        .take_while(|(k, _)| k.resource == prefix.resource)
        .filter(|(k, _)| prefix.contains(k))
        .map(|(_, r)| r.clone())
        .collect();
    Snapshot { records, revision }
}
