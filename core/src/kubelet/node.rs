//! The kubelet's Node: registration, the status heartbeat and the node Lease.
//!
//! [`run`] registers the Node (or updates the one that exists), then every
//! [`HEARTBEAT`] posts its status (`lastHeartbeatTime`) and renews the Lease
//! `kube-node-lease/<node>`. While the apiserver is unreachable it retries
//! with back-off, logging one line when it starts waiting and one when it
//! gets through; it never gives up. The Node's uid, needed by mirror pods'
//! owner references, is published once known.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::api::quantity::Quantity;
use crate::api::{
    DaemonEndpoint, Lease, LeaseSpec, MicroTime, Node, NodeAddress, NodeCondition,
    NodeDaemonEndpoints, NodeStatus, NodeSystemInfo, OwnerReference, Time,
};
use crate::client::Client;

/// How often the status and the Lease are renewed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a Lease is valid without renewal.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// What the Node says about the machine, read once at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostInfo {
    pub cpus: usize,
    pub memory_kib: u64,
    pub os_image: String,
    pub kernel_version: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
}

impl HostInfo {
    /// Reads the host from `/proc`, `/etc` and `/sys`; what cannot be read
    /// stays empty.
    pub fn read() -> HostInfo {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let machine_id = read("/etc/machine-id");
        let system_uuid = match read("/sys/class/dmi/id/product_uuid") {
            uuid if !uuid.is_empty() => uuid,
            _ => machine_id.clone(),
        };
        HostInfo {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_kib: mem_total_kib(&read("/proc/meminfo")).unwrap_or(0),
            os_image: pretty_name(&read("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            machine_id,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            system_uuid,
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `PRETTY_NAME` of `/etc/os-release`.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim_matches('"').to_owned())
}

/// What the Node object is built from.
#[derive(Clone, Debug)]
pub struct NodeParams {
    pub name: String,
    pub address: String,
    /// The node agent's port (`daemonEndpoints.kubeletEndpoint.Port`).
    pub agent_port: u16,
    pub runtime_version: String,
    pub host: HostInfo,
}

/// The labels the kubelet puts on its Node.
pub fn node_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("beta.kubernetes.io/arch".to_owned(), "amd64".to_owned()),
    ])
}

