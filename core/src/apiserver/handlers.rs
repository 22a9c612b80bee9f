//! Routing a request to its verb, and the verbs themselves: get, list,
//! create, update, patch, delete, and the `status`, `scale` and `binding`
//! subresources. Watches and logs live in their own files.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};

use super::ApiState;
use super::admission;
use super::discovery;
use super::errors::{ApiError, ApiResult, FieldError};
use super::fields::Filter;
use super::patch::{self, PatchKind};
use super::protobuf;
use super::registry::{self, KindInfo, unknown_fields};
use super::table;
use crate::api::{DeleteOptions, Time};
use crate::store::{Key, Prefix, Record, StoreError, WriteOp};

/// The parsed parts of a request that every verb needs.
pub struct Call {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1" | "True"))
    }

    fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `includeObject=Object`: Table rows carry whole objects.
    pub fn full_objects(&self) -> bool {
        self.param("includeObject") == Some("Object")
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }
}

/// Where a resource request points.
pub struct Target {
    pub info: &'static KindInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("JSON values always encode");
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn raw_json_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Routes one authenticated request.
pub async fn route(state: Arc<ApiState>, call: Call, path: &str) -> Response {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match segments.as_slice() {
        ["version"] => Ok(json_response(StatusCode::OK, &discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => Ok(discovery_response(&call, true, &state.server_address)),
        ["apis"] => Ok(discovery_response(&call, false, &state.server_address)),
        ["api", version] => resource_list("", version),
        ["apis", group, version] => resource_list(group, version),
        ["openapi", "v3"] => Ok(json_response(StatusCode::OK, &discovery::openapi_index())),
        ["openapi", "v3", "api", version] => openapi("", version),
        ["openapi", "v3", "apis", group, version] => openapi(group, version),
        ["api", "v1", "nodes", node, "proxy", "trace", rest @ ..] if call.method == Method::GET => {
            super::node_proxy::trace(&state, &call, node, rest).await
        }
        ["api", version, rest @ ..] => match parse_target("", version, rest) {
            Some(target) => resource(state, call, target).await,
            None => Err(ApiError::NoRoute),
        },
        ["apis", group, version, rest @ ..] => match parse_target(group, version, rest) {
            Some(target) => resource(state, call, target).await,
            None => Err(ApiError::NoRoute),
        },
        _ => Err(ApiError::NoRoute),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn discovery_response(call: &Call, core: bool, server_address: &str) -> Response {
    if discovery::wants_aggregated(call.accept()) {
        let body = serde_json::to_vec(&discovery::aggregated(core)).expect("encodes");
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE),
                (header::VARY, "Accept"),
            ],
            body,
        )
            .into_response();
    }
    let doc = if core {
        discovery::legacy_api(server_address)
    } else {
        discovery::legacy_apis()
    };
    let body = serde_json::to_vec(&doc).expect("encodes");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::VARY, "Accept"),
        ],
        body,
    )
        .into_response()
}

fn resource_list(group: &str, version: &str) -> ApiResult<Response> {
    discovery::resource_list(group, version)
        .map(|doc| json_response(StatusCode::OK, &doc))
        .ok_or(ApiError::NoRoute)
}

fn openapi(group: &str, version: &str) -> ApiResult<Response> {
    let doc = discovery::openapi_document(group, version).ok_or(ApiError::NoRoute)?;
    let etag = format!("\"{}\"", discovery::openapi_hash(group, version));
    let body = serde_json::to_vec(&doc).expect("encodes");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

/// Parses `[namespaces/NS/]PLURAL[/NAME[/SUB]]` after the group-version.
fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let target = |plural: &str, namespace: Option<&str>, tail: &[&str]| -> Option<Target> {
        let info = registry::lookup(group, version, plural)?;
        if tail.len() > 2 || (namespace.is_some() && !info.namespaced) {
            return None;
        }
        Some(Target {
            info,
            namespace: namespace.map(str::to_owned),
            name: tail.first().map(|s| (*s).to_owned()),
            subresource: tail.get(1).map(|s| (*s).to_owned()),
        })
    };
    match rest {
        // The namespaces resource itself: /namespaces[/NAME[/status]].
        ["namespaces"] | ["namespaces", _] | ["namespaces", _, "status" | "finalize"]
            if group.is_empty() =>
        {
            target("namespaces", None, &rest[1..])
        }
        ["namespaces", namespace, plural, tail @ ..] => target(plural, Some(namespace), tail),
        [plural, tail @ ..] => target(plural, None, tail),
        [] => None,
    }
}

