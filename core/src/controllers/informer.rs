//! Shared caches of the cluster, kept current by one watcher per kind.
//!
//! What callers may rely on:
//!
//! * a [`Cache`] holds the last state the watcher reported of every object,
//!   keyed by namespace and name, and is shared by every controller: reads
//!   are cheap (`Arc` clones) and never wait for the network;
//! * handlers registered before [`Informer::start`] see every change after
//!   the cache applied it, in watch order, including the differences a
//!   re-list brings (objects that vanished arrive as deletions);
//! * [`Cache::is_synced`] turns true after the first complete list, and stays
//!   true: a controller must not act on an unsynced cache, where absence
//!   means nothing.
//!
//! Handlers run on the informer's task and must be quick: they only add keys
//! to work queues.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::api::Resource;
use crate::client::{Client, ListParams, WatcherEvent, watcher};

/// Index key under which objects without a controller are filed.
const NO_CONTROLLER: &str = "";

/// A change the cache applied, as handlers see it.
pub enum Change<T> {
    /// An object appeared (`old` is `None`) or changed.
    Applied { old: Option<Arc<T>>, new: Arc<T> },
    /// An object is gone; its last known state.
    Deleted(Arc<T>),
}

/// A read-only view of one kind of object, shared between controllers.
pub struct Cache<T> {
    inner: Arc<RwLock<Objects<T>>>,
    synced: watch::Receiver<bool>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Cache<T> {
        Cache {
            inner: Arc::clone(&self.inner),
            synced: self.synced.clone(),
        }
    }
}

struct Objects<T> {
    /// Objects by namespace ("" for cluster-scoped kinds), then by name.
    by_namespace: HashMap<String, HashMap<String, Arc<T>>>,
    /// Namespace and name of objects by the uid of each of their owners;
    /// objects without a controller are also filed under [`NO_CONTROLLER`].
    by_owner: HashMap<String, HashSet<(String, String)>>,
}

impl<T> Default for Objects<T> {
    fn default() -> Objects<T> {
        Objects {
            by_namespace: HashMap::new(),
            by_owner: HashMap::new(),
        }
    }
}

impl<T: Resource> Cache<T> {
    /// Whether the first complete list has arrived.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first complete list has arrived.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        // The sender lives as long as the informer task; if that ended, the
        // cache will never sync and waiting forever is the honest answer.
        if synced.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let objects = self.inner.read().expect("cache lock");
        objects.by_namespace.get(namespace)?.get(name).cloned()
    }

    /// Every object of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        let objects = self.inner.read().expect("cache lock");
        objects
            .by_namespace
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<T>> {
        let objects = self.inner.read().expect("cache lock");
        objects
            .by_namespace
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Objects with an ownerReference to the owner with `uid` (controller
    /// or not).
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<T>> {
        if uid.is_empty() {
            return Vec::new();
        }
        self.indexed(uid)
    }

    /// Objects of `namespace` that have no controller.
    pub fn without_controller(&self, namespace: &str) -> Vec<Arc<T>> {
        let mut out = self.indexed(NO_CONTROLLER);
        out.retain(|o| o.namespace() == namespace);
        out
    }

    fn indexed(&self, index_key: &str) -> Vec<Arc<T>> {
        let objects = self.inner.read().expect("cache lock");
        let Some(keys) = objects.by_owner.get(index_key) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|(ns, name)| objects.by_namespace.get(ns)?.get(name).cloned())
            .collect()
    }
}

impl<T: Resource> Objects<T> {
    fn index_keys(object: &T) -> Vec<String> {
        let meta = object.meta();
        let mut keys: Vec<String> = meta
            .owner_references
            .iter()
            .map(|r| r.uid.clone())
            .collect();
        if meta.controller().is_none() {
            keys.push(NO_CONTROLLER.to_owned());
        }
        keys
    }

    fn insert(&mut self, object: Arc<T>) -> Option<Arc<T>> {
        let namespace = object.namespace().to_owned();
        let name = object.name().to_owned();
        let old = self
            .by_namespace
            .entry(namespace.clone())
            .or_default()
            .insert(name.clone(), Arc::clone(&object));
        if let Some(old) = &old {
            self.unindex(old);
        }
        for key in Self::index_keys(&object) {
            self.by_owner
                .entry(key)
                .or_default()
                .insert((namespace.clone(), name.clone()));
        }
        old
    }

    fn remove(&mut self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let names = self.by_namespace.get_mut(namespace)?;
        let old = names.remove(name)?;
        if names.is_empty() {
            self.by_namespace.remove(namespace);
        }
        self.unindex(&old);
        Some(old)
    }

    fn unindex(&mut self, object: &T) {
        let entry = (object.namespace().to_owned(), object.name().to_owned());
        for key in Self::index_keys(object) {
            if let Some(set) = self.by_owner.get_mut(&key) {
                set.remove(&entry);
                if set.is_empty() {
                    self.by_owner.remove(&key);
                }
            }
        }
    }
}

/// A function told about every change of one kind.
pub type Handler<T> = Box<dyn Fn(&Change<T>) + Send + Sync>;

/// Feeds a [`Cache`] from a watcher and tells handlers about each change.
pub struct Informer<T> {
    cache: Cache<T>,
    synced: watch::Sender<bool>,
    handlers: Vec<Handler<T>>,
}

impl<T: Resource> Informer<T> {
    pub fn new() -> Informer<T> {
        let (synced, synced_rx) = watch::channel(false);
        let cache = Cache {
            inner: Arc::new(RwLock::new(Objects::default())),
            synced: synced_rx,
        };
        Informer {
            cache,
            synced,
            handlers: Vec::new(),
        }
    }

