//! The apiserver over real HTTPS, with the project's own client: status
//! codes and Status bodies, optimistic concurrency, watch, selectors,
//! patches and subresources. No Docker, no root.

use std::sync::Arc;

use bytes::Bytes;
use coxswain_core::api::{Deployment, Pod};
use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::client::{Client, HttpsTransport, Kubeconfig, ListParams};
use coxswain_core::store::{DurableStore, MemoryStore, Store};
use futures::StreamExt;
use http::{Method, StatusCode};
use serde_json::{Value, json};

struct Server {
    /// Kept so that a test can stop it; dropped, it goes on serving.
    api: ApiServer,
    client: Client,
    config: Kubeconfig,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory under the target dir, removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn start() -> Server {
    start_on(|_| Arc::new(MemoryStore::new())).await
}

/// A server on the durable store, whose writes wait for the disk: requests
/// interleave between reading an object and writing it back.
async fn start_durable() -> Server {
    start_durable_with_store().await.0
}

/// [`start_durable`], and the store, for a test that closes it.
async fn start_durable_with_store() -> (Server, Arc<DurableStore>) {
    let mut opened = None;
    let server = start_on(|dir| {
        let store = Arc::new(DurableStore::open(&dir.join("store")).unwrap());
        opened = Some(store.clone());
        store
    })
    .await;
    (server, opened.expect("the store was opened"))
}

async fn start_on(store: impl FnOnce(&std::path::Path) -> Arc<dyn Store>) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "coxswain-apiserver-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = ApiServerConfig {
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let server = ApiServer::start(config, store(&dir)).await.unwrap();
    let kubeconfig = Kubeconfig::read(&server.kubeconfig).unwrap();
    let client = Client::from_kubeconfig(&server.kubeconfig).unwrap();
    Server {
        api: server,
        client,
        config: kubeconfig,
        _dir: tempdir::Dir(dir),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "coxswain/web:0.1",
                                     "ports": [{"containerPort": 80}]}]}})
}

async fn send(client: &Client, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    send_raw(
        client,
        method,
        path,
        "application/json",
        Bytes::from(body.to_string()),
    )
    .await
}

