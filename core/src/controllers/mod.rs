//! The controller manager: the loops that turn Deployments into ReplicaSets
//! and Pods, collect garbage, and notice nodes that went silent.
//!
//! What callers may rely on:
//!
//! * [`run`] works only through the [`Client`]: it watches Deployments,
//!   ReplicaSets, Pods, Nodes and node Leases into shared caches and never
//!   reads another component's state;
//! * every controller is level-based: a sync computes what should be from
//!   the caches as they are now, writes only what differs, and can run any
//!   number of times with the same result;
//! * a failed sync (a conflict included) is retried with backoff; nothing
//!   acts before its caches hold a complete first list, and an apiserver that
//!   is not up yet is waited for, never a reason to stop.
//!
//! The controllers: [`deployment`] (rollouts), [`replicaset`] (pods of a
//! ReplicaSet), [`garbage_collector`] (dependents of deleted owners,
//! `orphan` and `foregroundDeletion` finalizers) and [`node_lifecycle`]
//! (Ready=Unknown for nodes whose lease expired). [`rollout`] holds the
//! rollout arithmetic, [`informer`] the caches and [`queue`] the work queue.

pub mod deployment;
pub mod garbage_collector;
pub mod informer;
pub mod namespace;
pub mod node_lifecycle;
pub mod queue;
pub mod replicaset;
pub mod rollout;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{Deployment, Lease, Node, OwnerReference, Pod, ReplicaSet, Resource};
use crate::client::{self, Client, ListParams};

use self::informer::{Cache, Informer};
use self::queue::WorkQueue;

/// Where kubelets keep their node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Why a sync failed; it is retried with backoff either way.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("apiserver request failed")]
    Api(#[source] Box<client::Error>),
    #[error("{kind} {namespace}/{name} has an invalid selector")]
    InvalidSelector {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("replica set name {name} is taken by another object (hash collision)")]
    HashCollision { name: String },
}

impl Error {
    /// A conflict means the cache was behind; a retry will see fresher data.
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_conflict())
    }
}

impl From<client::Error> for Error {
    fn from(error: client::Error) -> Error {
        Error::Api(Box::new(error))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a sync asks of the queue when it succeeds: nothing, or another look
/// after a delay (a progress deadline, a pod about to become available).
pub type Requeue = Option<Duration>;

/// The caches every controller reads.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Cache<Deployment>,
    pub replica_sets: Cache<ReplicaSet>,
    pub pods: Cache<Pod>,
    pub nodes: Cache<Node>,
    pub leases: Cache<Lease>,
}

/// The informers behind [`Caches`], while controllers register handlers.
pub struct Informers {
    pub deployments: Informer<Deployment>,
    pub replica_sets: Informer<ReplicaSet>,
    pub pods: Informer<Pod>,
    pub nodes: Informer<Node>,
    pub leases: Informer<Lease>,
}

impl Informers {
    pub fn new() -> Informers {
        Informers {
            deployments: Informer::new(),
            replica_sets: Informer::new(),
            pods: Informer::new(),
            nodes: Informer::new(),
            leases: Informer::new(),
        }
    }

    pub fn caches(&self) -> Caches {
        Caches {
            deployments: self.deployments.cache(),
            replica_sets: self.replica_sets.cache(),
            pods: self.pods.cache(),
            nodes: self.nodes.cache(),
            leases: self.leases.cache(),
        }
    }

    /// Starts every watcher.
    pub fn start(self, client: &Client) {
        self.deployments
            .start(client.clone(), "", ListParams::default());
        self.replica_sets
            .start(client.clone(), "", ListParams::default());
        self.pods.start(client.clone(), "", ListParams::default());
        self.nodes.start(client.clone(), "", ListParams::default());
        self.leases
            .start(client.clone(), NODE_LEASE_NAMESPACE, ListParams::default());
    }
}

impl Default for Informers {
    fn default() -> Informers {
        Informers::new()
    }
}

impl Caches {
    /// Waits until every cache holds its first complete list, saying once
    /// that it waits if that takes more than a moment.
    pub async fn wait_synced(&self) {
        let all = async {
            self.deployments.wait_synced().await;
            self.replica_sets.wait_synced().await;
            self.pods.wait_synced().await;
            self.nodes.wait_synced().await;
            self.leases.wait_synced().await;
        };
        tokio::pin!(all);
        if tokio::time::timeout(Duration::from_secs(2), &mut all)
            .await
            .is_err()
        {
            tracing::info!(
                "waiting for the apiserver to list deployments, replica sets, pods, nodes"
            );
            all.await;
        }
    }
}

/// Runs every controller until the process ends.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let mut informers = Informers::new();
    let caches = informers.caches();

    let deployments = deployment::DeploymentController::new(client.clone(), caches.clone());
    deployments.register(&mut informers);
    let replica_sets = replicaset::ReplicaSetController::new(client.clone(), caches.clone());
    replica_sets.register(&mut informers);
    let collector = garbage_collector::GarbageCollector::new(client.clone(), caches.clone());
    collector.register(&mut informers);
    let nodes = node_lifecycle::NodeLifecycleController::new(client.clone(), caches.clone());

    informers.start(&client);
    caches.wait_synced().await;
    tracing::info!("controller caches synced, starting controllers");

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(deployments.run(4));
    tasks.spawn(replica_sets.run(8));
    tasks.spawn(collector.run(4));
    tasks.spawn(nodes.run());
    tasks.spawn(namespace::NamespaceController::new(client.clone()).run());
    match tasks.join_next().await {
        Some(Err(error)) => Err(anyhow::anyhow!("a controller task failed: {error}")),
        _ => Err(anyhow::anyhow!("a controller loop ended")),
    }
}

/// Runs `workers` loops that take keys from `queue` and sync them, with
/// retries on failure and requeues on request. Never returns.
pub(crate) async fn run_workers<F, Fut>(
    controller: &'static str,
    queue: Arc<WorkQueue>,
    workers: usize,
    sync: F,
) where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = Arc::clone(&queue);
        let sync = sync.clone();
        tasks.spawn(async move {
            loop {
                let key = queue.next().await;
                match sync(key.clone()).await {
                    Ok(requeue) => {
                        queue.forget(&key);
                        if let Some(delay) = requeue {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(error) if error.is_conflict() => {
                        tracing::debug!(controller, key, "sync hit a conflict, retrying");
                        queue.add_rate_limited(key.clone());
                    }
                    Err(error) => {
                        tracing::warn!(controller, key, error = %error_chain(&error),
                            "sync failed, retrying");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// An error and its causes, for a log field.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The queue key of an object: `namespace/name`.
pub(crate) fn key_of<T: Resource>(object: &T) -> String {
    format!("{}/{}", object.namespace(), object.name())
}

/// Splits a `namespace/name` key.
pub(crate) fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The controller reference of `object` if it points at a `kind`.
pub(crate) fn controller_of<'a, T: Resource>(
    object: &'a T,
    kind: &str,
) -> Option<&'a OwnerReference> {
    object.meta().controller().filter(|r| r.kind == kind)
}

/// A controller ownerReference to `owner`.
pub(crate) fn controller_reference<T: Resource>(owner: &T) -> OwnerReference {
    OwnerReference {
        api_version: T::API_VERSION.into(),
        kind: T::KIND.into(),
        name: owner.name().into(),
        uid: owner.meta().uid().into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
