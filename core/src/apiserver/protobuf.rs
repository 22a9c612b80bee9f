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

// ---- core/v1: Namespace, Node, Event, Binding ----

impl Json for core_v1::Namespace {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Namespace {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for core_v1::NamespaceSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NamespaceSpec { finalizers } = self;
        object!(at, { "finalizers": finalizers })
    }
}

impl Json for core_v1::NamespaceStatus {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NamespaceStatus { phase, conditions } = self;
        object!(at, { "phase": phase }, unsupported { "conditions": conditions })
    }
}

impl Json for core_v1::Node {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Node {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for core_v1::NodeSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeSpec {
            pod_cidr,
            pod_cid_rs,
            provider_id,
            unschedulable,
            taints,
            config_source,
            external_id,
        } = self;
        object!(at, {
            "podCIDR": pod_cidr, "podCIDRs": pod_cid_rs, "providerID": provider_id,
            "unschedulable": OmitZero(unschedulable), "taints": taints, "externalID": external_id,
        }, unsupported { "configSource": config_source })
    }
}

impl Json for core_v1::Taint {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Taint {
            key,
            value,
            effect,
            time_added,
        } = self;
        object!(at, { "key": key, "value": value, "effect": effect, "timeAdded": time_added })
    }
}

impl Json for core_v1::NodeStatus {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeStatus {
            capacity,
            allocatable,
            phase,
            conditions,
            addresses,
            daemon_endpoints,
            node_info,
            images,
            volumes_in_use,
            volumes_attached,
            config,
            runtime_handlers,
            features,
            declared_features,
        } = self;
        object!(at, {
            "capacity": capacity, "allocatable": allocatable, "phase": phase,
            "conditions": conditions, "addresses": addresses,
            "daemonEndpoints": daemon_endpoints, "nodeInfo": node_info, "images": images,
            "volumesInUse": volumes_in_use, "volumesAttached": volumes_attached,
            "declaredFeatures": declared_features,
        }, unsupported {
            "config": config, "runtimeHandlers": runtime_handlers, "features": features,
        })
    }
}

impl Json for core_v1::NodeCondition {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeCondition {
            r#type,
            status,
            last_heartbeat_time,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastHeartbeatTime": last_heartbeat_time,
            "lastTransitionTime": last_transition_time, "reason": reason, "message": message,
        })
    }
}

impl Json for core_v1::NodeAddress {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeAddress { r#type, address } = self;
        object!(at, { "type": r#type, "address": address })
    }
}

impl Json for core_v1::NodeDaemonEndpoints {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeDaemonEndpoints { kubelet_endpoint } = self;
        object!(at, { "kubeletEndpoint": kubelet_endpoint })
    }
}

impl Json for core_v1::DaemonEndpoint {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::DaemonEndpoint { port } = self;
        // Upstream spells this one field with a capital letter.
        object!(at, { "Port": port })
    }
}

impl Json for core_v1::NodeSystemInfo {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::NodeSystemInfo {
            machine_id,
            system_uuid,
            boot_id,
            kernel_version,
            os_image,
            container_runtime_version,
            kubelet_version,
            kube_proxy_version,
            operating_system,
            architecture,
            swap,
        } = self;
        object!(at, {
            "machineID": machine_id, "systemUUID": system_uuid, "bootID": boot_id,
            "kernelVersion": kernel_version, "osImage": os_image,
            "containerRuntimeVersion": container_runtime_version,
            "kubeletVersion": kubelet_version, "kubeProxyVersion": kube_proxy_version,
            "operatingSystem": operating_system, "architecture": architecture,
        }, unsupported { "swap": swap })
    }
}

impl Json for core_v1::ContainerImage {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ContainerImage { names, size_bytes } = self;
        object!(at, { "names": names, "sizeBytes": OmitZero(size_bytes) })
    }
}

impl Json for core_v1::AttachedVolume {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::AttachedVolume { name, device_path } = self;
        object!(at, { "name": name, "devicePath": device_path })
    }
}

impl Json for core_v1::ObjectReference {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ObjectReference {
            kind,
            namespace,
            name,
            uid,
            api_version,
            resource_version,
            field_path,
        } = self;
        object!(at, {
            "kind": kind, "namespace": namespace, "name": name, "uid": uid,
            "apiVersion": api_version, "resourceVersion": resource_version,
            "fieldPath": field_path,
        })
    }
}

impl Json for core_v1::Event {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Event {
            metadata,
            involved_object,
            reason,
            message,
            source,
            first_timestamp,
            last_timestamp,
            count,
            r#type,
            event_time,
            series,
            action,
            related,
            reporting_component,
            reporting_instance,
        } = self;
        object!(at, {
            "metadata": metadata, "involvedObject": involved_object, "reason": reason,
            "message": message, "source": source, "firstTimestamp": first_timestamp,
            "lastTimestamp": last_timestamp, "count": OmitZero(count), "type": r#type,
            "eventTime": event_time, "series": series, "action": action, "related": related,
            "reportingComponent": reporting_component, "reportingInstance": reporting_instance,
        })
    }
}

