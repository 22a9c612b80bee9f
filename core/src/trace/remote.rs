//! Reading a node's traces through the apiserver, for `coxswain trace`:
//! `GET /api/v1/nodes/{node}/proxy/trace/...`, authenticated by the
//! kubeconfig's token.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::TraceEvent;
use super::agent::PodReport;
use crate::api::{Node, Pod, Resource};
use crate::client::{Client, HttpsTransport, Kubeconfig, ListParams, Transport};

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Client(#[from] crate::client::Error),
    #[error("pod {0} is not scheduled to a node yet")]
    Unscheduled(String),
    #[error("the cluster has no nodes")]
    NoNodes,
    #[error("the apiserver answered {code}: {message}")]
    Status { code: StatusCode, message: String },
    #[error("decoding a trace failed")]
    Decode(#[from] serde_json::Error),
    #[error("listening on {address} failed")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A reader of node traces through the apiserver.
pub struct TraceClient {
    client: Client,
    transport: Arc<dyn Transport>,
}

impl TraceClient {
    /// A reader with the server and token of a kubeconfig.
    pub fn from_kubeconfig(path: &Path) -> Result<TraceClient, RemoteError> {
        let config = Kubeconfig::read(path)?;
        let transport: Arc<dyn Transport> = Arc::new(HttpsTransport::new(&config)?);
        Ok(TraceClient {
            client: Client::new(transport.clone()),
            transport,
        })
    }

    /// The Pod object, as the kubelet last reported its status.
    pub async fn pod(&self, namespace: &str, name: &str) -> Result<Pod, RemoteError> {
        Ok(self.client.get(namespace, name).await?)
    }

    /// The node pod `namespace/name` is bound to.
    pub async fn node_of(&self, namespace: &str, name: &str) -> Result<String, RemoteError> {
        let pod = self.pod(namespace, name).await?;
        pod.spec
            .and_then(|s| s.node_name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| RemoteError::Unscheduled(format!("{namespace}/{name}")))
    }

    /// The first node of the cluster, by name.
    pub async fn first_node(&self) -> Result<String, RemoteError> {
        let nodes = self.client.list::<Node>("", &ListParams::default()).await?;
        let mut names: Vec<String> = nodes.items.iter().map(|n| n.name().to_owned()).collect();
        names.sort();
        names.into_iter().next().ok_or(RemoteError::NoNodes)
    }

    /// The pod's trace as its node agent keeps it.
    pub async fn pod_report(&self, namespace: &str, name: &str) -> Result<PodReport, RemoteError> {
        let node = self.node_of(namespace, name).await?;
        self.pod_report_on(&node, namespace, name).await
    }

    /// The pod's trace as `node`'s agent keeps it, also once the pod is gone
    /// from the API.
    pub async fn pod_report_on(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
    ) -> Result<PodReport, RemoteError> {
        let path = format!("/api/v1/nodes/{node}/proxy/trace/pods/{namespace}/{name}");
        let body = self.get(&path).await?.collect().await;
        let bytes = body
            .map_err(|e| crate::client::Error::Transport(e.to_string()))?
            .to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// A node's events (one pod's, with `pod`): the recent ones, then, with
    /// `follow`, new ones until the receiver is dropped.
    pub async fn events(
        &self,
        node: &str,
        pod: Option<&str>,
        follow: bool,
    ) -> Result<mpsc::Receiver<Result<TraceEvent, RemoteError>>, RemoteError> {
        let mut query = vec![("follow", if follow { "1" } else { "0" }.to_owned())];
        if let Some(pod) = pod {
            query.push(("pod", pod.to_owned()));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let path = format!("/api/v1/nodes/{node}/proxy/trace/events?{query}");
        let body = self.get(&path).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            let mut buffer = BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { return };
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Bytes = buffer.split_to(end + 1).freeze();
                    let event = serde_json::from_slice::<TraceEvent>(&line).map_err(Into::into);
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn get(&self, path: &str) -> Result<axum::body::Body, RemoteError> {
        let request = Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| crate::client::Error::Transport(e.to_string()))?;
        let response = self.transport.send(request).await?;
        let code = response.status();
        if code.is_success() {
            return Ok(response.into_body());
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(RemoteError::Status { code, message })
    }
}
