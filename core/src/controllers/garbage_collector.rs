//! The garbage collector: dependents follow their owners.
//!
//! What it promises, for ReplicaSets and Pods (the dependents) and
//! Deployments, ReplicaSets, Pods and Nodes (the owners it can look up):
//!
//! * a dependent whose every ownerReference names an owner that no longer
//!   exists (no object of that kind and name with that uid) is deleted in
//!   the background; absence is confirmed with a live GET, since a cache can
//!   lag behind a fresh owner. An ownerReference to a kind it cannot look up
//!   counts as a live owner, so nothing is deleted on a guess;
//! * an owner being deleted with the `orphan` finalizer loses its
//!   ownerReferences from every dependent, then the finalizer;
//! * an owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted (ReplicaSets in the foreground too, so that their
//!   pods go first), and loses the finalizer once no dependent that blocks
//!   owner deletion is left.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::informer::Change;
use super::queue::WorkQueue;
use super::{Caches, Informers, Requeue, Result, run_workers};
use crate::api::{
    DeleteOptions, Deployment, Node, OwnerReference, Pod, Preconditions, ReplicaSet, Resource,
};
use crate::client::Client;

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How often an owner waiting for its dependents is looked at again, in
/// case a dependent's deletion event was missed.
const FOREGROUND_RECHECK: Duration = Duration::from_secs(5);
/// Remembered uids of owners known to be gone, before the memory is reset.
const MAX_ABSENT_UIDS: usize = 100_000;

/// How often every owned object is checked again, whatever events said.
const RESYNC: Duration = Duration::from_secs(10);

/// The garbage collector. Create with [`GarbageCollector::new`], register
/// its handlers, then [`GarbageCollector::run`] it.
pub struct GarbageCollector {
    client: Client,
    caches: Caches,
    /// Keys `<Kind>/<namespace>/<name>`.
    queue: Arc<WorkQueue>,
    /// Uids of owners a live GET found absent; uids are never reused, so
    /// these need no second look.
    absent: Mutex<HashSet<String>>,
}