impl Json for core_v1::EventSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EventSource { component, host } = self;
        object!(at, { "component": component, "host": host })
    }
}

impl Json for core_v1::EventSeries {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EventSeries {
            count,
            last_observed_time,
        } = self;
        object!(at, { "count": OmitZero(count), "lastObservedTime": last_observed_time })
    }
}

impl Json for core_v1::Binding {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Binding { metadata, target } = self;
        object!(at, { "metadata": metadata, "target": target })
    }
}

// ---- core/v1: Pod ----

impl Json for core_v1::Pod {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Pod {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec }, unsupported { "status": status })
    }
}

impl Json for core_v1::PodTemplateSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodTemplateSpec { metadata, spec } = self;
        object!(at, { "metadata": metadata, "spec": spec })
    }
}

impl Json for core_v1::PodSpec {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSpec {
            volumes,
            init_containers,
            containers,
            ephemeral_containers,
            restart_policy,
            termination_grace_period_seconds,
            active_deadline_seconds,
            dns_policy,
            node_selector,
            service_account_name,
            service_account,
            automount_service_account_token,
            node_name,
            host_network,
            host_pid,
            host_ipc,
            share_process_namespace,
            security_context,
            image_pull_secrets,
            hostname,
            subdomain,
            affinity,
            scheduler_name,
            tolerations,
            host_aliases,
            priority_class_name,
            priority,
            dns_config,
            readiness_gates,
            runtime_class_name,
            enable_service_links,
            preemption_policy,
            overhead,
            topology_spread_constraints,
            set_hostname_as_fqdn,
            os,
            host_users,
            scheduling_gates,
            resource_claims,
            resources,
            hostname_override,
            workload_ref,
        } = self;
        // Upstream JSON always has the containers list, even when empty.
        let containers = containers.json(&child(at, "containers"))?;
        let containers = if containers.is_null() {
            Value::Array(Vec::new())
        } else {
            containers
        };
        object!(at, {
            "volumes": volumes, "initContainers": init_containers, "containers": Raw(containers),
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": termination_grace_period_seconds,
            "activeDeadlineSeconds": active_deadline_seconds, "dnsPolicy": dns_policy,
            "nodeSelector": node_selector, "serviceAccountName": service_account_name,
            "serviceAccount": service_account,
            "automountServiceAccountToken": automount_service_account_token,
            "nodeName": node_name, "hostNetwork": OmitZero(host_network),
            "hostPID": OmitZero(host_pid), "hostIPC": OmitZero(host_ipc), "shareProcessNamespace": share_process_namespace,
            "securityContext": security_context, "imagePullSecrets": image_pull_secrets,
            "hostname": hostname, "hostnameOverride": hostname_override,
            "subdomain": subdomain, "schedulerName": scheduler_name,
            "tolerations": tolerations, "priorityClassName": priority_class_name,
            "priority": priority, "readinessGates": readiness_gates,
            "runtimeClassName": runtime_class_name,
            "enableServiceLinks": enable_service_links, "preemptionPolicy": preemption_policy,
            "overhead": overhead, "setHostnameAsFQDN": set_hostname_as_fqdn, "os": os,
            "hostUsers": host_users, "schedulingGates": scheduling_gates,
            "resources": resources,
        }, unsupported {
            "ephemeralContainers": ephemeral_containers, "affinity": affinity,
            "hostAliases": host_aliases, "dnsConfig": dns_config,
            "topologySpreadConstraints": topology_spread_constraints,
            "resourceClaims": resource_claims, "workloadRef": workload_ref,
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

impl Json for core_v1::Container {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Container {
            name,
            image,
            command,
            args,
            working_dir,
            ports,
            env_from,
            env,
            resources,
            resize_policy,
            restart_policy,
            restart_policy_rules,
            volume_mounts,
            volume_devices,
            liveness_probe,
            readiness_probe,
            startup_probe,
            lifecycle,
            termination_message_path,
            termination_message_policy,
            image_pull_policy,
            security_context,
            stdin,
            stdin_once,
            tty,
        } = self;
        object!(at, {
            "name": name, "image": image, "command": command, "args": args,
            "workingDir": working_dir, "ports": ports, "envFrom": env_from, "env": env,
            "resources": resources, "restartPolicy": restart_policy,
            "volumeMounts": volume_mounts, "livenessProbe": liveness_probe,
            "readinessProbe": readiness_probe, "startupProbe": startup_probe,
            "lifecycle": lifecycle, "terminationMessagePath": termination_message_path,
            "terminationMessagePolicy": termination_message_policy,
            "imagePullPolicy": image_pull_policy, "securityContext": security_context,
            "stdin": OmitZero(stdin), "stdinOnce": OmitZero(stdin_once), "tty": OmitZero(tty),
        }, unsupported {
            "resizePolicy": resize_policy, "restartPolicyRules": restart_policy_rules,
            "volumeDevices": volume_devices,
        })
    }
}

impl Json for core_v1::ContainerPort {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ContainerPort {
            name,
            host_port,
            container_port,
            protocol,
            host_ip,
        } = self;
        object!(at, {
            "name": name, "hostPort": OmitZero(host_port), "containerPort": container_port,
            "protocol": protocol, "hostIP": host_ip,
        })
    }
}

impl Json for core_v1::EnvVar {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvVar {
            name,
            value,
            value_from,
        } = self;
        object!(at, { "name": name, "value": value, "valueFrom": value_from })
    }
}

