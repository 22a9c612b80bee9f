//! Watch responses: newline-delimited events, flushed one by one.
//!
//! A watch starts from a revision (the initial state first when none, or
//! `0`, is given; the streaming-list form with `sendInitialEvents=true` ends
//! the initial state with the `k8s.io/initial-events-end` bookmark), filters
//! each change by namespace and selectors (an object that leaves the filter
//! is sent as DELETED, one that enters it as ADDED), and ends at
//! `timeoutSeconds`. A revision that fell out of the store's window ends the
//! stream with a 410 `Expired` ERROR event so that clients re-list.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
use super::errors::{ApiError, ApiResult};
use super::fields::Filter;
use super::handlers::{Call, stream_response};
use super::table;
use crate::store::{EventType, Prefix, Record, StoreError};

/// How a watch encodes its events.
struct Encoder {
    filter: Filter,
    table: bool,
    /// Table rows carry whole objects (`includeObject=Object`).
    full_objects: bool,
    /// A Table watch sends column definitions in its first event only.
    sent_columns: bool,
    /// The keys the watch covers: its resource, in its namespace if any.
    scope: Prefix,
}

impl Encoder {
    fn event(&mut self, kind: &str, record: &Record) -> Bytes {
        if self.table {
            let rv = record.revision.to_string();
            let doc = table::table(
                self.filter.info,
                [&record.object()],
                &rv,
                !self.sent_columns,
                self.full_objects,
            );
            self.sent_columns = true;
            let line = json!({"type": kind, "object": doc});
            let mut bytes = serde_json::to_vec(&line).expect("encodes");
            bytes.push(b'\n');
            return Bytes::from(bytes);
        }
        // The object's JSON is shared; only the envelope is new.
        let mut bytes = Vec::with_capacity(record.json.len() + 32);
        bytes.extend_from_slice(b"{\"type\":\"");
        bytes.extend_from_slice(kind.as_bytes());
        bytes.extend_from_slice(b"\",\"object\":");
        bytes.extend_from_slice(&record.json);
        bytes.extend_from_slice(b"}\n");
        Bytes::from(bytes)
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.filter.info.kind,
                            "apiVersion": self.filter.info.api_version(),
                            "metadata": metadata});
        let mut bytes =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).expect("encodes");
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn in_scope(&self, record: &Record) -> bool {
        self.scope.contains(&record.key)
    }
}

fn error_event(error: &ApiError) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": "ERROR", "object": error.status()})).expect("encodes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

pub async fn watch(state: Arc<ApiState>, call: &Call, filter: Filter) -> ApiResult<Response> {
    let rv = call.param("resourceVersion").unwrap_or("");
    let send_initial = call.param("sendInitialEvents") == Some("true");
    let bookmarks = call.param("allowWatchBookmarks") == Some("true");
    if send_initial && (!bookmarks || call.param("resourceVersionMatch") != Some("NotOlderThan")) {
        return Err(ApiError::Invalid {
            kind: "ListOptions".into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
            causes: vec![super::errors::FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents requires setting allowWatchBookmarks=true and \
                 resourceVersionMatch=NotOlderThan",
            )],
        });
    }
    let timeout = call
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .or_else(|| call.param("timeout").and_then(parse_go_duration))
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));

    let scope = Prefix {
        resource: filter.info.store_resource(),
        namespace: filter.namespace.clone(),
    };
    let mut encoder = Encoder {
        scope,
        filter,
        table: table::wants_table(call_accept(call)),
        full_objects: call.full_objects(),
        sent_columns: false,
    };
    let mut initial: Vec<Bytes> = Vec::new();
    let start = if rv.is_empty() || rv == "0" || send_initial {
        let snapshot = state.store.list(&encoder.scope);
        for record in &snapshot.records {
            if encoder.filter.matches(record) {
                initial.push(encoder.event("ADDED", record));
            }
        }
        if send_initial {
            initial.push(encoder.bookmark(snapshot.revision, true));
        }
        snapshot.revision
    } else {
        let requested = rv
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
        // A revision the store has not reached: wait a moment for it, then
        // answer "too large" (504), and the client re-lists.
        super::handlers::wait_for_revision(&state, requested).await?;
        requested
    };

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    // A kubelet's watch (pods of one node) reads the log's node index.
    let node = match encoder.scope.resource.as_str() {
        "pods" => encoder.filter.fields.requires_exact_match("spec.nodeName"),
        _ => None,
    };
    let cursor = state.store.watch(start).and_then(|c| match node {
        Some(node) => c.only_node(node),
        None => Ok(c.only(&encoder.scope.resource)),
    });
    let stopping = super::stopped(state.stopping.clone());
    tokio::spawn(async move {
        tokio::pin!(stopping);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for chunk in initial {
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        let mut cursor = match cursor {
            Ok(cursor) => cursor,
            Err(StoreError::Expired { requested, oldest }) => {
                let _ = tx
                    .send(Ok(error_event(&ApiError::Expired { requested, oldest })))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(Ok(error_event(&ApiError::ServiceUnavailable(
                        e.to_string(),
                    ))))
                    .await;
                return;
            }
        };
        let mut bookmark_timer = tokio::time::interval(Duration::from_secs(60));
        bookmark_timer.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                // The server stops: the watch ends, as at its timeout.
                _ = &mut stopping => return,
                _ = bookmark_timer.tick(), if bookmarks => {
                    let chunk = encoder.bookmark(cursor.position(), false);
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                batch = cursor.next_batch() => {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(StoreError::Expired { requested, oldest }) => {
                            let error = ApiError::Expired { requested, oldest };
                            let _ = tx.send(Ok(error_event(&error))).await;
                            return;
                        }
                        Err(_) => return,
                    };
                    for event in batch {
                        if !encoder.in_scope(&event.record) {
                            continue;
                        }
                        let now = encoder.filter.matches(&event.record);
                        let before = event
                            .previous
                            .as_ref()
                            .is_some_and(|p| encoder.filter.matches(p));
                        let kind = match (event.kind, before, now) {
                            (EventType::Added, _, true) => "ADDED",
                            (EventType::Modified, true, true) => "MODIFIED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, true, false) => "DELETED",
                            (EventType::Deleted, _, true) => "DELETED",
                            _ => continue,
                        };
                        if tx.send(Ok(encoder.event(kind, &event.record))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    Ok(stream_response(
        "application/json",
        Body::from_stream(ReceiverStream::new(rx)),
    ))
}

fn call_accept(call: &Call) -> &str {
    call.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses the Go durations clients put in `timeout` (`32s`, `5m`, `1m30s`).
fn parse_go_duration(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
    }
    if !number.is_empty() {
        return None;
    }
    Some(total.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn go_durations_parse_to_whole_seconds() {
        assert_eq!(parse_go_duration("32s"), Some(32));
        assert_eq!(parse_go_duration("1m30s"), Some(90));
        assert_eq!(parse_go_duration("500ms"), Some(1));
        assert_eq!(parse_go_duration("x"), None);
    }
}
