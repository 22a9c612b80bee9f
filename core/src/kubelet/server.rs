//! The node agent's HTTP server: container logs for `kubectl logs` (through
//! the apiserver's `pods/log` proxy) and a health check.
//!
//! Every request must carry `Authorization: Bearer <agent token>`, else 401.
//! `GET /containerLogs/{namespace}/{pod}/{container}` answers `text/plain`
//! with the query parameters of `pods/log` (`follow`, `tailLines`,
//! `timestamps`, `previous`, `sinceSeconds`, `sinceTime`, `limitBytes`),
//! streaming while `follow` is set; 404 for an unknown pod or container,
//! 400 when `previous` asks for a run that does not exist.
//! `GET /healthz` answers `ok`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::runtime::{ContainerInfo, LogOptions, Runtime};
use super::status::{StatusBoard, instances, waiting_to_start};

#[derive(Clone)]
struct AgentState {
    runtime: Arc<dyn Runtime>,
    /// The workers' statuses: why a container that never started waits.
    statuses: StatusBoard,
    token: Arc<str>,
}

/// Query of `containerLogs`, named as in `pods/log`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<i64>,
    timestamps: Option<String>,
    previous: Option<String>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    limit_bytes: Option<usize>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("true" | "1" | ""))
}

/// Binds the node agent's listener; port 0 picks a free one.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves the node agent on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    runtime: Arc<dyn Runtime>,
    token: String,
) -> std::io::Result<()> {
    axum::serve(listener, router(runtime, token, StatusBoard::default())).await
}

/// The node agent's routes.
pub fn router(runtime: Arc<dyn Runtime>, token: String, statuses: StatusBoard) -> Router {
    let state = AgentState {
        runtime,
        statuses,
        token: token.into(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(state)
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value
        .strip_prefix("Bearer ")
        .is_some_and(|given| !token.is_empty() && given == token)
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn unauthorized() -> Response {
    text(StatusCode::UNAUTHORIZED, "Unauthorized\n".into())
}

async fn healthz(State(state): State<AgentState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &state.token) {
        return unauthorized();
    }
    text(StatusCode::OK, "ok".into())
}

async fn container_logs(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return unauthorized();
    }
    let all = match state.runtime.list_containers(None).await {
        Ok(all) => all,
        Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    };
    let pod_containers: Vec<ContainerInfo> = all
        .into_iter()
        .filter(|c| c.pod.namespace == namespace && c.pod.name == pod)
        .collect();
    let waiting = state
        .statuses
        .get(&namespace, &pod)
        .and_then(|status| waiting_to_start(&status, &container, &pod));
    if let Some(message) = waiting
        && instances(&pod_containers, &container).is_empty()
    {
        return text(StatusCode::BAD_REQUEST, format!("{message}\n"));
    }
    if pod_containers.is_empty() {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod \"{namespace}/{pod}\" not found\n"),
        );
    }
    let found = instances(&pod_containers, &container);
    if found.is_empty() || container == super::runtime::SANDBOX_NAME {
        return text(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" in pod \"{pod}\" is not available\n"),
        );
    }
    let previous = flag(&query.previous);
    let chosen = if previous {
        found.get(1)
    } else {
        found.first()
    };
    let Some(chosen) = chosen else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found\n"),
        );
    };

    let since = match (&query.since_seconds, &query.since_time) {
        (Some(seconds), _) => Some(Utc::now() - chrono::Duration::seconds((*seconds).max(0))),
        (None, Some(time)) => match DateTime::parse_from_rfc3339(time) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid sinceTime {time:?}\n"),
                );
            }
        },
        (None, None) => None,
    };
    let options = LogOptions {
        follow: flag(&query.follow),
        tail_lines: query.tail_lines,
        timestamps: flag(&query.timestamps),
        since,
    };
    let stream = match state
        .runtime
        .container_logs(chosen.id.clone(), options)
        .await
    {
        Ok(stream) => stream,
        Err(error) => return text(StatusCode::NOT_FOUND, format!("{error}\n")),
    };
    let stream = match query.limit_bytes {
        Some(limit) => limit_bytes(stream, limit),
        None => stream,
    };
    let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Ends the stream after `limit` bytes.
