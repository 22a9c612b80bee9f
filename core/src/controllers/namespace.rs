//! The namespace controller: empties a namespace that is being deleted,
//! then lets the apiserver remove it.
//!
//! Deleting a namespace marks it `Terminating` (the apiserver sets
//! `deletionTimestamp` while `spec.finalizers` holds `kubernetes`). This
//! controller deletes every object in it (pods gracefully, so their kubelets
//! stop their containers) and, once nothing is left, clears
//! `spec.finalizers` through the `finalize` subresource; the apiserver then
//! removes the namespace. Until then the apiserver refuses new objects in it.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::api::{DeleteOptions, Deployment, Event, Lease, Namespace, Pod, ReplicaSet, Resource};
use crate::client::{Client, ListParams, WatcherEvent, watcher};

/// How often a terminating namespace is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

pub struct NamespaceController {
    client: Client,
}

impl NamespaceController {
    pub fn new(client: Client) -> NamespaceController {
        NamespaceController { client }
    }

    /// Runs forever.
    pub async fn run(self) {
        let mut events = watcher::<Namespace>(self.client.clone(), "", ListParams::default());
        let mut terminating: BTreeSet<String> = BTreeSet::new();
        let mut tick = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(WatcherEvent::Restarted(all)) => {
                        terminating = all
                            .iter()
                            .filter(|n| is_terminating(n))
                            .map(|n| n.name().to_owned())
                            .collect();
                    }
                    Some(WatcherEvent::Applied(ns)) if is_terminating(&ns) => {
                        terminating.insert(ns.name().to_owned());
                    }
                    Some(WatcherEvent::Applied(ns)) | Some(WatcherEvent::Deleted(ns)) => {
                        terminating.remove(ns.name());
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    for name in terminating.clone() {
                        match self.sync(&name).await {
                            Ok(true) => { terminating.remove(&name); }
                            Ok(false) => {}
                            Err(error) => {
                                tracing::debug!(
                                    namespace = %name,
                                    %error,
                                    "emptying a namespace failed; retrying"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Deletes what is left in the namespace; true once it is finalized.
    async fn sync(&self, namespace: &str) -> Result<bool, crate::client::Error> {
        let mut left = 0;
        left += self.delete_all::<Deployment>(namespace).await?;
        left += self.delete_all::<ReplicaSet>(namespace).await?;
        left += self.delete_all::<Pod>(namespace).await?;
        left += self.delete_all::<Lease>(namespace).await?;
        if left > 0 {
            return Ok(false);
        }
        // Events go last: the deletions above still record some.
        if self.delete_all::<Event>(namespace).await? > 0 {
            return Ok(false);
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace},
            "spec": {"finalizers": []},
        });
        let path = format!("/api/v1/namespaces/{namespace}/finalize");
        let (status, _) = self
            .client
            .request_raw(
                Method::PUT,
                &path,
                "application/json",
                Bytes::from(body.to_string()),
            )
            .await?;
        tracing::info!(
            namespace,
            status = status.as_u16(),
            "namespace emptied and finalized"
        );
        Ok(status.is_success() || status == http::StatusCode::NOT_FOUND)
    }

    /// Deletes every object of one kind in the namespace; how many remain.
    async fn delete_all<T: Resource>(
        &self,
        namespace: &str,
    ) -> Result<usize, crate::client::Error> {
        let list = self
            .client
            .list::<T>(namespace, &ListParams::default())
            .await?;
        for object in &list.items {
            if object.meta().deletion_timestamp.is_some() && T::KIND == "Pod" {
                continue;
            }
            let options = DeleteOptions {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            };
            match self
                .client
                .delete::<T>(namespace, object.name(), &options)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(list.items.len())
    }
}

fn is_terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
}