async fn resource(state: Arc<ApiState>, call: Call, target: Target) -> ApiResult<Response> {
    let info = target.info;
    let sub = target.subresource.as_deref();
    match (&call.method, target.name.as_deref(), sub) {
        (&Method::GET, None, None) if call.flag("watch") => {
            let filter = list_filter(&call, &target)?;
            super::watch::watch(state, &call, filter).await
        }
        (&Method::GET, None, None) => list(&state, &call, &target).await,
        (&Method::POST, None, None) => create(&state, &call, &target).await,
        (&Method::DELETE, None, None) => delete_collection(&state, &call, &target).await,
        (&Method::GET, Some(name), None | Some("status")) => {
            let record = get_record(&state, &target, name)?;
            Ok(object_response(
                &call,
                info,
                StatusCode::OK,
                &Reply::Stored(record),
            ))
        }
        (&Method::GET, Some(name), Some("scale")) if info.has_scale => {
            let record = get_record(&state, &target, name)?;
            Ok(json_response(StatusCode::OK, &scale_of(&record.object())))
        }
        (&Method::PUT | &Method::PATCH, Some(name), Some("scale")) if info.has_scale => {
            update_scale(&state, &call, &target, name).await
        }
        (&Method::GET, Some(name), Some("log")) if info.kind == "Pod" => {
            super::logs::pod_log(&state, &call, &target, name).await
        }
        (&Method::POST, Some(name), Some("binding")) if info.kind == "Pod" => {
            bind(&state, &call, &target, name).await
        }
        (&Method::PUT, Some(name), None | Some("status")) => {
            if sub == Some("status") && !info.has_status {
                return Err(ApiError::NoRoute);
            }
            let body = decode_body(&call)?;
            let (object, warnings, code) =
                update(&state, &call, &target, name, UpdateKind::Replace(body)).await?;
            Ok(with_warnings(
                object_response(&call, info, code, &object),
                &warnings,
            ))
        }
        (&Method::PATCH, Some(name), None | Some("status")) => {
            if sub == Some("status") && !info.has_status {
                return Err(ApiError::NoRoute);
            }
            let kind = PatchKind::from_content_type(call.content_type())?;
            if kind == PatchKind::Apply && call.param("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::BadRequest(
                    "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
                ));
            }
            let (object, warnings, code) =
                update(&state, &call, &target, name, UpdateKind::Patch(kind)).await?;
            Ok(with_warnings(
                object_response(&call, info, code, &object),
                &warnings,
            ))
        }
        (&Method::PUT, Some(name), Some("finalize")) if info.kind == "Namespace" => {
            let body = decode_body(&call)?;
            let (object, warnings, code) =
                update(&state, &call, &target, name, UpdateKind::Replace(body)).await?;
            Ok(with_warnings(
                object_response(&call, info, code, &object),
                &warnings,
            ))
        }
        (&Method::DELETE, Some(name), None) => delete(&state, &call, &target, name).await,
        _ => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource"
        ))),
    }
}

fn list_filter(call: &Call, target: &Target) -> ApiResult<Filter> {
    let namespace = if target.info.namespaced {
        target.namespace.clone()
    } else {
        None
    };
    Filter::new(
        target.info,
        namespace,
        call.param("labelSelector"),
        call.param("fieldSelector"),
    )
}

fn key(target: &Target, name: &str) -> Key {
    let namespace = if target.info.namespaced {
        target.namespace.as_deref().unwrap_or("")
    } else {
        ""
    };
    Key::new(&target.info.store_resource(), namespace, name)
}

fn not_found(info: &KindInfo, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: info.qualified(),
        name: name.into(),
        group: info.group.into(),
        kind: info.plural.into(),
    }
}

fn get_record(state: &ApiState, target: &Target, name: &str) -> ApiResult<Record> {
    state
        .store
        .get(&key(target, name))
        .ok_or_else(|| not_found(target.info, name))
}

/// What a request answers with: a stored record, whose shared JSON is sent
/// as it is, or an object that was not stored (a dry run).
pub enum Reply {
    Stored(Record),
    Object(Value),
}

impl Reply {
    /// The object, parsed from the record when stored.
    pub fn into_object(self) -> Value {
        match self {
            Reply::Stored(record) => record.object(),
            Reply::Object(object) => object,
        }
    }
}