impl Json for core_v1::EnvVarSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvVarSource {
            field_ref,
            resource_field_ref,
            config_map_key_ref,
            secret_key_ref,
            file_key_ref,
        } = self;
        object!(at, {
            "fieldRef": field_ref, "resourceFieldRef": resource_field_ref,
            "configMapKeyRef": config_map_key_ref, "secretKeyRef": secret_key_ref,
        }, unsupported { "fileKeyRef": file_key_ref })
    }
}

impl Json for core_v1::ObjectFieldSelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ObjectFieldSelector {
            api_version,
            field_path,
        } = self;
        object!(at, { "apiVersion": api_version, "fieldPath": field_path })
    }
}

impl Json for core_v1::ResourceFieldSelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ResourceFieldSelector {
            container_name,
            resource,
            divisor,
        } = self;
        object!(at, { "containerName": container_name, "resource": resource, "divisor": divisor })
    }
}

/// The `name` of an embedded `LocalObjectReference`, inlined in JSON.
fn local_name(reference: Option<core_v1::LocalObjectReference>) -> Option<String> {
    reference.and_then(|r| r.name)
}

impl Json for core_v1::ConfigMapKeySelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "key": key, "optional": optional,
        })
    }
}

impl Json for core_v1::SecretKeySelector {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "key": key, "optional": optional,
        })
    }
}

impl Json for core_v1::EnvFromSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EnvFromSource {
            prefix,
            config_map_ref,
            secret_ref,
        } = self;
        object!(at, { "prefix": prefix, "configMapRef": config_map_ref, "secretRef": secret_ref })
    }
}

impl Json for core_v1::ConfigMapEnvSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapEnvSource {
            local_object_reference,
            optional,
        } = self;
        object!(at, { "name": local_name(local_object_reference), "optional": optional })
    }
}

impl Json for core_v1::SecretEnvSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretEnvSource {
            local_object_reference,
            optional,
        } = self;
        object!(at, { "name": local_name(local_object_reference), "optional": optional })
    }
}

impl Json for core_v1::LocalObjectReference {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::LocalObjectReference { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::ResourceRequirements {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ResourceRequirements {
            limits,
            requests,
            claims,
        } = self;
        object!(at, { "limits": limits, "requests": requests }, unsupported { "claims": claims })
    }
}

impl Json for core_v1::VolumeMount {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::VolumeMount {
            name,
            read_only,
            recursive_read_only,
            mount_path,
            sub_path,
            mount_propagation,
            sub_path_expr,
        } = self;
        object!(at, {
            "name": name, "readOnly": OmitZero(read_only), "recursiveReadOnly": recursive_read_only,
            "mountPath": mount_path, "subPath": sub_path,
            "mountPropagation": mount_propagation, "subPathExpr": sub_path_expr,
        })
    }
}

impl Json for core_v1::Volume {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Volume {
            name,
            volume_source,
        } = self;
        // The volume source is inlined beside the name in JSON.
        let mut object = volume_source.unwrap_or_default().json(at)?;
        if let (Value::Object(map), Some(name)) = (&mut object, name) {
            map.insert("name".into(), Value::String(name));
        }
        Ok(object)
    }
}

