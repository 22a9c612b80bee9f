//! The kinds this apiserver serves, and what the request handlers need to
//! know about each: names for URLs and discovery, scope, subresources, and
//! how to decode a body into the kind.

use serde_json::Value;

use crate::api::{Deployment, Event, Lease, Namespace, Node, Pod, ReplicaSet, Resource};

/// One served kind.
pub struct KindInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Has a `status` subresource: main-resource writes keep the stored
    /// status, status writes keep everything else.
    pub has_status: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale).
    pub has_scale: bool,
    /// Tracks `metadata.generation` (bumped on every spec change).
    pub has_generation: bool,
    /// Decodes JSON into the typed kind and back: fields the kind does not
    /// have are dropped, wrong types are errors.
    pub normalize: fn(&Value) -> Result<Value, serde_json::Error>,
}

fn normalize<T: Resource>(value: &Value) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(value.clone())?;
    serde_json::to_value(&typed)
}

impl KindInfo {
    /// `group/version`, or the version alone for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods`: how messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The resource part of store keys.
    pub fn store_resource(&self) -> String {
        self.qualified()
    }
}

pub static KINDS: &[KindInfo] = &[
    KindInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        has_status: true,
        has_scale: false,
        has_generation: false,
        normalize: normalize::<Namespace>,
    },
    KindInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        has_status: true,
        has_scale: false,
        has_generation: false,
        normalize: normalize::<Node>,
    },
    KindInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        has_status: true,
        has_scale: false,
        has_generation: true,
        normalize: normalize::<Pod>,
    },
    KindInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        has_status: false,
        has_scale: false,
        has_generation: false,
        normalize: normalize::<Event>,
    },
    KindInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        has_status: true,
        has_scale: true,
        has_generation: true,
        normalize: normalize::<Deployment>,
    },
    KindInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        has_status: true,
        has_scale: true,
        has_generation: true,
        normalize: normalize::<ReplicaSet>,
    },
    KindInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        has_status: false,
        has_scale: false,
        has_generation: false,
        normalize: normalize::<Lease>,
    },
];

/// The kind served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The groups served, in discovery order (the core group first).
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in KINDS {
        if !groups.contains(&kind.group) {
            groups.push(kind.group);
        }
    }
    groups
}

/// Fields in `input` that decoding into the kind dropped, as dotted paths.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown(input, normalized, "", &mut out);
    out
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn collect_unknown(input: &Value, normalized: &Value, path: &str, out: &mut Vec<String>) {
    match (input, normalized) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(other) => collect_unknown(value, other, &child, out),
                    None if !is_empty(value) => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Object(a), _) => {
            // The whole object was dropped or replaced by a scalar default.
            for (key, value) in a {
                if !is_empty(value) {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    out.push(child);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                collect_unknown(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_name_their_path() {
        let input = json!({"spec": {"replicas": 1, "bogus": 2, "template": {"x": {}}}});
        let normalized = json!({"spec": {"replicas": 1, "template": {}}});
        assert_eq!(
            unknown_fields(&input, &normalized),
            vec!["spec.bogus".to_string()]
        );
    }
}
