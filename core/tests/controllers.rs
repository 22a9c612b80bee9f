//! The controller manager and the scheduler against an in-process
//! apiserver: a Deployment becomes a ReplicaSet and bound Pods, its status
//! follows the pods' readiness, and deleting it removes everything. No
//! kubelet runs: the test plays its part (pod readiness, final removal of
//! terminating pods). No Docker, no root.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use coxswain_core::api::{
    DeleteOptions, Deployment, Event, Node, Pod, PodCondition, ReplicaSet, Resource, Time,
};
use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::client::{Client, InProcessTransport, ListParams};
use coxswain_core::controllers::rollout;
use coxswain_core::store::MemoryStore;
use serde_json::json;

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Cluster {
    _dir: TempDir,
    client: Client,
}

/// Starts an apiserver, a ready node, the controllers and the scheduler.
async fn start(test: &str) -> Cluster {
    let dir = std::env::temp_dir().join(format!("coxswain-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = ApiServerConfig {
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let server = ApiServer::start(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let transport = InProcessTransport::new(server.router.clone(), &server.admin_token);
    let client = Client::new(Arc::new(transport));

    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}
    }))
    .unwrap();
    let mut node = client.create(&node).await.unwrap();
    node.status = Some(
        serde_json::from_value(json!({
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": Time::now(), "lastTransitionTime": Time::now()}]
        }))
        .unwrap(),
    );
    client.replace_status(&node).await.unwrap();

    tokio::spawn(coxswain_core::controllers::run(client.clone()));
    tokio::spawn(coxswain_core::scheduler::run(client.clone()));
    Cluster {
        _dir: TempDir(dir),
        client,
    }
}

/// Polls `check` until it gives a value, failing after 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pods_of(client: &Client, rs: &ReplicaSet) -> Vec<Pod> {
    let pods = client
        .list::<Pod>("default", &ListParams::default())
        .await
        .unwrap()
        .items;
    pods.into_iter()
        .filter(|p| {
            p.metadata
                .controller()
                .is_some_and(|c| c.uid == rs.metadata.uid())
        })
        .collect()
}

