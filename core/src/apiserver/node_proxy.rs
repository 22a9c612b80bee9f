//! `GET /api/v1/nodes/{node}/proxy/trace/...`: the node agent's trace
//! routes (JSON, JSON lines, the viewer page) reached through the
//! apiserver, with the caller authenticated by the apiserver and the agent
//! by the cluster's node token, as upstream's node proxy does.
//!
//! Only the `/trace` tree is proxied, and only to loopback node agents
//! (see `logs.rs` for why). Streaming answers (`follow=1`) stream through.

use std::net::IpAddr;

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use super::ApiState;
use super::errors::{ApiError, ApiResult};
use super::handlers::{Call, stream_response};
use crate::store::Key;

/// Proxies `GET /trace/{rest}` with the call's query to `node`'s agent.
pub async fn trace(
    state: &ApiState,
    call: &Call,
    node: &str,
    rest: &[&str],
) -> ApiResult<Response> {
    let (host, port) = agent_address(state, node)?;
    let path = rest
        .iter()
        .map(|segment| urlencode_segment(segment))
        .collect::<Vec<_>>()
        .join("/");
    let mut query: Vec<(&String, &String)> = call.query.iter().collect();
    query.sort();
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let uri = format!("http://{host}:{port}/trace/{path}?{query}");
    let response = agent_get(state, &node, &uri).await?;
    let code = response.status();
    if code == StatusCode::OK {
        let content_type = match response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if t.starts_with("application/json") => "application/json",
            Some(t) if t.starts_with("application/x-ndjson") => "application/x-ndjson",
            Some(t) if t.starts_with("text/html") => "text/html; charset=utf-8",
            _ => "text/plain",
        };
        return Ok(stream_response(
            content_type,
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
        StatusCode::NOT_FOUND => ApiError::NotFound {
            resource: "nodes/proxy".into(),
            name: format!("{node}: {text}"),
            group: String::new(),
            kind: "nodes".into(),
        },
        _ => ApiError::Internal(format!("node agent answered {code}: {text}")),
    })
}

/// GET `uri` from `node`'s agent, with the token node agents accept.
pub(super) async fn agent_get(
    state: &ApiState,
    node: &str,
    uri: &str,
) -> ApiResult<http::Response<hyper::body::Incoming>> {
    let request = Request::get(uri)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", state.node_token),
        )
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.node_client.request(request).await.map_err(|e| {
        ApiError::ServiceUnavailable(format!("cannot reach the node agent of {node}: {e}"))
    })
}

/// The loopback address and port of `node`'s agent, from its Node object.
pub(super) fn agent_address(state: &ApiState, node: &str) -> ApiResult<(String, u64)> {
    let record = state
        .store
        .get(&Key::new("nodes", "", node))
        .ok_or_else(|| ApiError::NotFound {
            resource: "nodes".into(),
            name: node.into(),
            group: String::new(),
            kind: "nodes".into(),
        })?;
    let object = record.object();
    let status = &object["status"];
    let address = status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse::<IpAddr>().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("node {node} has no InternalIP address")))?;
    if !address.is_loopback() {
        return Err(ApiError::BadRequest(format!(
            "node {node} has address {address}: only loopback node agents are reachable"
        )));
    }
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250);
    let host = match address {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    Ok((host, port))
}

/// A path segment with everything but unreserved characters escaped.
fn urlencode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
