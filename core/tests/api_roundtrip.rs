//! The judge of `coxswain_core::api`: our JSON must be the JSON Kubernetes
//! writes. For realistic objects of every kind we serve, our serialisation is
//! read by `k8s-openapi`'s type for the same kind and written again, and the
//! two JSON values must be equal; then the same in reverse, starting from a
//! `k8s-openapi` object. A few JSON details are asserted directly:
//! timestamp formats, quantities as strings, empty maps and lists omitted.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use coxswain_core::api::quantity::{IntOrString, Quantity};
use coxswain_core::api::{
    Binding, Container, ContainerPort, ContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, DaemonEndpoint, Deployment,
    DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    EmptyDirVolumeSource, EnvVar, Event, EventSource, HostIP, HostPathVolumeSource, LabelSelector,
    LabelSelectorRequirement, Lease, LeaseSpec, List, ListMeta, MicroTime, Namespace,
    NamespaceSpec, NamespaceStatus, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo, ObjectMeta, ObjectReference, OwnerReference, Pod,
    PodCondition, PodIP, PodSpec, PodStatus, PodTemplateSpec, ReplicaSet, ReplicaSetCondition,
    ReplicaSetSpec, ReplicaSetStatus, ResourceRequirements, RollingUpdateDeployment, Scale,
    ScaleSpec, ScaleStatus, Taint, Time, Toleration, Volume, VolumeMount,
};

use k8s_openapi::api::apps::v1 as k_apps;
use k8s_openapi::api::autoscaling::v1 as k_autoscaling;
use k8s_openapi::api::coordination::v1 as k_coordination;
use k8s_openapi::api::core::v1 as k_core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as k_meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as KIntOrString;
use k8s_openapi::jiff::Timestamp;

/// Ours → JSON → theirs → JSON: both JSON values equal, and the JSON reads
/// back into an equal value of ours. Returns our JSON for further checks.
fn judge<Ours, Theirs>(ours: &Ours) -> Value
where
    Ours: Serialize + DeserializeOwned + PartialEq + Debug,
    Theirs: Serialize + DeserializeOwned,
{
    let our_json = serde_json::to_value(ours).unwrap();
    let theirs: Theirs = serde_json::from_value(our_json.clone())
        .unwrap_or_else(|e| panic!("k8s-openapi rejects our JSON: {e}\n{our_json:#}"));
    let their_json = serde_json::to_value(&theirs).unwrap();
    assert_json_eq(&our_json, &their_json);

    let back: Ours = serde_json::from_value(their_json).unwrap();
    assert_eq!(&back, ours);
    our_json
}

/// Theirs → JSON → ours → JSON: both JSON values equal.
fn judge_reverse<Theirs, Ours>(theirs: &Theirs)
where
    Theirs: Serialize,
    Ours: Serialize + DeserializeOwned,
{
    let their_json = serde_json::to_value(theirs).unwrap();
    let ours: Ours = serde_json::from_value(their_json.clone())
        .unwrap_or_else(|e| panic!("we reject k8s-openapi's JSON: {e}\n{their_json:#}"));
    let our_json = serde_json::to_value(&ours).unwrap();
    assert_json_eq(&their_json, &our_json);
}

fn assert_json_eq(left: &Value, right: &Value) {
    assert!(
        left == right,
        "JSON differs\n--- left\n{left:#}\n--- right\n{right:#}\n--- first difference: {}",
        first_difference(left, right, String::new())
    );
}

/// The path of the first place two JSON values differ, for readable failures.
fn first_difference(left: &Value, right: &Value, path: String) -> String {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let keys: std::collections::BTreeSet<_> = l.keys().chain(r.keys()).collect();
            for key in keys {
                match (l.get(key), r.get(key)) {
                    (Some(a), Some(b)) if a == b => {}
                    (Some(a), Some(b)) => return first_difference(a, b, format!("{path}.{key}")),
                    (a, b) => return format!("{path}.{key}: {a:?} vs {b:?}"),
                }
            }
            path
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                if a != b {
                    return first_difference(a, b, format!("{path}[{i}]"));
                }
            }
            path
        }
        _ => format!("{path}: {left} vs {right}"),
    }
}

fn time(text: &str) -> Time {
    Time(
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc),
    )
}

fn micro_time(text: &str) -> MicroTime {
    MicroTime(
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc),
    )
}

fn k_time(text: &str) -> k_meta::Time {
    k_meta::Time(text.parse::<Timestamp>().unwrap())
}

fn k_micro_time(text: &str) -> k_meta::MicroTime {
    k_meta::MicroTime(text.parse::<Timestamp>().unwrap())
}

fn map<V: From<&'static str>>(pairs: &[(&'static str, &'static str)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), V::from(*v)))
        .collect()
}

fn quantities(pairs: &[(&'static str, &'static str)]) -> BTreeMap<String, Quantity> {
    map(pairs)
}

fn k_quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, KQuantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), KQuantity(v.to_string())))
        .collect()
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: (!namespace.is_empty()).then(|| namespace.into()),
        uid: Some("0b6d1c3e-6f43-4a8e-9a57-1f0e2b9c4d11".into()),
        resource_version: Some("4711".into()),
        creation_timestamp: Some(time("2026-12-04T15:29:42Z")),
        ..Default::default()
    }
}

fn condition_time() -> Option<Time> {
    Some(time("2026-12-04T15:30:01Z"))
}