impl GarbageCollector {
    pub fn new(client: Client, caches: Caches) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector {
            client,
            caches,
            queue: WorkQueue::new(),
            absent: Mutex::new(HashSet::new()),
        })
    }

    /// Registers the handlers: dependents are checked when they appear or
    /// change owners and when an owner goes; owners are handled when they
    /// are deleted with a finalizer and when one of their dependents goes.
    pub fn register(self: &Arc<Self>, informers: &mut Informers) {
        let queue = Arc::clone(&self.queue);
        let caches = self.caches.clone();
        informers.deployments.on_change(move |change| {
            on_owner_change(&queue, &caches, change);
        });

        let queue = Arc::clone(&self.queue);
        let caches = self.caches.clone();
        informers.replica_sets.on_change(move |change| {
            on_owner_change(&queue, &caches, change);
            on_dependent_change(&queue, change);
        });

        let queue = Arc::clone(&self.queue);
        let caches = self.caches.clone();
        informers.pods.on_change(move |change| {
            on_owner_change(&queue, &caches, change);
            on_dependent_change(&queue, change);
        });

        let queue = Arc::clone(&self.queue);
        let caches = self.caches.clone();
        informers.nodes.on_change(move |change| {
            on_owner_change(&queue, &caches, change);
        });
    }

    /// Collects garbage with `workers` concurrent workers, forever.
    pub async fn run(self: Arc<Self>, workers: usize) {
        // Events from different informers can interleave so that a
        // dependent is checked against a stale owner and its owner's
        // deletion is handled before the dependent is cached; a periodic
        // pass over every owned object makes the collector level-based
        // whatever the order.
        let this = Arc::clone(&self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESYNC);
            tick.tick().await;
            loop {
                tick.tick().await;
                for rs in this.caches.replica_sets.list() {
                    if !rs.meta().owner_references.is_empty() {
                        this.queue.add(gc_key(rs.as_ref()));
                    }
                }
                for pod in this.caches.pods.list() {
                    if !pod.meta().owner_references.is_empty() {
                        this.queue.add(gc_key(pod.as_ref()));
                    }
                }
            }
        });
        let queue = Arc::clone(&self.queue);
        run_workers("garbage-collector", queue, workers, move |key| {
            let this = Arc::clone(&self);
            async move { this.sync(&key).await }
        })
        .await
    }

    /// Handles one object: its deletion finalizers, then its owners.
    pub async fn sync(&self, key: &str) -> Result<Requeue> {
        let mut parts = key.splitn(3, '/');
        let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        match kind {
            "Deployment" => match self.caches.deployments.get(namespace, name) {
                Some(d) => self.finalize(d.as_ref()).await,
                None => Ok(None),
            },
            "ReplicaSet" => match self.caches.replica_sets.get(namespace, name) {
                Some(rs) => {
                    let requeue = self.finalize(rs.as_ref()).await?;
                    self.collect_if_orphaned(rs.as_ref()).await?;
                    Ok(requeue)
                }
                None => Ok(None),
            },
            "Pod" => match self.caches.pods.get(namespace, name) {
                Some(pod) => {
                    self.collect_if_orphaned(pod.as_ref()).await?;
                    Ok(None)
                }
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Deletes a dependent whose owners are all gone.
    async fn collect_if_orphaned<T: Resource>(&self, object: &T) -> Result<()> {
        let meta = object.meta();
        if meta.owner_references.is_empty() || meta.deletion_timestamp.is_some() {
            return Ok(());
        }
        for owner in &meta.owner_references {
            if self.owner_exists(owner, object.namespace()).await? {
                return Ok(());
            }
        }
        // The resourceVersion precondition makes this a no-op when the
        // dependent changed since it was judged (an orphaning, say, removed
        // the very reference found dangling). Most changes are not to its
        // owners (a kubelet's status write) and bring no event that checks
        // it again, so the conflict is returned: the key is retried, and
        // judged again once the cache holds the change.
        let options = DeleteOptions {
            propagation_policy: Some("Background".into()),
            preconditions: Some(Preconditions {
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
            }),
            ..Default::default()
        };
        match self
            .client
            .delete::<T>(object.namespace(), object.name(), &options)
            .await
        {
            Ok(_) => tracing::info!(
                kind = T::KIND,
                namespace = object.namespace(),
                name = object.name(),
                "deleted dependent of a deleted owner"
            ),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// Whether the owner a reference names exists, with that uid.
    async fn owner_exists(&self, owner: &OwnerReference, namespace: &str) -> Result<bool> {
        if self
            .absent
            .lock()
            .expect("absent lock")
            .contains(&owner.uid)
        {
            return Ok(false);
        }
        let name = owner.name.as_str();
        let cached_uid = match owner.kind.as_str() {
            "Deployment" => self
                .caches
                .deployments
                .get(namespace, name)
                .map(|o| uid(o.as_ref())),
            "ReplicaSet" => self
                .caches
                .replica_sets
                .get(namespace, name)
                .map(|o| uid(o.as_ref())),
            "Pod" => self
                .caches
                .pods
                .get(namespace, name)
                .map(|o| uid(o.as_ref())),
            "Node" => self.caches.nodes.get("", name).map(|o| uid(o.as_ref())),
            // A kind this collector does not know: assume the owner lives.
            _ => return Ok(true),
        };
        if cached_uid.as_deref() == Some(owner.uid.as_str()) {
            return Ok(true);
        }
        let live_uid = match owner.kind.as_str() {
            "Deployment" => self.live_uid::<Deployment>(namespace, name).await?,
            "ReplicaSet" => self.live_uid::<ReplicaSet>(namespace, name).await?,
            "Pod" => self.live_uid::<Pod>(namespace, name).await?,
            _ => self.live_uid::<Node>("", name).await?,
        };
        if live_uid.as_deref() == Some(owner.uid.as_str()) {
            return Ok(true);
        }
        let mut absent = self.absent.lock().expect("absent lock");
        if absent.len() >= MAX_ABSENT_UIDS {
            absent.clear();
        }
        absent.insert(owner.uid.clone());
        Ok(false)
    }

    async fn live_uid<T: Resource>(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .get_opt::<T>(namespace, name)
            .await?
            .map(|o| uid(&o)))
    }

    /// Handles the `orphan` and `foregroundDeletion` finalizers of an owner
    /// being deleted.
    async fn finalize<T: Resource>(&self, owner: &T) -> Result<Requeue> {
        let meta = owner.meta();
        if meta.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let owner_uid = meta.uid();
        if meta.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            for rs in self.caches.replica_sets.owned_by(owner_uid) {
                self.release(rs.as_ref(), owner_uid).await?;
            }
            for pod in self.caches.pods.owned_by(owner_uid) {
                self.release(pod.as_ref(), owner_uid).await?;
            }
            self.remove_finalizer(owner, ORPHAN_FINALIZER).await?;
            return Ok(None);
        }
        if meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            let replica_sets = self.caches.replica_sets.owned_by(owner_uid);
            let pods = self.caches.pods.owned_by(owner_uid);
            let mut blocking = 0;
            for rs in &replica_sets {
                blocking += self
                    .delete_dependent(rs.as_ref(), owner_uid, "Foreground")
                    .await?;
            }
            for pod in &pods {
                blocking += self
                    .delete_dependent(pod.as_ref(), owner_uid, "Background")
                    .await?;
            }
            if blocking > 0 {
                return Ok(Some(FOREGROUND_RECHECK));
            }
            self.remove_finalizer(owner, FOREGROUND_FINALIZER).await?;
        }
        Ok(None)
    }

    /// Deletes a dependent of an owner in foreground deletion (unless it is
    /// already going); returns 1 if it blocks the owner's deletion, else 0.
    async fn delete_dependent<T: Resource>(
        &self,
        dependent: &T,
        owner_uid: &str,
        policy: &str,
    ) -> Result<usize> {
        let meta = dependent.meta();
        let Some(reference) = meta.owner_references.iter().find(|r| r.uid == owner_uid) else {
            return Ok(0);
        };
        if meta.deletion_timestamp.is_none() {
            let options = DeleteOptions {
                propagation_policy: Some(policy.into()),
                preconditions: Some(Preconditions {
                    uid: meta.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self
                .client
                .delete::<T>(dependent.namespace(), dependent.name(), &options)
                .await
            {
                Ok(_) => tracing::info!(
                    kind = T::KIND,
                    namespace = dependent.namespace(),
                    name = dependent.name(),
                    "deleted dependent of an owner in foreground deletion"
                ),
                Err(error) if error.is_not_found() => return Ok(0),
                Err(error) if error.is_conflict() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(usize::from(reference.block_owner_deletion == Some(true)))
    }

    /// Removes the ownerReference to `owner_uid` from a dependent.
    async fn release<T: Resource>(&self, dependent: &T, owner_uid: &str) -> Result<()> {
        let mut released = dependent.clone();
        released
            .meta_mut()
            .owner_references
            .retain(|r| r.uid != owner_uid);
        match self.client.replace(&released).await {
            Ok(_) => {
                tracing::info!(
                    kind = T::KIND,
                    namespace = dependent.namespace(),
                    name = dependent.name(),
                    "orphaned dependent"
                );
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes one finalizer from the live owner; the apiserver deletes the
    /// owner when that was the last one.
    async fn remove_finalizer<T: Resource>(&self, owner: &T, finalizer: &str) -> Result<()> {
        let Some(mut live) = self
            .client
            .get_opt::<T>(owner.namespace(), owner.name())
            .await?
        else {
            return Ok(());
        };
        if live.meta().uid() != owner.meta().uid()
            || !live.meta().finalizers.iter().any(|f| f == finalizer)
        {
            return Ok(());
        }
        live.meta_mut().finalizers.retain(|f| f != finalizer);
        match self.client.replace(&live).await {
            Ok(_) => {
                tracing::info!(
                    kind = T::KIND,
                    namespace = owner.namespace(),
                    name = owner.name(),
                    finalizer,
                    "removed finalizer"
                );
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn uid<T: Resource>(object: &T) -> String {
    object.meta().uid().to_owned()
}

/// The queue key of an object of a kind the collector handles.
fn gc_key<T: Resource>(object: &T) -> String {
    format!("{}/{}/{}", T::KIND, object.namespace(), object.name())
}

/// An owner's change: queue it when it is deleted with a finalizer to handle;
/// queue its dependents when it is gone.
fn on_owner_change<T: Resource>(queue: &WorkQueue, caches: &Caches, change: &Change<T>) {
    match change {
        Change::Applied { new, .. } => {
            let meta = new.meta();
            let finalizing = meta.deletion_timestamp.is_some()
                && meta
                    .finalizers
                    .iter()
                    .any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER);
            if finalizing && matches!(T::KIND, "Deployment" | "ReplicaSet") {
                queue.add(gc_key(new.as_ref()));
            }
        }
        Change::Deleted(old) => {
            let uid = old.meta().uid();
            for rs in caches.replica_sets.owned_by(uid) {
                queue.add(gc_key(rs.as_ref()));
            }
            for pod in caches.pods.owned_by(uid) {
                queue.add(gc_key(pod.as_ref()));
            }
        }
    }
}

/// A dependent's change: check it when it appears or its owners change, and
/// tell owners in foreground deletion when it goes.
fn on_dependent_change<T: Resource>(queue: &WorkQueue, change: &Change<T>) {
    match change {
        Change::Applied { old, new } => {
            let owners_changed = old
                .as_ref()
                .is_none_or(|old| old.meta().owner_references != new.meta().owner_references);
            if owners_changed && !new.meta().owner_references.is_empty() {
                queue.add(gc_key(new.as_ref()));
            }
            let started_going = new.meta().deletion_timestamp.is_some()
                && old
                    .as_ref()
                    .is_none_or(|o| o.meta().deletion_timestamp.is_none());
            if started_going {
                queue_owners(queue, new.as_ref());
            }
        }
        Change::Deleted(old) => queue_owners(queue, old.as_ref()),
    }
}

fn queue_owners<T: Resource>(queue: &WorkQueue, dependent: &T) {
    for owner in &dependent.meta().owner_references {
        if matches!(owner.kind.as_str(), "Deployment" | "ReplicaSet") {
            queue.add(format!(
                "{}/{}/{}",
                owner.kind,
                dependent.namespace(),
                owner.name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectMeta;

    #[test]
    fn a_new_dependent_is_checked_and_its_owners_hear_when_it_goes() {
        let queue = WorkQueue::new();
        let pod = Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                owner_references: vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web".into(),
                    uid: "u1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        });
        on_dependent_change(
            &queue,
            &Change::Applied {
                old: None,
                new: Arc::clone(&pod),
            },
        );
        on_dependent_change(&queue, &Change::Deleted(pod));
        let mut keys = Vec::new();
        while let Some(key) = futures::FutureExt::now_or_never(queue.next()) {
            keys.push(key);
        }
        keys.sort();
        assert_eq!(keys, ["Pod/default/web-1", "ReplicaSet/default/web"]);
    }

    #[tokio::test]
    async fn an_orphan_that_changed_since_it_was_cached_is_retried_not_dropped() {
        use crate::apiserver::{ApiServer, ApiServerConfig};
        use crate::client::{InProcessTransport, WatcherEvent};
        use crate::store::MemoryStore;

        let dir = std::env::temp_dir().join(format!("coxswain-gc-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = ApiServerConfig {
            data_dir: dir.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
        };
        let server = ApiServer::start(config, Arc::new(MemoryStore::new()))
            .await
            .unwrap();
        let client = Client::new(Arc::new(InProcessTransport::new(
            server.router.clone(),
            &server.admin_token,
        )));
        // A pod whose ReplicaSet is gone (never existed)...
        let mut pod = Pod::new("default", "web-1");
        pod.metadata.owner_references = vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "gone-uid".into(),
            ..Default::default()
        }];
        pod.spec = Some(
            serde_json::from_value(serde_json::json!({
                "containers": [{"name": "web", "image": "coxswain/web:0.1"}]
            }))
            .unwrap(),
        );
        let cached = client.create(&pod).await.unwrap();
        // ...whose status a kubelet writes after the collector cached it.
        let status = serde_json::json!({"status": {"phase": "Running"}});
        client
            .merge_patch_status::<Pod>("default", "web-1", &status)
            .await
            .unwrap();

        let informers = super::super::Informers::new();
        let gc = GarbageCollector::new(client.clone(), informers.caches());
        informers
            .pods
            .apply(WatcherEvent::Restarted(vec![cached.clone()]));
        let stale = gc.sync("Pod/default/web-1").await;
        assert!(
            stale.as_ref().is_err_and(|e| e.is_conflict()),
            "a stale judgement must come back to the queue: {stale:?}"
        );

        let fresh = client.get::<Pod>("default", "web-1").await.unwrap();
        informers.pods.apply(WatcherEvent::Applied(fresh));
        gc.sync("Pod/default/web-1").await.unwrap();
        let left = client.get_opt::<Pod>("default", "web-1").await.unwrap();
        assert!(
            left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
            "the orphan is deleted once judged on its current version"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
