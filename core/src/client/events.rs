//! Recording core/v1 Events about objects, as `kubectl describe` shows them.
//!
//! Like upstream's recorder, a repeat of the same event (same object,
//! type, reason and message) raises the `count` and `lastTimestamp` of the
//! first one instead of adding another: a container in CrashLoopBackOff shows
//! `x12` in `kubectl describe`, not twelve rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::{Event, EventSource, MicroTime, ObjectMeta, ObjectReference, Resource, Time};

use super::Client;

/// Records Events on behalf of one component. Failures are logged, never
/// returned: an event is a courtesy to the user, not part of the work.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    component: String,
    host: Option<String>,
    /// Events already recorded, by what makes them the same: the event's
    /// namespace and name, and how often it happened.
    seen: Arc<Mutex<HashMap<String, (String, String, i32)>>>,
}

/// Past this many distinct events the repeat cache starts over.
const SEEN_LIMIT: usize = 4096;

impl EventRecorder {
    pub fn new(client: Client, component: &str, host: Option<&str>) -> EventRecorder {
        EventRecorder {
            client,
            component: component.into(),
            host: host.map(str::to_owned),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records one event about `object`. `kind` is "Normal" or "Warning".
    pub async fn record<T: Resource>(&self, object: &T, kind: &str, reason: &str, message: &str) {
        self.record_ref(reference(object), kind, reason, message)
            .await
    }

    /// Records one event about the object `involved` refers to.
    pub async fn record_ref(
        &self,
        involved: ObjectReference,
        kind: &str,
        reason: &str,
        message: &str,
    ) {
        let namespace = match involved.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => "default".to_owned(),
        };
        let same = format!(
            "{}/{}/{}/{kind}/{reason}/{message}",
            namespace,
            involved.name.as_deref().unwrap_or(""),
            involved.uid.as_deref().unwrap_or("")
        );
        let repeat = self
            .seen
            .lock()
            .expect("event cache poisoned")
            .get(&same)
            .cloned();
        if let Some((ns, name, count)) = repeat {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time::now(),
            });
            if self
                .client
                .merge_patch::<Event>(&ns, &name, &patch)
                .await
                .is_ok()
            {
                let mut seen = self.seen.lock().expect("event cache poisoned");
                seen.insert(same, (ns, name, count + 1));
                return;
            }
        }
        let now = Time::now();
        let event = Event {
            api_version: "v1".into(),
            kind: "Event".into(),
            metadata: ObjectMeta {
                // Named like upstream's events, `<object>.<nanoseconds in hex>`,
                // so that listing order is the order they happened in.
                name: Some(format!(
                    "{}.{:x}",
                    involved.name.as_deref().unwrap_or("event"),
                    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
                )),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(kind.into()),
            count: Some(1),
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        };
        match self.client.create(&event).await {
            Ok(created) => {
                let mut seen = self.seen.lock().expect("event cache poisoned");
                if seen.len() >= SEEN_LIMIT {
                    seen.clear();
                }
                let name = created.metadata.name.clone().unwrap_or_default();
                seen.insert(
                    same,
                    (
                        created.metadata.namespace.clone().unwrap_or_default(),
                        name,
                        1,
                    ),
                );
            }
            Err(error) => tracing::debug!(%error, reason, "recording an event failed"),
        }
    }
}

/// A reference to an object, as events and bindings carry it.
pub fn reference<T: Resource>(object: &T) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: Some(T::API_VERSION.into()),
        kind: Some(T::KIND.into()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}