fn web_container() -> Container {
    Container {
        name: "web".into(),
        image: Some("nginx:1.27".into()),
        ports: vec![ContainerPort {
            name: Some("http".into()),
            container_port: 80,
            protocol: Some("TCP".into()),
            ..Default::default()
        }],
        env: vec![
            EnvVar {
                name: "MODE".into(),
                value: Some("prod".into()),
                value_from: None,
            },
            EnvVar {
                name: "POD_IP".into(),
                value: None,
                value_from: Some(json!({"fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": "status.podIP"}})),
            },
        ],
        resources: Some(ResourceRequirements {
            requests: quantities(&[("cpu", "100m"), ("memory", "128Mi")]),
            limits: quantities(&[("cpu", "1"), ("memory", "1Gi")]),
            claims: vec![],
        }),
        volume_mounts: vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/usr/share/nginx/html".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "kube-api-access-x7k2p".into(),
                mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ],
        liveness_probe: Some(json!({
            "httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
            "initialDelaySeconds": 3, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3
        })),
        readiness_probe: Some(json!({"tcpSocket": {"port": "http"}, "periodSeconds": 5})),
        startup_probe: Some(json!({"exec": {"command": ["cat", "/tmp/ready"]}})),
        lifecycle: Some(json!({"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}})),
        security_context: Some(json!({"allowPrivilegeEscalation": false,
                                      "capabilities": {"drop": ["ALL"]}})),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("File".into()),
        image_pull_policy: Some("IfNotPresent".into()),
        ..Default::default()
    }
}

fn sidecar_container() -> Container {
    Container {
        name: "log-shipper".into(),
        image: Some("busybox:1.36".into()),
        command: vec!["sh".into(), "-c".into()],
        args: vec!["tail -F /var/log/app.log".into()],
        working_dir: Some("/var/log".into()),
        env_from: vec![json!({"configMapRef": {"name": "shipper"}, "prefix": "SHIP_"})],
        stdin: Some(true),
        tty: Some(true),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        image_pull_policy: Some("Always".into()),
        ..Default::default()
    }
}

fn pod_spec() -> PodSpec {
    PodSpec {
        volumes: vec![
            Volume {
                name: "data".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/srv/www".into(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            },
            Volume {
                name: "cache".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some("64Mi".into()),
                    mode: None,
                }),
                ..Default::default()
            },
            Volume {
                name: "kube-api-access-x7k2p".into(),
                other: BTreeMap::from([(
                    "projected".to_string(),
                    json!({"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt",
                                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                    ]}),
                )]),
                ..Default::default()
            },
        ],
        init_containers: vec![Container {
            name: "init-perms".into(),
            image: Some("busybox:1.36".into()),
            command: vec!["chown".into(), "-R".into(), "101".into(), "/data".into()],
            ..Default::default()
        }],
        containers: vec![web_container(), sidecar_container()],
        restart_policy: Some("Always".into()),
        termination_grace_period_seconds: Some(30),
        dns_policy: Some("ClusterFirst".into()),
        node_selector: map(&[("kubernetes.io/os", "linux")]),
        service_account_name: Some("default".into()),
        service_account: Some("default".into()),
        node_name: Some("node-1".into()),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        security_context: Some(json!({"runAsNonRoot": true, "fsGroup": 101})),
        hostname: Some("web-0".into()),
        subdomain: Some("web".into()),
        affinity: Some(json!({"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"app": "web"}}}
            }]
        }})),
        scheduler_name: Some("default-scheduler".into()),
        tolerations: vec![
            Toleration {
                key: Some("node.kubernetes.io/not-ready".into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            },
            Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("web".into()),
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            },
        ],
        priority: Some(0),
        enable_service_links: Some(true),
        preemption_policy: Some("PreemptLowerPriority".into()),
        ..Default::default()
    }
}

fn pod_status() -> PodStatus {
    let condition = |type_: &str| PodCondition {
        type_: type_.into(),
        status: "True".into(),
        last_transition_time: condition_time(),
        ..Default::default()
    };
    PodStatus {
        observed_generation: Some(1),
        phase: Some("Running".into()),
        conditions: vec![
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: condition_time(),
                reason: Some("ContainersNotReady".into()),
                message: Some("containers with unready status: [log-shipper]".into()),
                ..Default::default()
            },
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        host_ip: Some("192.168.49.2".into()),
        host_ips: vec![HostIP {
            ip: "192.168.49.2".into(),
        }],
        pod_ip: Some("10.244.0.12".into()),
        pod_ips: vec![
            PodIP {
                ip: "10.244.0.12".into(),
            },
            PodIP {
                ip: "fd00::c".into(),
            },
        ],
        start_time: Some(time("2026-12-04T15:29:43Z")),
        init_container_statuses: vec![ContainerStatus {
            name: "init-perms".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                    started_at: Some(time("2026-12-04T15:29:44Z")),
                    finished_at: Some(time("2026-12-04T15:29:45Z")),
                    container_id: Some("docker://1f2e3d".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            last_state: Some(ContainerState::default()),
            ready: true,
            restart_count: 0,
            image: "busybox:1.36".into(),
            image_id: "docker-pullable://busybox@sha256:9ae97d36".into(),
            container_id: Some("docker://1f2e3d".into()),
            started: Some(false),
            ..Default::default()
        }],
        container_statuses: vec![
            ContainerStatus {
                name: "web".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(time("2026-12-04T15:31:10Z")),
                    }),
                    ..Default::default()
                }),
                last_state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        signal: Some(9),
                        reason: Some("OOMKilled".into()),
                        message: Some("out of memory".into()),
                        started_at: Some(time("2026-12-04T15:29:46Z")),
                        finished_at: Some(time("2026-12-04T15:31:09Z")),
                        container_id: Some("docker://aa11bb".into()),
                    }),
                    ..Default::default()
                }),
                ready: true,
                restart_count: 1,
                image: "nginx:1.27".into(),
                image_id: "docker-pullable://nginx@sha256:5f0574409b3add89".into(),
                container_id: Some("docker://cc22dd".into()),
                started: Some(true),
                volume_mounts: vec![json!({"name": "data", "mountPath": "/usr/share/nginx/html",
                                           "readOnly": true, "recursiveReadOnly": "Disabled"})],
                ..Default::default()
            },
            ContainerStatus {
                name: "log-shipper".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some("back-off 40s restarting failed container".into()),
                    }),
                    ..Default::default()
                }),
                last_state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 1,
                        reason: Some("Error".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ready: false,
                restart_count: 3,
                image: "busybox:1.36".into(),
                image_id: "docker-pullable://busybox@sha256:9ae97d36".into(),
                container_id: Some("docker://ee33ff".into()),
                started: Some(false),
                ..Default::default()
            },
        ],
        qos_class: Some("Burstable".into()),
        ..Default::default()
    }
}

