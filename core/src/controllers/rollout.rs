//! The arithmetic of a Deployment rollout, without IO: the pod-template
//! hash, how far the new ReplicaSet may grow, how far the old ones may
//! shrink, proportional scaling, and the status and conditions the
//! deployment reports.
//!
//! Every function here follows the upstream deployment controller's rules,
//! so that the numbers `kubectl rollout status` waits for come out the same.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::api::{
    Deployment, DeploymentCondition, DeploymentStatus, PodTemplateSpec, ReplicaSet, Time,
};

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet, and the current one of its Deployment.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// `spec.replicas` of the Deployment when it last scaled this ReplicaSet.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// Desired replicas plus max surge, when the Deployment last scaled this
/// ReplicaSet.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// Revisions a reused ReplicaSet had before.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
const ANNOTATIONS_NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// The alphabet of generated name suffixes: no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// The default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE: i32 = 600;

/// The hash that names a Deployment's ReplicaSet for one pod template:
/// FNV-32a over the template's canonical JSON (sorted keys, without the
/// `pod-template-hash` label), then `collisionCount` when set, rendered
/// with the safe alphabet as upstream renders it.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hasher = Fnv32a::new();
    write_canonical(&template_json(template), &mut hasher);
    if let Some(count) = collision_count {
        // Upstream writes the count as a little-endian u32 in 8 bytes.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hasher.write(&bytes);
    }
    safe_encode(&hasher.0.to_string())
}

/// Whether two pod templates are the same, ignoring `pod-template-hash`.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_json(a) == template_json(b)
}

/// The JSON of a template without the `pod-template-hash` label (and
/// without the labels object when that label was the only one).
fn template_json(template: &PodTemplateSpec) -> Value {
    let mut value = to_json(template);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
    value
}

fn to_json<S: Serialize>(value: &S) -> Value {
    // Serialising these types into a `Value` cannot fail: keys are strings
    // and there are no non-finite floats.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Writes JSON with object keys sorted, whatever map the `Value` uses.
fn write_canonical(value: &Value, out: &mut Fnv32a) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.write(b"{");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write(b",");
                }
                out.write(Value::String(key.clone()).to_string().as_bytes());
                out.write(b":");
                write_canonical(item, out);
            }
            out.write(b"}");
        }
        Value::Array(items) => {
            out.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write(b",");
                }
                write_canonical(item, out);
            }
            out.write(b"]");
        }
        scalar => out.write(scalar.to_string().as_bytes()),
    }
}