    /// The cache this informer fills.
    pub fn cache(&self) -> Cache<T> {
        self.cache.clone()
    }

    /// Registers a handler; it sees every change from the first list on.
    pub fn on_change(&mut self, handler: impl Fn(&Change<T>) + Send + Sync + 'static) {
        self.handlers.push(Box::new(handler));
    }

    /// Starts watching `namespace` ("" for all) on a task of its own.
    pub fn start(self, client: Client, namespace: &str, params: ListParams) {
        let events = watcher::<T>(client, namespace, params);
        tokio::spawn(self.run(events));
    }

    async fn run(self, mut events: tokio::sync::mpsc::Receiver<WatcherEvent<T>>) {
        while let Some(event) = events.recv().await {
            self.apply(event);
        }
    }

    /// Applies one watcher event to the cache, then tells the handlers.
    /// (Crate-visible so that tests can feed a cache without a watch.)
    pub(crate) fn apply(&self, event: WatcherEvent<T>) {
        let complete_list = matches!(event, WatcherEvent::Restarted(_));
        let changes = {
            let mut objects = self.cache.inner.write().expect("cache lock");
            match event {
                WatcherEvent::Applied(object) => {
                    let new = Arc::new(object);
                    let old = objects.insert(Arc::clone(&new));
                    vec![Change::Applied { old, new }]
                }
                WatcherEvent::Deleted(object) => {
                    let gone = objects.remove(object.namespace(), object.name());
                    vec![Change::Deleted(gone.unwrap_or_else(|| Arc::new(object)))]
                }
                WatcherEvent::Restarted(list) => relist(&mut objects, list),
            }
        };
        if complete_list {
            self.synced
                .send_if_modified(|synced| !std::mem::replace(synced, true));
        }
        for change in &changes {
            for handler in &self.handlers {
                handler(change);
            }
        }
    }
}

impl<T: Resource> Default for Informer<T> {
    fn default() -> Informer<T> {
        Informer::new()
    }
}

/// Replaces the cache with a fresh list and returns what differed.
fn relist<T: Resource>(objects: &mut Objects<T>, list: Vec<T>) -> Vec<Change<T>> {
    let mut changes = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::with_capacity(list.len());
    for object in list {
        seen.insert((object.namespace().to_owned(), object.name().to_owned()));
        let unchanged = objects
            .by_namespace
            .get(object.namespace())
            .and_then(|m| m.get(object.name()))
            .is_some_and(|old| {
                old.meta().resource_version == object.meta().resource_version
                    && old.meta().uid == object.meta().uid
            });
        if unchanged {
            continue;
        }
        let new = Arc::new(object);
        let old = objects.insert(Arc::clone(&new));
        changes.push(Change::Applied { old, new });
    }
    let vanished: Vec<(String, String)> = objects
        .by_namespace
        .iter()
        .flat_map(|(ns, m)| m.keys().map(move |name| (ns.clone(), name.clone())))
        .filter(|key| !seen.contains(key))
        .collect();
    for (ns, name) in vanished {
        if let Some(gone) = objects.remove(&ns, &name) {
            changes.push(Change::Deleted(gone));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ObjectMeta, OwnerReference};
    use serde::{Deserialize, Serialize};
    use std::sync::Mutex;

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct Thing {
        metadata: ObjectMeta,
    }
    crate::impl_resource!(Thing, "", "v1", "v1", "Thing", "things", true);

    fn thing(name: &str, rv: &str, owner: Option<&str>) -> Thing {
        let owner_references = owner
            .map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            })
            .unwrap_or_default();
        Thing {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                resource_version: Some(rv.into()),
                owner_references,
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_relist_reports_changed_and_vanished_objects_only() {
        let mut informer = Informer::<Thing>::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        informer.on_change(move |change| {
            let entry = match change {
                Change::Applied { new, .. } => format!("applied {}", new.name()),
                Change::Deleted(old) => format!("deleted {}", old.name()),
            };
            log.lock().unwrap().push(entry);
        });
        informer.apply(WatcherEvent::Restarted(vec![
            thing("a", "1", None),
            thing("b", "1", None),
        ]));
        assert!(informer.cache().is_synced());
        seen.lock().unwrap().clear();

        informer.apply(WatcherEvent::Restarted(vec![
            thing("a", "1", None),
            thing("c", "2", None),
        ]));
        let mut log = seen.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, ["applied c", "deleted b"]);
    }

    #[test]
    fn objects_are_found_by_owner_uid_and_by_lack_of_controller() {
        let informer = Informer::<Thing>::new();
        informer.apply(WatcherEvent::Applied(thing("a", "1", Some("u1"))));
        informer.apply(WatcherEvent::Applied(thing("b", "1", None)));
        let cache = informer.cache();
        assert_eq!(cache.owned_by("u1").len(), 1);
        assert_eq!(cache.without_controller("default")[0].name(), "b");

        // A change of owner moves the object between index entries.
        informer.apply(WatcherEvent::Applied(thing("a", "2", None)));
        assert!(cache.owned_by("u1").is_empty());
        assert_eq!(cache.without_controller("default").len(), 2);

        informer.apply(WatcherEvent::Deleted(thing("a", "3", None)));
        assert_eq!(cache.without_controller("default").len(), 1);
        assert!(cache.get("default", "a").is_none());
    }
}
