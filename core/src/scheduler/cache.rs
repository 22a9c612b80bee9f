//! The scheduler's view of the cluster: nodes with the resources the pods
//! bound to them request, including pods this scheduler has just bound but
//! not yet seen come back from a watch ("assumed" pods).
//!
//! What callers may rely on:
//!
//! * a node's `requested` is the sum over every pod bound or assumed to it
//!   that has not finished (terminating pods still hold their resources);
//! * an assumed pod stays counted until the watch shows it bound (then it is
//!   just bound), deleted, or the caller forgets it because the bind failed;
//! * nodes are kept in name order, so iteration is deterministic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::api::{Node, Pod, ResourceRequirements};

/// CPU (thousandths of a core), memory (bytes) and a pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

impl Resources {
    fn add(&mut self, other: Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    fn sub(&mut self, other: Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
    }
}

/// What scoring assumes a container requests when it states nothing, as
/// upstream: a tenth of a core and 200 MiB.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;
/// The pod capacity of a node that does not say.
const DEFAULT_MAX_PODS: i64 = 110;

/// What a pod requests: `requests` exactly as stated (for fitting), and
/// `nonzero` with defaults for unstated CPU and memory (for scoring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub requests: Resources,
    pub nonzero: Resources,
}

/// The resources a pod requests: the sum over its containers (a request
/// missing but a limit set counts as the limit), or the largest init
/// container if that is more, plus the pod overhead; pod-level requests win
/// when set.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    let Some(spec) = &pod.spec else {
        return PodRequests {
            requests: one_pod(),
            nonzero: one_pod(),
        };
    };
    let mut sum = (0i64, 0i64);
    let mut sum_nonzero = (0i64, 0i64);
    for container in &spec.containers {
        let (cpu, memory) = container_requests(container.resources.as_ref());
        sum.0 += cpu.unwrap_or(0);
        sum.1 += memory.unwrap_or(0);
        sum_nonzero.0 += cpu.unwrap_or(DEFAULT_MILLI_CPU);
        sum_nonzero.1 += memory.unwrap_or(DEFAULT_MEMORY);
    }
    // Sidecars (init containers that keep running) add to the sum; ordinary
    // init containers run alone, so only the largest matters.
    let mut init_max = (0i64, 0i64);
    for container in &spec.init_containers {
        let (cpu, memory) = container_requests(container.resources.as_ref());
        let (cpu, memory) = (cpu.unwrap_or(0), memory.unwrap_or(0));
        if container.restart_policy.as_deref() == Some("Always") {
            sum.0 += cpu;
            sum.1 += memory;
            sum_nonzero.0 += cpu;
            sum_nonzero.1 += memory;
        } else {
            init_max.0 = init_max.0.max(cpu);
            init_max.1 = init_max.1.max(memory);
        }
    }
    let mut requests = (sum.0.max(init_max.0), sum.1.max(init_max.1));
    let mut nonzero = (sum_nonzero.0.max(init_max.0), sum_nonzero.1.max(init_max.1));
    if let Some(pod_level) = spec.resources.as_ref() {
        let (cpu, memory) = container_requests(Some(pod_level));
        if let Some(cpu) = cpu {
            requests.0 = cpu;
            nonzero.0 = cpu;
        }
        if let Some(memory) = memory {
            requests.1 = memory;
            nonzero.1 = memory;
        }
    }
    let overhead_cpu = spec
        .overhead
        .get("cpu")
        .and_then(|q| q.to_milli().ok())
        .unwrap_or(0);
    let overhead_memory = spec
        .overhead
        .get("memory")
        .and_then(|q| q.to_bytes().ok())
        .unwrap_or(0);
    let total = |(cpu, memory): (i64, i64)| Resources {
        milli_cpu: cpu + overhead_cpu,
        memory: memory + overhead_memory,
        pods: 1,
    };
    PodRequests {
        requests: total(requests),
        nonzero: total(nonzero),
    }
}

