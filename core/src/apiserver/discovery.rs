//! Discovery and OpenAPI: how clients learn what this server serves.
//!
//! `/api` and `/apis` answer in the aggregated (v2) format when the client
//! asks for it, with the exact Content-Type client-go keys on, and in the
//! legacy format otherwise. The OpenAPI v3 documents are small: they carry
//! what `kubectl apply` needs to use server-side field validation (the
//! `fieldValidation` parameter on each PATCH operation) and a schema per
//! kind for `kubectl explain`.

use serde_json::{Value, json};

use super::registry::{KINDS, KindInfo, groups};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Does this Accept header ask for aggregated discovery?
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList") && accept.contains("v=v2")
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": crate::COXSWAIN_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn verbs(info: &KindInfo) -> Vec<&'static str> {
    let _ = info;
    vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
}

fn subresources(
    info: &KindInfo,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<&'static str>,
)> {
    // (name, group, version, kind, verbs)
    let mut out = Vec::new();
    if info.has_status {
        out.push((
            "status",
            info.group,
            info.version,
            info.kind,
            vec!["get", "patch", "update"],
        ));
    }
    if info.has_scale {
        out.push((
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            vec!["get", "patch", "update"],
        ));
    }
    if info.kind == "Pod" {
        out.push(("binding", "", "v1", "Binding", vec!["create"]));
        out.push(("log", "", "v1", "Pod", vec!["get"]));
    }
    out
}

fn aggregated_group(group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for k in KINDS.iter().filter(|k| k.group == group) {
        if !versions.contains(&k.version) {
            versions.push(k.version);
        }
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|version| {
            let resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group == group && k.version == version)
                .map(|k| {
                    let subs: Vec<Value> = subresources(k)
                        .into_iter()
                        .map(|(name, g, v, kind, verbs)| {
                            json!({"subresource": name,
                                   "responseKind": {"group": g, "version": v, "kind": kind},
                                   "verbs": verbs})
                        })
                        .collect();
                    json!({
                        "resource": k.plural,
                        "singularResource": k.singular,
                        "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
                        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                        "shortNames": k.short_names,
                        "categories": k.categories,
                        "verbs": verbs(k),
                        "subresources": subs,
                    })
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// `/api` (core = true) or `/apis` in the aggregated format.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(aggregated_group)
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
           "metadata": {}, "items": items})
}

/// Legacy `/api`.
pub fn legacy_api(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                          "serverAddress": server_address}]})
}

/// Legacy `/apis`.
pub fn legacy_apis() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let version = KINDS
                .iter()
                .find(|k| k.group == g)
                .map(|k| k.version)
                .unwrap_or("v1");
            let gv = json!({"groupVersion": format!("{g}/{version}"), "version": version});
            json!({"name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/<group>/<version>`, or None when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&KindInfo> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for k in kinds {
        resources.push(json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": verbs(k), "shortNames": k.short_names,
            "categories": k.categories,
        }));
        for (name, g, v, kind, verbs) in subresources(k) {
            let mut entry = json!({"name": format!("{}/{name}", k.plural), "singularName": "",
                                   "namespaced": k.namespaced, "kind": kind, "verbs": verbs});
            if g != group || v != version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 index: one entry per group-version.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for k in KINDS {
        let path = gv_path(k.group, k.version);
        let url = format!(
            "/openapi/v3/{path}?hash={}",
            openapi_hash(k.group, k.version)
        );
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A stable tag of one group-version's document, for caching.
pub fn openapi_hash(group: &str, version: &str) -> String {
    let doc = openapi_document(group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in doc.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016X}")
}

fn schema_name(k: &KindInfo) -> String {
    let group = match k.group {
        "" => "core",
        "coordination.k8s.io" => "coordination",
        other => other,
    };
    format!("io.k8s.api.{group}.{}.{}", k.version, k.kind)
}

/// The OpenAPI v3 document of one group-version.
pub fn openapi_document(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&KindInfo> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for k in kinds {
        let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
        let prefix = format!("/{}", gv_path(k.group, k.version));
        let item = if k.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("{prefix}/{}/{{name}}", k.plural)
        };
        let parameters = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let operation = |verb: &str| {
            json!({"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": verb,
                   "parameters": parameters, "responses": {"200": {"description": "OK"}}})
        };
        paths.insert(
            item,
            json!({"patch": operation("patch"), "put": operation("put")}),
        );
        let collection = if k.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("{prefix}/{}", k.plural)
        };
        paths.insert(collection, json!({"post": operation("post")}));
        schemas.insert(
            schema_name(k),
            json!({
                "type": "object",
                "description": format!("{} is served by coxswain with Kubernetes' own JSON.", k.kind),
                "x-kubernetes-group-version-kind": [gvk],
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "metadata": {"type": "object", "description": "Standard object's metadata."},
                    "spec": {"type": "object", "description": "Specification of the desired behavior."},
                    "status": {"type": "object", "description": "Most recently observed status."},
                },
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