/// One object as the client asked for it: a one-row Table or the object.
fn object_response(call: &Call, info: &KindInfo, code: StatusCode, reply: &Reply) -> Response {
    if table::wants_table(call.accept()) {
        let parsed;
        let object = match reply {
            Reply::Stored(record) => {
                parsed = record.object();
                &parsed
            }
            Reply::Object(object) => object,
        };
        let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or("");
        let doc = table::table(info, [object], rv, true, call.full_objects());
        return json_response(code, &doc);
    }
    match reply {
        Reply::Stored(record) => raw_json_response(code, record.json.clone()),
        Reply::Object(object) => json_response(code, object),
    }
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!(
            "299 - \"{}\"",
            warning.replace('\\', "\\\\").replace('"', "\\\"")
        );
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// How long a read waits for the store to reach a resourceVersion it has
/// not reached yet, before it answers 504 (upstream waits 3 s too).
const REVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until the store has reached revision `requested`; a revision it
/// does not reach in [`REVISION_WAIT`] is "too large" (504), which clients
/// answer by re-listing.
pub async fn wait_for_revision(state: &ApiState, requested: u64) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + REVISION_WAIT;
    loop {
        let current = state.store.revision();
        if current >= requested {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::TooLargeResourceVersion { requested, current });
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The revision a list asks for, checked as upstream checks
/// `resourceVersion` and `resourceVersionMatch`: `None` for the latest
/// state, `Some((revision, exact))` otherwise.
fn requested_revision(call: &Call) -> ApiResult<Option<(u64, bool)>> {
    let rv = call.param("resourceVersion").unwrap_or("");
    let exact = match call.param("resourceVersionMatch").unwrap_or("") {
        "" | "NotOlderThan" => false,
        "Exact" => true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": \
                 supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    if rv.is_empty() {
        if call
            .param("resourceVersionMatch")
            .is_some_and(|m| !m.is_empty())
        {
            return Err(ApiError::BadRequest(
                "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            ));
        }
        return Ok(None);
    }
    if rv == "0" {
        if exact {
            return Err(ApiError::BadRequest(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
            ));
        }
        return Ok(None);
    }
    let revision = rv
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
    Ok(Some((revision, exact)))
}

async fn list(state: &ApiState, call: &Call, target: &Target) -> ApiResult<Response> {
    let filter = list_filter(call, target)?;
    let requested = requested_revision(call)?;
    if let Some((revision, _)) = requested {
        wait_for_revision(state, revision).await?;
    }
    let prefix = Prefix {
        resource: target.info.store_resource(),
        namespace: filter.namespace.clone(),
    };
    let snapshot = state.store.list(&prefix);
    // The store keeps the latest state only: an exact list of an older
    // revision is gone, as it is upstream once compacted.
    if let Some((revision, true)) = requested {
        if revision < snapshot.revision {
            return Err(ApiError::Expired {
                requested: revision,
                oldest: snapshot.revision,
            });
        }
    }
    let mut records: Vec<&Record> = snapshot
        .records
        .iter()
        .filter(|r| filter.matches(r))
        .collect();

    // Pagination: the continue token is the key to start after.
    if let Some(token) = call.param("continue").filter(|t| !t.is_empty()) {
        let (namespace, name) = decode_continue(token)?;
        records.retain(|r| (r.key.namespace.as_str(), r.key.name.as_str()) > (&namespace, &name));
    }
    let limit: usize = call
        .param("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(0);
    let mut next = None;
    let mut remaining = None;
    if limit > 0 && records.len() > limit {
        remaining = Some(records.len() - limit);
        records.truncate(limit);
        let last = records.last().expect("limit > 0");
        next = Some(encode_continue(&last.key.namespace, &last.key.name));
    }
    let revision = snapshot.revision.to_string();
    if table::wants_table(call.accept()) {
        let objects: Vec<Value> = records.iter().map(|r| r.object()).collect();
        let mut doc = table::table(
            target.info,
            objects.iter(),
            &revision,
            true,
            call.full_objects(),
        );
        if let Some(next) = &next {
            doc["metadata"]["continue"] = json!(next);
            doc["metadata"]["remainingItemCount"] = json!(remaining);
        }
        return Ok(json_response(StatusCode::OK, &doc));
    }
    // Assemble the list from the shared encoded items without re-encoding.
    let mut metadata = json!({"resourceVersion": revision});
    if let Some(next) = &next {
        metadata["continue"] = json!(next);
        metadata["remainingItemCount"] = json!(remaining);
    }
    let mut body =
        Vec::with_capacity(records.iter().map(|r| r.json.len() + 1).sum::<usize>() + 128);
    body.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            target.info.kind,
            target.info.api_version(),
            metadata
        )
        .as_bytes(),
    );
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&record.json);
    }
    body.extend_from_slice(b"]}");
    Ok(raw_json_response(StatusCode::OK, Bytes::from(body)))
}

fn encode_continue(namespace: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!([namespace, name])).expect("encodes"))
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("invalid value for continue token".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// Decodes a request body (JSON, or YAML) into a JSON value.
pub fn decode_body(call: &Call) -> ApiResult<Value> {
    let content_type = call.content_type();
    let value: Value = if content_type.contains("yaml") {
        serde_yaml::from_slice(&call.body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid YAML: {e}")))?
    } else if content_type.is_empty() || content_type.contains("json") {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?
    } else if protobuf::is_protobuf(content_type) {
        protobuf::decode(&call.body)?
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
        ));
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(value)
}

/// Decodes into the kind: drops unknown fields (an error under
/// `fieldValidation=Strict`, a warning by default) and rejects wrong types.
fn normalize(call: &Call, info: &KindInfo, input: &Value) -> ApiResult<(Value, Vec<String>)> {
    let cannot = |detail: String| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            info.kind, info.version, info.kind
        ))
    };
    if let Some(kind) = input.get("kind").and_then(Value::as_str) {
        if kind != info.kind {
            return Err(cannot(format!(
                "the kind of the object is {kind}, not {}",
                info.kind
            )));
        }
    }
    if let Some(api_version) = input.get("apiVersion").and_then(Value::as_str) {
        if api_version != info.api_version() {
            return Err(cannot(format!(
                "the apiVersion of the object is {api_version}"
            )));
        }
    }
    let normalized = (info.normalize)(input).map_err(|e| cannot(e.to_string()))?;
    let unknown = unknown_fields(input, &normalized);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match call.param("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                let list = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>();
                return Err(cannot(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            "Ignore" => {}
            _ => warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\""))),
        }
    }
    let mut normalized = normalized;
    normalized["apiVersion"] = json!(info.api_version());
    normalized["kind"] = json!(info.kind);
    Ok((normalized, warnings))
}

