//! How requests reach the apiserver: over HTTPS, or in-process.

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

use super::{Error, Kubeconfig, Result};

/// Sends one request to the apiserver. The path and query are relative to
/// the server (`/api/v1/pods?watch=true`).
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<axum::body::Body>>>;
}

/// HTTPS with the kubeconfig's CA and bearer token.
pub struct HttpsTransport {
    server: String,
    authorization: Option<http::HeaderValue>,
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpsTransport {
    pub fn new(config: &Kubeconfig) -> Result<HttpsTransport> {
        let tls = config.tls_client_config()?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        let authorization = match &config.token {
            Some(token) => Some(
                http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| Error::Config("token is not a valid header value".into()))?,
            ),
            None => None,
        };
        Ok(HttpsTransport {
            server: config.server.trim_end_matches('/').to_owned(),
            authorization,
            client,
        })
    }
}

impl Transport for HttpsTransport {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<axum::body::Body>>> {
        let (mut parts, body) = request.into_parts();
        let uri = format!("{}{}", self.server, parts.uri);
        let client = self.client.clone();
        let authorization = self.authorization.clone();
        Box::pin(async move {
            parts.uri = uri
                .parse()
                .map_err(|e| Error::Transport(format!("bad URI {uri}: {e}")))?;
            if let Some(value) = authorization {
                parts.headers.insert(http::header::AUTHORIZATION, value);
            }
            let response = client
                .request(Request::from_parts(parts, Full::new(body)))
                .await
                .map_err(|e| Error::Transport(format!("{uri}: {e}")))?;
            Ok(response.map(axum::body::Body::new))
        })
    }
}

/// Straight into the apiserver's router, as the cluster's own superuser.
pub struct InProcessTransport {
    router: axum::Router,
    authorization: http::HeaderValue,
}

impl InProcessTransport {
    /// `token` is a token the router accepts.
    pub fn new(router: axum::Router, token: &str) -> InProcessTransport {
        let authorization =
            http::HeaderValue::from_str(&format!("Bearer {token}")).expect("token is ASCII");
        InProcessTransport {
            router,
            authorization,
        }
    }
}

impl Transport for InProcessTransport {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<axum::body::Body>>> {
        let router = self.router.clone();
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .insert(http::header::AUTHORIZATION, self.authorization.clone());
        Box::pin(async move {
            let request = Request::from_parts(parts, axum::body::Body::from(body));
            match router.oneshot(request).await {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }
        })
    }
}