/// The Node's status at `now`; conditions keep the transition time of
/// `previous` while their value holds.
pub fn node_status(params: &NodeParams, previous: Option<&NodeStatus>, now: Time) -> NodeStatus {
    let host = &params.host;
    let capacity = BTreeMap::from([
        ("cpu".to_owned(), Quantity::new(host.cpus.to_string())),
        (
            "memory".to_owned(),
            Quantity::new(format!("{}Ki", host.memory_kib)),
        ),
        ("pods".to_owned(), Quantity::new("110")),
    ]);
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let kept = previous
            .and_then(|p| p.condition(type_))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time);
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            last_heartbeat_time: Some(now),
            last_transition_time: Some(kept.unwrap_or(now)),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
        }
    };
    NodeStatus {
        allocatable: capacity.clone(),
        capacity,
        conditions: vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ],
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: params.address.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: params.name.clone(),
            },
        ],
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(params.agent_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: host.machine_id.clone(),
            system_uuid: host.system_uuid.clone(),
            boot_id: host.boot_id.clone(),
            kernel_version: host.kernel_version.clone(),
            os_image: host.os_image.clone(),
            container_runtime_version: params.runtime_version.clone(),
            kubelet_version: crate::COXSWAIN_VERSION.to_owned(),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Registers the Node and keeps its status and Lease fresh, forever.
pub async fn run(client: Client, params: NodeParams, node_uid: watch::Sender<Option<String>>) {
    let mut previous: Option<NodeStatus> = None;
    let mut waiting = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        match heartbeat(&client, &params, &mut previous, &node_uid).await {
            Ok(()) => {
                if waiting {
                    tracing::info!(node = %params.name, "apiserver reachable, node registered");
                    waiting = false;
                }
                backoff = Duration::from_secs(1);
                tokio::time::sleep(HEARTBEAT).await;
            }
            Err(error) => {
                if !waiting {
                    tracing::warn!(node = %params.name, %error,
                        "waiting for the apiserver to register the node");
                    waiting = true;
                } else {
                    tracing::debug!(node = %params.name, %error, "node heartbeat failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(HEARTBEAT);
            }
        }
    }
}

/// One round: make sure the Node exists, post its status, renew the Lease.
async fn heartbeat(
    client: &Client,
    params: &NodeParams,
    previous: &mut Option<NodeStatus>,
    node_uid: &watch::Sender<Option<String>>,
) -> Result<(), crate::client::Error> {
    let name = params.name.as_str();
    let existing = match client.get_opt::<Node>("", name).await? {
        Some(node) => node,
        None => {
            let mut node = Node::new(name);
            node.metadata.labels = node_labels(name);
            let created = client.create(&node).await?;
            tracing::info!(node = name, "node registered");
            created
        }
    };
    if previous.is_none() {
        *previous = existing.status.clone();
        let missing = node_labels(name)
            .into_iter()
            .any(|(k, v)| existing.metadata.labels.get(&k) != Some(&v));
        if missing {
            let patch = json!({ "metadata": { "labels": node_labels(name) } });
            client.merge_patch::<Node>("", name, &patch).await?;
        }
    }
    let uid = existing.metadata.uid().to_owned();
    node_uid.send_if_modified(|known| {
        let changed = known.as_deref() != Some(uid.as_str());
        *known = Some(uid.clone());
        changed
    });

    let status = node_status(params, previous.as_ref(), Time::now());
    let patch = json!({ "status": status });
    client.merge_patch_status::<Node>("", name, &patch).await?;
    *previous = Some(status);

    if let Err(error) = renew_lease(client, name, &uid).await {
        tracing::debug!(node = name, %error, "renewing the node lease failed");
    }
    Ok(())
}

async fn renew_lease(client: &Client, node: &str, node_uid: &str) -> crate::client::Result<()> {
    let now = MicroTime::now();
    match client.get_opt::<Lease>(LEASE_NAMESPACE, node).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_default();
            spec.holder_identity = Some(node.to_owned());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            spec.renew_time = Some(now);
            client.replace(&lease).await?;
        }
        None => {
            let mut lease = Lease::new(LEASE_NAMESPACE, node);
            lease.metadata.owner_references = vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_owned(),
                uid: node_uid.to_owned(),
                controller: None,
                block_owner_deletion: None,
            }];
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(node.to_owned()),
                lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                renew_time: Some(now),
                ..Default::default()
            });
            client.create(&lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn params() -> NodeParams {
        NodeParams {
            name: "node-a".into(),
            address: "10.0.0.1".into(),
            agent_port: 10250,
            runtime_version: "docker://20.10.24".into(),
            host: HostInfo {
                cpus: 2,
                memory_kib: 4_000_000,
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel_version: "6.1.0".into(),
                machine_id: "m1".into(),
                boot_id: "b1".into(),
                system_uuid: "m1".into(),
            },
        }
    }

    fn at(seconds: i64) -> Time {
        Time(DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap())
    }

    #[test]
    fn host_facts_are_parsed_from_proc_and_os_release() {
        let meminfo = "MemTotal:        4028436 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total_kib(meminfo), Some(4_028_436));
        let release = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let host = HostInfo::read();
        assert!(host.cpus >= 1);
    }

    #[test]
    fn the_node_status_reports_ready_capacity_and_its_agent_port() {
        let status = node_status(&params(), None, at(0));
        let ready = status.condition("Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        assert_eq!(status.condition("MemoryPressure").unwrap().status, "False");
        assert_eq!(status.capacity["cpu"].as_str(), "2");
        assert_eq!(status.capacity["memory"].as_str(), "4000000Ki");
        assert_eq!(status.allocatable["pods"].as_str(), "110");
        assert_eq!(status.addresses[0].type_, "InternalIP");
        assert_eq!(status.addresses[0].address, "10.0.0.1");
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        let info = status.node_info.unwrap();
        assert_eq!(info.kubelet_version, crate::COXSWAIN_VERSION);
        assert_eq!(info.container_runtime_version, "docker://20.10.24");
        assert_eq!(info.operating_system, "linux");
    }

    #[test]
    fn heartbeats_move_but_transition_times_stay() {
        let first = node_status(&params(), None, at(0));
        let second = node_status(&params(), Some(&first), at(10));
        let ready = second.condition("Ready").unwrap();
        assert_eq!(ready.last_heartbeat_time, Some(at(10)));
        assert_eq!(ready.last_transition_time, Some(at(0)));
    }
}