/// The 32-bit FNV-1a hash.
struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Fnv32a {
        Fnv32a(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// Maps every byte of `text` into the safe alphabet, as upstream's
/// `rand.SafeEncodeString`.
fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// `spec.replicas`, 1 when unset (the API default).
pub fn desired_replicas(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

pub fn is_recreate(deployment: &Deployment) -> bool {
    let strategy = deployment.spec.as_ref().and_then(|s| s.strategy.as_ref());
    strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// How far a rolling update may go above (`max_surge`) and below
/// (`max_unavailable`) the desired count, resolved against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fenceposts {
    pub max_surge: i32,
    pub max_unavailable: i32,
}

/// Resolves `maxSurge` (percentages round up) and `maxUnavailable` (round
/// down); when both come out 0, one pod may be unavailable so that the
/// rollout can proceed. Recreate has no fenceposts.
pub fn fenceposts(deployment: &Deployment) -> Fenceposts {
    if is_recreate(deployment) {
        return Fenceposts {
            max_surge: 0,
            max_unavailable: 0,
        };
    }
    let replicas = desired_replicas(deployment);
    let rolling = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = || crate::api::quantity::IntOrString::String("25%".into());
    let surge = rolling
        .and_then(|r| r.max_surge.clone())
        .unwrap_or_else(quarter);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or_else(quarter);
    let max_surge = surge.resolve_round_up(replicas).unwrap_or(0).max(0);
    let mut max_unavailable = unavailable.resolve_round_down(replicas).unwrap_or(0).max(0);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Fenceposts {
        max_surge,
        max_unavailable: max_unavailable.min(replicas.max(0)),
    }
}

/// The size the new ReplicaSet of a rolling update may have now: it grows
/// until all ReplicaSets together reach `replicas + max_surge`, and never
/// past `replicas`.
pub fn new_rs_target(replicas: i32, max_surge: i32, total_current: i32, new_current: i32) -> i32 {
    let max_total = replicas + max_surge;
    if total_current >= max_total {
        return new_current;
    }
    let scale_up = (max_total - total_current).min(replicas - new_current);
    new_current + scale_up.max(0)
}

/// Sizes and availability of one old ReplicaSet, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldSet {
    pub replicas: i32,
    pub available: i32,
}

/// The sizes the old ReplicaSets of a rolling update may shrink to now
/// (in the order given, oldest first): first their unavailable pods go, as
/// far as `max_unavailable` allows, then available ones while more than
/// `replicas - max_unavailable` pods stay available.
pub fn old_rs_targets(
    replicas: i32,
    max_unavailable: i32,
    new_replicas: i32,
    new_available: i32,
    old: &[OldSet],
) -> Vec<i32> {
    let mut targets: Vec<i32> = old.iter().map(|o| o.replicas).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let min_available = replicas - max_unavailable;
    let new_unavailable = new_replicas - new_available;
    let max_scaled_down = old_total + new_replicas - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }

    // Unhealthy pods of old sets go first: removing them costs nothing.
    let mut cleaned = 0;
    for (target, set) in targets.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *target - set.available;
        if *target == 0 || unhealthy <= 0 {
            continue;
        }
        let count = unhealthy.min(max_scaled_down - cleaned);
        *target -= count;
        cleaned += count;
    }

    // Then available pods, while enough stay available.
    let available: i32 = new_available + old.iter().map(|o| o.available).sum::<i32>();
    if available <= min_available {
        return targets;
    }
    let to_scale_down = available - min_available;
    let mut scaled = 0;
    for target in targets.iter_mut() {
        if scaled >= to_scale_down {
            break;
        }
        if *target == 0 {
            continue;
        }
        let count = (*target).min(to_scale_down - scaled);
        *target -= count;
        scaled += count;
    }
    targets
}

/// One active ReplicaSet, for proportional scaling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveSet {
    pub replicas: i32,
    /// The `max-replicas` annotation, when present and parseable.
    pub max_replicas: Option<i32>,
    pub created: Option<Time>,
    pub name: String,
}

/// New sizes (in input order) for the active ReplicaSets of a rolling
/// update whose Deployment was scaled in the middle of a rollout: the
/// change is shared in proportion to each set's size, larger sets first,
/// and the rounding leftover goes to the first of them.
pub fn proportional_sizes(
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    sets: &[ActiveSet],
) -> Vec<i32> {
    let total: i32 = sets.iter().map(|s| s.replicas).sum();
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let to_add = allowed - total;
    let mut sizes: Vec<i32> = sets.iter().map(|s| s.replicas).collect();
    if to_add == 0 || sets.is_empty() {
        return sizes;
    }

    // Larger first; among equals, newer first when growing, older first
    // when shrinking.
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&sets[a], &sets[b]);
        b.replicas.cmp(&a.replicas).then_with(|| {
            let by_age = a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name));
            if to_add > 0 { by_age.reverse() } else { by_age }
        })
    });

    let mut added = 0;
    for &i in &order {
        let set = &sets[i];
        if set.replicas == 0 || added == to_add {
            continue;
        }
        let fraction = if replicas == 0 {
            -set.replicas
        } else {
            let before = match set.max_replicas {
                Some(max) if max > 0 => max,
                _ => status_replicas,
            };
            if before <= 0 {
                0
            } else {
                let scaled = f64::from(set.replicas) * f64::from(allowed) / f64::from(before);
                scaled.round() as i32 - set.replicas
            }
        };
        let remaining = to_add - added;
        let proportion = if to_add > 0 {
            fraction.min(remaining)
        } else {
            fraction.max(remaining)
        };
        sizes[i] += proportion;
        added += proportion;
    }
    let first = order[0];
    sizes[first] = (sizes[first] + to_add - added).max(0);
    sizes
}

