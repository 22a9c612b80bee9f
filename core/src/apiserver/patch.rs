//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and the
//! strategic merge patch that `kubectl apply`, `edit` and `set` send.
//!
//! The strategic merge knows the merge keys of the lists of the kinds served
//! here (containers by name, ports by containerPort, ...) and the directives
//! kubectl emits: `$patch: replace|delete`, `$setElementOrder/<list>`,
//! `$retainKeys` and `$deleteFromPrimitiveList/<list>`. Lists without a merge
//! key (`args`, `command`) are replaced whole, as upstream does.

use serde_json::{Map, Value};

use super::errors::ApiError;

/// The kinds of patch a client can send, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<PatchKind, ApiError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            _ => Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json, application/apply-patch+yaml"
                    .into(),
            )),
        }
    }
}

/// Applies a patch body to an object.
pub fn apply(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut result = target.clone();
    match kind {
        PatchKind::Merge => {
            let patch: Value = parse_json(body)?;
            json_patch::merge(&mut result, &patch);
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut result, &patch).map_err(|e| ApiError::Invalid {
                kind: String::new(),
                group: String::new(),
                name: String::new(),
                causes: vec![super::errors::FieldError {
                    reason: "FieldValueInvalid",
                    field: "patch".into(),
                    message: e.to_string(),
                }],
            })?;
        }
        PatchKind::Strategic => {
            let patch: Value = parse_json(body)?;
            strategic_merge(&mut result, &patch);
        }
        PatchKind::Apply => {
            let patch: Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("invalid apply patch: {e}")))?;
            strategic_merge(&mut result, &patch);
        }
    }
    Ok(result)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid patch: {e}")))
}

/// The merge key of a list field, if it is merged by key.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "readinessGates" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "hostAliases" => Some("ip"),
        "addresses" => Some("type"),
        _ => None,
    }
}

/// Lists of scalars merged as sets.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch to `target` in place.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("made an object above");
    let mut orders = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            orders.push((list.to_owned(), value.clone()));
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(current), Some(remove)) = (
                object.get_mut(list).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                current.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key == "$retainKeys" {
            retain = value.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                object.remove(key);
            }
            Value::Object(_) => {
                if value.get("$patch").and_then(Value::as_str) == Some("delete") {
                    object.remove(key);
                    continue;
                }
                let slot = object.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => {
                let slot = object
                    .entry(key.clone())
                    .or_insert(Value::Array(Vec::new()));
                merge_list(key, slot, items);
            }
            _ => {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(keep) = retain {
        object.retain(|k, _| keep.contains(k));
    }
    for (list, order) in orders {
        if let (Some(current), Some(order)) = (
            object.get_mut(&list).and_then(Value::as_array_mut),
            order.as_array(),
        ) {
            reorder(&list, current, order);
        }
    }
}

fn merge_list(field: &str, target: &mut Value, patch: &[Value]) {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let items = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .collect();
        *target = Value::Array(items);
        return;
    }
    let Some(key) = merge_key(field) else {
        if merges_primitives(field) {
            let current = target.as_array_mut();
            if let Some(current) = current {
                for item in patch {
                    if !current.contains(item) {
                        current.push(item.clone());
                    }
                }
                return;
            }
        }
        *target = Value::Array(patch.to_vec());
        return;
    };
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let current = target.as_array_mut().expect("made an array above");
    for item in patch {
        let id = item.get(key).cloned();
        let position = id
            .as_ref()
            .and_then(|id| current.iter().position(|c| c.get(key) == Some(id)));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(position) = position {
                current.remove(position);
            }
            continue;
        }
        match position {
            Some(position) => strategic_merge(&mut current[position], item),
            None => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item);
                current.push(fresh);
            }
        }
    }
}

fn reorder(field: &str, current: &mut Vec<Value>, order: &[Value]) {
    let Some(key) = merge_key(field) else { return };
    let mut ordered = Vec::with_capacity(current.len());
    for wanted in order {
        if let Some(id) = wanted.get(key) {
            if let Some(pos) = current.iter().position(|c| c.get(key) == Some(id)) {
                ordered.push(current.remove(pos));
            }
        }
    }
    ordered.append(current);
    *current = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_args_are_replaced() {
        let mut target = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "args": ["1", "2"]},
            {"name": "b", "image": "y:1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "x:2", "args": ["3"]}]}});
        strategic_merge(&mut target, &patch);
        assert_eq!(target["spec"]["containers"][0]["image"], "x:2");
        assert_eq!(target["spec"]["containers"][0]["args"], json!(["3"]));
        assert_eq!(target["spec"]["containers"][1]["name"], "b");
    }

    #[test]
    fn patch_delete_directive_removes_a_list_element() {
        let mut target = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        strategic_merge(
            &mut target,
            &json!({"containers": [{"name": "a", "$patch": "delete"}]}),
        );
        assert_eq!(target, json!({"containers": [{"name": "b"}]}));
    }

    #[test]
    fn set_element_order_reorders_the_merged_list() {
        let mut target = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        let patch = json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                           "containers": [{"name": "a", "image": "i"}]});
        strategic_merge(&mut target, &patch);
        assert_eq!(target["containers"][0]["name"], "b");
        assert_eq!(target["containers"][1]["image"], "i");
    }

    #[test]
    fn null_removes_a_key_and_retain_keys_drops_the_rest() {
        let mut target = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
                                "strategy": {"type": "RollingUpdate", "rollingUpdate": {}}});
        let patch = json!({"metadata": {"labels": {"a": null}},
                           "strategy": {"$retainKeys": ["type"], "type": "Recreate"}});
        strategic_merge(&mut target, &patch);
        assert_eq!(target["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(target["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn unknown_content_types_are_unsupported() {
        assert!(PatchKind::from_content_type("text/plain").is_err());
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
    }
}
