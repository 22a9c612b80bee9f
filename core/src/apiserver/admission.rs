//! Admission: the defaults Kubernetes fills in, and the validation that
//! turns a wrong object into a 422 naming the field.
//!
//! Both work on the JSON form, after the body was decoded into the typed
//! kind (so types are already right) and before it is stored.

use serde_json::{Map, Value, json};

use super::errors::FieldError;
use super::registry::KindInfo;
use crate::api::selector::Selector;

/// Fills in defaults, as the upstream defaulting functions do.
pub fn default(info: &KindInfo, object: &mut Value) {
    match info.kind {
        "Pod" => {
            if let Some(spec) = object.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        "Deployment" | "ReplicaSet" => {
            let spec = object_entry(object, "spec");
            spec.entry("replicas").or_insert(json!(1));
            if info.kind == "Deployment" {
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                let strategy = spec.entry("strategy").or_insert(json!({}));
                if let Some(strategy) = strategy.as_object_mut() {
                    let kind = strategy
                        .entry("type")
                        .or_insert(json!("RollingUpdate"))
                        .clone();
                    if kind == "RollingUpdate" {
                        let rolling = strategy.entry("rollingUpdate").or_insert(json!({}));
                        if let Some(rolling) = rolling.as_object_mut() {
                            rolling.entry("maxUnavailable").or_insert(json!("25%"));
                            rolling.entry("maxSurge").or_insert(json!("25%"));
                        }
                    }
                }
            }
            if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(pod_spec);
            }
        }
        "Namespace" => {
            let name = object["metadata"]["name"].clone();
            let meta = object_entry(object, "metadata");
            let labels = meta.entry("labels").or_insert(json!({}));
            if let (Some(labels), Some(name)) = (labels.as_object_mut(), name.as_str()) {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            object_entry(object, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            object_entry(object, "status")
                .entry("phase")
                .or_insert(json!("Active"));
        }
        _ => {}
    }
}

fn object_entry<'a>(object: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = object.as_object_mut().expect("objects are JSON objects");
    let entry = map.entry(key).or_insert(json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("just made an object")
}

fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("securityContext").or_insert(json!({}));
    spec.entry("enableServiceLinks").or_insert(json!(true));
    spec.entry("priority").or_insert(json!(0));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                default_container(container);
            }
        }
    }
}

