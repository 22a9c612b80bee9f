//! `pods/log`: the apiserver finds the pod's node and streams the container
//! log from that node's agent, as upstream proxies to the kubelet.
//!
//! The node agent is reached at the node's `InternalIP` and
//! `daemonEndpoints.kubeletEndpoint.Port`, with the cluster's node token.
//! Only loopback addresses are proxied to: this build runs every node on the
//! apiserver's own machine, and refusing other addresses keeps a Node object
//! from turning the apiserver into a client of arbitrary hosts.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http_body_util::BodyExt;

use super::ApiState;
use super::errors::{ApiError, ApiResult};
use super::handlers::{Call, Target, stream_response};
use crate::store::Key;

const PASSED_THROUGH: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

pub async fn pod_log(
    state: &ApiState,
    call: &Call,
    target: &Target,
    name: &str,
) -> ApiResult<Response> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let pod = state
        .store
        .get(&Key::new("pods", &namespace, name))
        .ok_or_else(|| ApiError::NotFound {
            resource: "pods".into(),
            name: name.into(),
            group: String::new(),
            kind: "pods".into(),
        })?;
    let pod = pod.object();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let containers = names("containers");
    // Init containers have logs too; without a name, only a pod with one
    // app container has a default, as upstream's.
    let all: Vec<String> = names("initContainers")
        .into_iter()
        .chain(containers.iter().cloned())
        .collect();
    let container = match call.param("container").filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|x| x == c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )));
        }
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned();
    if node.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let (host, port) = super::node_proxy::agent_address(state, &node)?;

    let mut query = Vec::new();
    for key in PASSED_THROUGH {
        if let Some(value) = call.param(key) {
            query.push((key.to_string(), value.to_owned()));
        }
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let uri = format!("http://{host}:{port}/containerLogs/{namespace}/{name}/{container}?{query}");
    let response = super::node_proxy::agent_get(state, &node, &uri).await?;
    let code = response.status();
    if code == StatusCode::OK {
        return Ok(stream_response(
            "text/plain",
            Body::new(response.into_body()),
        ));
    }
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    Err(match code {
        StatusCode::NOT_FOUND => ApiError::BadRequest(text),
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        _ => ApiError::Internal(format!("node agent answered {code}: {text}")),
    })
}
