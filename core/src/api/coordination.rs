//! coordination.k8s.io/v1 Lease: node heartbeats and leader election.
//!
//! Times are `MicroTime`, written with six fractional digits; every field of
//! the spec is optional and omitted when unset.

use serde::{Deserialize, Serialize};

use crate::api::Resource;
use crate::api::core::named;
use crate::api::meta::{MicroTime, ObjectMeta};

/// A lease held by one identity for a duration, renewed while it lives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<LeaseSpec>,
}

crate::impl_resource!(
    Lease,
    "coordination.k8s.io",
    "v1",
    "coordination.k8s.io/v1",
    "Lease",
    "leases",
    true
);

impl Lease {
    pub fn new(namespace: &str, name: &str) -> Lease {
        Lease {
            api_version: Lease::API_VERSION.into(),
            kind: Lease::KIND.into(),
            metadata: named(namespace, name),
            spec: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_holder: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    #[test]
    fn lease_times_are_written_with_microseconds() {
        let renewed = Utc.with_ymd_and_hms(2026, 12, 4, 15, 29, 42).unwrap()
            + chrono::Duration::microseconds(123_456);
        let mut lease = Lease::new("kube-node-lease", "node-1");
        lease.spec = Some(LeaseSpec {
            holder_identity: Some("node-1".into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        });
        let value = serde_json::to_value(&lease).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                         "renewTime": "2026-12-04T15:29:42.123456Z"}
            })
        );
        let back: Lease = serde_json::from_value(value).unwrap();
        assert_eq!(back, lease);
    }
}
