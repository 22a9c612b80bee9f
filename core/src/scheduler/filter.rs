//! Filters: can this pod run on this node? And the message that says why
//! no node could take it.
//!
//! Each filter answers with the reasons a node is rejected, worded as the
//! upstream scheduler words them, so that `kubectl describe pod` reads the
//! same. A node is checked in this order, stopping at the first filter that
//! rejects it: readiness (a node that is not Ready counts as tainted
//! `node.kubernetes.io/not-ready` or `node.kubernetes.io/unreachable`, as
//! upstream's node lifecycle controller would taint it), `spec.unschedulable`,
//! taints with effect NoSchedule or NoExecute, node selector and required
//! node affinity, then resources (every resource that does not fit is
//! named).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::cache::{NodeInfo, PodRequests, pod_requests};
use crate::api::{Node, Pod, Taint, Toleration};

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
pub const REASON_INSUFFICIENT_CPU: &str = "Insufficient cpu";
pub const REASON_INSUFFICIENT_MEMORY: &str = "Insufficient memory";

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// Where required node affinity terms sit in `spec.affinity`.
const REQUIRED_TERMS: &str =
    "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms";

/// What the filters need to know about a pod, computed once per attempt.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub requests: PodRequests,
    pub tolerations: Vec<Toleration>,
    pub node_selector: BTreeMap<String, String>,
    /// `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    /// .nodeSelectorTerms`, when set.
    pub required_terms: Option<Vec<Value>>,
}

impl PodInfo {
    pub fn new(pod: &Pod) -> PodInfo {
        let spec = pod.spec.clone().unwrap_or_default();
        let required_terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.pointer(REQUIRED_TERMS))
            .and_then(Value::as_array)
            .cloned();
        PodInfo {
            requests: pod_requests(pod),
            tolerations: spec.tolerations,
            node_selector: spec.node_selector,
            required_terms,
        }
    }
}

/// Runs every filter; `Err` carries the reasons the node is rejected.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
    if let Some(taint) = readiness_taint(&node.node)
        && !tolerated(&pod.tolerations, &taint)
    {
        return Err(vec![untolerated(&taint)]);
    }
    let spec = node.node.spec.clone().unwrap_or_default();
    if spec.unschedulable == Some(true) {
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(&pod.tolerations, &taint) {
            return Err(vec![REASON_UNSCHEDULABLE.into()]);
        }
    }
    let blocking = spec
        .taints
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .find(|t| !tolerated(&pod.tolerations, t));
    if let Some(taint) = blocking {
        return Err(vec![untolerated(taint)]);
    }
    if !matches_selector(pod, &node.node) {
        return Err(vec![REASON_SELECTOR.into()]);
    }
    fits_resources(pod, node)
}

/// The taint a node that is not Ready would carry upstream.
fn readiness_taint(node: &Node) -> Option<Taint> {
    let ready = node.status.as_ref().and_then(|s| s.condition("Ready"));
    let key = match ready.map(|c| c.status.as_str()) {
        Some("True") => return None,
        Some("False") => NOT_READY_TAINT,
        _ => UNREACHABLE_TAINT,
    };
    Some(Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    })
}

fn untolerated(taint: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

/// Whether any toleration matches the taint: same effect (or none given),
/// and same key and value (`Equal`, the default) or same key (`Exists`; an
/// empty key with `Exists` matches every taint).
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect = t.effect.as_deref().unwrap_or("");
        if !effect.is_empty() && effect != taint.effect {
            return false;
        }
        let key = t.key.as_deref().unwrap_or("");
        match t.operator.as_deref().unwrap_or("Equal") {
            "Exists" => key.is_empty() || key == taint.key,
            "Equal" => {
                key == taint.key
                    && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
            _ => false,
        }
    })
}

/// `nodeSelector` (every label equal) and required node affinity (any term
/// whose expressions all hold).
fn matches_selector(pod: &PodInfo, node: &Node) -> bool {
    let labels = &node.metadata.labels;
    if !pod
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    match &pod.required_terms {
        None => true,
        Some(terms) => terms.iter().any(|term| term_matches(term, node)),
    }
}