fn full_pod() -> Pod {
    let mut pod = Pod::new("default", "web-7d4b9c5f8-x2x9q");
    pod.metadata = ObjectMeta {
        generate_name: Some("web-7d4b9c5f8-".into()),
        labels: map(&[("app", "web"), ("pod-template-hash", "7d4b9c5f8")]),
        annotations: map(&[("kubectl.kubernetes.io/restartedAt", "2026-12-04T15:00:00Z")]),
        owner_references: vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-7d4b9c5f8".into(),
            uid: "5c1a3f0e-1111-4c2b-8d3e-2a9b7c6d5e4f".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }],
        ..meta("default", "web-7d4b9c5f8-x2x9q")
    };
    pod.spec = Some(pod_spec());
    pod.status = Some(pod_status());
    pod
}

#[test]
fn a_pod_as_the_kubelet_reports_it_round_trips_through_k8s_openapi() {
    let json = judge::<Pod, k_core::Pod>(&full_pod());

    assert_eq!(
        json["metadata"]["creationTimestamp"],
        "2026-12-04T15:29:42Z"
    );
    assert_eq!(json["status"]["startTime"], "2026-12-04T15:29:43Z");
    let web = &json["spec"]["containers"][0];
    assert_eq!(
        web["resources"]["requests"],
        json!({"cpu": "100m", "memory": "128Mi"})
    );
    assert_eq!(web["resources"]["limits"]["cpu"], json!("1"));
    assert_eq!(
        web["ports"][0],
        json!({"name": "http", "containerPort": 80, "protocol": "TCP"})
    );
    assert_eq!(json["status"]["podIPs"][1], json!({"ip": "fd00::c"}));
    assert_eq!(json["status"]["hostIP"], "192.168.49.2");
    let init = &json["status"]["initContainerStatuses"][0];
    assert_eq!(init["lastState"], json!({}));
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    assert_eq!(
        json["status"]["containerStatuses"][1]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert!(
        json["status"]["conditions"][0]
            .get("lastProbeTime")
            .is_none()
    );
}

#[test]
fn empty_maps_lists_and_unset_fields_are_omitted() {
    let mut pod = Pod::new("default", "bare");
    pod.spec = Some(PodSpec {
        containers: vec![Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    let json = judge::<Pod, k_core::Pod>(&pod);
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        })
    );

    let empty_list: List<Pod> = List {
        api_version: "v1".into(),
        kind: "PodList".into(),
        metadata: ListMeta {
            resource_version: Some("12".into()),
            ..Default::default()
        },
        items: vec![],
    };
    let json = serde_json::to_value(&empty_list).unwrap();
    assert_eq!(json["items"], json!([]));
    let theirs: k8s_openapi::List<k_core::Pod> = serde_json::from_value(json.clone()).unwrap();
    assert_json_eq(&serde_json::to_value(&theirs).unwrap(), &json);
}

#[test]
fn a_list_of_pods_round_trips_through_k8s_openapi() {
    let list: List<Pod> = List {
        api_version: "v1".into(),
        kind: "PodList".into(),
        metadata: ListMeta {
            resource_version: Some("99".into()),
            continue_: Some("eyJydiI6OTl9".into()),
            remaining_item_count: Some(3),
        },
        items: vec![full_pod(), Pod::new("default", "other")],
    };
    judge::<List<Pod>, k8s_openapi::List<k_core::Pod>>(&list);
}

fn full_node() -> Node {
    let mut node = Node::new("node-1");
    node.metadata = ObjectMeta {
        labels: map(&[
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/hostname", "node-1"),
            ("node-role.kubernetes.io/control-plane", ""),
        ]),
        annotations: map(&[("node.alpha.kubernetes.io/ttl", "0")]),
        ..meta("", "node-1")
    };
    node.spec = Some(NodeSpec {
        pod_cidr: Some("10.244.0.0/24".into()),
        pod_cidrs: vec!["10.244.0.0/24".into(), "fd00::/64".into()],
        provider_id: Some("coxswain://node-1".into()),
        unschedulable: Some(true),
        taints: vec![
            Taint {
                key: "node-role.kubernetes.io/control-plane".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            },
            Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                value: Some("true".into()),
                effect: "NoSchedule".into(),
                time_added: Some(time("2026-12-04T16:00:00Z")),
            },
        ],
        ..Default::default()
    });
    let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        last_heartbeat_time: Some(time("2026-12-04T16:05:12Z")),
        last_transition_time: condition_time(),
        reason: Some(reason.into()),
        message: Some(format!("kubelet reports {reason}")),
    };
    let capacity = quantities(&[
        ("cpu", "4"),
        ("ephemeral-storage", "102626232Ki"),
        ("hugepages-2Mi", "0"),
        ("memory", "16318044Ki"),
        ("pods", "110"),
    ]);
    let mut allocatable = capacity.clone();
    allocatable.insert("cpu".into(), "3800m".into());
    allocatable.insert("memory".into(), "15Gi".into());
    node.status = Some(NodeStatus {
        capacity,
        allocatable,
        conditions: vec![
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: "192.168.49.2".into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: "node-1".into(),
            },
        ],
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: "b2c5d6e7f8a94b0c8d1e2f3a4b5c6d7e".into(),
            system_uuid: "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".into(),
            boot_id: "0f9e8d7c-6b5a-4938-2716-05f4e3d2c1b0".into(),
            kernel_version: "6.8.0-49-generic".into(),
            os_image: "Ubuntu 24.04.1 LTS".into(),
            container_runtime_version: "docker://27.3.1".into(),
            kubelet_version: "v1.34.0-coxswain".into(),
            kube_proxy_version: "".into(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            swap: Some(json!({"capacity": 0})),
            running_in_user_namespace: None,
        }),
        images: vec![
            json!({"names": ["nginx@sha256:5f0574409b3add89", "nginx:1.27"],
                            "sizeBytes": 191_670_474}),
        ],
        ..Default::default()
    });
    node
}

