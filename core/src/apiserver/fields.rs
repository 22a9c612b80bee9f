//! Selecting objects: namespace, label selector and field selector, with the
//! fields each kind lets clients select on (as upstream's
//! `ToSelectableFields`).

use super::errors::ApiError;
use super::registry::KindInfo;
use crate::api::selector::{FieldSelector, Selector};
use crate::store::{Record, selectable_fields};

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
        let allowed = selectable_fields(&info.store_resource());
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

    /// Whether a record is wanted; reads its attributes, not its object.
    /// (The namespace is narrowed by the store prefix.)
    pub fn matches(&self, record: &Record) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return true;
        }
        let attrs = record.attrs();
        if !self.labels.matches_lookup(|key| attrs.label(key)) {
            return false;
        }
        self.fields.matches(|field| match field {
            "metadata.name" => Some(record.key.name.as_str()),
            "metadata.namespace" => Some(record.key.namespace.as_str()),
            _ => attrs.field(field),
        })
    }
}