/// One node selector term: every `matchExpressions` entry holds for the
/// labels and every `matchFields` entry for `metadata.name`. An empty term
/// matches nothing, as upstream.
fn term_matches(term: &Value, node: &Node) -> bool {
    let expressions = term.get("matchExpressions").and_then(Value::as_array);
    let fields = term.get("matchFields").and_then(Value::as_array);
    if expressions.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
        return false;
    }
    let labels = &node.metadata.labels;
    let name_field: BTreeMap<String, String> = [(
        "metadata.name".to_string(),
        node.metadata.name().to_string(),
    )]
    .into();
    let all = |list: Option<&Vec<Value>>, against: &BTreeMap<String, String>| {
        list.into_iter()
            .flatten()
            .all(|r| requirement_matches(r, against))
    };
    all(expressions, labels) && all(fields, &name_field)
}

fn requirement_matches(requirement: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = requirement.get("key").and_then(Value::as_str).unwrap_or("");
    let operator = requirement
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("");
    let values: Vec<&str> = requirement
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let actual = labels.get(key).map(String::as_str);
    let as_number = |s: &str| s.parse::<i64>().ok();
    match operator {
        "In" => actual.is_some_and(|a| values.contains(&a)),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(bound)) = (
                actual.and_then(as_number),
                values.first().and_then(|v| as_number(v)),
            ) else {
                return false;
            };
            if operator == "Gt" {
                a > bound
            } else {
                a < bound
            }
        }
        _ => false,
    }
}