impl Json for core_v1::VolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::VolumeSource {
            host_path,
            empty_dir,
            gce_persistent_disk,
            aws_elastic_block_store,
            git_repo,
            secret,
            nfs,
            iscsi,
            glusterfs,
            persistent_volume_claim,
            rbd,
            flex_volume,
            cinder,
            cephfs,
            flocker,
            downward_api,
            fc,
            azure_file,
            config_map,
            vsphere_volume,
            quobyte,
            azure_disk,
            photon_persistent_disk,
            projected,
            portworx_volume,
            scale_io,
            storageos,
            csi,
            ephemeral,
            image,
        } = self;
        object!(at, {
            "hostPath": host_path, "emptyDir": empty_dir, "secret": secret,
            "persistentVolumeClaim": persistent_volume_claim, "configMap": config_map,
        }, unsupported {
            "gcePersistentDisk": gce_persistent_disk,
            "awsElasticBlockStore": aws_elastic_block_store, "gitRepo": git_repo, "nfs": nfs,
            "iscsi": iscsi, "glusterfs": glusterfs, "rbd": rbd, "flexVolume": flex_volume,
            "cinder": cinder, "cephfs": cephfs, "flocker": flocker,
            "downwardAPI": downward_api, "fc": fc, "azureFile": azure_file,
            "vsphereVolume": vsphere_volume, "quobyte": quobyte, "azureDisk": azure_disk,
            "photonPersistentDisk": photon_persistent_disk, "projected": projected,
            "portworxVolume": portworx_volume, "scaleIO": scale_io, "storageos": storageos,
            "csi": csi, "ephemeral": ephemeral, "image": image,
        })
    }
}

impl Json for core_v1::HostPathVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HostPathVolumeSource { path, r#type } = self;
        object!(at, { "path": path, "type": r#type })
    }
}

impl Json for core_v1::EmptyDirVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::EmptyDirVolumeSource { medium, size_limit } = self;
        object!(at, { "medium": medium, "sizeLimit": size_limit })
    }
}

impl Json for core_v1::ConfigMapVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ConfigMapVolumeSource {
            local_object_reference,
            items,
            default_mode,
            optional,
        } = self;
        object!(at, {
            "name": local_name(local_object_reference), "items": items,
            "defaultMode": default_mode, "optional": optional,
        })
    }
}

impl Json for core_v1::SecretVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecretVolumeSource {
            secret_name,
            items,
            default_mode,
            optional,
        } = self;
        object!(at, {
            "secretName": secret_name, "items": items, "defaultMode": default_mode,
            "optional": optional,
        })
    }
}

impl Json for core_v1::KeyToPath {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::KeyToPath { key, path, mode } = self;
        object!(at, { "key": key, "path": path, "mode": mode })
    }
}

impl Json for core_v1::PersistentVolumeClaimVolumeSource {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PersistentVolumeClaimVolumeSource {
            claim_name,
            read_only,
        } = self;
        object!(at, { "claimName": claim_name, "readOnly": OmitZero(read_only) })
    }
}

impl Json for core_v1::Toleration {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Toleration {
            key,
            operator,
            value,
            effect,
            toleration_seconds,
        } = self;
        object!(at, {
            "key": key, "operator": operator, "value": value, "effect": effect,
            "tolerationSeconds": toleration_seconds,
        })
    }
}

impl Json for core_v1::Probe {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Probe {
            handler,
            initial_delay_seconds,
            timeout_seconds,
            period_seconds,
            success_threshold,
            failure_threshold,
            termination_grace_period_seconds,
        } = self;
        // The handler's actions are inlined beside the timings in JSON.
        let mut object = handler.unwrap_or_default().json(at)?;
        let timings: Value = object!(at, {
            "initialDelaySeconds": OmitZero(initial_delay_seconds),
            "timeoutSeconds": OmitZero(timeout_seconds),
            "periodSeconds": OmitZero(period_seconds),
            "successThreshold": OmitZero(success_threshold),
            "failureThreshold": OmitZero(failure_threshold),
            "terminationGracePeriodSeconds": termination_grace_period_seconds,
        })?;
        if let (Value::Object(map), Value::Object(timings)) = (&mut object, timings) {
            map.extend(timings);
        }
        Ok(object)
    }
}

impl Json for core_v1::ProbeHandler {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ProbeHandler {
            exec,
            http_get,
            tcp_socket,
            grpc,
        } = self;
        object!(at, { "exec": exec, "httpGet": http_get, "tcpSocket": tcp_socket, "grpc": grpc })
    }
}

impl Json for core_v1::ExecAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::ExecAction { command } = self;
        object!(at, { "command": command })
    }
}

impl Json for core_v1::HttpGetAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HttpGetAction {
            path,
            port,
            host,
            scheme,
            http_headers,
        } = self;
        object!(at, {
            "path": path, "port": port, "host": host, "scheme": scheme,
            "httpHeaders": http_headers,
        })
    }
}

impl Json for core_v1::HttpHeader {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::HttpHeader { name, value } = self;
        object!(at, { "name": name, "value": value })
    }
}

impl Json for core_v1::TcpSocketAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::TcpSocketAction { port, host } = self;
        object!(at, { "port": port, "host": host })
    }
}

impl Json for core_v1::GrpcAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::GrpcAction { port, service } = self;
        object!(at, { "port": port, "service": service })
    }
}

impl Json for core_v1::Lifecycle {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Lifecycle {
            post_start,
            pre_stop,
            stop_signal,
        } = self;
        object!(at, { "postStart": post_start, "preStop": pre_stop, "stopSignal": stop_signal })
    }
}

