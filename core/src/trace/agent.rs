//! The node agent's `/trace` routes, behind the agent token like the rest
//! of the agent.
//!
//! * `GET /trace/status`: [`TraceStatus`] as JSON.
//! * `GET /trace/pods/{namespace}/{name}`: [`PodReport`] as JSON (the
//!   status, the pod's containers with their kernel identifiers, and its
//!   events in time order); 404 when this node never traced the pod.
//! * `GET /trace/events`: the node's recent events as JSON lines; with
//!   `follow=1` the stream stays open and carries new events as they are
//!   attributed; `pod=namespace/name` keeps one pod's.
//! * `GET /trace/view/{namespace}/{name}`: the trace viewer, one HTML page
//!   with its script and style inline (`viewer.html`). It fetches the pod's
//!   report with a relative URL, and the pod and its Events from the
//!   apiserver it was reached through, so it works behind the apiserver's
//!   node proxy; opened from the agent directly it shows the kernel side
//!   only.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;

use super::{PodTrace, TraceEvent, TraceHub, TraceStatus};

/// What `GET /trace/pods/{namespace}/{name}` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodReport {
    pub status: TraceStatus,
    pub node: String,
    #[serde(flatten)]
    pub trace: PodTrace,
}

#[derive(Clone)]
struct AgentTrace {
    hub: Arc<TraceHub>,
    token: Arc<str>,
    node: Arc<str>,
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    follow: Option<String>,
    pod: Option<String>,
}

/// The `/trace` routes of the node agent of `node`.
pub fn routes(hub: Arc<TraceHub>, token: &str, node: &str) -> Router {
    let state = AgentTrace {
        hub,
        token: token.into(),
        node: node.into(),
    };
    Router::new()
        .route("/trace/status", get(status))
        .route("/trace/pods/{namespace}/{name}", get(pod))
        .route("/trace/events", get(events))
        .route("/trace/view/{namespace}/{name}", get(view))
        .with_state(state)
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| !token.is_empty() && given == token)
}

fn refuse() -> Response {
    (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response()
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn status(State(state): State<AgentTrace>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &state.token) {
        return refuse();
    }
    json(&state.hub.status())
}

async fn pod(
    State(state): State<AgentTrace>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return refuse();
    }
    match state.hub.pod(&namespace, &name) {
        Some(trace) => json(&PodReport {
            status: state.hub.status(),
            node: state.node.to_string(),
            trace,
        }),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "pod \"{namespace}/{name}\" has no trace on node {}\n",
                state.node
            ),
        )
            .into_response(),
    }
}

/// The viewer page; the same for every pod (it reads which from its URL).
const VIEWER: &str = include_str!("viewer.html");

async fn view(State(state): State<AgentTrace>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &state.token) {
        return refuse();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        VIEWER,
    )
        .into_response()
}

async fn events(
    State(state): State<AgentTrace>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return refuse();
    }
    let follow = matches!(query.follow.as_deref(), Some("1" | "true" | ""));
    let pod = query.pod.filter(|p| !p.is_empty());
    let wanted = move |event: &TraceEvent| pod.is_none() || event.pod == pod;
    let (backlog, live) = state.hub.subscribe();
    let backlog: Vec<Result<Bytes, std::io::Error>> = backlog
        .into_iter()
        .filter(&wanted)
        .map(|e| Ok(line(&e)))
        .collect();
    let head = futures::stream::iter(backlog);
    let body = if follow {
        let live = BroadcastStream::new(live).filter_map(move |item| {
            let out = match item {
                Ok(event) if wanted(&event) => Some(Ok(line(&event))),
                _ => None,
            };
            std::future::ready(out)
        });
        Body::from_stream(head.chain(live))
    } else {
        Body::from_stream(head)
    };
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn line(event: &TraceEvent) -> Bytes {
    let mut text = serde_json::to_vec(event).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}
