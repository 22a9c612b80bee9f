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
//! A record holds its object once, as the JSON that every response and
//! watch event shares (`Bytes`), beside the labels and selectable fields
//! that selectors read ([`Attrs`]). Records are shared, never copied: a
//! list hands out pointers. A reader that needs the object itself parses it
//! ([`Record::object`]); nothing is kept parsed, so memory per record is
//! close to its JSON. Writes are async so that a durable backend can wait
//! for its log to reach the disk before it acknowledges.

mod attrs;
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

pub use attrs::{Attrs, field_value, selectable_fields};
pub use durable::{DurableOptions, DurableStore, OpenError};
pub use lock::{DataDirLock, LockError};
pub use memory::MemoryStore;
pub use snapshot::SnapshotError;
pub use wal::{WalError, WalIo};
pub use watch::{WatchCursor, WatchLog};

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

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

/// One stored object at one revision: a shared pointer, cheap to clone.
#[derive(Clone)]
pub struct Record(Arc<RecordData>);

/// What a [`Record`] holds.
pub struct RecordData {
    pub key: Key,
    pub revision: u64,
    /// The object's JSON, encoded once and shared by every reader.
    pub json: Bytes,
    /// Labels and selectable fields; read from the JSON on first use when
    /// the record was loaded from disk.
    attrs: OnceLock<Attrs>,
}

impl Record {
    /// A record whose attributes are read from its JSON when first needed.
    pub fn new(key: Key, revision: u64, json: Bytes) -> Record {
        Record(Arc::new(RecordData {
            key,
            revision,
            json,
            attrs: OnceLock::new(),
        }))
    }

    /// A record whose attributes are already known.
    pub fn with_attrs(key: Key, revision: u64, json: Bytes, attrs: Attrs) -> Record {
        Record(Arc::new(RecordData {
            key,
            revision,
            json,
            attrs: OnceLock::from(attrs),
        }))
    }

    /// The object, parsed from its JSON (a fresh copy the caller owns).
    pub fn object(&self) -> Value {
        match serde_json::from_slice(&self.json) {
            Ok(object) => object,
            Err(error) => {
                // The store encoded this JSON, or read it back checksummed.
                tracing::error!(key = %self.key, %error, "a stored record holds invalid JSON");
                Value::Null
            }
        }
    }

    /// Labels and selectable fields, for selectors.
    pub fn attrs(&self) -> &Attrs {
        self.attrs
            .get_or_init(|| Attrs::of(&self.key.resource, &self.object()))
    }
}

impl Deref for Record {
    type Target = RecordData;

    fn deref(&self) -> &RecordData {
        &self.0
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("revision", &self.revision)
            .field("json", &String::from_utf8_lossy(&self.json))
            .finish()
    }
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

/// A write with its object already encoded (see [`Encoded`]): what a
/// backend's serial part decides on. Built on the writer's own task, so
/// that encoding runs in parallel and the serial part only copies.
pub(crate) enum Prepared {
    Create(Encoded),
    Update {
        expected: Option<u64>,
        object: Encoded,
    },
    Delete {
        expected: Option<u64>,
    },
}

impl Prepared {
    pub(crate) fn new(key: &Key, op: WriteOp) -> Prepared {
        match op {
            WriteOp::Create(object) => Prepared::Create(Encoded::new(&key.resource, object)),
            WriteOp::Update { expected, object } => Prepared::Update {
                expected,
                object: Encoded::new(&key.resource, object),
            },
            WriteOp::Delete { expected } => Prepared::Delete { expected },
        }
    }
}

/// Checks a write against the current state of its key and builds the record
/// it leaves behind (for a delete: the last state, re-stamped), at
/// `revision`. Every backend decides writes here, so they agree on
/// preconditions.
pub(crate) fn decide(
    key: &Key,
    op: Prepared,
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
        Prepared::Create(object) => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            Ok((EventType::Added, object.stamp(key.clone(), revision)))
        }
        Prepared::Update { expected, object } => {
            let Some(current) = current else {
                return Err(StoreError::NotFound(key.clone()));
            };
            check(expected, current)?;
            Ok((EventType::Modified, object.stamp(key.clone(), revision)))
        }
        Prepared::Delete { expected } => {
            let Some(current) = current else {
                return Err(StoreError::NotFound(key.clone()));
            };
            check(expected, current)?;
            let last = Encoded::new(&key.resource, current.object());
            Ok((EventType::Deleted, last.stamp(key.clone(), revision)))
        }
    }
}

/// An object encoded to JSON once, with the place of its
/// `metadata.resourceVersion` left open: stamping a revision in is a copy
/// around that place, not a second encoding. The bytes are those of the
/// object with the revision set, encoded whole (fields in key order).
pub(crate) struct Encoded {
    /// The JSON, without a resourceVersion.
    json: Vec<u8>,
    /// Where `"resourceVersion":"N"` goes; `None` when the object is not a
    /// JSON object with an object for metadata (nothing to stamp).
    slot: Option<Slot>,
    attrs: Attrs,
}

/// The place of the resourceVersion in an [`Encoded`] object's metadata.
struct Slot {
    at: usize,
    /// Other metadata fields come before it: a comma goes in front.
    comma_before: bool,
    /// It comes first, before other fields: a comma goes after it.
    comma_after: bool,
}