fn default_container(container: &mut Map<String, Value>) {
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    container
        .entry("imagePullPolicy")
        .or_insert_with(|| json!(default_pull_policy(&image)));
    container
        .entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    container
        .entry("terminationMessagePolicy")
        .or_insert(json!("File"));
    container.entry("resources").or_insert(json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert(json!("TCP"));
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Checks an object about to be stored; every wrong field is reported.
pub fn validate(info: &KindInfo, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if info.kind == "Namespace" {
        check_dns_label("metadata.name", name, &mut errors);
    } else if info.kind != "Event" && info.kind != "Node" {
        check_dns_subdomain("metadata.name", name, &mut errors);
    }
    check_labels("metadata.labels", &meta["labels"], &mut errors);
    check_annotations(meta, &mut errors);

    match info.kind {
        "Pod" => validate_pod_spec("spec", &object["spec"], &mut errors),
        "Deployment" | "ReplicaSet" => {
            let spec = &object["spec"];
            if let Some(replicas) = spec["replicas"].as_i64() {
                if replicas < 0 {
                    errors.push(FieldError::invalid(
                        "spec.replicas",
                        &replicas.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            validate_selector(spec, &mut errors);
            validate_pod_spec("spec.template.spec", &spec["template"]["spec"], &mut errors);
            let policy = spec["template"]["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("Always");
            if policy != "Always" {
                errors.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    policy,
                    &["Always"],
                ));
            }
        }
        "Binding" => {}
        _ => {}
    }
    errors
}

/// What a pod update may change, as upstream allows: container images,
/// `activeDeadlineSeconds`, added tolerations and the grace period. The
/// rest of a pod's spec is fixed once it is created.
pub fn validate_pod_update(current: &Value, updated: &Value) -> Vec<FieldError> {
    let mut a = current.clone();
    let mut b = updated.clone();
    for spec in [&mut a, &mut b] {
        if let Some(map) = spec.as_object_mut() {
            for field in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                map.remove(field);
            }
            for list in ["containers", "initContainers"] {
                if let Some(items) = map.get_mut(list).and_then(Value::as_array_mut) {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.remove("image");
                    }
                }
            }
        }
    }
    if a == b {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,\
         `spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` \
         (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` \
         (allow it to be set to 1 if it was previously negative)",
    )]
}

/// Requests may not exceed limits, and both must be valid quantities.
fn validate_resources(path: &str, resources: &Value, errors: &mut Vec<FieldError>) {
    use crate::api::quantity::Quantity;
    let amount = |value: &Value| Quantity(value.as_str()?.to_owned()).to_milli().ok();
    for section in ["requests", "limits"] {
        for (name, value) in resources[section].as_object().into_iter().flatten() {
            let text = value.as_str().unwrap_or("");
            if Quantity(text.to_owned()).to_milli().is_err() {
                errors.push(FieldError::invalid(
                    &format!("{path}.{section}.{name}"),
                    text,
                    "must be a valid quantity",
                ));
            }
        }
    }
    for (name, request) in resources["requests"].as_object().into_iter().flatten() {
        let Some(limit) = resources["limits"].get(name) else {
            continue;
        };
        if let (Some(r), Some(l)) = (amount(request), amount(limit)) {
            if r > l {
                errors.push(FieldError::invalid(
                    &format!("{path}.requests"),
                    request.as_str().unwrap_or(""),
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        limit.as_str().unwrap_or("")
                    ),
                ));
            }
        }
    }
}

/// The total size of all annotations, as upstream limits it.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn check_annotations(meta: &Value, errors: &mut Vec<FieldError>) {
    let Some(annotations) = meta["annotations"].as_object() else {
        return;
    };
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if total > ANNOTATIONS_MAX_BYTES {
        errors.push(FieldError {
            reason: "FieldValueTooLong",
            field: "metadata.annotations".into(),
            message: format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        });
    }
}

fn validate_selector(spec: &Value, errors: &mut Vec<FieldError>) {
    let selector = &spec["selector"];
    if selector.is_null() || selector.as_object().is_some_and(|m| m.is_empty()) {
        errors.push(FieldError::required("spec.selector", ""));
        return;
    }
    let parsed: Result<crate::api::LabelSelector, _> = serde_json::from_value(selector.clone());
    let Ok(parsed) = parsed else {
        errors.push(FieldError::invalid(
            "spec.selector",
            &selector.to_string(),
            "invalid selector",
        ));
        return;
    };
    if parsed.match_labels.is_empty() && parsed.match_expressions.is_empty() {
        errors.push(FieldError::invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
        return;
    }
    let selector = match Selector::from_label_selector(&parsed) {
        Ok(s) => s,
        Err(e) => {
            errors.push(FieldError::invalid(
                "spec.selector",
                &selector.to_string(),
                &e.to_string(),
            ));
            return;
        }
    };
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(spec["template"]["metadata"]["labels"].clone()).unwrap_or_default();
    if !selector.matches(&labels) {
        let shown: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &format!("map[string]string{{{}}}", shown.join(", ")),
            "`selector` does not match template `labels`",
        ));
    }
}

fn validate_pod_spec(path: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if containers.is_empty() {
        errors.push(FieldError::required(&format!("{path}.containers"), ""));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        let at = format!("{path}.containers[{i}]");
        let name = container["name"].as_str().unwrap_or("");
        if name.is_empty() {
            errors.push(FieldError::required(&format!("{at}.name"), ""));
        } else {
            check_dns_label(&format!("{at}.name"), name, errors);
            if !seen.insert(name.to_owned()) {
                errors.push(FieldError {
                    reason: "FieldValueDuplicate",
                    field: format!("{at}.name"),
                    message: format!("Duplicate value: \"{name}\""),
                });
            }
        }
        validate_resources(&format!("{at}.resources"), &container["resources"], errors);
        if container["image"].as_str().unwrap_or("").trim().is_empty() {
            errors.push(FieldError::required(&format!("{at}.image"), ""));
        }
        for (j, port) in container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let number = port["containerPort"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&number) {
                errors.push(FieldError::invalid(
                    &format!("{at}.ports[{j}].containerPort"),
                    &number.to_string(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str() {
        if !["Always", "OnFailure", "Never"].contains(&policy) {
            errors.push(FieldError::not_supported(
                &format!("{path}.restartPolicy"),
                policy,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
}

fn check_dns_label(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let ok = value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        errors.push(FieldError::invalid(
            field,
            value,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ));
    }
}

fn check_dns_subdomain(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let ok = value.len() <= 253
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if !ok {
        errors.push(FieldError::invalid(
            field,
            value,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
}

fn check_labels(field: &str, labels: &Value, errors: &mut Vec<FieldError>) {
    let Some(labels) = labels.as_object() else {
        return;
    };
    for (key, value) in labels {
        let value = value.as_str().unwrap_or("");
        let name = key.rsplit('/').next().unwrap_or(key);
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !name_ok {
            errors.push(FieldError::invalid(
                field,
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character",
            ));
        }
        let value_ok = value.is_empty()
            || (value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && value
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && value
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_alphanumeric()));
        if !value_ok {
            errors.push(FieldError::invalid(
                &format!("{field}"),
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, \
                 '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_latest_images_are_always_pulled() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("coxswain/web:0.1"), "IfNotPresent");
        assert_eq!(default_pull_policy("127.0.0.1:1/none:1"), "IfNotPresent");
        assert_eq!(default_pull_policy("127.0.0.1:1/none"), "Always");
    }
}