fn limit_bytes(stream: super::runtime::LogStream, limit: usize) -> super::runtime::LogStream {
    futures::stream::unfold((stream, limit), |(mut stream, left)| async move {
        if left == 0 {
            return None;
        }
        match stream.next().await? {
            Ok(chunk) => {
                let chunk: Bytes = chunk.slice(..chunk.len().min(left));
                let left = left - chunk.len();
                Some((Ok(chunk), (stream, left)))
            }
            Err(e) => Some((Err(e), (stream, 0))),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::kubelet::fake::FakeRuntime;
    use crate::kubelet::runtime::{ContainerSpec, PodRef, SandboxSpec};

    async fn agent() -> (Router, Arc<FakeRuntime>) {
        let fake = FakeRuntime::with_images(&[]);
        let pod = PodRef {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
        };
        let runtime: Arc<dyn Runtime> = fake.clone();
        runtime
            .run_sandbox(SandboxSpec {
                pod: pod.clone(),
                image: "pause".into(),
                host_network: false,
                hostname: "web".into(),
                attempt: 0,
            })
            .await
            .unwrap();
        runtime
            .run_container(ContainerSpec {
                pod,
                name: "app".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        (
            router(runtime, "secret".into(), StatusBoard::default()),
            fake,
        )
    }

    async fn get(router: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = http::Request::builder().uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn requests_without_the_agent_token_are_refused() {
        let (router, _) = agent().await;
        assert_eq!(
            get(&router, "/healthz", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&router, "/healthz", Some("wrong")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&router, "/healthz", Some("secret")).await,
            (StatusCode::OK, "ok".into())
        );
    }

    #[tokio::test]
    async fn logs_of_a_container_are_served_with_tail_and_limit() {
        let (router, _) = agent().await;
        let (status, body) = get(&router, "/containerLogs/default/web/app", Some("secret")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.lines().count(), 3);

        let uri = "/containerLogs/default/web/app?tailLines=1";
        let (_, body) = get(&router, uri, Some("secret")).await;
        assert_eq!(body, "c2 line 3\n");

        let uri = "/containerLogs/default/web/app?limitBytes=4";
        let (_, body) = get(&router, uri, Some("secret")).await;
        assert_eq!(body, "c2 l");
    }

    #[tokio::test]
    async fn unknown_pods_and_containers_are_not_found() {
        let (router, _) = agent().await;
        let (status, body) = get(&router, "/containerLogs/default/nope/app", Some("secret")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("nope"));
        let (status, _) = get(&router, "/containerLogs/default/web/other", Some("secret")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_container_that_never_started_says_why_it_waits() {
        use crate::api::{ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus};

        let fake = FakeRuntime::with_images(&[]);
        let statuses = StatusBoard::default();
        let waiting = |name: &str, reason: &str| ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        statuses.set(
            "default",
            "web",
            PodStatus {
                container_statuses: vec![
                    waiting("x", "ImagePullBackOff"),
                    waiting("y", "ContainerCreating"),
                ],
                ..Default::default()
            },
        );
        let router = router(fake, "secret".into(), statuses);
        let (status, body) = get(&router, "/containerLogs/default/web/x", Some("secret")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "container \"x\" in pod \"web\" is waiting to start: \
             trying and failing to pull image\n"
        );
        let (status, body) = get(&router, "/containerLogs/default/web/y", Some("secret")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.ends_with("is waiting to start: ContainerCreating\n"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn previous_logs_need_a_previous_run() {
        let (router, fake) = agent().await;
        let uri = "/containerLogs/default/web/app?previous=true";
        let (status, body) = get(&router, uri, Some("secret")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "previous terminated container \"app\" in pod \"web\" not found\n"
        );

        // A second run makes the first one "previous".
        fake.exit("app", 1);
        let runtime: Arc<dyn Runtime> = fake.clone();
        let pod = PodRef {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
        };
        runtime
            .run_container(ContainerSpec {
                pod,
                name: "app".into(),
                restart_count: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let (status, body) = get(&router, uri, Some("secret")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("c2 "), "{body}");
    }
}