impl Encoded {
    /// Encodes an object stored under `resource`, and reads its attributes.
    pub(crate) fn new(resource: &str, mut object: Value) -> Encoded {
        let attrs = Attrs::of(resource, &object);
        let whole = |object: &Value, attrs| Encoded {
            json: serde_json::to_vec(object).expect("JSON values always encode"),
            slot: None,
            attrs,
        };
        let Some(map) = object.as_object_mut() else {
            return whole(&object, attrs);
        };
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !meta.is_object() {
            return whole(&object, attrs);
        }
        let mut json = Vec::with_capacity(1024);
        let mut slot = None;
        json.push(b'{');
        for (index, (field, value)) in map.iter().enumerate() {
            if index > 0 {
                json.push(b',');
            }
            write_json(&mut json, field);
            json.push(b':');
            match value.as_object() {
                Some(meta) if field == "metadata" => slot = Some(encode_metadata(&mut json, meta)),
                _ => write_json(&mut json, value),
            }
        }
        json.push(b'}');
        Encoded { json, slot, attrs }
    }

    /// The record of this object at `revision`.
    pub(crate) fn stamp(self, key: Key, revision: u64) -> Record {
        let json = match &self.slot {
            None => self.json,
            Some(slot) => {
                use std::io::Write;
                let mut json = Vec::with_capacity(self.json.len() + 42);
                json.extend_from_slice(&self.json[..slot.at]);
                if slot.comma_before {
                    json.push(b',');
                }
                write!(json, "\"resourceVersion\":\"{revision}\"").expect("writes to a Vec");
                if slot.comma_after {
                    json.push(b',');
                }
                json.extend_from_slice(&self.json[slot.at..]);
                json
            }
        };
        Record::with_attrs(key, revision, Bytes::from(json), self.attrs)
    }
}

/// Encodes a metadata object without its resourceVersion, and says where
/// that field goes: where key order puts it among the others.
fn encode_metadata(json: &mut Vec<u8>, meta: &serde_json::Map<String, Value>) -> Slot {
    const FIELD: &str = "resourceVersion";
    json.push(b'{');
    let mut written = 0;
    let mut slot = None;
    for (field, value) in meta {
        if field == FIELD {
            continue;
        }
        if slot.is_none() && field.as_str() > FIELD {
            slot = Some(Slot {
                at: json.len(),
                comma_before: written > 0,
                comma_after: written == 0,
            });
        }
        if written > 0 {
            json.push(b',');
        }
        write_json(json, field);
        json.push(b':');
        write_json(json, value);
        written += 1;
    }
    let slot = slot.unwrap_or(Slot {
        at: json.len(),
        comma_before: written > 0,
        comma_after: false,
    });
    json.push(b'}');
    slot
}

fn write_json<T: serde::Serialize + ?Sized>(json: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(json, value).expect("JSON values always encode");
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The object with its resourceVersion set, encoded whole.
    fn stamped_whole(mut object: Value, revision: u64) -> Vec<u8> {
        if let Some(map) = object.as_object_mut() {
            let meta = map.entry("metadata").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("resourceVersion".into(), json!(revision.to_string()));
            }
        }
        serde_json::to_vec(&object).unwrap()
    }

    #[test]
    fn stamping_an_encoded_object_equals_encoding_it_stamped() {
        let objects = [
            json!({"kind": "Pod", "metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}},
                   "spec": {"nodeName": "n"}}),
            json!({"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "7"}}),
            json!({"kind": "Pod", "metadata": {"resourceVersion": "7"}}),
            json!({"kind": "Pod", "metadata": {}}),
            json!({"kind": "Pod", "metadata": {"uid": "only-after"}}),
            json!({"kind": "Pod", "metadata": {"annotations": {"a": "\"resourceVersion\""}}}),
            json!({"kind": "Pod"}),
            json!({"metadata": "not an object"}),
            json!(["not", "an", "object"]),
        ];
        for object in objects {
            for revision in [1, 42, u64::MAX] {
                let key = Key::new("pods", "default", "a");
                let record = Encoded::new("pods", object.clone()).stamp(key, revision);
                let expected = stamped_whole(object.clone(), revision);
                assert_eq!(
                    String::from_utf8_lossy(&record.json),
                    String::from_utf8_lossy(&expected),
                    "{object}"
                );
                assert_eq!(record.revision, revision);
            }
        }
    }

    #[test]
    fn records_read_their_attributes_from_json_when_loaded() {
        let object = json!({"metadata": {"name": "a", "labels": {"app": "web"}},
                            "spec": {"nodeName": "node-3"}});
        let json = Bytes::from(serde_json::to_vec(&object).unwrap());
        let record = Record::new(Key::new("pods", "default", "a"), 5, json);
        assert_eq!(record.attrs().label("app"), Some("web"));
        assert_eq!(record.attrs().field("spec.nodeName"), Some("node-3"));
        assert_eq!(record.object(), object);
        let clone = record.clone();
        assert!(std::ptr::eq(&*clone, &*record), "clones share one record");
    }
}