/// Whether the pod's requests fit what the node has left; names every
/// resource that does not.
fn fits_resources(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    let want = pod.requests.requests;
    let free = |allocatable: i64, requested: i64| allocatable - requested;
    if node.requested.pods + 1 > node.allocatable.pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    if want.milli_cpu > 0
        && want.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        reasons.push(REASON_INSUFFICIENT_CPU.to_string());
    }
    if want.memory > 0 && want.memory > free(node.allocatable.memory, node.requested.memory) {
        reasons.push(REASON_INSUFFICIENT_MEMORY.to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// The message of a pod no node could take: how many nodes gave each
/// reason, as `kubectl describe pod` shows it upstream.
pub fn failure_message(node_count: usize, reasons: &HashMap<String, usize>) -> String {
    if node_count == 0 {
        return "0/0 nodes are available: no nodes available to schedule pods.".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{node_count} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quantity::Quantity;
    use crate::api::{
        Container, NodeCondition, NodeSpec, NodeStatus, PodSpec, ResourceRequirements,
    };
    use crate::scheduler::cache::SchedulerCache;

    fn node(name: &str, cpu: &str, memory: &str, ready: &str) -> Node {
        let mut node = Node::new(name);
        let allocatable: BTreeMap<String, Quantity> = [
            ("cpu".to_string(), Quantity::from(cpu)),
            ("memory".to_string(), Quantity::from(memory)),
            ("pods".to_string(), Quantity::from("110")),
        ]
        .into();
        node.status = Some(NodeStatus {
            allocatable,
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        node
    }

    fn pod(cpu: &str, memory: &str) -> Pod {
        let requests: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), Quantity::from(v)))
            .collect();
        let mut pod = Pod::new("default", "web");
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                resources: Some(ResourceRequirements {
                    requests,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        pod
    }

    fn info(node: Node) -> NodeInfo {
        let mut cache = SchedulerCache::new();
        let name = node.metadata.name().to_owned();
        cache.set_node(node);
        cache.node(&name).unwrap().clone()
    }

    fn check(pod: &Pod, node: Node) -> Result<(), Vec<String>> {
        filter(&PodInfo::new(pod), &info(node))
    }

    #[test]
    fn a_pod_fits_a_ready_node_with_room() {
        assert_eq!(
            check(&pod("500m", "128Mi"), node("n1", "2", "4Gi", "True")),
            Ok(())
        );
    }

    #[test]
    fn insufficient_cpu_and_memory_are_both_named() {
        assert_eq!(
            check(&pod("3", "128Mi"), node("n1", "2", "4Gi", "True")),
            Err(vec![REASON_INSUFFICIENT_CPU.to_string()])
        );
        assert_eq!(
            check(&pod("3", "8Gi"), node("n1", "2", "4Gi", "True")),
            Err(vec![
                REASON_INSUFFICIENT_CPU.to_string(),
                REASON_INSUFFICIENT_MEMORY.to_string()
            ])
        );
    }

    #[test]
    fn pods_already_on_the_node_take_their_share() {
        let mut cache = SchedulerCache::new();
        cache.set_node(node("n1", "1", "4Gi", "True"));
        let first = pod("600m", "");
        cache.assume("default/first", "n1", pod_requests(&first));
        let node = cache.node("n1").unwrap();
        assert_eq!(
            filter(&PodInfo::new(&pod("600m", "")), node),
            Err(vec![REASON_INSUFFICIENT_CPU.to_string()])
        );
        assert_eq!(filter(&PodInfo::new(&pod("400m", "")), node), Ok(()));
    }

    #[test]
    fn an_unschedulable_node_is_skipped() {
        let mut n = node("n1", "2", "4Gi", "True");
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        assert_eq!(
            check(&pod("", ""), n),
            Err(vec![REASON_UNSCHEDULABLE.to_string()])
        );
    }

    #[test]
    fn a_node_that_is_not_ready_is_skipped() {
        assert_eq!(
            check(&pod("", ""), node("n1", "2", "4Gi", "False")),
            Err(vec![
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string()
            ])
        );
        assert_eq!(
            check(&pod("", ""), node("n1", "2", "4Gi", "Unknown")),
            Err(vec![
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }".to_string()
            ])
        );
    }

    #[test]
    fn taints_repel_pods_unless_tolerated() {
        let mut n = node("n1", "2", "4Gi", "True");
        n.spec = Some(NodeSpec {
            taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("gpu".into()),
                effect: "NoSchedule".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut p = pod("", "");
        assert_eq!(
            check(&p, n.clone()),
            Err(vec![
                "node(s) had untolerated taint {dedicated: gpu}".to_string()
            ])
        );
        let tolerate = |operator: &str, value: Option<&str>, effect: Option<&str>| Toleration {
            key: Some("dedicated".into()),
            operator: Some(operator.into()),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        };
        p.spec.as_mut().unwrap().tolerations = vec![tolerate("Equal", Some("gpu"), None)];
        assert_eq!(check(&p, n.clone()), Ok(()));
        p.spec.as_mut().unwrap().tolerations = vec![tolerate("Exists", None, Some("NoSchedule"))];
        assert_eq!(check(&p, n.clone()), Ok(()));
        p.spec.as_mut().unwrap().tolerations = vec![tolerate("Equal", Some("cpu"), None)];
        assert!(check(&p, n.clone()).is_err());
        p.spec.as_mut().unwrap().tolerations = vec![tolerate("Exists", None, Some("NoExecute"))];
        assert!(check(&p, n.clone()).is_err());

        // PreferNoSchedule only affects scoring.
        n.spec.as_mut().unwrap().taints[0].effect = "PreferNoSchedule".into();
        p.spec.as_mut().unwrap().tolerations.clear();
        assert_eq!(check(&p, n), Ok(()));
    }

    #[test]
    fn the_node_selector_and_required_affinity_must_match_labels() {
        let mut n = node("n1", "2", "4Gi", "True");
        n.metadata.labels.insert("disk".into(), "ssd".into());
        let mut p = pod("", "");
        p.spec
            .as_mut()
            .unwrap()
            .node_selector
            .insert("disk".into(), "hdd".into());
        assert_eq!(check(&p, n.clone()), Err(vec![REASON_SELECTOR.to_string()]));
        p.spec
            .as_mut()
            .unwrap()
            .node_selector
            .insert("disk".into(), "ssd".into());
        assert_eq!(check(&p, n.clone()), Ok(()));

        p.spec.as_mut().unwrap().affinity = Some(serde_json::json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]}
        }}));
        assert_eq!(check(&p, n.clone()), Ok(()), "the second term matches");
        p.spec.as_mut().unwrap().affinity = Some(serde_json::json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
            ]}
        }}));
        assert_eq!(check(&p, n), Err(vec![REASON_SELECTOR.to_string()]));
    }

    #[test]
    fn the_failure_message_counts_nodes_per_reason() {
        let reasons: HashMap<String, usize> = [(REASON_INSUFFICIENT_CPU.to_string(), 1)].into();
        assert_eq!(
            failure_message(1, &reasons),
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        let reasons: HashMap<String, usize> = [
            (REASON_UNSCHEDULABLE.to_string(), 1),
            (REASON_INSUFFICIENT_CPU.to_string(), 2),
            (REASON_INSUFFICIENT_MEMORY.to_string(), 1),
        ]
        .into();
        assert_eq!(
            failure_message(3, &reasons),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable, \
             2 Insufficient cpu."
        );
        assert_eq!(
            failure_message(0, &HashMap::new()),
            "0/0 nodes are available: no nodes available to schedule pods."
        );
    }
}
