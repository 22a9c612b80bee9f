//! Scoring: among the nodes that can take a pod, prefer the least
//! allocated one.
//!
//! A node scores 0 to 100 for CPU and for memory: the share of its
//! allocatable amount still free once the pod is placed (requests counted
//! with upstream's defaults for unstated CPU and memory, so that pods with no
//! requests still spread). The node's score is the mean of the two. Nodes
//! that tie for the best score take turns, in name order.

use super::cache::NodeInfo;
use super::filter::PodInfo;

/// The least-allocated score of a node for a pod, 0 to 100.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let want = pod.requests.nonzero;
    let cpu = free_share(
        node.allocatable.milli_cpu,
        node.nonzero_requested.milli_cpu + want.milli_cpu,
    );
    let memory = free_share(
        node.allocatable.memory,
        node.nonzero_requested.memory + want.memory,
    );
    (cpu + memory) / 2
}

fn free_share(allocatable: i64, requested: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * 100 / allocatable
}

/// Picks the best of `candidates` (node and score, in name order); ties
/// take turns through `round`, which the caller keeps between pods.
pub fn select<'a>(candidates: &[(&'a NodeInfo, i64)], round: &mut usize) -> Option<&'a NodeInfo> {
    let best = candidates.iter().map(|(_, score)| *score).max()?;
    let tied: Vec<&NodeInfo> = candidates
        .iter()
        .filter(|(_, score)| *score == best)
        .map(|(node, _)| *node)
        .collect();
    let chosen = tied[*round % tied.len()];
    *round = round.wrapping_add(1);
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quantity::Quantity;
    use crate::api::{Container, Node, NodeStatus, Pod, PodSpec};
    use crate::scheduler::cache::SchedulerCache;

    fn node(name: &str, cpu: &str) -> Node {
        let mut node = Node::new(name);
        node.status = Some(NodeStatus {
            allocatable: [
                ("cpu".to_string(), Quantity::from(cpu)),
                ("memory".to_string(), Quantity::from("4Gi")),
            ]
            .into(),
            ..Default::default()
        });
        node
    }

    #[test]
    fn the_emptier_node_scores_higher() {
        let mut cache = SchedulerCache::new();
        cache.set_node(node("big", "8"));
        cache.set_node(node("small", "1"));
        let mut pod = Pod::new("default", "p");
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let pod = PodInfo::new(&pod);
        let big = least_allocated(&pod, cache.node("big").unwrap());
        let small = least_allocated(&pod, cache.node("small").unwrap());
        assert!(big > small, "{big} > {small}");
    }

    #[test]
    fn tied_nodes_take_turns() {
        let mut cache = SchedulerCache::new();
        cache.set_node(node("a", "2"));
        cache.set_node(node("b", "2"));
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let candidates = [(nodes[0], 50), (nodes[1], 50)];
        let mut round = 0;
        let picks: Vec<&str> = (0..4)
            .map(|_| select(&candidates, &mut round).unwrap().name())
            .collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
    }
}