/// The revision number of a ReplicaSet (or Deployment), 0 when absent.
pub fn revision_of(annotations: &BTreeMap<String, String>) -> i64 {
    annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Annotations a new ReplicaSet inherits from its Deployment.
pub fn copied_annotations(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .metadata
        .annotations
        .iter()
        .filter(|(k, _)| !ANNOTATIONS_NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Orders ReplicaSets oldest first (creation time, then name).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| a.metadata.name().cmp(b.metadata.name()))
}

/// The status a Deployment should report given its ReplicaSets, with the
/// `Available` condition computed and the other conditions carried over.
pub fn calculate_status(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Time,
) -> DeploymentStatus {
    let old = deployment.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let spec_total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(all.iter().map(|rs| rs_status_replicas(rs)).sum()),
        updated_replicas: Some(new.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((spec_total - available).max(0)),
        terminating_replicas: old.terminating_replicas,
        conditions: old.conditions.clone(),
        collision_count: old.collision_count,
    };
    let replicas = desired_replicas(deployment);
    let condition = if available >= replicas - fenceposts(deployment).max_unavailable {
        condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Sets the `Progressing` condition of a freshly calculated status, as
/// upstream's `syncRolloutStatus` does. `status` must come from
/// [`calculate_status`] for `deployment`.
pub fn update_progressing(
    deployment: &Deployment,
    status: &mut DeploymentStatus,
    new: Option<&ReplicaSet>,
    now: Time,
) {
    if deployment.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        return;
    }
    let current = status.condition(PROGRESSING).cloned();
    let complete_before = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    if complete_before {
        return;
    }
    let old = deployment.status.clone().unwrap_or_default();
    let new_name = new.map(|rs| rs.metadata.name().to_owned());
    if is_complete(deployment, status) {
        let message = format!(
            "ReplicaSet \"{}\" has successfully progressed.",
            new_name.as_deref().unwrap_or("")
        );
        set_condition(
            status,
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &message, now),
        );
    } else if is_progressing(&old, status) {
        let message = match &new_name {
            Some(name) => format!("ReplicaSet \"{name}\" is progressing."),
            None => format!(
                "Deployment \"{}\" is progressing.",
                deployment.metadata.name()
            ),
        };
        let mut fresh = condition(PROGRESSING, "True", RS_UPDATED, &message, now);
        if let Some(current) = &current
            && current.status == "True"
        {
            fresh.last_transition_time = current.last_transition_time;
        }
        status.conditions.retain(|c| c.type_ != PROGRESSING);
        status.conditions.push(fresh);
    } else if timed_out(deployment, status, now) {
        let message = format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            new_name.as_deref().unwrap_or("")
        );
        set_condition(
            status,
            condition(PROGRESSING, "False", TIMED_OUT, &message, now),
        );
    }
}

/// How long until the deployment's progress deadline passes, when it is
/// rolling out and has a `Progressing` condition to measure from.
pub fn until_deadline(
    deployment: &Deployment,
    status: &DeploymentStatus,
    now: Time,
) -> Option<i64> {
    if is_complete(deployment, status) {
        return None;
    }
    let current = status.condition(PROGRESSING)?;
    if current.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = current.last_update_time?;
    let deadline = i64::from(progress_deadline(deployment));
    Some((from.0.timestamp() + deadline - now.0.timestamp()).max(0))
}

fn progress_deadline(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
}

/// Whether every desired replica is updated and available and no old one
/// is left.
pub fn is_complete(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = desired_replicas(deployment);
    status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.observed_generation >= deployment.metadata.generation
}

fn is_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn timed_out(deployment: &Deployment, status: &DeploymentStatus, now: Time) -> bool {
    let Some(current) = status.condition(PROGRESSING) else {
        return false;
    };
    if matches!(
        current.reason.as_deref(),
        Some(NEW_RS_AVAILABLE) | Some(TIMED_OUT)
    ) {
        return current.reason.as_deref() == Some(TIMED_OUT);
    }
    let Some(from) = current.last_update_time else {
        return false;
    };
    now.0.timestamp() > from.0.timestamp() + i64::from(progress_deadline(deployment))
}

/// A condition stamped with `now` for both times.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: Some(reason.into()),
        message: Some(message.into()),
    }
}