#[test]
fn a_node_with_capacity_conditions_and_node_info_round_trips() {
    let json = judge::<Node, k_core::Node>(&full_node());
    assert_eq!(json["status"]["capacity"]["memory"], "16318044Ki");
    assert_eq!(json["status"]["allocatable"]["cpu"], "3800m");
    assert_eq!(
        json["status"]["daemonEndpoints"],
        json!({"kubeletEndpoint": {"Port": 10250}})
    );
    assert_eq!(json["status"]["nodeInfo"]["kubeProxyVersion"], "");
    assert_eq!(
        json["status"]["nodeInfo"]["bootID"],
        "0f9e8d7c-6b5a-4938-2716-05f4e3d2c1b0"
    );
    assert_eq!(json["spec"]["podCIDRs"][1], "fd00::/64");
    assert!(json["spec"]["taints"][0].get("timeAdded").is_none());
    assert_eq!(
        json["spec"]["taints"][1]["timeAdded"],
        "2026-12-04T16:00:00Z"
    );
    assert!(json["metadata"].get("namespace").is_none());
}

fn template() -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: ObjectMeta {
            labels: map(&[("app", "web")]),
            annotations: map(&[("prometheus.io/scrape", "true")]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![web_container()],
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(30),
            dns_policy: Some("ClusterFirst".into()),
            scheduler_name: Some("default-scheduler".into()),
            security_context: Some(json!({})),
            ..Default::default()
        }),
    }
}

fn web_selector() -> LabelSelector {
    LabelSelector {
        match_labels: map(&[("app", "web")]),
        match_expressions: vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: vec!["batch".into()],
        }],
    }
}

#[test]
fn a_deployment_with_status_and_conditions_round_trips() {
    let mut deployment = Deployment::new("default", "web");
    deployment.metadata = ObjectMeta {
        generation: Some(2),
        annotations: map(&[("deployment.kubernetes.io/revision", "2")]),
        ..meta("default", "web")
    };
    deployment.spec = Some(DeploymentSpec {
        replicas: Some(3),
        selector: web_selector(),
        template: template(),
        strategy: Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".into())),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }),
        min_ready_seconds: Some(5),
        revision_history_limit: Some(10),
        paused: Some(false),
        progress_deadline_seconds: Some(600),
    });
    let condition = |type_: &str, reason: &str| DeploymentCondition {
        type_: type_.into(),
        status: "True".into(),
        last_update_time: Some(time("2026-12-04T15:31:12Z")),
        last_transition_time: condition_time(),
        reason: Some(reason.into()),
        message: Some(format!("deployment {reason}")),
    };
    deployment.status = Some(DeploymentStatus {
        observed_generation: Some(2),
        replicas: Some(3),
        updated_replicas: Some(3),
        ready_replicas: Some(3),
        available_replicas: Some(3),
        unavailable_replicas: None,
        terminating_replicas: Some(1),
        conditions: vec![
            condition("Available", "MinimumReplicasAvailable"),
            condition("Progressing", "NewReplicaSetAvailable"),
        ],
        collision_count: Some(1),
    });

    let json = judge::<Deployment, k_apps::Deployment>(&deployment);
    assert_eq!(
        json["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": "25%",
                                                                 "maxUnavailable": 0})
    );
    assert_eq!(
        json["status"]["conditions"][1]["lastUpdateTime"],
        "2026-12-04T15:31:12Z"
    );
    assert_eq!(
        json["spec"]["template"]["spec"]["securityContext"],
        json!({})
    );
}

