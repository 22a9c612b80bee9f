//! A loopback proxy to the apiserver for a browser opening the trace viewer
//! (`coxswain trace --pod NS/NAME --serve`).
//!
//! A browser cannot easily send the kubeconfig's bearer token, so this
//! proxy listens on a loopback port and forwards what the viewer reads to
//! the apiserver with the token added. It forwards GETs only, only of the
//! paths the viewer uses (a node's `/proxy/trace/...` tree, one pod, and
//! the events of a namespace), and only when the request's `Host` names a
//! loopback address, so that a web page elsewhere cannot reach it through
//! DNS rebinding. Everything else is refused with 403.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::net::TcpListener;

use super::remote::RemoteError;
use crate::client::{HttpsTransport, Kubeconfig, Transport};

/// A bound viewer proxy; [`ViewerProxy::run`] serves it.
pub struct ViewerProxy {
    listener: TcpListener,
    router: Router,
}

impl ViewerProxy {
    /// Binds `listen` (a loopback address) and reads the kubeconfig.
    pub async fn bind(kubeconfig: &Path, listen: SocketAddr) -> Result<ViewerProxy, RemoteError> {
        if !listen.ip().is_loopback() {
            return Err(RemoteError::Listen {
                address: listen,
                source: std::io::Error::other("the viewer proxy listens on loopback only"),
            });
        }
        let config = Kubeconfig::read(kubeconfig)?;
        let transport: Arc<dyn Transport> = Arc::new(HttpsTransport::new(&config)?);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| RemoteError::Listen {
                address: listen,
                source,
            })?;
        Ok(ViewerProxy {
            listener,
            router: router(transport),
        })
    }

    /// The address it listens on (with the port chosen, for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The viewer's URL for pod `namespace/name` on `node`, through this
    /// proxy.
    pub fn viewer_url(&self, node: &str, namespace: &str, name: &str) -> std::io::Result<String> {
        let address = self.local_addr()?;
        Ok(format!(
            "http://{address}/api/v1/nodes/{node}/proxy/trace/view/{namespace}/{name}"
        ))
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The proxy's one handler over `transport`.
pub fn router(transport: Arc<dyn Transport>) -> Router {
    Router::new().fallback(forward).with_state(transport)
}

/// Whether the viewer may read `path` through the proxy.
pub fn allowed(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return false;
    }
    match segments.as_slice() {
        ["api", "v1", "nodes", _, "proxy", "trace", rest @ ..] => !rest.is_empty(),
        ["api", "v1", "namespaces", _, "pods", _] => true,
        ["api", "v1", "namespaces", _, "events"] => true,
        _ => false,
    }
}

/// Whether a `Host` header names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn forward(State(transport): State<Arc<dyn Transport>>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let path = request.uri().path();
    if request.method() != http::Method::GET || !loopback_host(host) || !allowed(path) {
        return (
            StatusCode::FORBIDDEN,
            "the viewer proxy forwards only the trace viewer's reads\n",
        )
            .into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.to_owned());
    let accept = request.headers().get(header::ACCEPT).cloned();
    let mut outgoing = http::Request::get(&target);
    if let Some(accept) = accept {
        outgoing = outgoing.header(header::ACCEPT, accept);
    }
    let outgoing = match outgoing.body(Bytes::new()) {
        Ok(outgoing) => outgoing,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    match transport.send(outgoing).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut answer = Response::new(Body::new(body));
            *answer.status_mut() = parts.status;
            if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
                answer
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, kind.clone());
            }
            answer
                .headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("a header"));
            answer
        }
        Err(error) => {
            tracing::warn!(path = %target, %error,
                "the viewer proxy could not reach the apiserver");
            (
                StatusCode::BAD_GATEWAY,
                format!("cannot reach the apiserver: {error}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_viewers_reads_are_forwarded() {
        assert!(allowed("/api/v1/nodes/n1/proxy/trace/view/default/web"));
        assert!(allowed("/api/v1/nodes/n1/proxy/trace/pods/default/web"));
        assert!(allowed("/api/v1/namespaces/default/pods/web"));
        assert!(allowed("/api/v1/namespaces/default/events"));
        assert!(!allowed("/api/v1/namespaces/default/secrets/token"));
        assert!(!allowed("/api/v1/namespaces/default/pods"));
        assert!(!allowed("/api/v1/nodes/n1/proxy/logs/x"));
        assert!(!allowed("/api/v1/nodes/n1/proxy/trace/../../../secrets"));
        assert!(!allowed("/apis/apps/v1/deployments"));
    }

    #[test]
    fn only_loopback_host_names_are_accepted() {
        assert!(loopback_host("127.0.0.1:4000"));
        assert!(loopback_host("localhost:4000"));
        assert!(loopback_host("[::1]:4000"));
        assert!(!loopback_host("evil.example:4000"));
        assert!(!loopback_host("10.0.0.1:4000"));
        assert!(!loopback_host(""));
    }
}