impl Json for core_v1::LifecycleHandler {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::LifecycleHandler {
            exec,
            http_get,
            tcp_socket,
            sleep,
        } = self;
        object!(at, {
            "exec": exec, "httpGet": http_get, "tcpSocket": tcp_socket, "sleep": sleep,
        })
    }
}

impl Json for core_v1::SleepAction {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SleepAction { seconds } = self;
        object!(at, { "seconds": seconds })
    }
}

impl Json for core_v1::SecurityContext {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::SecurityContext {
            capabilities,
            privileged,
            se_linux_options,
            windows_options,
            run_as_user,
            run_as_group,
            run_as_non_root,
            read_only_root_filesystem,
            allow_privilege_escalation,
            proc_mount,
            seccomp_profile,
            app_armor_profile,
        } = self;
        object!(at, {
            "capabilities": capabilities, "privileged": privileged, "runAsUser": run_as_user,
            "runAsGroup": run_as_group, "runAsNonRoot": run_as_non_root,
            "readOnlyRootFilesystem": read_only_root_filesystem,
            "allowPrivilegeEscalation": allow_privilege_escalation, "procMount": proc_mount,
        }, unsupported {
            "seLinuxOptions": se_linux_options, "windowsOptions": windows_options,
            "seccompProfile": seccomp_profile, "appArmorProfile": app_armor_profile,
        })
    }
}

impl Json for core_v1::Capabilities {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::Capabilities { add, drop } = self;
        object!(at, { "add": add, "drop": drop })
    }
}

impl Json for core_v1::PodSecurityContext {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSecurityContext {
            se_linux_options,
            windows_options,
            run_as_user,
            run_as_group,
            run_as_non_root,
            supplemental_groups,
            supplemental_groups_policy,
            fs_group,
            sysctls,
            fs_group_change_policy,
            seccomp_profile,
            app_armor_profile,
            se_linux_change_policy,
        } = self;
        object!(at, {
            "runAsUser": run_as_user, "runAsGroup": run_as_group,
            "runAsNonRoot": run_as_non_root, "supplementalGroups": supplemental_groups,
            "supplementalGroupsPolicy": supplemental_groups_policy, "fsGroup": fs_group,
            "fsGroupChangePolicy": fs_group_change_policy,
            "seLinuxChangePolicy": se_linux_change_policy,
        }, unsupported {
            "seLinuxOptions": se_linux_options, "windowsOptions": windows_options,
            "sysctls": sysctls, "seccompProfile": seccomp_profile,
            "appArmorProfile": app_armor_profile,
        })
    }
}

