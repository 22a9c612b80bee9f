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
    /// Where the server is in stopping: watches end once it is, so that
    /// their connections can close.
    pub stopping: tokio::sync::watch::Receiver<Stopping>,
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
    /// Tells the listener, the connections and the watches to stop.
    stop: tokio::sync::watch::Sender<Stopping>,
    /// Every connection holds a clone of the sender: the channel closes
    /// when the last one ends.
    connections: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<()>>,
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
        let (stop, stopping) = tokio::sync::watch::channel(Stopping::Serving);
        let state = Arc::new(ApiState {
            store: store.clone(),
            tokens: vec![pki.admin_token.clone()],
            server_address: local_addr.to_string(),
            node_token: pki.admin_token.clone(),
            node_client: HyperClient::builder(TokioExecutor::new()).build_http(),
            stopping: stopping.clone(),
        });
        bootstrap(store.as_ref()).await;
        let router = router(state);
        let tls = Arc::new(pki.server_config()?);
        let (open, connections) = tokio::sync::mpsc::channel(1);
        let listening = Listening {
            listener,
            tls,
            router: router.clone(),
            stopping,
            open,
        };
        tokio::spawn(accept_loop(listening));
        tracing::info!(address = %local_addr, kubeconfig = %kubeconfig.display(), "apiserver serving");
        Ok(ApiServer {
            router,
            admin_token: pki.admin_token,
            kubeconfig,
            local_addr,
            store,
            stop,
            connections: tokio::sync::Mutex::new(connections),
        })
    }

    /// Stops serving, as kube-apiserver does on SIGTERM: no new connection
    /// is accepted, idle ones close, watches end (their clients re-list
    /// elsewhere or later), and requests under way are answered, for up to
    /// `grace`; then the connections left are cut (a request on one gets no
    /// answer, as if the server had crashed). Returns whether every
    /// connection closed in time. The store stays open: close it after
    /// this, so that no request is told it is closed.
    pub async fn shutdown(&self, grace: std::time::Duration) -> bool {
        self.advance(Stopping::Draining);
        let mut connections = self.connections.lock().await;
        let drained = tokio::time::timeout(grace, connections.recv()).await;
        if matches!(drained, Ok(None)) {
            return true;
        }
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "connections still open after the grace period; cutting them"
        );
        self.cut();
        // A cut connection's task ends at its next poll.
        let _ = tokio::time::timeout(CUT_WAIT, connections.recv()).await;
        false
    }

    /// The data directory's kubeconfig path, for components started apart.
    pub fn kubeconfig_in(data_dir: &Path) -> PathBuf {
        data_dir.join("kubeconfig")
    }

    /// Cuts every connection now (a second signal while draining).
    pub fn cut(&self) {
        self.advance(Stopping::Cut);
    }

    fn advance(&self, to: Stopping) {
        self.stop.send_if_modified(|now| {
            let later = to > *now;
            if later {
                *now = to;
            }
            later
        });
    }
}

/// How long cut connections are given to end.
const CUT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a server is in stopping, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stopping {
    Serving,
    /// Answering what is under way; nothing new.
    Draining,
    /// Closing every connection now.
    Cut,
}

/// Resolves once the server reaches `stage` of stopping (never, if it is
/// dropped before).
pub(crate) async fn reached(mut stopping: tokio::sync::watch::Receiver<Stopping>, stage: Stopping) {
    if stopping.wait_for(|now| *now >= stage).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves once the server stops (never, if it is dropped without
/// stopping).
pub(crate) async fn stopped(stopping: tokio::sync::watch::Receiver<Stopping>) {
    reached(stopping, Stopping::Draining).await;
}

/// What the listener's loop needs.
struct Listening {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    stopping: tokio::sync::watch::Receiver<Stopping>,
    /// Cloned into every connection; see [`ApiServer::shutdown`].
    open: tokio::sync::mpsc::Sender<()>,
}

async fn accept_loop(listening: Listening) {
    let Listening {
        listener,
        tls,
        router,
        stopping,
        open,
    } = listening;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(stopping.clone()) => return,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let (stopping, open) = (stopping.clone(), open.clone());
        tokio::spawn(async move {
            // Held until the connection ends.
            let _open = open;
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
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stopped(stopping.clone()) => {
                    // Answers what is under way, then closes; cut (dropped)
                    // if that outlasts the grace.
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        served = connection.as_mut() => served,
                        _ = reached(stopping, Stopping::Cut) => return,
                    }
                }
            };
            if let Err(error) = served {
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