fn invalid(info: &KindInfo, name: &str, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        kind: info.kind.into(),
        group: info.group.into(),
        name: name.into(),
        causes,
    }
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// Prepares a new object for storage: metadata the server owns, defaults,
/// validation.
fn prepare_create(
    state: &ApiState,
    call: &Call,
    target: &Target,
    input: &Value,
) -> ApiResult<(Value, Vec<String>)> {
    let info = target.info;
    let (mut object, warnings) = normalize(call, info, input)?;
    let meta = object["metadata"]
        .as_object_mut()
        .ok_or_else(|| invalid(info, "", vec![FieldError::required("metadata", "")]))?;
    if info.namespaced {
        let url_ns = target.namespace.clone().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request"
                        .into(),
                ));
            }
            _ => {}
        }
        meta.insert("namespace".into(), json!(url_ns));
    } else {
        meta.remove("namespace");
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if name.is_empty() {
        if let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            let prefix: String = prefix.chars().take(58).collect();
            meta.insert("name".into(), json!(format!("{prefix}{}", random_suffix())));
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(Time::now().to_string()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if info.has_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    match info.kind {
        "Pod" => {
            let qos = qos_class(&object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Deployment" | "ReplicaSet" => {
            object.as_object_mut().expect("object").remove("status");
        }
        _ => {}
    }
    admission::default(info, &mut object);
    let errors = admission::validate(info, &object);
    if !errors.is_empty() {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        return Err(invalid(info, &name, errors));
    }
    let _ = state;
    Ok((object, warnings))
}

/// The QoS class of a pod spec, as the kubelet and apiserver compute it.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn ensure_namespace(state: &ApiState, target: &Target) -> ApiResult<()> {
    if !target.info.namespaced {
        return Ok(());
    }
    let namespace = target.namespace.as_deref().unwrap_or("");
    let key = Key::new("namespaces", "", namespace);
    match state.store.get(&key) {
        Some(record) if record.object()["metadata"]["deletionTimestamp"].is_string() => {
            Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being \
                 terminated"
            )))
        }
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound {
            resource: "namespaces".into(),
            name: namespace.into(),
            group: String::new(),
            kind: "namespaces".into(),
        }),
    }
}

async fn create(state: &ApiState, call: &Call, target: &Target) -> ApiResult<Response> {
    if target.info.namespaced && target.namespace.is_none() {
        return Err(ApiError::NoRoute);
    }
    let input = decode_body(call)?;
    if target.info.kind == "Binding" {
        return Err(ApiError::NoRoute);
    }
    ensure_namespace(state, target)?;
    let (object, warnings) = prepare_create(state, call, target, &input)?;
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if call.dry_run() {
        let reply = Reply::Object(object);
        let response = object_response(call, target.info, StatusCode::CREATED, &reply);
        return Ok(with_warnings(response, &warnings));
    }
    let record = state
        .store
        .write(key(target, &name), WriteOp::Create(object))
        .await
        .map_err(|e| ApiError::from_store(e, target.info, &name))?;
    let response = object_response(
        call,
        target.info,
        StatusCode::CREATED,
        &Reply::Stored(record),
    );
    Ok(with_warnings(response, &warnings))
}