impl Json for core_v1::PodOs {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodOs { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::PodSchedulingGate {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodSchedulingGate { name } = self;
        object!(at, { "name": name })
    }
}

impl Json for core_v1::PodReadinessGate {
    fn json(self, at: &str) -> Result<Value> {
        let core_v1::PodReadinessGate { condition_type } = self;
        object!(at, { "conditionType": condition_type })
    }
}

// ---- apps/v1 ----

impl Json for apps::Deployment {
    fn json(self, at: &str) -> Result<Value> {
        let apps::Deployment {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for apps::DeploymentSpec {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentSpec {
            replicas,
            selector,
            template,
            strategy,
            min_ready_seconds,
            revision_history_limit,
            paused,
            progress_deadline_seconds,
        } = self;
        object!(at, {
            "replicas": replicas, "selector": selector, "template": template,
            "strategy": strategy, "minReadySeconds": OmitZero(min_ready_seconds),
            "revisionHistoryLimit": revision_history_limit, "paused": OmitZero(paused),
            "progressDeadlineSeconds": progress_deadline_seconds,
        })
    }
}

impl Json for apps::DeploymentStrategy {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentStrategy {
            r#type,
            rolling_update,
        } = self;
        object!(at, { "type": r#type, "rollingUpdate": rolling_update })
    }
}

impl Json for apps::RollingUpdateDeployment {
    fn json(self, at: &str) -> Result<Value> {
        let apps::RollingUpdateDeployment {
            max_unavailable,
            max_surge,
        } = self;
        object!(at, { "maxUnavailable": max_unavailable, "maxSurge": max_surge })
    }
}

impl Json for apps::DeploymentStatus {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentStatus {
            observed_generation,
            replicas,
            updated_replicas,
            ready_replicas,
            available_replicas,
            unavailable_replicas,
            terminating_replicas,
            conditions,
            collision_count,
        } = self;
        object!(at, {
            "observedGeneration": OmitZero(observed_generation),
            "replicas": OmitZero(replicas), "updatedReplicas": OmitZero(updated_replicas),
            "readyReplicas": OmitZero(ready_replicas),
            "availableReplicas": OmitZero(available_replicas),
            "unavailableReplicas": OmitZero(unavailable_replicas),
            "terminatingReplicas": terminating_replicas, "conditions": conditions,
            "collisionCount": collision_count,
        })
    }
}

impl Json for apps::DeploymentCondition {
    fn json(self, at: &str) -> Result<Value> {
        let apps::DeploymentCondition {
            r#type,
            status,
            last_update_time,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastUpdateTime": last_update_time,
            "lastTransitionTime": last_transition_time, "reason": reason, "message": message,
        })
    }
}

impl Json for apps::ReplicaSet {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSet {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for apps::ReplicaSetSpec {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetSpec {
            replicas,
            min_ready_seconds,
            selector,
            template,
        } = self;
        object!(at, {
            "replicas": replicas, "minReadySeconds": OmitZero(min_ready_seconds),
            "selector": selector,
            "template": template,
        })
    }
}

impl Json for apps::ReplicaSetStatus {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetStatus {
            replicas,
            fully_labeled_replicas,
            ready_replicas,
            available_replicas,
            terminating_replicas,
            observed_generation,
            conditions,
        } = self;
        object!(at, {
            "replicas": replicas, "fullyLabeledReplicas": OmitZero(fully_labeled_replicas),
            "readyReplicas": OmitZero(ready_replicas),
            "availableReplicas": OmitZero(available_replicas),
            "terminatingReplicas": terminating_replicas,
            "observedGeneration": OmitZero(observed_generation), "conditions": conditions,
        })
    }
}

impl Json for apps::ReplicaSetCondition {
    fn json(self, at: &str) -> Result<Value> {
        let apps::ReplicaSetCondition {
            r#type,
            status,
            last_transition_time,
            reason,
            message,
        } = self;
        object!(at, {
            "type": r#type, "status": status, "lastTransitionTime": last_transition_time,
            "reason": reason, "message": message,
        })
    }
}

// ---- coordination.k8s.io/v1, autoscaling/v1, policy/v1 ----

impl Json for coordination::Lease {
    fn json(self, at: &str) -> Result<Value> {
        let coordination::Lease { metadata, spec } = self;
        object!(at, { "metadata": metadata, "spec": spec })
    }
}

impl Json for coordination::LeaseSpec {
    fn json(self, at: &str) -> Result<Value> {
        let coordination::LeaseSpec {
            holder_identity,
            lease_duration_seconds,
            acquire_time,
            renew_time,
            lease_transitions,
            strategy,
            preferred_holder,
        } = self;
        object!(at, {
            "holderIdentity": holder_identity, "leaseDurationSeconds": lease_duration_seconds,
            "acquireTime": acquire_time, "renewTime": renew_time,
            "leaseTransitions": lease_transitions, "strategy": strategy,
            "preferredHolder": preferred_holder,
        })
    }
}

impl Json for autoscaling::Scale {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::Scale {
            metadata,
            spec,
            status,
        } = self;
        object!(at, { "metadata": metadata, "spec": spec, "status": status })
    }
}

impl Json for autoscaling::ScaleSpec {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::ScaleSpec { replicas } = self;
        object!(at, { "replicas": OmitZero(replicas) })
    }
}

impl Json for autoscaling::ScaleStatus {
    fn json(self, at: &str) -> Result<Value> {
        let autoscaling::ScaleStatus { replicas, selector } = self;
        object!(at, { "replicas": replicas, "selector": selector })
    }
}

impl Json for policy::Eviction {
    fn json(self, at: &str) -> Result<Value> {
        let policy::Eviction {
            metadata,
            delete_options,
        } = self;
        object!(at, { "metadata": metadata, "deleteOptions": delete_options })
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

#[cfg(test)]
mod tests {
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use serde_json::json;

    use super::*;
    use crate::apiserver::registry;

    /// What client-go sends: the magic, then the object in an envelope.
    fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    /// Metadata as Go writes it: every string field, empty or not, and an
    /// empty creation timestamp.
    fn go_metadata(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: BTreeMap::from([("app".to_string(), "d".to_string())]),
            ..Default::default()
        })
    }

    fn normalizes_without_unknown_fields(group: &str, plural: &str, object: &Value) {
        let info = registry::lookup(group, "v1", plural).expect("a served kind");
        let normalized = (info.normalize)(object).expect("decodes into the kind");
        assert_eq!(
            registry::unknown_fields(object, &normalized),
            Vec::<String>::new()
        );
    }

    fn container(name: &str, image: &str) -> core_v1::Container {
        core_v1::Container {
            name: Some(name.into()),
            image: Some(image.into()),
            working_dir: Some(String::new()),
            resources: Some(core_v1::ResourceRequirements::default()),
            termination_message_path: Some(String::new()),
            image_pull_policy: Some(String::new()),
            stdin: Some(false),
            ..Default::default()
        }
    }