#[test]
fn a_replica_set_with_status_and_conditions_round_trips() {
    let mut replica_set = ReplicaSet::new("default", "web-7d4b9c5f8");
    replica_set.metadata = ObjectMeta {
        labels: map(&[("app", "web"), ("pod-template-hash", "7d4b9c5f8")]),
        owner_references: vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "0b6d1c3e-6f43-4a8e-9a57-1f0e2b9c4d11".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }],
        generation: Some(1),
        ..meta("default", "web-7d4b9c5f8")
    };
    replica_set.spec = Some(ReplicaSetSpec {
        replicas: Some(3),
        min_ready_seconds: Some(0),
        selector: web_selector(),
        template: Some(template()),
    });
    replica_set.status = Some(ReplicaSetStatus {
        replicas: 2,
        fully_labeled_replicas: Some(2),
        ready_replicas: Some(1),
        available_replicas: Some(1),
        terminating_replicas: None,
        observed_generation: Some(1),
        conditions: vec![ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            last_transition_time: condition_time(),
            reason: Some("FailedCreate".into()),
            message: Some("pods \"web-7d4b9c5f8-abcde\" is forbidden: exceeded quota".into()),
        }],
    });
    let json = judge::<ReplicaSet, k_apps::ReplicaSet>(&replica_set);
    assert_eq!(json["status"]["replicas"], 2);

    let scaled_to_zero = ReplicaSet {
        status: Some(ReplicaSetStatus::default()),
        ..replica_set
    };
    let json = judge::<ReplicaSet, k_apps::ReplicaSet>(&scaled_to_zero);
    assert_eq!(json["status"], json!({"replicas": 0}));
}

#[test]
fn a_namespace_round_trips() {
    let mut namespace = Namespace::new("team-a");
    namespace.metadata = ObjectMeta {
        labels: map(&[("kubernetes.io/metadata.name", "team-a")]),
        ..meta("", "team-a")
    };
    namespace.spec = Some(NamespaceSpec {
        finalizers: vec!["kubernetes".into()],
    });
    namespace.status = Some(NamespaceStatus {
        phase: Some("Active".into()),
        conditions: vec![],
    });
    let json = judge::<Namespace, k_core::Namespace>(&namespace);
    assert_eq!(json["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(json["status"], json!({"phase": "Active"}));
}

#[test]
fn an_event_round_trips_with_seconds_and_microsecond_times() {
    let mut event = Event::new("default", "web-7d4b9c5f8-x2x9q.180e0a1b2c3d4e5f");
    event.metadata = meta("default", "web-7d4b9c5f8-x2x9q.180e0a1b2c3d4e5f");
    event.involved_object = ObjectReference {
        kind: Some("Pod".into()),
        namespace: Some("default".into()),
        name: Some("web-7d4b9c5f8-x2x9q".into()),
        uid: Some("5c1a3f0e-1111-4c2b-8d3e-2a9b7c6d5e4f".into()),
        api_version: Some("v1".into()),
        resource_version: Some("4700".into()),
        field_path: Some("spec.containers{web}".into()),
    };
    event.reason = Some("Pulled".into());
    event.message = Some("Container image \"nginx:1.27\" already present on machine".into());
    event.source = Some(EventSource {
        component: Some("kubelet".into()),
        host: Some("node-1".into()),
    });
    event.first_timestamp = Some(time("2026-12-04T15:29:42Z"));
    event.last_timestamp = Some(time("2026-12-04T15:31:09Z"));
    event.count = Some(2);
    event.type_ = Some("Normal".into());
    event.event_time = Some(micro_time("2026-12-04T15:29:42.123456Z"));
    event.series = Some(json!({"count": 2, "lastObservedTime": "2026-12-04T15:31:09.000001Z"}));
    event.action = Some("Pulling".into());
    event.related = Some(ObjectReference {
        kind: Some("Node".into()),
        name: Some("node-1".into()),
        ..Default::default()
    });
    event.reporting_component = Some("kubelet".into());
    event.reporting_instance = Some("node-1".into());

    let json = judge::<Event, k_core::Event>(&event);
    assert_eq!(json["eventTime"], "2026-12-04T15:29:42.123456Z");
    assert_eq!(json["firstTimestamp"], "2026-12-04T15:29:42Z");
    assert_eq!(json["type"], "Normal");
}

#[test]
fn a_lease_round_trips_with_microsecond_times() {
    let mut lease = Lease::new("kube-node-lease", "node-1");
    lease.metadata = ObjectMeta {
        owner_references: vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: "node-1".into(),
            uid: "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".into(),
            ..Default::default()
        }],
        ..meta("kube-node-lease", "node-1")
    };
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("node-1".into()),
        lease_duration_seconds: Some(40),
        acquire_time: Some(micro_time("2026-12-04T15:29:42.000000Z")),
        renew_time: Some(micro_time("2026-12-04T16:05:12.654321Z")),
        lease_transitions: Some(2),
        strategy: None,
        preferred_holder: None,
    });
    let json = judge::<Lease, k_coordination::Lease>(&lease);
    assert_eq!(json["spec"]["acquireTime"], "2026-12-04T15:29:42.000000Z");
    assert_eq!(json["spec"]["renewTime"], "2026-12-04T16:05:12.654321Z");
}

#[test]
fn a_binding_round_trips() {
    let mut binding = Binding::new("default", "web-7d4b9c5f8-x2x9q", "node-1");
    binding.metadata.uid = Some("5c1a3f0e-1111-4c2b-8d3e-2a9b7c6d5e4f".into());
    let json = judge::<Binding, k_core::Binding>(&binding);
    assert_eq!(
        json["target"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "node-1"})
    );
}

