//! A transport that times every request it passes on, for load tests.
//!
//! [`MeteredTransport`] wraps any [`Transport`] and records, per verb and
//! resource, how long each request took until its response head arrived
//! (the whole answer, except for watches, whose stream stays open). Verbs
//! are the apiserver's: `GET`, `LIST`, `WATCH`, `CREATE`, `UPDATE`, `PATCH`,
//! `DELETE`; resources are plurals with their subresource (`pods/status`).
//! Recording takes a short lock; samples are kept whole so that percentiles
//! are exact.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response};

use super::{Result, Transport};

/// Request latencies by (verb, resource), in microseconds.
#[derive(Default)]
pub struct RequestMetrics {
    samples: Mutex<BTreeMap<(&'static str, String), Vec<u32>>>,
}

impl RequestMetrics {
    pub fn new() -> Arc<RequestMetrics> {
        Arc::new(RequestMetrics::default())
    }

    /// Records one request.
    pub fn record(&self, verb: &'static str, resource: String, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.samples
            .lock()
            .expect("request metrics poisoned")
            .entry((verb, resource))
            .or_default()
            .push(micros);
    }

    /// Every sample so far, by (verb, resource), in microseconds.
    pub fn snapshot(&self) -> BTreeMap<(&'static str, String), Vec<u32>> {
        self.samples
            .lock()
            .expect("request metrics poisoned")
            .clone()
    }

    /// How many requests were recorded.
    pub fn count(&self) -> usize {
        self.samples
            .lock()
            .expect("request metrics poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }
}

/// Times the requests of an inner transport into a [`RequestMetrics`].
pub struct MeteredTransport {
    inner: Arc<dyn Transport>,
    metrics: Arc<RequestMetrics>,
}

impl MeteredTransport {
    pub fn new(inner: Arc<dyn Transport>, metrics: Arc<RequestMetrics>) -> MeteredTransport {
        MeteredTransport { inner, metrics }
    }
}

impl Transport for MeteredTransport {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<axum::body::Body>>> {
        let (verb, resource) = classify(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        let metrics = Arc::clone(&self.metrics);
        let sent = self.inner.send(request);
        Box::pin(async move {
            let started = Instant::now();
            let response = sent.await;
            metrics.record(verb, resource, started.elapsed());
            response
        })
    }
}

/// The apiserver verb and the resource (`pods`, `pods/binding`,
/// `deployments.apps`) of a request.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return (verb_of(method, false, false), "other".to_owned()),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named, subresource) = match rest {
        [] => ("namespaces", false, None),
        [resource] => (*resource, false, None),
        [resource, _name] => (*resource, true, None),
        [resource, _name, sub, ..] => (*resource, true, Some(*sub)),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let mut name = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    if let Some(sub) = subresource {
        name.push('/');
        name.push_str(sub);
    }
    let verb = if watch {
        "WATCH"
    } else {
        verb_of(method, named, subresource.is_some())
    };
    (verb, name)
}

fn verb_of(method: &Method, named: bool, subresource: bool) -> &'static str {
    match *method {
        Method::GET if named || subresource => "GET",
        Method::GET => "LIST",
        Method::POST => "CREATE",
        Method::PUT => "UPDATE",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (Method::GET, "/api/v1/pods", None, ("LIST", "pods")),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                Some("watch=true&resourceVersion=5"),
                ("WATCH", "pods"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods/p",
                None,
                ("GET", "pods"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/a/pods/p/binding",
                None,
                ("CREATE", "pods/binding"),
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/a/pods/p/status",
                None,
                ("PATCH", "pods/status"),
            ),
            (
                Method::PUT,
                "/apis/apps/v1/namespaces/a/deployments/d",
                None,
                ("UPDATE", "deployments.apps"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces",
                None,
                ("CREATE", "namespaces"),
            ),
            (Method::DELETE, "/api/v1/nodes/n", None, ("DELETE", "nodes")),
            (Method::GET, "/version", None, ("LIST", "other")),
        ];
        for (method, path, query, (verb, resource)) in cases {
            let got = classify(&method, path, query);
            assert_eq!((got.0, got.1.as_str()), (verb, resource), "{method} {path}");
        }
    }

    #[test]
    fn recorded_samples_are_kept_by_verb_and_resource() {
        let metrics = RequestMetrics::new();
        metrics.record("GET", "pods".into(), Duration::from_millis(2));
        metrics.record("GET", "pods".into(), Duration::from_millis(4));
        metrics.record("CREATE", "pods".into(), Duration::from_micros(7));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot[&("GET", "pods".to_owned())], [2000, 4000]);
        assert_eq!(snapshot[&("CREATE", "pods".to_owned())], [7]);
        assert_eq!(metrics.count(), 3);
    }
}