    #[test]
    fn a_namespace_from_kubectl_create_becomes_its_json() {
        let namespace = core_v1::Namespace {
            metadata: go_metadata("proto-x"),
            spec: Some(core_v1::NamespaceSpec::default()),
            status: Some(core_v1::NamespaceStatus {
                phase: Some(String::new()),
                conditions: Vec::new(),
            }),
        };
        let body = envelope("v1", "Namespace", &namespace);
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "proto-x", "labels": {"app": "d"}},
                   "spec": {}, "status": {}})
        );
    }

    #[test]
    fn a_deployment_from_kubectl_create_keeps_its_template_and_selector() {
        let labels = BTreeMap::from([("app".to_string(), "d".to_string())]);
        let mut web = container("web", "coxswain/web:0.1");
        web.ports = vec![core_v1::ContainerPort {
            container_port: Some(80),
            host_port: Some(0),
            protocol: Some("TCP".into()),
            ..Default::default()
        }];
        let deployment = apps::Deployment {
            metadata: go_metadata("d"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(2),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    match_expressions: Vec::new(),
                }),
                template: Some(core_v1::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels,
                        creation_timestamp: Some(meta::Time::default()),
                        ..Default::default()
                    }),
                    spec: Some(core_v1::PodSpec {
                        containers: vec![web],
                        restart_policy: Some(String::new()),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: Some(String::new()),
                        }),
                    }),
                }),
                min_ready_seconds: Some(0),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(object["apiVersion"], "apps/v1");
        assert_eq!(object["spec"]["replicas"], 2);
        assert_eq!(
            object["spec"]["selector"],
            json!({"matchLabels": {"app": "d"}})
        );
        assert_eq!(
            object["spec"]["strategy"]["rollingUpdate"],
            json!({"maxUnavailable": "25%", "maxSurge": 1})
        );
        assert_eq!(
            object["spec"]["template"],
            json!({"metadata": {"labels": {"app": "d"}},
                   "spec": {"containers": [{
                       "name": "web", "image": "coxswain/web:0.1", "resources": {},
                       "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}})
        );
        normalizes_without_unknown_fields("apps", "deployments", &object);
    }

    #[test]
    fn zero_replicas_are_kept_and_zeros_of_non_pointer_fields_are_left_out() {
        let deployment = apps::Deployment {
            metadata: go_metadata("d"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        let object = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(object["spec"], json!({"replicas": 0}));
        assert_eq!(object["metadata"].get("generation"), None);
    }

    #[test]
    fn a_pod_with_probes_env_and_volumes_decodes_to_fields_the_pod_type_knows() {
        let mut web = container("web", "coxswain/web:0.1");
        web.liveness_probe = Some(core_v1::Probe {
            handler: Some(core_v1::ProbeHandler {
                http_get: Some(core_v1::HttpGetAction {
                    path: Some("/healthz".into()),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: Some("http".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        });
        web.lifecycle = Some(core_v1::Lifecycle {
            pre_stop: Some(core_v1::LifecycleHandler {
                sleep: Some(core_v1::SleepAction { seconds: Some(3) }),
                ..Default::default()
            }),
            ..Default::default()
        });
        web.env = vec![
            core_v1::EnvVar {
                name: Some("NODE".into()),
                value: Some(String::new()),
                value_from: Some(core_v1::EnvVarSource {
                    field_ref: Some(core_v1::ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: Some("spec.nodeName".into()),
                    }),
                    ..Default::default()
                }),
            },
            core_v1::EnvVar {
                name: Some("MODE".into()),
                value: None,
                value_from: Some(core_v1::EnvVarSource {
                    config_map_key_ref: Some(core_v1::ConfigMapKeySelector {
                        local_object_reference: Some(core_v1::LocalObjectReference {
                            name: Some("cfg".into()),
                        }),
                        key: Some("mode".into()),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
        ];
        web.resources = Some(core_v1::ResourceRequirements {
            limits: BTreeMap::from([(
                "memory".to_string(),
                Quantity {
                    string: Some("64Mi".into()),
                },
            )]),
            ..Default::default()
        });
        web.volume_mounts = vec![core_v1::VolumeMount {
            name: Some("scratch".into()),
            mount_path: Some("/scratch".into()),
            ..Default::default()
        }];
        web.security_context = Some(core_v1::SecurityContext {
            capabilities: Some(core_v1::Capabilities {
                add: vec!["NET_ADMIN".into()],
                drop: Vec::new(),
            }),
            ..Default::default()
        });
        let volume = |name: &str, source: core_v1::VolumeSource| core_v1::Volume {
            name: Some(name.into()),
            volume_source: Some(source),
        };
        let pod = core_v1::Pod {
            metadata: go_metadata("web"),
            spec: Some(core_v1::PodSpec {
                containers: vec![web],
                volumes: vec![
                    volume(
                        "scratch",
                        core_v1::VolumeSource {
                            empty_dir: Some(core_v1::EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ),
                    volume(
                        "cfg",
                        core_v1::VolumeSource {
                            config_map: Some(core_v1::ConfigMapVolumeSource {
                                local_object_reference: Some(core_v1::LocalObjectReference {
                                    name: Some("cfg".into()),
                                }),
                                default_mode: Some(420),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ),
                ],
                tolerations: vec![core_v1::Toleration {
                    operator: Some("Exists".into()),
                    ..Default::default()
                }],
                termination_grace_period_seconds: Some(30),
                ..Default::default()
            }),
            status: Some(core_v1::PodStatus::default()),
        };
        let object = decode(&envelope("v1", "Pod", &pod)).unwrap();
        let web = &object["spec"]["containers"][0];
        assert_eq!(
            web["livenessProbe"],
            json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5})
        );
        assert_eq!(
            web["lifecycle"],
            json!({"preStop": {"sleep": {"seconds": 3}}})
        );
        assert_eq!(
            web["env"][1],
            json!({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                     "key": "mode"}}})
        );
        assert_eq!(web["resources"], json!({"limits": {"memory": "64Mi"}}));
        assert_eq!(
            object["spec"]["volumes"],
            json!([{"name": "scratch", "emptyDir": {}},
                   {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}])
        );
        assert_eq!(object.get("status"), None);
        normalizes_without_unknown_fields("", "pods", &object);
    }

    #[test]
    fn delete_options_from_kubectl_drain_read_as_the_api_type() {
        let options = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: Some("u-1".into()),
                resource_version: None,
            }),
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "DeleteOptions", &options)).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": "u-1"}, "propagationPolicy": "Background"})
        );
        let typed: crate::api::DeleteOptions = serde_json::from_value(object).unwrap();
        assert_eq!(typed.grace_period_seconds, Some(0));
        assert_eq!(typed.propagation_policy.as_deref(), Some("Background"));
    }

    #[test]
    fn an_eviction_carries_its_delete_options() {
        let eviction = policy::Eviction {
            metadata: go_metadata("web"),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(5),
                ..Default::default()
            }),
        };
        let object = decode(&envelope("policy/v1", "Eviction", &eviction)).unwrap();
        assert_eq!(object["kind"], "Eviction");
        assert_eq!(object["deleteOptions"], json!({"gracePeriodSeconds": 5}));
    }

    #[test]
    fn times_have_seconds_and_micro_times_have_microseconds() {
        let event = core_v1::Event {
            metadata: go_metadata("web.1"),
            first_timestamp: Some(meta::Time {
                seconds: Some(1_780_000_000),
                nanos: Some(0),
            }),
            last_timestamp: Some(meta::Time::default()),
            event_time: Some(meta::MicroTime {
                seconds: Some(1_780_000_000),
                nanos: Some(123_456_789),
            }),
            count: Some(2),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Event", &event)).unwrap();
        assert_eq!(object["firstTimestamp"], "2026-05-28T20:26:40Z");
        assert_eq!(object.get("lastTimestamp"), None);
        assert_eq!(object["eventTime"], "2026-05-28T20:26:40.123456Z");
        assert_eq!(object["count"], 2);
        normalizes_without_unknown_fields("", "events", &object);
    }

    #[test]
    fn a_field_the_converter_does_not_carry_is_refused_by_name() {
        let pod = core_v1::Pod {
            metadata: go_metadata("web"),
            spec: Some(core_v1::PodSpec {
                containers: vec![container("web", "coxswain/web:0.1")],
                affinity: Some(core_v1::Affinity {
                    node_affinity: Some(core_v1::NodeAffinity::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        };
        let error = decode(&envelope("v1", "Pod", &pod)).unwrap_err();
        assert!(
            matches!(&error, ProtobufError::UnsupportedField { field } if field == "spec.affinity"),
            "{error}"
        );
    }

    #[test]
    fn bodies_without_the_prefix_or_of_unknown_kinds_are_refused() {
        assert!(matches!(
            decode(b"{\"kind\":\"Pod\"}"),
            Err(ProtobufError::MissingMagic)
        ));
        let body = envelope("v1", "Secret", &core_v1::Secret::default());
        assert!(matches!(
            decode(&body),
            Err(ProtobufError::UnknownKind { kind, .. }) if kind == "Secret"
        ));
        let mut truncated = envelope("v1", "Namespace", &core_v1::Namespace::default());
        truncated.push(0x0a);
        let error: crate::apiserver::ApiError = decode(&truncated).unwrap_err().into();
        assert!(
            error
                .to_string()
                .starts_with("the protobuf body could not be decoded")
        );
    }

    #[test]
    fn the_media_type_is_recognised_with_parameters() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=binary"
        ));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf(""));
    }
}