fn one_pod() -> Resources {
    Resources {
        pods: 1,
        ..Default::default()
    }
}

/// CPU and memory requests of one container, `None` where unstated.
fn container_requests(resources: Option<&ResourceRequirements>) -> (Option<i64>, Option<i64>) {
    let Some(resources) = resources else {
        return (None, None);
    };
    let get = |name: &str| {
        resources
            .requests
            .get(name)
            .or_else(|| resources.limits.get(name))
    };
    let cpu = get("cpu").and_then(|q| q.to_milli().ok());
    let memory = get("memory").and_then(|q| q.to_bytes().ok());
    (cpu, memory)
}

/// What a node offers: allocatable, falling back to capacity.
pub fn node_allocatable(node: &Node) -> Resources {
    let Some(status) = &node.status else {
        return Resources {
            pods: DEFAULT_MAX_PODS,
            ..Default::default()
        };
    };
    let get = |name: &str| {
        status
            .allocatable
            .get(name)
            .or_else(|| status.capacity.get(name))
    };
    Resources {
        milli_cpu: get("cpu").and_then(|q| q.to_milli().ok()).unwrap_or(0),
        memory: get("memory").and_then(|q| q.to_bytes().ok()).unwrap_or(0),
        pods: get("pods")
            .and_then(|q| q.to_i64().ok())
            .unwrap_or(DEFAULT_MAX_PODS),
    }
}

/// One node and what its pods take of it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub allocatable: Resources,
    /// Sum of exact requests of the pods on the node (`pods` is their count).
    pub requested: Resources,
    /// Sum of requests with defaults for unstated CPU and memory.
    pub nonzero_requested: Resources,
}

impl NodeInfo {
    pub fn name(&self) -> &str {
        self.node.metadata.name()
    }
}

/// A pod the cache counts against a node.
#[derive(Clone, Debug)]
struct PlacedPod {
    node: String,
    requests: PodRequests,
    /// Bound by this scheduler, not yet seen bound in a watch event.
    assumed: bool,
}

/// Nodes and the pods placed on them.
#[derive(Default)]
pub struct SchedulerCache {
    nodes: BTreeMap<String, NodeInfo>,
    /// Placed pods by `namespace/name`.
    pods: HashMap<String, PlacedPod>,
}

impl SchedulerCache {
    pub fn new() -> SchedulerCache {
        SchedulerCache::default()
    }

    /// Nodes in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Adds or updates a node; returns the previous version.
    pub fn set_node(&mut self, node: Node) -> Option<Arc<Node>> {
        let name = node.metadata.name().to_owned();
        let allocatable = node_allocatable(&node);
        let node = Arc::new(node);
        if let Some(info) = self.nodes.get_mut(&name) {
            info.allocatable = allocatable;
            return Some(std::mem::replace(&mut info.node, node));
        }
        let mut info = NodeInfo {
            node,
            allocatable,
            requested: Resources::default(),
            nonzero_requested: Resources::default(),
        };
        for placed in self.pods.values().filter(|p| p.node == name) {
            info.requested.add(placed.requests.requests);
            info.nonzero_requested.add(placed.requests.nonzero);
        }
        self.nodes.insert(name, info);
        None
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Replaces every node (after a re-list).
    pub fn replace_nodes(&mut self, nodes: Vec<Node>) {
        self.nodes.clear();
        for node in nodes {
            self.set_node(node);
        }
    }

    /// Takes a pod's latest state: bound and unfinished pods count against
    /// their node, others do not (an assumed pod not yet seen bound stays).
    pub fn apply_pod(&mut self, key: &str, pod: &Pod) {
        let finished = matches!(pod.phase(), "Succeeded" | "Failed");
        if pod.node_name().is_empty() {
            if finished || !self.pods.get(key).is_some_and(|p| p.assumed) {
                self.remove_pod(key);
            }
            return;
        }
        if finished {
            self.remove_pod(key);
            return;
        }
        self.place(key, pod.node_name(), pod_requests(pod), false);
    }

    /// Counts a pod against `node` before the bind is confirmed.
    pub fn assume(&mut self, key: &str, node: &str, requests: PodRequests) {
        self.place(key, node, requests, true);
    }

    /// Whether a pod is assumed (its bind is in flight or unconfirmed).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Drops an assumed pod whose bind failed; a confirmed pod stays.
    pub fn forget(&mut self, key: &str) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }

