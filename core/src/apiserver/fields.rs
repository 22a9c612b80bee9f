//! Selecting objects: namespace, label selector and field selector, with the
//! fields each kind lets clients select on (as upstream's
//! `ToSelectableFields`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::ApiError;
use super::registry::KindInfo;
use crate::api::selector::{FieldSelector, Selector};

/// The fields a kind can be selected by, besides `metadata.name` and
/// `metadata.namespace`.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        _ => &[],
    }
}

/// The value of a selectable field of an object.
pub fn field_value(info: &KindInfo, object: &Value, field: &str) -> Option<String> {
    let lookup =
        |path: &str| -> Option<&Value> { path.split('.').try_fold(object, |v, part| v.get(part)) };
    let value = match (info.kind, field) {
        ("Event", "source") => lookup("source.component"),
        _ => lookup(field),
    };
    match value {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => match field {
            "spec.hostNetwork" | "spec.unschedulable" => Some("false".into()),
            "status.replicas" => Some("0".into()),
            _ => Some(String::new()),
        },
    }
}

/// Which objects a list or watch wants.
#[derive(Clone)]
pub struct Filter {
    pub info: &'static KindInfo,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn new(
        info: &'static KindInfo,
        namespace: Option<String>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let labels = match label_selector {
            Some(text) => Selector::parse(text)
                .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?,
            None => Selector::everything(),
        };
        let fields = match field_selector {
            Some(text) => {
                FieldSelector::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))?
            }
            None => FieldSelector::everything(),
        };
        let allowed = kind_fields(info.kind);
        for requirement in fields.requirements() {
            let field = requirement.field.as_str();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.contains(&field)
            {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(Filter {
            info,
            namespace,
            labels,
            fields,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        if !self.labels.is_empty() {
            let labels: BTreeMap<String, String> = object["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            if !self.labels.matches(&labels) {
                return false;
            }
        }
        self.fields
            .matches(|field| field_value(self.info, object, field))
    }
}
