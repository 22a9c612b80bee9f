//! Request bodies in Kubernetes' protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), turned into the JSON the
//! handlers already process.
//!
//! What callers may rely on:
//!
//! * [`decode`] accepts the envelope client-go writes: the magic bytes
//!   `k8s\0`, then a `runtime.Unknown` whose `raw` holds the object's
//!   message. The message types, and so every field number, are those of the
//!   `k8s-pb` crate, generated from the upstream `.proto` files;
//! * the result is the object as upstream JSON would spell it, with
//!   `apiVersion` and `kind` from the envelope: camelCase field names,
//!   `Time` as RFC 3339 seconds, `MicroTime` with microseconds, `Quantity`
//!   as its string, `IntOrString` as a number or a string; unset fields,
//!   empty strings, lists and maps, Go's zero time, and the zeros of Go
//!   fields that are not pointers are left out, as Go's JSON encoder leaves
//!   them out (a zero in a pointer field such as `replicas` is kept);
//! * nothing is dropped silently: a field this converter does not carry
//!   (pod affinity, say) fails the request with
//!   [`ProtobufError::UnsupportedField`], naming the field, so the client
//!   can send the object as JSON instead. Every message is destructured
//!   without `..`, so a field added to `k8s-pb` fails to compile here until
//!   it is handled.
//!
//! Served kinds: v1 Namespace, Node, Pod, Event and Binding; apps/v1
//! Deployment and ReplicaSet; coordination.k8s.io/v1 Lease; autoscaling/v1
//! Scale; policy/v1 Eviction; and DeleteOptions under any group-version.
//! The status of a Pod is not converted (only its owner, the kubelet, writes
//! it, and it writes JSON).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core_v1;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every protobuf-encoded Kubernetes object starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf prefix")]
    MissingMagic,
    #[error("decoding the runtime.Unknown envelope failed")]
    Envelope(#[source] prost::DecodeError),
    #[error("the envelope's content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error("no protobuf decoder for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("decoding the {kind} message failed")]
    Message {
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error(
        "field {field} is not supported in protobuf request bodies by this server; send the \
         object as JSON"
    )]
    UnsupportedField { field: String },
}

type Result<T> = std::result::Result<T, ProtobufError>;

/// Is this `Content-Type` Kubernetes' protobuf encoding?
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes one enveloped object into its JSON form, `apiVersion` and `kind`
/// included.
pub fn decode(body: &[u8]) -> Result<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let envelope = Unknown::decode(rest).map_err(ProtobufError::Envelope)?;
    if let Some(encoding) = envelope.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = envelope.raw.unwrap_or_default();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => message::<core_v1::Namespace>(&raw, &kind)?,
        ("v1", "Node") => message::<core_v1::Node>(&raw, &kind)?,
        ("v1", "Pod") => message::<core_v1::Pod>(&raw, &kind)?,
        ("v1", "Event") => message::<core_v1::Event>(&raw, &kind)?,
        ("v1", "Binding") => message::<core_v1::Binding>(&raw, &kind)?,
        ("apps/v1", "Deployment") => message::<apps::Deployment>(&raw, &kind)?,
        ("apps/v1", "ReplicaSet") => message::<apps::ReplicaSet>(&raw, &kind)?,
        ("coordination.k8s.io/v1", "Lease") => message::<coordination::Lease>(&raw, &kind)?,
        ("autoscaling/v1", "Scale") => message::<autoscaling::Scale>(&raw, &kind)?,
        ("policy/v1", "Eviction") => message::<policy::Eviction>(&raw, &kind)?,
        // DeleteOptions is registered in every group-version.
        (_, "DeleteOptions") => message::<meta::DeleteOptions>(&raw, &kind)?,
        _ => return Err(ProtobufError::UnknownKind { api_version, kind }),
    };
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

fn message<M: Message + Default + Json>(raw: &[u8], kind: &str) -> Result<Value> {
    let decoded = M::decode(raw).map_err(|source| ProtobufError::Message {
        kind: kind.to_owned(),
        source,
    })?;
    decoded.json("")
}

/// A protobuf value with a Kubernetes JSON form.
trait Json {
    /// The JSON form; `Null` means unset and is left out of objects. `at` is
    /// the value's dotted path, for error messages.
    fn json(self, at: &str) -> Result<Value>;
}

