//! What selectors look at in a record: its labels and the fields its kind
//! can be selected by (as upstream's `ToSelectableFields`), read once from
//! the object and kept packed beside its JSON.
//!
//! Records hold their object as JSON only; a list or watch with a label or
//! field selector reads these attributes instead of parsing every object.
//! They are taken from the object when it is written (it is at hand then),
//! and from its JSON on first use for records loaded from disk.

use serde_json::Value;

/// The fields a resource (a store key's `resource`) can be selected by,
/// besides `metadata.name` and `metadata.namespace`, which come from the key.
pub fn selectable_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
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
        "nodes" => &["spec.unschedulable"],
        "namespaces" => &["status.phase"],
        "replicasets.apps" => &["status.replicas"],
        _ => &[],
    }
}

/// The value of a selectable field of an object, as the selector compares
/// it: absent fields read as their kind's zero value.
pub fn field_value(object: &Value, field: &str) -> String {
    let path = match field {
        // Events are selected by their source's component.
        "source" => "source.component",
        _ => field,
    };
    let value = path
        .split('.')
        .try_fold(object, |value, part| value.get(part));
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => match field {
            "spec.hostNetwork" | "spec.unschedulable" => "false".into(),
            "status.replicas" => "0".into(),
            _ => String::new(),
        },
    }
}

/// A record's labels and selectable field values, packed in one string.
///
/// Label `i` is `text[start..key_end]` = `text[key_end..value_end]`, where
/// `start` is the previous label's `value_end`; labels are sorted by key.
/// The field values follow the labels, in the order of
/// [`selectable_fields`], each ending at its offset in `fields`.
#[derive(Debug, Default)]
pub struct Attrs {
    text: Box<str>,
    labels: Box<[(u32, u32)]>,
    fields: Box<[u32]>,
    names: &'static [&'static str],
}

impl Attrs {
    /// Reads the attributes of an object stored under `resource`.
    pub fn of(resource: &str, object: &Value) -> Attrs {
        let mut labels: Vec<(&str, &str)> = object["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort_unstable();
        let names = selectable_fields(resource);
        let mut text = String::new();
        let mut label_ends = Vec::with_capacity(labels.len());
        for (key, value) in labels {
            text.push_str(key);
            let key_end = offset(&text);
            text.push_str(value);
            label_ends.push((key_end, offset(&text)));
        }
        let mut field_ends = Vec::with_capacity(names.len());
        for name in names {
            text.push_str(&field_value(object, name));
            field_ends.push(offset(&text));
        }
        Attrs {
            text: text.into_boxed_str(),
            labels: label_ends.into_boxed_slice(),
            fields: field_ends.into_boxed_slice(),
            names,
        }
    }

    /// The value of label `key`, if the object has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        let (mut low, mut high) = (0, self.labels.len());
        while low < high {
            let middle = (low + high) / 2;
            let (start, key_end, value_end) = self.label_span(middle);
            match self.text[start..key_end].cmp(key) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(&self.text[key_end..value_end]),
            }
        }
        None
    }

    /// The value of a selectable field; `None` for a field the resource
    /// cannot be selected by.
    pub fn field(&self, name: &str) -> Option<&str> {
        let index = self.names.iter().position(|n| *n == name)?;
        let start = match index {
            0 => self.labels.last().map_or(0, |&(_, end)| end),
            _ => self.fields[index - 1],
        };
        Some(&self.text[start as usize..self.fields[index] as usize])
    }

    /// Label `index`'s key start, key end (value start) and value end.
    fn label_span(&self, index: usize) -> (usize, usize, usize) {
        let start = match index {
            0 => 0,
            _ => self.labels[index - 1].1 as usize,
        };
        let (key_end, value_end) = self.labels[index];
        (start, key_end as usize, value_end as usize)
    }
}

fn offset(text: &str) -> u32 {
    u32::try_from(text.len()).expect("labels and fields of one object fit in 4 GiB")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_and_fields_read_back() {
        let pod = json!({
            "metadata": {"name": "p", "labels": {"b": "2", "a": "1", "app": "web", "e": ""}},
            "spec": {"nodeName": "node-1", "hostNetwork": true},
            "status": {"phase": "Running"},
        });
        let attrs = Attrs::of("pods", &pod);
        assert_eq!(attrs.label("a"), Some("1"));
        assert_eq!(attrs.label("app"), Some("web"));
        assert_eq!(attrs.label("b"), Some("2"));
        assert_eq!(attrs.label("e"), Some(""));
        assert_eq!(attrs.label("c"), None);
        assert_eq!(attrs.field("spec.nodeName"), Some("node-1"));
        assert_eq!(attrs.field("spec.hostNetwork"), Some("true"));
        assert_eq!(attrs.field("status.phase"), Some("Running"));
        assert_eq!(attrs.field("status.podIP"), Some(""));
        assert_eq!(attrs.field("spec.unschedulable"), None);
    }

    #[test]
    fn absent_fields_read_as_their_zero_value() {
        let node = Attrs::of("nodes", &json!({"metadata": {"name": "n"}}));
        assert_eq!(node.field("spec.unschedulable"), Some("false"));
        assert_eq!(node.label("x"), None);
        let rs = Attrs::of("replicasets.apps", &json!({"status": {}}));
        assert_eq!(rs.field("status.replicas"), Some("0"));
    }

    #[test]
    fn an_event_is_selected_by_its_source_component() {
        let event = json!({"source": {"component": "kubelet"}, "reason": "Started",
                           "involvedObject": {"kind": "Pod", "name": "web"}});
        let attrs = Attrs::of("events", &event);
        assert_eq!(attrs.field("source"), Some("kubelet"));
        assert_eq!(attrs.field("reason"), Some("Started"));
        assert_eq!(attrs.field("involvedObject.name"), Some("web"));
        assert_eq!(attrs.field("type"), Some(""));
    }
}
