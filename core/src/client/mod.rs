//! The one way every component talks to the cluster.
//!
//! A [`Client`] sends Kubernetes API requests through a [`Transport`]: over
//! HTTPS with a bearer token when a component runs as its own process
//! (built from a kubeconfig), or straight into the apiserver's router when
//! `coxswain up` runs everything in one process. Both go through the same
//! routing, admission and storage code, so a component cannot tell them
//! apart.
//!
//! Errors from the server arrive as [`Error::Api`] carrying the Kubernetes
//! `Status`; helpers say whether it was a 404, a 409 and so on.

mod events;
mod kubeconfig;
mod metered;
mod transport;
mod watcher;

pub use events::{EventRecorder, reference};
pub use kubeconfig::Kubeconfig;
pub use metered::{MeteredTransport, RequestMetrics, classify};
pub use transport::{HttpsTransport, InProcessTransport, Transport};
pub use watcher::{WatcherEvent, watcher};

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    Binding, DeleteOptions, List, ObjectMeta, ObjectReference, Resource, Status, WatchEvent,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a Kubernetes `Status`.
    #[error("{}", .0.message.as_deref().unwrap_or("request failed"))]
    Api(Status),
    #[error("request to the apiserver failed: {0}")]
    Transport(String),
    #[error("decoding the apiserver's answer failed: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("kubeconfig: {0}")]
    Config(String),
}

impl Error {
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api(status) => status.code,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// The server has not reached the asked-for resourceVersion (504, as
    /// upstream's "Too large resource version"): list again.
    pub fn is_too_large_resource_version(&self) -> bool {
        self.code() == Some(504)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Selectors of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

impl ListParams {
    pub fn labels(selector: impl Into<String>) -> ListParams {
        ListParams {
            label_selector: Some(selector.into()),
            field_selector: None,
        }
    }

    pub fn fields(selector: impl Into<String>) -> ListParams {
        ListParams {
            label_selector: None,
            field_selector: Some(selector.into()),
        }
    }

    fn query(&self, out: &mut Vec<(String, String)>) {
        if let Some(s) = &self.label_selector {
            out.push(("labelSelector".into(), s.clone()));
        }
        if let Some(s) = &self.field_selector {
            out.push(("fieldSelector".into(), s.clone()));
        }
    }
}

/// A handle on the cluster's API. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
}

/// The URL path of a collection (`namespace` empty: all namespaces, or a
/// cluster-scoped kind).
pub fn collection_path<T: Resource>(namespace: &str) -> String {
    let base = if T::GROUP.is_empty() {
        format!("/api/{}", T::VERSION)
    } else {
        format!("/apis/{}/{}", T::GROUP, T::VERSION)
    };
    if T::NAMESPACED && !namespace.is_empty() {
        format!("{base}/namespaces/{namespace}/{}", T::PLURAL)
    } else {
        format!("{base}/{}", T::PLURAL)
    }
}

/// The URL path of one object.
pub fn object_path<T: Resource>(namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path::<T>(namespace))
}

fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Client {
    pub fn new(transport: Arc<dyn Transport>) -> Client {
        Client { transport }
    }

    /// A client over HTTPS from a kubeconfig file.
    pub fn from_kubeconfig(path: &std::path::Path) -> Result<Client> {
        let config = Kubeconfig::read(path)?;
        Ok(Client::new(Arc::new(HttpsTransport::new(&config)?)))
    }

    /// Sends one request and returns the status and the whole body.
    pub async fn request_raw(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let response = self
            .send(method, path_and_query, content_type, body)
            .await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<http::Response<axum::body::Body>> {
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|e| Error::Transport(e.to_string()))?;
        self.transport.send(request).await
    }

    async fn request<O: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<O> {
        let (status, bytes) = self
            .request_raw(method, path_and_query, content_type, body)
            .await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Gets one object; `Error::Api` with code 404 when it is absent.
    pub async fn get<T: Resource>(&self, namespace: &str, name: &str) -> Result<T> {
        self.request(
            Method::GET,
            &object_path::<T>(namespace, name),
            "",
            Bytes::new(),
        )
        .await
    }

    /// Gets one object, `None` when it is absent.
    pub async fn get_opt<T: Resource>(&self, namespace: &str, name: &str) -> Result<Option<T>> {
        match self.get(namespace, name).await {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects; `namespace` "" lists all namespaces.
    pub async fn list<T: Resource>(&self, namespace: &str, params: &ListParams) -> Result<List<T>> {
        let mut query = Vec::new();
        params.query(&mut query);
        let path = format!(
            "{}{}",
            collection_path::<T>(namespace),
            encode_query(&query)
        );
        self.request(Method::GET, &path, "", Bytes::new()).await
    }

    pub async fn create<T: Resource>(&self, object: &T) -> Result<T> {
        let path = collection_path::<T>(object.namespace());
        self.request(Method::POST, &path, "application/json", json_body(object)?)
            .await
    }

    /// Replaces an object (PUT). With `metadata.resourceVersion` set, a stale
    /// object fails with 409 Conflict.
    pub async fn replace<T: Resource>(&self, object: &T) -> Result<T> {
        let path = object_path::<T>(object.namespace(), object.name());
        self.request(Method::PUT, &path, "application/json", json_body(object)?)
            .await
    }

    /// Replaces the status of an object (PUT on `/status`).
    pub async fn replace_status<T: Resource>(&self, object: &T) -> Result<T> {
        let path = format!(
            "{}/status",
            object_path::<T>(object.namespace(), object.name())
        );
        self.request(Method::PUT, &path, "application/json", json_body(object)?)
            .await
    }

    /// Applies a JSON merge patch (RFC 7386) to an object.
    pub async fn merge_patch<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<T> {
        let path = object_path::<T>(namespace, name);
        self.request(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            json_body(patch)?,
        )
        .await
    }

    /// Applies a JSON merge patch to the status of an object.
    pub async fn merge_patch_status<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<T> {
        let path = format!("{}/status", object_path::<T>(namespace, name));
        self.request(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            json_body(patch)?,
        )
        .await
    }

    /// Deletes an object. Pods are deleted gracefully unless
    /// `grace_period_seconds` is 0; the answer is the object (pods) or a
    /// `Status`, returned raw.
    pub async fn delete<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value> {
        let path = object_path::<T>(namespace, name);
        self.request(
            Method::DELETE,
            &path,
            "application/json",
            json_body(options)?,
        )
        .await
    }

    /// Binds a pod to a node through the `binding` subresource.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<()> {
        let binding = Binding {
            api_version: "v1".into(),
            kind: "Binding".into(),
            metadata: ObjectMeta {
                name: Some(pod.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.into()),
                ..Default::default()
            },
        };
        let path = format!("{}/binding", object_path::<crate::api::Pod>(namespace, pod));
        let _: Value = self
            .request(
                Method::POST,
                &path,
                "application/json",
                json_body(&binding)?,
            )
            .await?;
        Ok(())
    }

    /// Reads a pod's container log as text.
    pub async fn pod_log(&self, namespace: &str, pod: &str, container: &str) -> Result<String> {
        let path = format!(
            "{}/log{}",
            object_path::<crate::api::Pod>(namespace, pod),
            encode_query(&[("container".into(), container.into())])
        );
        let (status, bytes) = self
            .request_raw(Method::GET, &path, "", Bytes::new())
            .await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Watches a collection from `resource_version` (exclusive). The stream
    /// ends when the server closes the watch; an `ERROR` event (410 Gone when
    /// the revision is too old) arrives as `Err(Error::Api)`.
    pub async fn watch<T: Resource>(
        &self,
        namespace: &str,
        params: &ListParams,
        resource_version: &str,
        timeout_seconds: u32,
    ) -> Result<impl Stream<Item = Result<WatchEvent<T>>> + Send + use<T>> {
        let mut query = vec![
            ("watch".to_string(), "true".to_string()),
            ("resourceVersion".into(), resource_version.into()),
            ("allowWatchBookmarks".into(), "true".into()),
            ("timeoutSeconds".into(), timeout_seconds.to_string()),
        ];
        params.query(&mut query);
        let path = format!(
            "{}{}",
            collection_path::<T>(namespace),
            encode_query(&query)
        );
        let response = self.send(Method::GET, &path, "", Bytes::new()).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Transport(e.to_string()))?
                .to_bytes();
            return Err(status_error(status, &bytes));
        }
        Ok(watch_lines(response.into_body()).map(|line| {
            let line = line?;
            let raw: WatchEvent<Value> = serde_json::from_slice(&line)?;
            if raw.kind == "ERROR" {
                return Err(Error::Api(serde_json::from_value(raw.object)?));
            }
            Ok(WatchEvent {
                kind: raw.kind,
                object: serde_json::from_value(raw.object)?,
            })
        }))
    }
}

fn json_body<S: Serialize>(value: &S) -> Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(value)?))
}

/// Turns a non-2xx answer into an error, keeping the server's `Status`.
fn status_error(status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<Status>(body) {
        Ok(mut s) if s.kind == "Status" => {
            s.code.get_or_insert(status.as_u16());
            Error::Api(s)
        }
        _ => Error::Api(Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: Some("Failure".into()),
            message: Some(format!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            )),
            code: Some(status.as_u16()),
            ..Default::default()
        }),
    }
}

/// Splits a streamed body into newline-terminated lines.
fn watch_lines(body: axum::body::Body) -> impl Stream<Item = Result<Bytes>> + Send {
    let frames = body.into_data_stream();
    futures::stream::unfold(
        (frames, Vec::<u8>::new(), false),
        |(mut frames, mut buffer, mut done)| async move {
            loop {
                if let Some(pos) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=pos).collect();
                    if line.len() > 1 {
                        return Some((Ok(Bytes::from(line)), (frames, buffer, done)));
                    }
                    continue;
                }
                if done {
                    return None;
                }
                match frames.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        done = true;
                        return Some((
                            Err(Error::Transport(e.to_string())),
                            (frames, buffer, done),
                        ));
                    }
                    None => {
                        done = true;
                        if buffer.iter().any(|b| !b.is_ascii_whitespace()) {
                            let rest = std::mem::take(&mut buffer);
                            return Some((Ok(Bytes::from(rest)), (frames, buffer, done)));
                        }
                    }
                }
            }
        },
    )
}
