//! The node lifecycle controller: a node whose kubelet went silent is
//! marked `Ready=Unknown`.
//!
//! What it promises:
//!
//! * a node is heard from when its Lease (`kube-node-lease/<node>`) is
//!   renewed or its Ready condition's heartbeat moves; the time is taken from
//!   this controller's own clock when it sees the change, so clock skew
//!   between machines does not matter;
//! * a node not heard from for 40 s gets its Ready (and pressure) conditions
//!   set to `Unknown` with reason `NodeStatusUnknown` and message
//!   "Kubelet stopped posting node status.", keeping the last heartbeat;
//! * nothing else: the kubelet restores `Ready=True` itself when it posts
//!   again, and the grace period starts afresh when this controller starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Caches, NODE_LEASE_NAMESPACE};
use crate::api::{MicroTime, Node, NodeCondition, Resource, Time};
use crate::client::Client;

/// How long a node may stay silent before it is marked Unknown.
pub const GRACE_PERIOD: Duration = Duration::from_secs(40);
/// How often nodes are checked.
const CHECK_PERIOD: Duration = Duration::from_secs(5);
/// Conditions set to Unknown when the kubelet stops posting.
const CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The node lifecycle controller.
pub struct NodeLifecycleController {
    client: Client,
    caches: Caches,
}

/// The last sign of life seen from one node.
#[derive(Clone, Debug, PartialEq)]
struct Probe {
    renew_time: Option<MicroTime>,
    heartbeat: Option<Time>,
    /// When this controller saw either of the above change.
    seen_at: Instant,
}

impl NodeLifecycleController {
    pub fn new(client: Client, caches: Caches) -> Arc<NodeLifecycleController> {
        Arc::new(NodeLifecycleController { client, caches })
    }

    /// Checks every node every few seconds, forever.
    pub async fn run(self: Arc<Self>) {
        let mut probes: HashMap<String, Probe> = HashMap::new();
        let mut ticker = tokio::time::interval(CHECK_PERIOD);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let nodes = self.caches.nodes.list();
            probes.retain(|name, _| nodes.iter().any(|n| n.name() == name));
            for node in nodes {
                let lease = self.caches.leases.get(NODE_LEASE_NAMESPACE, node.name());
                let renew_time = lease.and_then(|l| l.spec.as_ref().and_then(|s| s.renew_time));
                let heartbeat = ready_heartbeat(&node);
                let probe = probes.entry(node.name().to_owned()).or_insert(Probe {
                    renew_time,
                    heartbeat,
                    seen_at: now,
                });
                if probe.renew_time != renew_time || probe.heartbeat != heartbeat {
                    *probe = Probe {
                        renew_time,
                        heartbeat,
                        seen_at: now,
                    };
                }
                if now.duration_since(probe.seen_at) < GRACE_PERIOD {
                    continue;
                }
                let Some(updated) = mark_unknown(&node, Time::now()) else {
                    continue;
                };
                match self.client.replace_status(&updated).await {
                    Ok(_) => tracing::info!(
                        node = node.name(),
                        "node stopped posting status, marked Ready=Unknown"
                    ),
                    Err(error) => tracing::debug!(node = node.name(), %error,
                        "marking node Ready=Unknown failed, retrying next check"),
                }
            }
        }
    }
}

fn ready_heartbeat(node: &Node) -> Option<Time> {
    node.status
        .as_ref()?
        .condition("Ready")?
        .last_heartbeat_time
}

/// The node with its conditions set to Unknown, or `None` when they already
/// are.
pub fn mark_unknown(node: &Node, now: Time) -> Option<Node> {
    let mut node = node.clone();
    let status = node.status.get_or_insert_with(Default::default);
    let mut changed = false;
    if status.condition("Ready").is_none() {
        status.conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            last_heartbeat_time: None,
            last_transition_time: Some(now),
            reason: Some("NodeStatusNeverUpdated".into()),
            message: Some("Kubelet never posted node status.".into()),
        });
        changed = true;
    }
    for condition in status.conditions.iter_mut() {
        if !CONDITION_TYPES.contains(&condition.type_.as_str()) || condition.status == "Unknown" {
            continue;
        }
        condition.status = "Unknown".into();
        condition.reason = Some("NodeStatusUnknown".into());
        condition.message = Some("Kubelet stopped posting node status.".into());
        condition.last_transition_time = Some(now);
        changed = true;
    }
    changed.then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NodeStatus;

    #[test]
    fn a_silent_node_turns_unknown_once_keeping_its_heartbeat() {
        let heartbeat = Time(chrono::DateTime::from_timestamp(1_000, 0).unwrap());
        let mut node = Node::new("n1");
        node.status = Some(NodeStatus {
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_heartbeat_time: Some(heartbeat),
                reason: Some("KubeletReady".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let marked = mark_unknown(&node, Time::now()).expect("changed");
        let ready = marked.status.as_ref().unwrap().condition("Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_heartbeat_time, Some(heartbeat));
        assert!(
            mark_unknown(&marked, Time::now()).is_none(),
            "no second write"
        );
    }
}