async fn send_raw(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> (StatusCode, Value) {
    let (status, bytes) = client
        .request_raw(method, path, content_type, body)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let server = start().await;
    let mut config = server.config.clone();
    config.token = Some("wrong".into());
    let anonymous = Client::new(Arc::new(HttpsTransport::new(&config).unwrap()));
    let (status, body) = send(&anonymous, Method::GET, "/api/v1/pods", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    config.token = None;
    let no_token = Client::new(Arc::new(HttpsTransport::new(&config).unwrap()));
    let (status, _) = send(&no_token, Method::GET, "/version", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn create_get_and_duplicate_give_kubernetes_codes() {
    let server = start().await;
    let (status, created) = send(&server.client, Method::POST, PODS, pod("a")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created["metadata"]["uid"].is_string());
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(
        created["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(created["spec"]["restartPolicy"], "Always");

    let fetched: Pod = server.client.get("default", "a").await.unwrap();
    assert_eq!(
        fetched.metadata.uid.as_deref(),
        created["metadata"]["uid"].as_str()
    );

    let (status, body) = send(&server.client, Method::POST, PODS, pod("a")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["message"], "pods \"a\" already exists");

    let (status, body) = send(
        &server.client,
        Method::GET,
        &format!("{PODS}/nope"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "pods \"nope\" not found");
    assert_eq!(body["details"]["kind"], "pods");
}

#[tokio::test]
async fn a_stale_resource_version_is_a_409_conflict() {
    let server = start().await;
    let (_, created) = send(&server.client, Method::POST, PODS, pod("a")).await;
    let mut first = created.clone();
    first["metadata"]["labels"]["v"] = json!("1");
    let (status, _) = send(&server.client, Method::PUT, &format!("{PODS}/a"), first).await;
    assert_eq!(status, StatusCode::OK);
    let mut stale = created;
    stale["metadata"]["labels"]["v"] = json!("2");
    let (status, body) = send(&server.client, Method::PUT, &format!("{PODS}/a"), stale).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "Conflict");
}

#[tokio::test]
async fn invalid_objects_get_422_naming_the_field_and_bad_bodies_400() {
    let server = start().await;
    let mut no_image = pod("x");
    no_image["spec"]["containers"][0]["image"] = json!("");
    let (status, body) = send(&server.client, Method::POST, PODS, no_image).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.containers[0].image"
    );

    let (status, body) = send_raw(
        &server.client,
        Method::POST,
        PODS,
        "application/json",
        Bytes::from("{nope"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["kind"], "Status");

    let mut strict = pod("s");
    strict["spec"]["bogus"] = json!(1);
    let path = format!("{PODS}?fieldValidation=Strict");
    let (status, body) = send(&server.client, Method::POST, &path, strict).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\"")
    );

    let (status, body) = send(
        &server.client,
        Method::POST,
        "/api/v1/namespaces/nope/pods",
        pod("y"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "namespaces \"nope\" not found");

    // The server keeps serving.
    let (status, _) = send(&server.client, Method::POST, PODS, pod("ok")).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_watch_from_a_list_revision_sees_later_changes_only() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("a")).await;
    let list = server
        .client
        .list::<Pod>("default", &ListParams::default())
        .await
        .unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let stream = server
        .client
        .watch::<Pod>("default", &ListParams::default(), &rv, 10)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    send(&server.client, Method::POST, PODS, pod("b")).await;
    send(
        &server.client,
        Method::DELETE,
        &format!("{PODS}/a"),
        json!({}),
    )
    .await;
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(
        (first.kind.as_str(), first.object.metadata.name.as_deref()),
        ("ADDED", Some("b"))
    );
    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(
        (second.kind.as_str(), second.object.metadata.name.as_deref()),
        ("DELETED", Some("a"))
    );
}

#[tokio::test]
async fn selectors_filter_lists_including_spec_node_name() {
    let server = start().await;
    let mut other = pod("b");
    other["metadata"]["labels"]["app"] = json!("db");
    other["spec"]["nodeName"] = json!("n1");
    send(&server.client, Method::POST, PODS, pod("a")).await;
    send(&server.client, Method::POST, PODS, other).await;
    let web = server
        .client
        .list::<Pod>("default", &ListParams::labels("app in (web)"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 1);
    assert_eq!(web.items[0].metadata.name.as_deref(), Some("a"));
    let on_node = server
        .client
        .list::<Pod>("", &ListParams::fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 1);
    assert_eq!(on_node.items[0].metadata.name.as_deref(), Some("b"));
    let (status, body) = send(
        &server.client,
        Method::GET,
        &format!("{PODS}?fieldSelector=spec.bogus%3D1"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "field label not supported: spec.bogus");
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}},
                                 "spec": {"containers": [
                                     {"name": "c", "image": "i:1", "args": ["a", "b"]}]}}}})
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// Merge patches that name no resourceVersion, racing each other on one
/// object, all apply (the server retries a patch whose write met another,
/// for as long as it has to: 64 patchers at once used to exhaust a cap of
/// 16 rounds); a patch that names a stale resourceVersion is a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_a_resource_version_all_apply() {
    let server = start_durable().await;
    let (_, created) = send(&server.client, Method::POST, PODS, pod("racy")).await;
    let patchers = (0..64).map(|i| {
        let client = server.client.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for j in 0..4 {
                let patch = json!({"metadata": {"labels": {format!("k{i}-{j}"): "v"}}});
                let (status, _) = send_raw(
                    &client,
                    Method::PATCH,
                    &format!("{PODS}/racy"),
                    "application/merge-patch+json",
                    Bytes::from(patch.to_string()),
                )
                .await;
                statuses.push(status);
            }
            statuses
        })
    });
    for patcher in patchers.collect::<Vec<_>>() {
        for status in patcher.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
        }
    }
    let (_, pod) = send(
        &server.client,
        Method::GET,
        &format!("{PODS}/racy"),
        Value::Null,
    )
    .await;
    for i in 0..64 {
        for j in 0..4 {
            assert_eq!(
                pod["metadata"]["labels"][format!("k{i}-{j}")],
                "v",
                "label k{i}-{j}"
            );
        }
    }

    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"],
                                    "labels": {"late": "v"}}});
    let (status, body) = send_raw(
        &server.client,
        Method::PATCH,
        &format!("{PODS}/racy"),
        "application/merge-patch+json",
        Bytes::from(stale.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn patches_merge_and_bump_generation_on_spec_changes_only() {
    let server = start().await;
    let (_, created) = send(&server.client, Method::POST, DEPLOYMENTS, deployment()).await;
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );

    let container = json!({"name": "c", "image": "i:2", "args": ["z"]});
    let smp = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
    let (status, patched) = send_raw(
        &server.client,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/d"),
        "application/strategic-merge-patch+json",
        Bytes::from(smp.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "i:2"
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["z"])
    );
    assert_eq!(patched["metadata"]["generation"], 2);

    let label = json!({"metadata": {"labels": {"k": "v"}}});
    let labelled: Deployment = server
        .client
        .merge_patch("default", "d", &label)
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));

    // A no-op patch does not move the resourceVersion.
    let again: Deployment = server
        .client
        .merge_patch("default", "d", &label)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        labelled.metadata.resource_version
    );
}

