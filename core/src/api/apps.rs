//! apps/v1 Deployment and ReplicaSet, and the autoscaling/v1 Scale that
//! their `scale` subresource serves.
//!
//! JSON follows the upstream Go types (checked against `k8s-openapi`):
//! `spec.selector` and `spec.template` of a Deployment and
//! `status.replicas` of a ReplicaSet and a Scale are always written;
//! everything else is omitted when unset.

use serde::{Deserialize, Serialize};

use crate::api::Resource;
use crate::api::core::{PodTemplateSpec, named};
use crate::api::meta::{LabelSelector, ObjectMeta, Time};
use crate::api::quantity::IntOrString;

/// Declares a desired set of pods and rolls out changes to it through
/// ReplicaSets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DeploymentSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

crate::impl_resource!(
    Deployment,
    "apps",
    "v1",
    "apps/v1",
    "Deployment",
    "deployments",
    true
);

impl Deployment {
    pub fn new(namespace: &str, name: &str) -> Deployment {
        Deployment {
            api_version: Deployment::API_VERSION.into(),
            kind: Deployment::KIND.into(),
            metadata: named(namespace, name),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (the default) or `Recreate`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// How far a rolling update may go above and below the desired count;
/// resolve with [`IntOrString::resolve_round_up`] (surge) and
/// [`IntOrString::resolve_round_down`] (unavailable).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDeployment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

impl DeploymentStatus {
    /// The condition of a type (`Available`, `Progressing`, ...), if set.
    pub fn condition(&self, type_: &str) -> Option<&DeploymentCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCondition {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Keeps a number of identical pods running.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSet {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ReplicaSetSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetStatus>,
}

crate::impl_resource!(
    ReplicaSet,
    "apps",
    "v1",
    "apps/v1",
    "ReplicaSet",
    "replicasets",
    true
);

impl ReplicaSet {
    pub fn new(namespace: &str, name: &str) -> ReplicaSet {
        ReplicaSet {
            api_version: ReplicaSet::API_VERSION.into(),
            kind: ReplicaSet::KIND.into(),
            metadata: named(namespace, name),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
}

/// `replicas` is always written, as upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fully_labeled_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ReplicaSetCondition>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetCondition {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The `scale` subresource of a Deployment or ReplicaSet
/// (autoscaling/v1 `Scale`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ScaleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ScaleStatus>,
}

crate::impl_resource!(
    Scale,
    "autoscaling",
    "v1",
    "autoscaling/v1",
    "Scale",
    "scale",
    true
);

impl Scale {
    pub fn new(namespace: &str, name: &str) -> Scale {
        Scale {
            api_version: Scale::API_VERSION.into(),
            kind: Scale::KIND.into(),
            metadata: named(namespace, name),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStatus {
    #[serde(default)]
    pub replicas: i32,
    /// The label selector in query-string form (`app=web`), see
    /// [`crate::api::selector::label_selector_string`]; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deployment_spec_always_writes_selector_and_template() {
        let spec = DeploymentSpec::default();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"selector": {}, "template": {"metadata": {}}})
        );
    }

    #[test]
    fn rolling_update_accepts_ints_and_percentages() {
        let strategy: DeploymentStrategy = serde_json::from_value(json!({
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}
        }))
        .unwrap();
        let rolling = strategy.rolling_update.unwrap();
        assert_eq!(rolling.max_surge.unwrap().resolve_round_up(10), Ok(3));
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));
    }

    #[test]
    fn replica_set_status_writes_zero_replicas() {
        let status = ReplicaSetStatus::default();
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"replicas": 0})
        );
    }

    #[test]
    fn scale_constructor_and_status_json() {
        let mut scale = Scale::new("default", "web");
        scale.spec = Some(ScaleSpec { replicas: Some(3) });
        scale.status = Some(ScaleStatus {
            replicas: 2,
            selector: "app=web".into(),
        });
        assert_eq!(
            serde_json::to_value(&scale).unwrap(),
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 3},
                "status": {"replicas": 2, "selector": "app=web"}
            })
        );
    }

    #[test]
    fn deployment_conditions_are_found_by_type() {
        let status = DeploymentStatus {
            conditions: vec![DeploymentCondition {
                type_: "Available".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(status.condition("Available").is_some());
        assert!(status.condition("Progressing").is_none());
        assert_eq!(Deployment::new("default", "web").api_version, "apps/v1");
        assert_eq!(ReplicaSet::new("default", "web-1").kind, "ReplicaSet");
    }
}