    /// Stops counting a pod; returns whether it was counted.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(placed) = self.pods.remove(key) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&placed.node) {
            info.requested.sub(placed.requests.requests);
            info.nonzero_requested.sub(placed.requests.nonzero);
        }
        true
    }

    /// Replaces every pod (after a re-list), keeping assumed pods the list
    /// does not show bound yet.
    pub fn replace_pods<'a>(&mut self, pods: impl IntoIterator<Item = (String, &'a Pod)>) {
        let assumed: Vec<(String, PlacedPod)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.assumed)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        self.pods.clear();
        for info in self.nodes.values_mut() {
            info.requested = Resources::default();
            info.nonzero_requested = Resources::default();
        }
        for (key, pod) in pods {
            self.apply_pod(&key, pod);
        }
        for (key, placed) in assumed {
            if !self.pods.contains_key(&key) {
                self.place(&key, &placed.node.clone(), placed.requests, true);
            }
        }
    }

    fn place(&mut self, key: &str, node: &str, requests: PodRequests, assumed: bool) {
        self.remove_pod(key);
        if let Some(info) = self.nodes.get_mut(node) {
            info.requested.add(requests.requests);
            info.nonzero_requested.add(requests.nonzero);
        }
        self.pods.insert(
            key.to_owned(),
            PlacedPod {
                node: node.to_owned(),
                requests,
                assumed,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quantity::Quantity;
    use crate::api::{Container, PodSpec};

    pub(crate) fn pod_requesting(cpu: &str, memory: &str) -> Pod {
        let mut requests = std::collections::BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity::from(cpu));
        }
        if !memory.is_empty() {
            requests.insert("memory".to_string(), Quantity::from(memory));
        }
        let mut pod = Pod::new("default", "p");
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
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

    #[test]
    fn requests_sum_containers_and_default_only_for_scoring() {
        let r = pod_requests(&pod_requesting("250m", "64Mi"));
        assert_eq!(
            r.requests,
            Resources {
                milli_cpu: 250,
                memory: 64 << 20,
                pods: 1
            }
        );
        let r = pod_requests(&pod_requesting("", ""));
        assert_eq!(
            r.requests,
            Resources {
                milli_cpu: 0,
                memory: 0,
                pods: 1
            }
        );
        assert_eq!(r.nonzero.milli_cpu, DEFAULT_MILLI_CPU);
        assert_eq!(r.nonzero.memory, DEFAULT_MEMORY);
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut cache = SchedulerCache::new();
        cache.set_node(Node::new("n1"));
        let requests = pod_requests(&pod_requesting("500m", ""));
        cache.assume("default/p", "n1", requests);
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 500);

        // A watch event of the still-unbound pod does not drop the assumption.
        cache.apply_pod("default/p", &pod_requesting("500m", ""));
        assert_eq!(cache.node("n1").unwrap().requested.pods, 1);

        cache.forget("default/p");
        assert_eq!(cache.node("n1").unwrap().requested, Resources::default());

        let mut bound = pod_requesting("500m", "");
        bound.spec.as_mut().unwrap().node_name = Some("n1".into());
        cache.assume("default/p", "n1", requests);
        cache.apply_pod("default/p", &bound);
        assert!(!cache.is_assumed("default/p"));
        assert_eq!(
            cache.node("n1").unwrap().requested.milli_cpu,
            500,
            "counted once"
        );
        cache.forget("default/p");
        assert_eq!(
            cache.node("n1").unwrap().requested.milli_cpu,
            500,
            "confirmed pods stay"
        );
    }
}