/// Writes what a kubelet would: Running and Ready.
async fn make_ready(client: &Client, pod: &Pod) {
    let ready = PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some(Time::now()),
        ..Default::default()
    };
    let patch = json!({"status": {"phase": "Running", "conditions": [ready]}});
    client
        .merge_patch_status::<Pod>(pod.namespace(), pod.name(), &patch)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_a_replica_set_and_bound_pods_and_is_collected_on_delete() {
    let cluster = start("controllers").await;
    let client = &cluster.client;

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
            }
        }
    }))
    .unwrap();
    let deployment = client.create(&deployment).await.unwrap();
    let template = deployment.spec.as_ref().unwrap().template.clone();
    let expected_name = format!("web-{}", rollout::template_hash(&template, None));

    let rs = eventually("the replica set", || async {
        client
            .get_opt::<ReplicaSet>("default", &expected_name)
            .await
            .unwrap()
    })
    .await;
    let owner = rs.metadata.controller().expect("owned by the deployment");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", deployment.metadata.uid())
    );
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(rs.metadata.annotations[rollout::REVISION_ANNOTATION], "1");
    assert_eq!(
        rs.metadata.annotations[rollout::DESIRED_REPLICAS_ANNOTATION],
        "2"
    );
    assert_eq!(
        rs.metadata.annotations[rollout::MAX_REPLICAS_ANNOTATION],
        "3"
    );
    let hash = &rs.metadata.labels[rollout::POD_TEMPLATE_HASH_LABEL];
    assert_eq!(format!("web-{hash}"), expected_name);

    let pods = eventually("two bound pods", || async {
        let pods = pods_of(client, &rs).await;
        let bound = pods.iter().all(|p| p.node_name() == "node-1");
        (pods.len() == 2 && bound).then_some(pods)
    })
    .await;
    for pod in &pods {
        assert!(
            pod.metadata
                .name()
                .starts_with(&format!("{expected_name}-"))
        );
        assert_eq!(pod.metadata.labels[rollout::POD_TEMPLATE_HASH_LABEL], *hash);
        make_ready(client, pod).await;
    }

    let status = eventually("the deployment to become available", || async {
        let d = client.get::<Deployment>("default", "web").await.unwrap();
        let status = d.status.clone()?;
        let done = status.replicas == Some(2)
            && status.updated_replicas == Some(2)
            && status.available_replicas == Some(2)
            && status.observed_generation >= d.metadata.generation
            && status
                .condition("Progressing")
                .and_then(|c| c.reason.as_deref())
                == Some("NewReplicaSetAvailable");
        done.then_some(status)
    })
    .await;
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.condition("Available").unwrap().status, "True");
    let d = client.get::<Deployment>("default", "web").await.unwrap();
    assert_eq!(d.metadata.annotations[rollout::REVISION_ANNOTATION], "1");

    let events = client
        .list::<Event>("default", &ListParams::default())
        .await
        .unwrap()
        .items;
    let said = |reason: &str, message: &str| {
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message))
    };
    assert!(said(
        "ScalingReplicaSet",
        &format!("Scaled up replica set {expected_name} from 0 to 2")
    ));
    for pod in &pods {
        let message = format!("Successfully assigned default/{} to node-1", pod.name());
        assert!(said("Scheduled", &message), "{message}");
        assert!(said(
            "SuccessfulCreate",
            &format!("Created pod: {}", pod.name())
        ));
    }

    let background = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    client
        .delete::<Deployment>("default", "web", &background)
        .await
        .unwrap();
    eventually("the replica set and its pods to go", || async {
        let rs_left = client
            .get_opt::<ReplicaSet>("default", &expected_name)
            .await
            .unwrap();
        let pods = pods_of(client, &rs).await;
        // Play the kubelet: finish pods that are terminating.
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            let now = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let _ = client
                .delete::<Pod>(pod.namespace(), pod.name(), &now)
                .await;
        }
        (rs_left.is_none() && pods.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_no_node_can_take_is_marked_unschedulable() {
    let cluster = start("scheduler").await;
    let client = &cluster.client;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "huge", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": "64"}}}]}
    }))
    .unwrap();
    client.create(&pod).await.unwrap();

    let condition = eventually("PodScheduled=False", || async {
        let pod = client.get::<Pod>("default", "huge").await.unwrap();
        pod.status?.condition("PodScheduled").cloned()
    })
    .await;
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        condition.message.as_deref(),
        Some("0/1 nodes are available: 1 Insufficient cpu.")
    );
    let events = client
        .list::<Event>("default", &ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedScheduling")
                && e.type_.as_deref() == Some("Warning"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents_and_foreground_deletion_waits_for_them() {
    let cluster = start("finalizers").await;
    let client = &cluster.client;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "keep", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "keep"}},
            "template": {"metadata": {"labels": {"app": "keep"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }
    }))
    .unwrap();
    let deployment = client.create(&deployment).await.unwrap();
    let template = deployment.spec.as_ref().unwrap().template.clone();
    let rs_name = format!("keep-{}", rollout::template_hash(&template, None));
    let rs = eventually("the replica set", || async {
        client
            .get_opt::<ReplicaSet>("default", &rs_name)
            .await
            .unwrap()
    })
    .await;
    eventually("its pod", || async {
        (pods_of(client, &rs).await.len() == 1).then_some(())
    })
    .await;

    let orphan = DeleteOptions {
        propagation_policy: Some("Orphan".into()),
        ..Default::default()
    };
    client
        .delete::<Deployment>("default", "keep", &orphan)
        .await
        .unwrap();
    eventually("the deployment to go", || async {
        client
            .get_opt::<Deployment>("default", "keep")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let kept = client.get::<ReplicaSet>("default", &rs_name).await.unwrap();
    assert!(
        kept.metadata.owner_references.is_empty(),
        "the replica set was orphaned"
    );
    assert_eq!(pods_of(client, &kept).await.len(), 1, "its pod stays");

    let foreground = DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    client
        .delete::<ReplicaSet>("default", &rs_name, &foreground)
        .await
        .unwrap();
    eventually("the replica set to go after its pod", || async {
        let pods = pods_of(client, &kept).await;
        let rs_left = client
            .get_opt::<ReplicaSet>("default", &rs_name)
            .await
            .unwrap();
        if let Some(rs) = &rs_left {
            assert!(
                pods.iter().all(|p| p.metadata.deletion_timestamp.is_some())
                    || rs.metadata.deletion_timestamp.is_some()
            );
        }
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            let now = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let _ = client
                .delete::<Pod>(pod.namespace(), pod.name(), &now)
                .await;
        }
        (rs_left.is_none() && pods.is_empty()).then_some(())
    })
    .await;
}