/// What an update does to the stored object.
pub enum UpdateKind {
    /// PUT: the body is the new object (or its status).
    Replace(Value),
    /// PATCH: the body patches the stored object.
    Patch(PatchKind),
}

/// Turns the client's candidate into the object to store, keeping what the
/// server owns.
fn prepare_update(
    call: &Call,
    target: &Target,
    current: &Value,
    candidate: &Value,
) -> ApiResult<(Value, Vec<String>)> {
    let info = target.info;
    let (mut object, warnings) = normalize(call, info, candidate)?;
    let status_write = target.subresource.as_deref() == Some("status");
    if target.subresource.as_deref() == Some("finalize") {
        // `namespaces/NAME/finalize` changes `spec.finalizers` only.
        let finalizers = object["spec"]["finalizers"].clone();
        object = current.clone();
        object["spec"]["finalizers"] = if finalizers.is_null() {
            json!([])
        } else {
            finalizers
        };
        return Ok((object, warnings));
    }
    if status_write {
        let status = object.get("status").cloned();
        object = current.clone();
        match status {
            Some(status) => object["status"] = status,
            None => {
                object.as_object_mut().expect("object").remove("status");
            }
        }
        // Kubelets and controllers may also carry condition-related labels
        // or annotations; upstream ignores metadata on status writes.
    } else if info.has_status {
        match current.get("status") {
            Some(status) => object["status"] = status.clone(),
            None => {
                object.as_object_mut().expect("object").remove("status");
            }
        }
    }
    // Metadata the server owns.
    let current_meta = &current["metadata"];
    {
        let meta = object["metadata"]
            .as_object_mut()
            .ok_or_else(|| invalid(info, "", vec![FieldError::required("metadata", "")]))?;
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match current_meta.get(field) {
                Some(value) => meta.insert(field.into(), value.clone()),
                None => meta.remove(field),
            };
        }
    }
    admission::default(info, &mut object);
    if info.has_generation && !status_write {
        let changed = object.get("spec") != current.get("spec");
        if changed {
            let generation = current_meta["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
    }
    let mut errors = admission::validate(info, &object);
    if info.kind == "Pod" && !status_write {
        errors.extend(admission::validate_pod_update(
            &current["spec"],
            &object["spec"],
        ));
    }
    if !errors.is_empty() {
        return Err(invalid(
            info,
            current_meta["name"].as_str().unwrap_or(""),
            errors,
        ));
    }
    Ok((object, warnings))
}

/// Whether a deleting object has nothing left holding it: no finalizers
/// (and, for a namespace, no `spec.finalizers`), and for a pod on a node,
/// its kubelet has finished (grace period 0).
fn ready_to_remove(info: &KindInfo, object: &Value) -> bool {
    let meta = &object["metadata"];
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    if !meta["deletionTimestamp"].is_string() || !empty(&meta["finalizers"]) {
        return false;
    }
    match info.kind {
        "Namespace" => empty(&object["spec"]["finalizers"]),
        "Pod" => {
            object["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
                || meta["deletionGracePeriodSeconds"].as_i64() == Some(0)
        }
        _ => true,
    }
}

/// How long an update without a resourceVersion precondition is retried
/// after meeting other writes: kube-apiserver's default request timeout.
const UPDATE_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// Read, modify, compare-and-swap; retried on a conflict the client did not
/// ask for (no resourceVersion precondition).
pub async fn update(
    state: &ApiState,
    call: &Call,
    target: &Target,
    name: &str,
    kind: UpdateKind,
) -> ApiResult<(Reply, Vec<String>, StatusCode)> {
    let info = target.info;
    let key = key(target, name);
    if let UpdateKind::Replace(body) = &kind {
        if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
    }
    // As upstream, a write that met another is retried for as long as the
    // request may run: under contention each round has one winner, so a
    // cap on rounds turns a busy object into spurious conflicts.
    let deadline = std::time::Instant::now() + UPDATE_RETRY_BUDGET;
    while std::time::Instant::now() < deadline {
        let current = match state.store.get(&key) {
            Some(current) => current,
            None => {
                if let UpdateKind::Patch(PatchKind::Apply) = kind {
                    if target.subresource.is_none() {
                        let input = patch::apply(PatchKind::Apply, &json!({}), &call.body)?;
                        ensure_namespace(state, target)?;
                        let mut input = input;
                        input["metadata"]["name"] = json!(name);
                        let (object, warnings) = prepare_create(state, call, target, &input)?;
                        if call.dry_run() {
                            return Ok((Reply::Object(object), warnings, StatusCode::CREATED));
                        }
                        let record = state
                            .store
                            .write(key.clone(), WriteOp::Create(object))
                            .await
                            .map_err(|e| ApiError::from_store(e, info, name))?;
                        return Ok((Reply::Stored(record), warnings, StatusCode::CREATED));
                    }
                }
                return Err(not_found(info, name));
            }
        };
        let current_object = current.object();
        let (candidate, precondition) = match &kind {
            UpdateKind::Replace(body) => {
                if let Some(body_name) = body["metadata"]["name"].as_str() {
                    if body_name != name {
                        return Err(ApiError::BadRequest(
                            "the name of the object does not match the name on the URL".into(),
                        ));
                    }
                }
                let rv = body["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned);
                let mut body = body.clone();
                if body["metadata"]["name"].is_null() {
                    body["metadata"]["name"] = json!(name);
                }
                (body, rv.filter(|r| !r.is_empty()))
            }
            UpdateKind::Patch(patch_kind) => {
                let patched = patch::apply(*patch_kind, &current_object, &call.body).map_err(
                    |e| match e {
                        ApiError::Invalid { causes, .. } => invalid(info, name, causes),
                        other => other,
                    },
                )?;
                check_identity(info, name, &current_object, &patched)?;
                // The patched object carries the current resourceVersion
                // unless the patch set another: only that one is a
                // precondition. A patch that names none is retried on a
                // concurrent write, as upstream does; one that named the
                // revision it read fails once the object moved past it.
                let current_rv = current.revision.to_string();
                let rv = patched["metadata"]["resourceVersion"]
                    .as_str()
                    .filter(|r| !r.is_empty() && *r != current_rv)
                    .map(str::to_owned);
                (patched, rv)
            }
        };
        if let Some(rv) = &precondition {
            if *rv != current.revision.to_string() {
                return Err(ApiError::Conflict {
                    resource: info.qualified(),
                    name: name.into(),
                    group: info.group.into(),
                    kind: info.plural.into(),
                });
            }
        }
        let (mut object, warnings) = prepare_update(call, target, &current_object, &candidate)?;
        object["metadata"]["resourceVersion"] =
            current_object["metadata"]["resourceVersion"].clone();
        if object == current_object {
            // A no-op update writes nothing and emits no event.
            return Ok((Reply::Stored(current), warnings, StatusCode::OK));
        }
        if call.dry_run() {
            return Ok((Reply::Object(object), warnings, StatusCode::OK));
        }
        // Removing the last finalizer of a deleting object completes its
        // deletion.
        let op = if ready_to_remove(info, &object) {
            WriteOp::Delete {
                expected: Some(current.revision),
            }
        } else {
            WriteOp::Update {
                expected: Some(current.revision),
                object,
            }
        };
        match state.store.write(key.clone(), op).await {
            Ok(record) => return Ok((Reply::Stored(record), warnings, StatusCode::OK)),
            Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(e, info, name)),
        }
    }
    Err(ApiError::Conflict {
        resource: info.qualified(),
        name: name.into(),
        group: info.group.into(),
        kind: info.plural.into(),
    })
}

/// A patch may not rename an object, move it to another namespace or
/// change its uid: as upstream, the first two are 400, a uid is taken as
/// a precondition that fails (409).
fn check_identity(info: &KindInfo, name: &str, current: &Value, patched: &Value) -> ApiResult<()> {
    let field = |object: &Value, field: &str| object["metadata"][field].as_str().map(str::to_owned);
    if let Some(new) = field(patched, "name").filter(|n| n != name) {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({new}) does not match the name on the URL ({name})"
        )));
    }
    if field(patched, "namespace") != field(current, "namespace") {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let (uid, wanted) = (field(current, "uid"), field(patched, "uid"));
    if wanted != uid {
        return Err(ApiError::Precondition {
            resource: info.qualified(),
            name: name.into(),
            message: format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                wanted.unwrap_or_default(),
                uid.unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// The autoscaling/v1 Scale of a deployment or replica set.
fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    let selector: crate::api::LabelSelector =
        serde_json::from_value(object["spec"]["selector"].clone()).unwrap_or_default();
    let selector = crate::api::selector::label_selector_string(&selector).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
                   "selector": selector},
    })
}