#[test]
fn a_scale_round_trips() {
    let mut scale = Scale::new("default", "web");
    scale.metadata = meta("default", "web");
    scale.spec = Some(ScaleSpec { replicas: Some(5) });
    scale.status = Some(ScaleStatus {
        replicas: 3,
        selector: "app=web,tier notin (batch)".into(),
    });
    judge::<Scale, k_autoscaling::Scale>(&scale);

    scale.status = Some(ScaleStatus::default());
    let json = judge::<Scale, k_autoscaling::Scale>(&scale);
    assert_eq!(json["status"], json!({"replicas": 0}));
}

fn k_meta_named(namespace: Option<&str>, name: &str) -> k_meta::ObjectMeta {
    k_meta::ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        uid: Some("9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a".into()),
        resource_version: Some("77".into()),
        generation: Some(4),
        creation_timestamp: Some(k_time("2026-12-04T15:29:42Z")),
        deletion_timestamp: Some(k_time("2026-12-04T17:00:00Z")),
        deletion_grace_period_seconds: Some(30),
        labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
        finalizers: Some(vec!["example.com/cleanup".into()]),
        ..Default::default()
    }
}

fn k_container() -> k_core::Container {
    k_core::Container {
        name: "web".into(),
        image: Some("nginx:1.27".into()),
        command: Some(vec!["nginx".into()]),
        args: Some(vec!["-g".into(), "daemon off;".into()]),
        working_dir: Some("/srv".into()),
        ports: Some(vec![k_core::ContainerPort {
            container_port: 8080,
            host_port: Some(80),
            host_ip: Some("0.0.0.0".into()),
            name: Some("http".into()),
            protocol: Some("TCP".into()),
        }]),
        env: Some(vec![k_core::EnvVar {
            name: "NODE".into(),
            value_from: Some(k_core::EnvVarSource {
                field_ref: Some(k_core::ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    api_version: Some("v1".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        env_from: Some(vec![k_core::EnvFromSource {
            secret_ref: Some(k_core::SecretEnvSource {
                name: "creds".into(),
                optional: Some(true),
            }),
            ..Default::default()
        }]),
        resources: Some(k_core::ResourceRequirements {
            requests: Some(k_quantities(&[("cpu", "250m"), ("memory", "64Mi")])),
            limits: Some(k_quantities(&[("memory", "1G")])),
            ..Default::default()
        }),
        volume_mounts: Some(vec![k_core::VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            sub_path: Some("web".into()),
            mount_propagation: Some("HostToContainer".into()),
            ..Default::default()
        }]),
        liveness_probe: Some(k_core::Probe {
            http_get: Some(k_core::HTTPGetAction {
                path: Some("/healthz".into()),
                port: KIntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        security_context: Some(k_core::SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            ..Default::default()
        }),
        image_pull_policy: Some("Never".into()),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("File".into()),
        stdin: Some(false),
        tty: Some(true),
        ..Default::default()
    }
}

fn k_pod_spec() -> k_core::PodSpec {
    k_core::PodSpec {
        containers: vec![k_container()],
        init_containers: Some(vec![k_core::Container {
            name: "init".into(),
            image: Some("busybox".into()),
            restart_policy: Some("Always".into()),
            ..Default::default()
        }]),
        volumes: Some(vec![
            k_core::Volume {
                name: "data".into(),
                host_path: Some(k_core::HostPathVolumeSource {
                    path: "/var/lib/web".into(),
                    type_: Some("Directory".into()),
                }),
                ..Default::default()
            },
            k_core::Volume {
                name: "tmp".into(),
                empty_dir: Some(k_core::EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            k_core::Volume {
                name: "cfg".into(),
                config_map: Some(k_core::ConfigMapVolumeSource {
                    name: "web-config".into(),
                    default_mode: Some(0o644),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        restart_policy: Some("OnFailure".into()),
        termination_grace_period_seconds: Some(5),
        active_deadline_seconds: Some(3600),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        node_name: Some("node-2".into()),
        node_selector: Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())])),
        service_account_name: Some("builder".into()),
        automount_service_account_token: Some(false),
        host_network: Some(true),
        host_pid: Some(true),
        host_ipc: Some(true),
        hostname: Some("k8s-master".into()),
        subdomain: Some("etcd".into()),
        scheduler_name: Some("coxswain-scheduler".into()),
        priority: Some(2_000_001_000),
        priority_class_name: Some("system-node-critical".into()),
        tolerations: Some(vec![k_core::Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        affinity: Some(k_core::Affinity {
            node_affinity: Some(k_core::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(k_core::NodeSelector {
                    node_selector_terms: vec![k_core::NodeSelectorTerm {
                        match_expressions: Some(vec![k_core::NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["a".into()]),
                        }]),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(k_core::PodSecurityContext {
            run_as_non_root: Some(false),
            ..Default::default()
        }),
        enable_service_links: Some(false),
        preemption_policy: Some("Never".into()),
        overhead: Some(k_quantities(&[("cpu", "10m")])),
        set_hostname_as_fqdn: Some(true),
        share_process_namespace: Some(true),
        runtime_class_name: Some("runc".into()),
        ..Default::default()
    }
}

#[test]
fn a_k8s_openapi_pod_reads_and_writes_back_identically() {
    let pod = k_core::Pod {
        metadata: k_meta_named(Some("kube-system"), "etcd-k8s-master"),
        spec: Some(k_pod_spec()),
        status: Some(k_core::PodStatus {
            phase: Some("Failed".into()),
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: memory.".into()),
            nominated_node_name: Some("node-3".into()),
            host_ip: Some("10.0.0.2".into()),
            host_ips: Some(vec![k_core::HostIP {
                ip: "10.0.0.2".into(),
            }]),
            pod_ip: Some("10.0.0.2".into()),
            pod_ips: Some(vec![k_core::PodIP {
                ip: "10.0.0.2".into(),
            }]),
            start_time: Some(k_time("2026-12-04T15:29:43Z")),
            qos_class: Some("Guaranteed".into()),
            conditions: Some(vec![k_core::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                last_probe_time: Some(k_time("2026-12-04T15:40:00Z")),
                last_transition_time: Some(k_time("2026-12-04T15:40:01Z")),
                reason: Some("TerminationByKubelet".into()),
                message: Some("evicted".into()),
                observed_generation: Some(4),
            }]),
            container_statuses: Some(vec![k_core::ContainerStatus {
                name: "web".into(),
                image: "nginx:1.27".into(),
                image_id: "docker-pullable://nginx@sha256:abc".into(),
                ready: false,
                restart_count: 7,
                started: Some(false),
                container_id: Some("docker://dead".into()),
                state: Some(k_core::ContainerState {
                    terminated: Some(k_core::ContainerStateTerminated {
                        exit_code: 143,
                        signal: Some(15),
                        reason: Some("Error".into()),
                        started_at: Some(k_time("2026-12-04T15:29:44Z")),
                        finished_at: Some(k_time("2026-12-04T15:40:02Z")),
                        container_id: Some("docker://dead".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                last_state: Some(k_core::ContainerState {
                    running: Some(k_core::ContainerStateRunning {
                        started_at: Some(k_time("2026-12-04T15:20:00Z")),
                    }),
                    ..Default::default()
                }),
                allocated_resources: Some(k_quantities(&[("cpu", "250m")])),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    judge_reverse::<k_core::Pod, Pod>(&pod);
}

#[test]
fn a_k8s_openapi_node_reads_and_writes_back_identically() {
    let node = k_core::Node {
        metadata: k_meta_named(None, "node-2"),
        spec: Some(k_core::NodeSpec {
            pod_cidr: Some("10.244.1.0/24".into()),
            pod_cidrs: Some(vec!["10.244.1.0/24".into()]),
            unschedulable: Some(true),
            taints: Some(vec![k_core::Taint {
                key: "node.kubernetes.io/unreachable".into(),
                effect: "NoExecute".into(),
                time_added: Some(k_time("2026-12-04T16:00:00Z")),
                value: None,
            }]),
            provider_id: Some("coxswain://node-2".into()),
            ..Default::default()
        }),
        status: Some(k_core::NodeStatus {
            capacity: Some(k_quantities(&[
                ("cpu", "8"),
                ("memory", "32Gi"),
                ("pods", "250"),
            ])),
            allocatable: Some(k_quantities(&[("cpu", "7500m"), ("memory", "30Gi")])),
            conditions: Some(vec![k_core::NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(k_time("2026-12-04T15:59:00Z")),
                last_transition_time: Some(k_time("2026-12-04T16:00:00Z")),
                reason: Some("NodeStatusUnknown".into()),
                message: Some("Kubelet stopped posting node status.".into()),
            }]),
            addresses: Some(vec![k_core::NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.3".into(),
            }]),
            daemon_endpoints: Some(k_core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(k_core::DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(k_core::NodeSystemInfo {
                architecture: "arm64".into(),
                boot_id: "b".into(),
                container_runtime_version: "docker://27.3.1".into(),
                kernel_version: "6.8.0".into(),
                kube_proxy_version: "v1.34.0".into(),
                kubelet_version: "v1.34.0".into(),
                machine_id: "m".into(),
                operating_system: "linux".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                system_uuid: "s".into(),
                swap: Some(k_core::NodeSwapStatus {
                    capacity: Some(1 << 30),
                }),
                ..Default::default()
            }),
            images: Some(vec![k_core::ContainerImage {
                names: Some(vec!["busybox:1.36".into()]),
                size_bytes: Some(4_261_550),
            }]),
            volumes_in_use: Some(vec!["kubernetes.io/csi/data".into()]),
            ..Default::default()
        }),
    };
    judge_reverse::<k_core::Node, Node>(&node);
}

#[test]
fn k8s_openapi_workloads_read_and_write_back_identically() {
    let template = k_core::PodTemplateSpec {
        metadata: Some(k_meta::ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        }),
        spec: Some(k_pod_spec()),
    };
    let selector = k_meta::LabelSelector {
        match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
        match_expressions: Some(vec![k_meta::LabelSelectorRequirement {
            key: "track".into(),
            operator: "Exists".into(),
            values: None,
        }]),
    };
    let deployment = k_apps::Deployment {
        metadata: k_meta_named(Some("default"), "web"),
        spec: k_apps::DeploymentSpec {
            replicas: Some(0),
            selector: selector.clone(),
            template: template.clone(),
            strategy: Some(k_apps::DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(k_apps::RollingUpdateDeployment {
                    max_surge: Some(KIntOrString::Int(2)),
                    max_unavailable: Some(KIntOrString::String("10%".into())),
                }),
            }),
            min_ready_seconds: Some(10),
            paused: Some(true),
            progress_deadline_seconds: Some(120),
            revision_history_limit: Some(2),
        },
        status: Some(k_apps::DeploymentStatus {
            observed_generation: Some(4),
            replicas: Some(1),
            updated_replicas: Some(1),
            unavailable_replicas: Some(1),
            collision_count: Some(2),
            conditions: Some(vec![k_apps::DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("False".into()),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"web-1\" has timed out progressing.".into()),
                last_update_time: Some(k_time("2026-12-04T16:01:00Z")),
                last_transition_time: Some(k_time("2026-12-04T16:01:00Z")),
            }]),
            ..Default::default()
        }),
    };
    judge_reverse::<k_apps::Deployment, Deployment>(&deployment);

    let replica_set = k_apps::ReplicaSet {
        metadata: k_meta_named(Some("default"), "web-1"),
        spec: k_apps::ReplicaSetSpec {
            replicas: Some(2),
            min_ready_seconds: Some(3),
            selector,
            template: Some(template),
        },
        status: Some(k_apps::ReplicaSetStatus {
            replicas: 2,
            fully_labeled_replicas: Some(2),
            ready_replicas: Some(2),
            available_replicas: Some(2),
            terminating_replicas: Some(1),
            observed_generation: Some(4),
            conditions: Some(vec![k_apps::ReplicaSetCondition {
                type_: Some("ReplicaFailure".into()),
                status: Some("False".into()),
                last_transition_time: Some(k_time("2026-12-04T16:01:00Z")),
                ..Default::default()
            }]),
        }),
    };
    judge_reverse::<k_apps::ReplicaSet, ReplicaSet>(&replica_set);

    let scale = k_autoscaling::Scale {
        metadata: k_meta_named(Some("default"), "web"),
        spec: Some(k_autoscaling::ScaleSpec { replicas: Some(4) }),
        status: Some(k_autoscaling::ScaleStatus {
            replicas: 2,
            selector: Some("app=web,track".into()),
        }),
    };
    judge_reverse::<k_autoscaling::Scale, Scale>(&scale);
}

#[test]
fn k8s_openapi_cluster_objects_read_and_write_back_identically() {
    let namespace = k_core::Namespace {
        metadata: k_meta_named(None, "team-b"),
        spec: Some(k_core::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        }),
        status: Some(k_core::NamespaceStatus {
            phase: Some("Terminating".into()),
            conditions: Some(vec![k_core::NamespaceCondition {
                type_: "NamespaceDeletionContentFailure".into(),
                status: "False".into(),
                reason: Some("ContentDeleted".into()),
                last_transition_time: Some(k_time("2026-12-04T16:02:00Z")),
                ..Default::default()
            }]),
        }),
    };
    judge_reverse::<k_core::Namespace, Namespace>(&namespace);

    let event = k_core::Event {
        metadata: k_meta_named(Some("default"), "web.1"),
        involved_object: k_core::ObjectReference {
            kind: Some("Deployment".into()),
            api_version: Some("apps/v1".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            uid: Some("u".into()),
            ..Default::default()
        },
        reason: Some("ScalingReplicaSet".into()),
        message: Some("Scaled up replica set web-1 from 0 to 2".into()),
        source: Some(k_core::EventSource {
            component: Some("deployment-controller".into()),
            host: None,
        }),
        first_timestamp: Some(k_time("2026-12-04T16:00:00Z")),
        last_timestamp: Some(k_time("2026-12-04T16:00:00Z")),
        count: Some(1),
        type_: Some("Warning".into()),
        event_time: Some(k_micro_time("2026-12-04T16:00:00.000042Z")),
        series: Some(k_core::EventSeries {
            count: Some(3),
            last_observed_time: Some(k_micro_time("2026-12-04T16:00:05.500000Z")),
        }),
        action: Some("Scale".into()),
        reporting_component: Some("deployment-controller".into()),
        reporting_instance: Some("coxswain-0".into()),
        related: Some(k_core::ObjectReference {
            kind: Some("ReplicaSet".into()),
            name: Some("web-1".into()),
            ..Default::default()
        }),
    };
    judge_reverse::<k_core::Event, Event>(&event);

    let lease = k_coordination::Lease {
        metadata: k_meta_named(Some("kube-system"), "kube-scheduler"),
        spec: Some(k_coordination::LeaseSpec {
            holder_identity: Some("coxswain-0_1a2b".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(k_micro_time("2026-12-04T15:29:42.100000Z")),
            renew_time: Some(k_micro_time("2026-12-04T16:05:12.999999Z")),
            lease_transitions: Some(0),
            strategy: Some("OldestEmulationVersion".into()),
            preferred_holder: Some("coxswain-1".into()),
        }),
    };
    judge_reverse::<k_coordination::Lease, Lease>(&lease);

    let binding = k_core::Binding {
        metadata: k_meta_named(Some("default"), "web-1-abcde"),
        target: k_core::ObjectReference {
            kind: Some("Node".into()),
            name: Some("node-2".into()),
            ..Default::default()
        },
    };
    judge_reverse::<k_core::Binding, Binding>(&binding);
}

#[test]
fn quantities_written_as_yaml_numbers_are_read_as_their_text() {
    let container: Container = serde_json::from_value(json!({
        "name": "c",
        "resources": {"requests": {"cpu": 0.5, "memory": 1073741824}, "limits": {"cpu": 2}}
    }))
    .unwrap();
    let resources = container.resources.unwrap();
    assert_eq!(resources.requests["cpu"].to_milli(), Ok(500));
    assert_eq!(resources.requests["memory"].as_str(), "1073741824");
    assert_eq!(resources.limits["cpu"].to_milli(), Ok(2000));
}
