//! The apiserver: Kubernetes' REST API over HTTPS, on top of a [`Store`].
//!
//! What callers may rely on:
//!
//! * every request must carry `Authorization: Bearer <token>` with a known
//!   token, or gets 401 (nothing is served anonymously);
//! * every failure reaches the client as a Kubernetes `Status` with the
//!   matching HTTP code, and no malformed request stops the server;
//! * [`ApiServer::router`] is the same router the HTTPS listener serves, so an
//!   in-process client runs exactly the code a remote one does.

mod admission;
mod discovery;
mod errors;
mod fields;
mod handlers;
mod logs;
mod node_proxy;
mod patch;
mod pki;
mod protobuf;
mod registry;
mod table;
mod watch;

pub use errors::{ApiError, FieldError};
pub use handlers::qos_class;
pub use pki::{Pki, PkiError};
pub use registry::{KINDS, KindInfo};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::store::{Key, Store, WriteOp};

/// Shared state of every request handler.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// Bearer tokens that are accepted.
    tokens: Vec<String>,
    /// `host:port` clients reach this server at (legacy discovery).
    pub server_address: String,
    /// The token node agents accept from the apiserver.
    pub node_token: String,
    pub node_client: HyperClient<HttpConnector, Full<Bytes>>,
}

/// The largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

async fn serve_request(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let authorized = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .is_some_and(|token| state.tokens.iter().any(|t| t == token.trim()));
    if !authorized {
        return ApiError::Unauthorized.into_response();
    }
    let (parts, body) = request.into_parts();
    let query: HashMap<String, String> = match parts.uri.query() {
        Some(q) => match serde_urlencoded::from_str::<Vec<(String, String)>>(q) {
            Ok(pairs) => pairs.into_iter().collect(),
            Err(e) => {
                return ApiError::BadRequest(format!("invalid query string: {e}")).into_response();
            }
        },
        None => HashMap::new(),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return ApiError::BadRequest(format!("reading the body: {e}")).into_response(),
    };
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let call = handlers::Call {
        method,
        query,
        headers: parts.headers,
        body,
    };
    let response = handlers::route(state, call, &path).await;
    tracing::debug!(method = %parts.method, path, status = response.status().as_u16(), "request");
    response
}

/// Builds the router over a store.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new()
        .fallback(serve_request)
        .with_state(state)
}

/// Where and how to run the apiserver.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// Certificates, tokens and the kubeconfig live here.
    pub data_dir: PathBuf,
    /// Loopback address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// A running apiserver.
pub struct ApiServer {
    pub router: axum::Router,
    pub admin_token: String,
    pub kubeconfig: PathBuf,
    pub local_addr: SocketAddr,
    pub store: Arc<dyn Store>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl ApiServer {
    /// Generates or loads credentials, binds the listener, writes the
    /// kubeconfig, creates the system namespaces and starts serving.
    pub async fn start(
        config: ApiServerConfig,
        store: Arc<dyn Store>,
    ) -> Result<ApiServer, StartError> {
        let pki = Pki::load_or_create(&config.data_dir)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let server = format!("https://{local_addr}");
        let kubeconfig = pki.write_kubeconfig(&config.data_dir, &server)?;
        let state = Arc::new(ApiState {
            store: store.clone(),
            tokens: vec![pki.admin_token.clone()],
            server_address: local_addr.to_string(),
            node_token: pki.admin_token.clone(),
            node_client: HyperClient::builder(TokioExecutor::new()).build_http(),
        });
        bootstrap(store.as_ref()).await;
        let router = router(state);
        let tls = Arc::new(pki.server_config()?);
        tokio::spawn(accept_loop(listener, tls, router.clone()));
        tracing::info!(address = %local_addr, kubeconfig = %kubeconfig.display(), "apiserver serving");
        Ok(ApiServer {
            router,
            admin_token: pki.admin_token,
            kubeconfig,
            local_addr,
            store,
        })
    }

    /// The data directory's kubeconfig path, for components started apart.
    pub fn kubeconfig_in(data_dir: &Path) -> PathBuf {
        data_dir.join("kubeconfig")
    }
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: axum::Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(socket).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(
                router.map_request(|r: http::Request<hyper::body::Incoming>| r.map(Body::new)),
            );
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// Creates the namespaces every cluster has.
async fn bootstrap(store: &dyn Store) {
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = Key::new("namespaces", "", name);
        if store.get(&key).is_some() {
            continue;
        }
        let object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": crate::api::Time::now().to_string(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        if let Err(error) = store.write(key, WriteOp::Create(object)).await {
            tracing::warn!(namespace = name, %error, "creating a system namespace failed");
        }
    }
}