async fn update_scale(
    state: &ApiState,
    call: &Call,
    target: &Target,
    name: &str,
) -> ApiResult<Response> {
    let info = target.info;
    let current = get_record(state, target, name)?;
    let current_object = current.object();
    let scale = scale_of(&current_object);
    let desired = if call.method == Method::PUT {
        decode_body(call)?
    } else {
        patch::apply(
            PatchKind::from_content_type(call.content_type())?,
            &scale,
            &call.body,
        )?
    };
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| invalid(info, name, vec![FieldError::required("spec.replicas", "")]))?;
    if replicas < 0 {
        return Err(invalid(
            info,
            name,
            vec![FieldError::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut object = current_object;
    object["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = desired["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        object["metadata"]["resourceVersion"] = json!(rv);
    }
    let main = Target {
        info,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        subresource: None,
    };
    let (reply, _, _) = update(state, call, &main, name, UpdateKind::Replace(object)).await?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&reply.into_object()),
    ))
}

async fn bind(state: &ApiState, call: &Call, target: &Target, name: &str) -> ApiResult<Response> {
    let binding = decode_body(call)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
    if node.is_empty() {
        return Err(ApiError::Invalid {
            kind: "Binding".into(),
            group: String::new(),
            name: name.into(),
            causes: vec![FieldError::required("target.name", "")],
        });
    }
    let key = key(target, name);
    loop {
        let current = get_record(state, target, name)?;
        let mut object = current.object();
        let assigned = object["spec"]["nodeName"].as_str().unwrap_or("");
        if !assigned.is_empty() {
            return Err(ApiError::Precondition {
                resource: "pods/binding".into(),
                name: name.into(),
                message: format!("pod {name} is already assigned to node \"{assigned}\""),
            });
        }
        if object["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::Precondition {
                resource: "pods/binding".into(),
                name: name.into(),
                message: format!("pod {name} is being deleted, cannot be assigned to a host"),
            });
        }
        object["spec"]["nodeName"] = json!(node);
        let now = Time::now().to_string();
        let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                               "lastTransitionTime": now});
        let conditions = object["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conditions.push(condition);
        object["status"]["conditions"] = Value::Array(conditions);
        let op = WriteOp::Update {
            expected: Some(current.revision),
            object,
        };
        match state.store.write(key.clone(), op).await {
            Ok(_) => break,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, target.info, name)),
        }
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn delete_options(call: &Call) -> ApiResult<DeleteOptions> {
    let mut options: DeleteOptions = if call.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else if protobuf::is_protobuf(call.content_type()) {
        serde_json::from_value(protobuf::decode(&call.body)?)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(grace) = call
        .param("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
    {
        options.grace_period_seconds = Some(grace);
    }
    if let Some(policy) = call.param("propagationPolicy") {
        options.propagation_policy = Some(policy.to_owned());
    }
    if options.propagation_policy.is_none() && options.orphan_dependents == Some(true) {
        options.propagation_policy = Some("Orphan".into());
    }
    if let Some(policy) = &options.propagation_policy {
        if !["Background", "Foreground", "Orphan"].contains(&policy.as_str()) {
            return Err(ApiError::Invalid {
                kind: "DeleteOptions".into(),
                group: String::new(),
                name: String::new(),
                causes: vec![FieldError::not_supported(
                    "propagationPolicy",
                    policy,
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            });
        }
    }
    Ok(options)
}

async fn delete(state: &ApiState, call: &Call, target: &Target, name: &str) -> ApiResult<Response> {
    let options = delete_options(call)?;
    let (code, body) = delete_one(state, call, target, name, &options).await?;
    Ok(json_response(code, &body))
}

/// Deletes one object, gracefully for pods on a node and through finalizers
/// for foreground and orphan propagation.
pub async fn delete_one(
    state: &ApiState,
    call: &Call,
    target: &Target,
    name: &str,
    options: &DeleteOptions,
) -> ApiResult<(StatusCode, Value)> {
    let info = target.info;
    let key = key(target, name);
    loop {
        let current = get_record(state, target, name)?;
        let object = &current.object();
        if let Some(pre) = &options.preconditions {
            if pre
                .uid
                .as_deref()
                .is_some_and(|uid| object["metadata"]["uid"] != uid)
            {
                return Err(ApiError::Precondition {
                    resource: info.qualified(),
                    name: name.into(),
                    message: format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        pre.uid.as_deref().unwrap_or(""),
                        object["metadata"]["uid"].as_str().unwrap_or("")
                    ),
                });
            }
            if pre
                .resource_version
                .as_deref()
                .is_some_and(|rv| rv != current.revision.to_string())
            {
                return Err(ApiError::Conflict {
                    resource: info.qualified(),
                    name: name.into(),
                    group: info.group.into(),
                    kind: info.plural.into(),
                });
            }
        }
        let mut updated = object.clone();
        let now = Utc::now();
        let immediate;
        if info.kind == "Pod" {
            let default_grace = object["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30);
            let grace = options.grace_period_seconds.unwrap_or(default_grace).max(0);
            let on_node = !object["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
            let phase = object["status"]["phase"].as_str().unwrap_or("");
            let terminal = phase == "Succeeded" || phase == "Failed";
            immediate = grace == 0 || !on_node || terminal;
            let held = object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if immediate && held {
                // Gone from the node, but finalizers still hold the object.
                if object["metadata"]["deletionTimestamp"].is_null() {
                    updated["metadata"]["deletionTimestamp"] = json!(Time::now().to_string());
                }
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                return finish_pending_delete(state, call, &key, &current, updated, info, name)
                    .await;
            }
            if !immediate {
                let existing = object["metadata"]["deletionGracePeriodSeconds"].as_i64();
                if existing.is_some_and(|e| e <= grace) {
                    return Ok((StatusCode::OK, object.clone()));
                }
                let at = now + chrono::Duration::seconds(grace);
                updated["metadata"]["deletionTimestamp"] = json!(Time(at).to_string());
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
        } else if info.kind == "Namespace"
            && object["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        {
            // Terminating until the namespace controller has emptied it.
            if object["metadata"]["deletionTimestamp"].is_null() {
                updated["metadata"]["deletionTimestamp"] = json!(Time::now().to_string());
                updated["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            updated["status"]["phase"] = json!("Terminating");
            return finish_pending_delete(state, call, &key, &current, updated, info, name).await;
        } else {
            let policy = options
                .propagation_policy
                .as_deref()
                .unwrap_or("Background");
            let finalizer = match policy {
                "Foreground" => Some("foregroundDeletion"),
                "Orphan" => Some("orphan"),
                _ => None,
            };
            let mut finalizers: Vec<Value> = object["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(f) = finalizer {
                if !finalizers.iter().any(|x| x == f) {
                    finalizers.push(json!(f));
                }
            }
            immediate = finalizers.is_empty();
            if !immediate {
                if object["metadata"]["deletionTimestamp"].is_null() {
                    updated["metadata"]["deletionTimestamp"] = json!(Time::now().to_string());
                    updated["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                }
                updated["metadata"]["finalizers"] = Value::Array(finalizers);
            }
        }
        if call.dry_run() {
            return Ok((StatusCode::OK, updated));
        }
        let op = if immediate {
            WriteOp::Delete {
                expected: Some(current.revision),
            }
        } else if updated == *object {
            return Ok((StatusCode::ACCEPTED, updated));
        } else {
            WriteOp::Update {
                expected: Some(current.revision),
                object: updated,
            }
        };
        let record = match state.store.write(key.clone(), op).await {
            Ok(record) => record,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, info, name)),
        };
        if !immediate {
            let code = if info.kind == "Pod" {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return Ok((code, record.object()));
        }
        if info.kind == "Pod" {
            return Ok((StatusCode::OK, record.object()));
        }
        let mut details = json!({"name": name, "kind": info.plural,
                                 "uid": object["metadata"]["uid"]});
        if !info.group.is_empty() {
            details["group"] = json!(info.group);
        }
        return Ok((
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": details}),
        ));
    }
}

/// Writes the deleting state of an object that cannot go yet, and answers
/// with it.
async fn finish_pending_delete(
    state: &ApiState,
    call: &Call,
    key: &Key,
    current: &Record,
    updated: Value,
    info: &KindInfo,
    name: &str,
) -> ApiResult<(StatusCode, Value)> {
    if call.dry_run() || updated == current.object() {
        return Ok((StatusCode::OK, updated));
    }
    let op = WriteOp::Update {
        expected: Some(current.revision),
        object: updated,
    };
    match state.store.write(key.clone(), op).await {
        Ok(record) => Ok((StatusCode::OK, record.object())),
        Err(StoreError::Conflict { .. }) => Err(ApiError::Conflict {
            resource: info.qualified(),
            name: name.into(),
            group: info.group.into(),
            kind: info.plural.into(),
        }),
        Err(e) => Err(ApiError::from_store(e, info, name)),
    }
}

async fn delete_collection(state: &ApiState, call: &Call, target: &Target) -> ApiResult<Response> {
    let options = delete_options(call)?;
    let filter = list_filter(call, target)?;
    let prefix = Prefix {
        resource: target.info.store_resource(),
        namespace: filter.namespace.clone(),
    };
    let mut items = Vec::new();
    for record in state.store.list(&prefix).records {
        if !filter.matches(&record) {
            continue;
        }
        let one = Target {
            info: target.info,
            namespace: Some(record.key.namespace.clone()).filter(|n| !n.is_empty()),
            name: Some(record.key.name.clone()),
            subresource: None,
        };
        match delete_one(state, call, &one, &record.key.name, &options).await {
            Ok(_) => items.push(record.object()),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", target.info.kind), "apiVersion": target.info.api_version(),
                "metadata": {"resourceVersion": state.store.revision().to_string()}, "items": items}),
    ))
}

/// Turns a streaming body into a response with the right headers.
pub fn stream_response(content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