#[tokio::test]
async fn scale_and_status_subresources_touch_their_part_only() {
    let server = start().await;
    send(&server.client, Method::POST, DEPLOYMENTS, deployment()).await;
    let (status, scale) = send(
        &server.client,
        Method::GET,
        &format!("{DEPLOYMENTS}/d/scale"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=d");
    let (status, scaled) = send_raw(
        &server.client,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/d/scale"),
        "application/merge-patch+json",
        Bytes::from(r#"{"spec":{"replicas":5}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scaled["spec"]["replicas"], 5);

    let mut with_status: Value = send(
        &server.client,
        Method::GET,
        &format!("{DEPLOYMENTS}/d"),
        Value::Null,
    )
    .await
    .1;
    with_status["status"] = json!({"replicas": 5, "readyReplicas": 3});
    with_status["spec"]["replicas"] = json!(9);
    let (_, written) = send(
        &server.client,
        Method::PUT,
        &format!("{DEPLOYMENTS}/d/status"),
        with_status,
    )
    .await;
    assert_eq!(written["status"]["readyReplicas"], 3);
    assert_eq!(
        written["spec"]["replicas"], 5,
        "a status write leaves spec alone"
    );

    let mut main = written.clone();
    main["status"]["readyReplicas"] = json!(0);
    let (_, written) = send(
        &server.client,
        Method::PUT,
        &format!("{DEPLOYMENTS}/d"),
        main,
    )
    .await;
    assert_eq!(
        written["status"]["readyReplicas"], 3,
        "a main write leaves status alone"
    );
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("a")).await;
    server.client.bind("default", "a", "n1").await.unwrap();
    let bound: Pod = server.client.get("default", "a").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
    let again = server.client.bind("default", "a", "n2").await.unwrap_err();
    assert!(again.is_conflict(), "{again}");
}

#[tokio::test]
async fn pods_on_a_node_are_deleted_gracefully_and_others_at_once() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("a")).await;
    let (status, body) = send(
        &server.client,
        Method::DELETE,
        &format!("{PODS}/a"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "Pod");
    assert!(
        server
            .client
            .get_opt::<Pod>("default", "a")
            .await
            .unwrap()
            .is_none()
    );

    send(&server.client, Method::POST, PODS, pod("b")).await;
    server.client.bind("default", "b", "n1").await.unwrap();
    send(
        &server.client,
        Method::DELETE,
        &format!("{PODS}/b"),
        json!({}),
    )
    .await;
    let terminating: Pod = server.client.get("default", "b").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    let (status, _) = send(
        &server.client,
        Method::DELETE,
        &format!("{PODS}/b"),
        json!({"gracePeriodSeconds": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        server
            .client
            .get_opt::<Pod>("default", "b")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tables_carry_the_upstream_pod_columns() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("a")).await;
    let (status, bytes) = {
        let request_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let transport = HttpsTransport::new(&server.config).unwrap();
        use coxswain_core::client::Transport;
        let request = http::Request::get(PODS)
            .header(http::header::ACCEPT, request_accept)
            .body(Bytes::new())
            .unwrap();
        let response = transport.send(request).await.unwrap();
        let status = response.status();
        use http_body_util::BodyExt;
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    };
    assert_eq!(status, StatusCode::OK);
    let table: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], "0/1");
    assert_eq!(table["rows"][0]["cells"][2], "Pending");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn a_revision_the_store_has_not_reached_is_too_large_for_lists_and_watches() {
    let server = start().await;
    let error = server
        .client
        .watch::<Pod>("default", &ListParams::default(), "999999", 5)
        .await
        .err()
        .expect("the watch is refused");
    assert!(error.is_too_large_resource_version(), "{error}");
    let (status, body) = send(
        &server.client,
        Method::GET,
        &format!("{PODS}?resourceVersion=999999&resourceVersionMatch=NotOlderThan"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["reason"], "Timeout");
    assert_eq!(
        body["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version: 999999, current: "),
        "{body}"
    );
}

#[tokio::test]
async fn lists_check_resource_version_match_as_upstream() {
    let server = start().await;
    let (_, created) = send(&server.client, Method::POST, PODS, pod("a")).await;
    let at = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = |query: String| {
        let client = server.client.clone();
        async move {
            send(
                &client,
                Method::GET,
                &format!("{PODS}?{query}"),
                Value::Null,
            )
            .await
        }
    };
    // The latest state is the exact state at its own revision.
    let (status, body) = list(format!("resourceVersion={at}&resourceVersionMatch=Exact")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["resourceVersion"], at);
    let (status, body) = list(format!("resourceVersion={at}")).await;
    assert_eq!(
        (status, body["items"][0]["metadata"]["name"].clone()),
        (StatusCode::OK, json!("a"))
    );

    send(&server.client, Method::POST, PODS, pod("b")).await;
    // Older than the latest, exactly: this store keeps no history.
    let (status, body) = list(format!("resourceVersion={at}&resourceVersionMatch=Exact")).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    // Not older than it: the latest state will do.
    let (status, body) = list(format!(
        "resourceVersion={at}&resourceVersionMatch=NotOlderThan"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);

    for (query, message) in [
        (
            "resourceVersionMatch=Exact",
            "resourceVersionMatch is forbidden unless",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "Unsupported value: \"Newest\"",
        ),
        ("resourceVersion=abc", "invalid resource version: abc"),
    ] {
        let (status, body) = list(query.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_patch_cannot_rename_move_or_change_the_uid_of_an_object() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("fixed")).await;
    let patch = |body: Value| {
        let client = server.client.clone();
        async move {
            send_raw(
                &client,
                Method::PATCH,
                &format!("{PODS}/fixed"),
                "application/merge-patch+json",
                Bytes::from(body.to_string()),
            )
            .await
        }
    };
    let (status, body) = patch(json!({"metadata": {"name": "other"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "the name of the object (other) does not match the name on the URL (fixed)"
    );
    let (status, body) = patch(json!({"metadata": {"namespace": "kube-system"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = patch(json!({"metadata": {"uid": "0000"}})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("UID in precondition: 0000")
    );
    // Nothing moved.
    let (status, body) = send(
        &server.client,
        Method::GET,
        &format!("{PODS}/fixed"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, body["metadata"]["namespace"].clone()),
        (StatusCode::OK, json!("default"))
    );
}

#[tokio::test]
async fn a_deleted_namespace_is_terminating_and_refuses_new_pods_until_finalized() {
    let server = start().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}});
    send(&server.client, Method::POST, "/api/v1/namespaces", ns).await;
    let (status, body) = send(
        &server.client,
        Method::DELETE,
        "/api/v1/namespaces/gone",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["phase"], "Terminating");
    let (status, body) = send(
        &server.client,
        Method::POST,
        "/api/v1/namespaces/gone/pods",
        pod("p"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let finalize = json!({"metadata": {"name": "gone"}, "spec": {"finalizers": []}});
    let (status, _) = send(
        &server.client,
        Method::PUT,
        "/api/v1/namespaces/gone/finalize",
        finalize,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &server.client,
        Method::GET,
        "/api/v1/namespaces/gone",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn finalizers_hold_a_deleted_pod_until_they_are_removed() {
    let server = start().await;
    let mut held = pod("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    send(&server.client, Method::POST, PODS, held).await;
    send(
        &server.client,
        Method::DELETE,
        &format!("{PODS}/held"),
        json!({}),
    )
    .await;
    let pod: Pod = server.client.get("default", "held").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    let _: Result<Pod, _> = server.client.merge_patch("default", "held", &release).await;
    assert!(
        server
            .client
            .get_opt::<Pod>("default", "held")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn pod_specs_are_immutable_except_images_and_requests_may_not_exceed_limits() {
    let server = start().await;
    send(&server.client, Method::POST, PODS, pod("a")).await;
    let image = json!({"spec": {"containers": [{"name": "web", "image": "coxswain/web:0.2"}]}});
    let (status, _) = send_raw(
        &server.client,
        Method::PATCH,
        &format!("{PODS}/a"),
        "application/strategic-merge-patch+json",
        Bytes::from(image.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let env =
        json!({"spec": {"containers": [{"name": "web", "env": [{"name": "X", "value": "1"}]}]}});
    let (status, body) = send_raw(
        &server.client,
        Method::PATCH,
        &format!("{PODS}/a"),
        "application/strategic-merge-patch+json",
        Bytes::from(env.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("pod updates may not change fields")
    );

    let mut greedy = pod("greedy");
    greedy["spec"]["containers"][0]["resources"] =
        json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}});
    let (status, body) = send(&server.client, Method::POST, PODS, greedy).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.containers[0].resources.requests"
    );

    let (status, _) = send(
        &server.client,
        Method::PUT,
        &format!("{PODS}/other"),
        pod("a"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a name that differs from the URL is a 400"
    );
}

/// A stopping server answers the requests under way before its store
/// closes (as kube-apiserver drains on SIGTERM): a write a client sent is
/// answered as done, and kept, or its connection is refused or closed; none
/// is told the store is closed (503, as before the drain).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_server_answers_what_is_under_way_before_its_store_closes() {
    let (server, store) = start_durable_with_store().await;
    let client = server.client.clone();
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0.. {
                    let body = Bytes::from(pod(&format!("w{w}-{i}")).to_string());
                    match client
                        .request_raw(Method::POST, PODS, "application/json", body)
                        .await
                    {
                        Ok((status, _)) => statuses.push(status),
                        // The server no longer takes connections.
                        Err(_) => break,
                    }
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(server.api.shutdown(std::time::Duration::from_secs(5)).await);
    store.close().await.unwrap();

    let mut created = 0;
    for writer in writers {
        for status in writer.await.unwrap() {
            assert_eq!(status, StatusCode::CREATED);
            created += 1;
        }
    }
    assert!(created > 0);
    let pods = coxswain_core::store::Prefix {
        resource: "pods".into(),
        namespace: Some("default".into()),
    };
    // Every acknowledged write is kept; a writer whose last request met the
    // closing connection (or its own timeout) may have had it applied
    // unanswered: at most one each.
    let kept = store.list(&pods).records.len();
    assert!(
        (created..=created + 32).contains(&kept),
        "{kept} kept, {created} acknowledged"
    );
}

/// A request still arriving when the grace runs out is cut, not answered:
/// the store closes right after, and a request let through then would be
/// told it is closed (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_arriving_after_the_grace_is_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (server, store) = start_durable_with_store().await;
    let tls = server.config.tls_client_config().unwrap();
    let tcp = tokio::net::TcpStream::connect(server.api.local_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    // A create whose body's last byte is held back past the grace.
    let body = pod("late").to_string();
    let head = format!(
        "POST {PODS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.config.token.clone().unwrap(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() - 1])
        .await
        .unwrap();
    stream.flush().await.unwrap();
    // Time for the server to read the request's head: a connection it has
    // read nothing from yet is idle, and closes at once.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let stop = async {
        let drained = server
            .api
            .shutdown(std::time::Duration::from_millis(200))
            .await;
        store.close().await.unwrap();
        drained
    };
    let late = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let _ = stream.write_all(&body.as_bytes()[body.len() - 1..]).await;
        let _ = stream.flush().await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let (drained, answer) = tokio::join!(stop, late);
    assert!(!drained, "the held-back request kept its connection open");
    assert_eq!(answer, "", "a request after the grace was answered");
    let late = coxswain_core::store::Key::new("pods", "default", "late");
    assert!(store.get(&late).is_none());
}