/// Sets a condition unless one of the same type already has the same status
/// and reason; a transition keeps the old `lastTransitionTime` when the
/// status is unchanged.
pub fn set_condition(status: &mut DeploymentStatus, mut fresh: DeploymentCondition) {
    if let Some(current) = status.condition(&fresh.type_) {
        if current.status == fresh.status && current.reason == fresh.reason {
            return;
        }
        if current.status == fresh.status {
            fresh.last_transition_time = current.last_transition_time;
        }
    }
    status.conditions.retain(|c| c.type_ != fresh.type_);
    status.conditions.push(fresh);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Container, DeploymentSpec, ObjectMeta, PodSpec};

    fn template(labels: &[(&str, &str)], image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: ObjectMeta {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_template_hash_is_stable_and_uses_the_safe_alphabet() {
        let a = template_hash(&template(&[("app", "web")], "nginx:1.27"), None);
        let b = template_hash(&template(&[("app", "web")], "nginx:1.27"), None);
        assert_eq!(a, b);
        assert!(!a.is_empty() && a.len() <= 10);
        assert!(a.bytes().all(|c| SAFE_ALPHABET.contains(&c)), "{a}");
    }

    #[test]
    fn the_template_hash_ignores_the_pod_template_hash_label() {
        let plain = template(&[("app", "web")], "nginx:1.27");
        let hash = template_hash(&plain, None);
        let labelled = template(
            &[("app", "web"), (POD_TEMPLATE_HASH_LABEL, &hash)],
            "nginx:1.27",
        );
        assert_eq!(template_hash(&labelled, None), hash);
        assert!(templates_equal_ignoring_hash(&plain, &labelled));

        let only_hash = template(&[(POD_TEMPLATE_HASH_LABEL, "x")], "nginx:1.27");
        assert_eq!(
            template_hash(&only_hash, None),
            template_hash(&template(&[], "nginx:1.27"), None)
        );
    }

    #[test]
    fn the_template_hash_changes_with_the_template_and_the_collision_count() {
        let base = template(&[("app", "web")], "nginx:1.27");
        let hash = template_hash(&base, None);
        assert_ne!(
            template_hash(&template(&[("app", "web")], "nginx:1.28"), None),
            hash
        );
        assert_ne!(template_hash(&base, Some(1)), hash);
        assert_ne!(template_hash(&base, Some(1)), template_hash(&base, Some(2)));
    }

    #[test]
    fn safe_encoding_maps_digits_as_upstream() {
        // '0'..'9' are bytes 48..57, which land on "456789bcdf".
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let mut fnv = Fnv32a::new();
        fnv.write(b"a");
        assert_eq!(fnv.0, 0xe40c_292c, "the FNV-1a test vector for \"a\"");
    }

    fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        let value = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
            }
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let d = deployment(10, "25%", "25%");
        assert_eq!(
            fenceposts(&d),
            Fenceposts {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        let d = deployment(1, "25%", "25%");
        assert_eq!(
            fenceposts(&d),
            Fenceposts {
                max_surge: 1,
                max_unavailable: 0
            }
        );
        let d = deployment(3, "0%", "0%");
        assert_eq!(
            fenceposts(&d),
            Fenceposts {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        let mut recreate = deployment(3, "25%", "25%");
        let spec: &mut DeploymentSpec = recreate.spec.as_mut().unwrap();
        spec.strategy.as_mut().unwrap().type_ = Some("Recreate".into());
        assert_eq!(
            fenceposts(&recreate),
            Fenceposts {
                max_surge: 0,
                max_unavailable: 0
            }
        );
    }

    #[test]
    fn the_new_replica_set_grows_up_to_the_surge() {
        // 10 replicas, surge 3: from 10 old pods the new set may start 3.
        assert_eq!(new_rs_target(10, 3, 10, 0), 3);
        // Already at the ceiling: stay.
        assert_eq!(new_rs_target(10, 3, 13, 3), 3);
        // Old ones shrank by 5: grow by 5.
        assert_eq!(new_rs_target(10, 3, 8, 3), 8);
        // Never past the desired count.
        assert_eq!(new_rs_target(10, 3, 10, 9), 10);
        // A fresh deployment starts all its pods at once.
        assert_eq!(new_rs_target(2, 1, 0, 0), 2);
    }

    #[test]
    fn old_replica_sets_shrink_while_enough_pods_stay_available() {
        // 10 wanted, 2 may be unavailable; new set has 3 pods, none ready.
        let old = [OldSet {
            replicas: 10,
            available: 10,
        }];
        assert_eq!(old_rs_targets(10, 2, 3, 0, &old), vec![8]);
        // Once the new pods are available, the old set shrinks by as many.
        assert_eq!(
            old_rs_targets(
                10,
                2,
                3,
                3,
                &[OldSet {
                    replicas: 8,
                    available: 8
                }]
            ),
            vec![5]
        );
        // No room: nothing changes.
        assert_eq!(
            old_rs_targets(
                10,
                0,
                1,
                0,
                &[OldSet {
                    replicas: 10,
                    available: 10
                }]
            ),
            vec![10]
        );
    }

    #[test]
    fn unavailable_old_pods_are_removed_first_oldest_set_first() {
        let old = [
            OldSet {
                replicas: 2,
                available: 0,
            },
            OldSet {
                replicas: 3,
                available: 3,
            },
        ];
        // 5 wanted, 2 may be unavailable, new set has 1 unavailable pod.
        assert_eq!(old_rs_targets(5, 2, 1, 0, &old), vec![0, 3]);
        // With 1 unavailable allowed, only one of the unavailable pods goes.
        assert_eq!(old_rs_targets(5, 1, 1, 0, &old), vec![1, 3]);
    }

    #[test]
    fn proportional_scaling_shares_the_change_by_size() {
        let set = |name: &str, replicas, max| ActiveSet {
            replicas,
            max_replicas: Some(max),
            created: None,
            name: name.into(),
        };
        // 10 -> 20 replicas with surge 0: sets of 6 and 4 (max 10) double.
        let sizes = proportional_sizes(20, 0, 10, &[set("a", 6, 10), set("b", 4, 10)]);
        assert_eq!(sizes, vec![12, 8]);
        // Scaling to zero empties every set.
        assert_eq!(
            proportional_sizes(0, 0, 10, &[set("a", 6, 10), set("b", 4, 10)]),
            vec![0, 0]
        );
        // A leftover from rounding goes to the largest set.
        let sizes = proportional_sizes(4, 0, 3, &[set("a", 2, 3), set("b", 1, 3)]);
        assert_eq!(sizes.iter().sum::<i32>(), 4);
        assert_eq!(sizes, vec![3, 1]);
    }

    fn rs(name: &str, spec: i32, status: i32, available: i32) -> ReplicaSet {
        let value = serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": spec, "selector": {}},
            "status": {"replicas": status, "readyReplicas": available,
                       "availableReplicas": available}
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn status_sums_the_replica_sets_and_marks_the_rollout_complete() {
        let d = deployment(2, "25%", "25%");
        let new = rs("web-abc", 2, 2, 2);
        let now = Time::now();
        let mut status = calculate_status(&d, &[&new], Some(&new), now);
        update_progressing(&d, &mut status, Some(&new), now);
        assert_eq!(status.replicas, Some(2));
        assert_eq!(status.updated_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(2));
        assert_eq!(status.unavailable_replicas, Some(0));
        assert_eq!(status.observed_generation, Some(1));
        let available = status.condition(AVAILABLE).unwrap();
        assert_eq!(
            available.reason.as_deref(),
            Some(MINIMUM_REPLICAS_AVAILABLE)
        );
        let progressing = status.condition(PROGRESSING).unwrap();
        assert_eq!(progressing.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
    }

    #[test]
    fn a_rollout_in_flight_is_progressing_and_not_yet_available() {
        let d = deployment(4, "25%", "25%");
        let old = rs("web-old", 3, 3, 3);
        let new = rs("web-new", 2, 2, 0);
        let now = Time::now();
        let mut status = calculate_status(&d, &[&old, &new], Some(&new), now);
        update_progressing(&d, &mut status, Some(&new), now);
        assert_eq!(status.replicas, Some(5));
        assert_eq!(status.updated_replicas, Some(2));
        assert_eq!(status.unavailable_replicas, Some(2));
        assert_eq!(status.condition(AVAILABLE).unwrap().status, "True");
        assert_eq!(
            status.condition(PROGRESSING).unwrap().reason.as_deref(),
            Some(RS_UPDATED)
        );
    }
}