/// A field that may be set, for fields this converter does not carry.
trait Presence {
    fn is_set(&self) -> bool;
}

/// A message equal to its default counts as unset: Go writes non-pointer
/// struct fields (a pod's empty `status`, say) whether or not they hold
/// anything.
impl<T: Default + PartialEq> Presence for Option<T> {
    fn is_set(&self) -> bool {
        self.as_ref().is_some_and(|value| *value != T::default())
    }
}

impl<T> Presence for Vec<T> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}

fn child(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// Sets `key` unless the value is unset. An empty string counts as unset:
/// Go writes every non-pointer string field, empty or not, and its JSON
/// encoder leaves the empty ones out.
fn insert(map: &mut Map<String, Value>, at: &str, key: &str, value: impl Json) -> Result<()> {
    let value = value.json(&child(at, key))?;
    if !value.is_null() && value.as_str() != Some("") {
        map.insert(key.to_owned(), value);
    }
    Ok(())
}

fn unsupported(at: &str, key: &str, value: &impl Presence) -> Result<()> {
    if value.is_set() {
        return Err(ProtobufError::UnsupportedField {
            field: child(at, key),
        });
    }
    Ok(())
}

/// Builds a JSON object from `"jsonName": value` pairs, leaving out unset
/// values, and fails on any set field listed after `unsupported`.
macro_rules! object {
    ($at:expr, { $($key:literal : $value:expr),* $(,)? }
     $(, unsupported { $($skey:literal : $svalue:expr),* $(,)? })?) => {{
        let at: &str = $at;
        $($( unsupported(at, $skey, &$svalue)?; )*)?
        let mut map = Map::new();
        $( insert(&mut map, at, $key, $value)?; )*
        Ok(Value::Object(map))
    }};
}

mod kinds;
mod pod;
#[cfg(test)]
mod tests;

impl Json for String {
    fn json(self, _: &str) -> Result<Value> {
        Ok(Value::String(self))
    }
}

impl Json for bool {
    fn json(self, _: &str) -> Result<Value> {
        Ok(Value::Bool(self))
    }
}

impl Json for i32 {
    fn json(self, _: &str) -> Result<Value> {
        Ok(Value::from(self))
    }
}

impl Json for i64 {
    fn json(self, _: &str) -> Result<Value> {
        Ok(Value::from(self))
    }
}

impl<T: Json> Json for Option<T> {
    fn json(self, at: &str) -> Result<Value> {
        match self {
            Some(value) => value.json(at),
            None => Ok(Value::Null),
        }
    }
}

impl<T: Json> Json for Vec<T> {
    fn json(self, at: &str) -> Result<Value> {
        if self.is_empty() {
            return Ok(Value::Null);
        }
        let mut items = Vec::with_capacity(self.len());
        for (i, item) in self.into_iter().enumerate() {
            items.push(item.json(&format!("{at}[{i}]"))?);
        }
        Ok(Value::Array(items))
    }
}

impl<T: Json> Json for BTreeMap<String, T> {
    fn json(self, at: &str) -> Result<Value> {
        if self.is_empty() {
            return Ok(Value::Null);
        }
        let mut map = Map::new();
        for (key, value) in self {
            let value = value.json(&child(at, &key))?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// The instant of a `Time` or `MicroTime`; an empty message is Go's zero
/// time, which JSON leaves out.
fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Option<DateTime<Utc>> {
    if seconds.is_none() && nanos.is_none() {
        return None;
    }
    let nanos = u32::try_from(nanos.unwrap_or(0)).unwrap_or(0);
    DateTime::from_timestamp(seconds.unwrap_or(0), nanos)
}

impl Json for meta::Time {
    fn json(self, _: &str) -> Result<Value> {
        let meta::Time { seconds, nanos } = self;
        Ok(match timestamp(seconds, nanos) {
            Some(at) => Value::String(crate::api::Time(at).to_string()),
            None => Value::Null,
        })
    }
}

impl Json for meta::MicroTime {
    fn json(self, _: &str) -> Result<Value> {
        let meta::MicroTime { seconds, nanos } = self;
        Ok(match timestamp(seconds, nanos) {
            Some(at) => Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            None => Value::Null,
        })
    }
}

impl Json for Quantity {
    fn json(self, _: &str) -> Result<Value> {
        let Quantity { string } = self;
        Ok(Value::String(string.unwrap_or_default()))
    }
}

impl Json for IntOrString {
    fn json(self, _: &str) -> Result<Value> {
        let IntOrString {
            r#type,
            int_val,
            str_val,
        } = self;
        // Type 0 is Int, 1 is String (apimachinery's intstr.Type).
        Ok(match r#type.unwrap_or(0) {
            1 => Value::String(str_val.unwrap_or_default()),
            _ => Value::from(int_val.unwrap_or(0)),
        })
    }
}

/// A Go field that is not a pointer and is tagged `omitempty`: Go writes it
/// to protobuf whatever it holds, and its JSON encoder leaves a zero out.
/// Pointer fields (`replicas`, `terminationGracePeriodSeconds`, ...) stay
/// plain `Option`s, so an explicit zero in them is kept.
struct OmitZero<T>(Option<T>);

impl<T: Json + Default + PartialEq> Json for OmitZero<T> {
    fn json(self, at: &str) -> Result<Value> {
        match self.0 {
            Some(value) if value != T::default() => value.json(at),
            _ => Ok(Value::Null),
        }
    }
}

/// A value already in its JSON form.
struct Raw(Value);

impl Json for Raw {
    fn json(self, _: &str) -> Result<Value> {
        Ok(self.0)
    }
}

// ---- meta/v1 ----

impl Json for meta::ObjectMeta {
    fn json(self, at: &str) -> Result<Value> {
        let meta::ObjectMeta {
            name,
            generate_name,
            namespace,
            self_link,
            uid,
            resource_version,
            generation,
            creation_timestamp,
            deletion_timestamp,
            deletion_grace_period_seconds,
            labels,
            annotations,
            owner_references,
            finalizers,
            managed_fields,
        } = self;
        object!(at, {
            "name": name, "generateName": generate_name, "namespace": namespace,
            "selfLink": self_link, "uid": uid, "resourceVersion": resource_version,
            "generation": OmitZero(generation), "creationTimestamp": creation_timestamp,
            "deletionTimestamp": deletion_timestamp,
            "deletionGracePeriodSeconds": deletion_grace_period_seconds,
            "labels": labels, "annotations": annotations, "ownerReferences": owner_references,
            "finalizers": finalizers,
        }, unsupported { "managedFields": managed_fields })
    }
}

impl Json for meta::OwnerReference {
    fn json(self, at: &str) -> Result<Value> {
        let meta::OwnerReference {
            api_version,
            kind,
            name,
            uid,
            controller,
            block_owner_deletion,
        } = self;
        object!(at, {
            "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": controller, "blockOwnerDeletion": block_owner_deletion,
        })
    }
}

impl Json for meta::LabelSelector {
    fn json(self, at: &str) -> Result<Value> {
        let meta::LabelSelector {
            match_labels,
            match_expressions,
        } = self;
        object!(at, { "matchLabels": match_labels, "matchExpressions": match_expressions })
    }
}

impl Json for meta::LabelSelectorRequirement {
    fn json(self, at: &str) -> Result<Value> {
        let meta::LabelSelectorRequirement {
            key,
            operator,
            values,
        } = self;
        object!(at, { "key": key, "operator": operator, "values": values })
    }
}

impl Json for meta::DeleteOptions {
    fn json(self, at: &str) -> Result<Value> {
        let meta::DeleteOptions {
            grace_period_seconds,
            preconditions,
            orphan_dependents,
            propagation_policy,
            dry_run,
            ignore_store_read_error_with_cluster_breaking_potential,
        } = self;
        object!(at, {
            "gracePeriodSeconds": grace_period_seconds, "preconditions": preconditions,
            "orphanDependents": orphan_dependents, "propagationPolicy": propagation_policy,
            "dryRun": dry_run,
            "ignoreStoreReadErrorWithClusterBreakingPotential":
                ignore_store_read_error_with_cluster_breaking_potential,
        })
    }
}

impl Json for meta::Preconditions {
    fn json(self, at: &str) -> Result<Value> {
        let meta::Preconditions {
            uid,
            resource_version,
        } = self;
        object!(at, { "uid": uid, "resourceVersion": resource_version })
    }
}

impl From<ProtobufError> for super::ApiError {
    fn from(error: ProtobufError) -> super::ApiError {
        // The client sees the whole chain: prost's reason is in the source.
        let mut message = format!("the protobuf body could not be decoded: {error}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        super::ApiError::BadRequest(message)
    }
}
