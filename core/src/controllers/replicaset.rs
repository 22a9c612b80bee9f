//! The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's
//! template running, and reports how many are ready and available.
//!
//! What it promises, for each ReplicaSet with a non-empty selector:
//!
//! * its pods are those it controls that match its selector: matching
//!   orphans are adopted (a controller ownerReference is added), controlled
//!   pods that stop matching are released;
//! * pods that are terminating or finished (Succeeded, Failed) do not count;
//! * missing pods are created from the template (`generateName: <rs>-`),
//!   surplus ones deleted, unscheduled first, then pending, then not ready,
//!   then the newest; at most 500 per sync, creations in growing batches;
//! * it never acts twice on one decision: creations and deletions it made
//!   are expected until the pod cache shows them (or five minutes pass), and
//!   no new decision is taken for that set meanwhile;
//! * the status (replicas, fullyLabeledReplicas, readyReplicas,
//!   availableReplicas after `minReadySeconds`, observedGeneration) is
//!   written only when it changes;
//! * a ReplicaSet being deleted gets no new pods.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::informer::{Cache, Change};
use super::queue::WorkQueue;
use super::{
    Caches, Error, Informers, Requeue, Result, controller_of, controller_reference, key_of,
    run_workers, split_key,
};
use crate::api::selector::Selector;
use crate::api::{DeleteOptions, Pod, ReplicaSet, ReplicaSetStatus, Resource, Time};
use crate::client::{Client, EventRecorder};

/// The most pods one sync creates or deletes.
const BURST: usize = 500;
/// How long an unmet expectation holds back a ReplicaSet.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);
/// The annotation that makes a pod cheaper (lower) or dearer to delete.
const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The ReplicaSet controller. Create with [`ReplicaSetController::new`],
/// register its handlers, then [`ReplicaSetController::run`] it.
pub struct ReplicaSetController {
    client: Client,
    events: EventRecorder,
    caches: Caches,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
}

impl ReplicaSetController {
    pub fn new(client: Client, caches: Caches) -> Arc<ReplicaSetController> {
        let events = EventRecorder::new(client.clone(), "replicaset-controller", None);
        Arc::new(ReplicaSetController {
            client,
            events,
            caches,
            queue: WorkQueue::new(),
            expectations: Arc::new(Expectations::default()),
        })
    }

    /// Registers the handlers that queue ReplicaSets when they or their pods
    /// change, and that settle expectations as pods appear and go.
    pub fn register(self: &Arc<Self>, informers: &mut Informers) {
        let queue = Arc::clone(&self.queue);
        let expectations = Arc::clone(&self.expectations);
        informers
            .replica_sets
            .on_change(move |change| match change {
                Change::Applied { new, .. } => queue.add(key_of(new.as_ref())),
                Change::Deleted(old) => {
                    let key = key_of(old.as_ref());
                    expectations.forget(&key);
                    queue.add(key);
                }
            });

        let queue = Arc::clone(&self.queue);
        let expectations = Arc::clone(&self.expectations);
        let replica_sets = self.caches.replica_sets.clone();
        informers.pods.on_change(move |change| {
            on_pod_change(&queue, &expectations, &replica_sets, change);
        });
    }

    /// Syncs ReplicaSets with `workers` concurrent workers, forever.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let queue = Arc::clone(&self.queue);
        run_workers("replicaset", queue, workers, move |key| {
            let this = Arc::clone(&self);
            async move { this.sync(&key).await }
        })
        .await
    }

    /// Brings one ReplicaSet's pods and status in line with its spec.
    pub async fn sync(&self, key: &str) -> Result<Requeue> {
        let (namespace, name) = split_key(key);
        let Some(rs) = self.caches.replica_sets.get(namespace, name) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let Some(selector) = rs_selector(&rs) else {
            tracing::warn!(
                namespace,
                name,
                "replica set has an empty or invalid selector"
            );
            return Err(Error::InvalidSelector {
                kind: ReplicaSet::KIND,
                namespace: namespace.into(),
                name: name.into(),
            });
        };
        let needs_sync = self.expectations.satisfied(key);
        let pods = self.claim_pods(&rs, &selector).await?;

        let managed = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            self.manage_replicas(key, &rs, &pods).await
        } else {
            Ok(())
        };

        let now = Time::now();
        let status = calculate_status(&rs, &pods, now);
        if rs.status.as_ref() != Some(&status) {
            let mut updated = (*rs).clone();
            updated.status = Some(status.clone());
            self.client.replace_status(&updated).await?;
        }
        managed?;
        Ok(next_availability_check(&rs, &pods, now))
    }

    /// The active pods this ReplicaSet controls, after adopting matching
    /// orphans and releasing controlled pods that no longer match.
    async fn claim_pods(&self, rs: &ReplicaSet, selector: &Selector) -> Result<Vec<Arc<Pod>>> {
        let uid = rs.metadata.uid();
        let namespace = rs.namespace();
        let mut owned = Vec::new();
        for pod in self.caches.pods.owned_by(uid) {
            if pod.namespace() != namespace
                || pod.metadata.controller().is_none_or(|c| c.uid != uid)
            {
                continue;
            }
            if selector.matches(&pod.metadata.labels) {
                owned.push(pod);
            } else if pod.metadata.deletion_timestamp.is_none() {
                let mut released = (*pod).clone();
                released.metadata.owner_references.retain(|r| r.uid != uid);
                match self.client.replace(&released).await {
                    Ok(_) => tracing::info!(namespace, name = pod.name(), "released pod"),
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        if rs.metadata.deletion_timestamp.is_none() {
            for pod in self.caches.pods.without_controller(namespace) {
                if pod.metadata.deletion_timestamp.is_some()
                    || !selector.matches(&pod.metadata.labels)
                {
                    continue;
                }
                let mut adopted = (*pod).clone();
                adopted
                    .metadata
                    .owner_references
                    .push(controller_reference(rs));
                match self.client.replace(&adopted).await {
                    Ok(adopted) => {
                        tracing::info!(namespace, name = pod.name(), "adopted pod");
                        owned.push(Arc::new(adopted));
                    }
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        owned.retain(|pod| is_active(pod));
        Ok(owned)
    }

    /// Creates or deletes pods to reach `spec.replicas`.
    async fn manage_replicas(&self, key: &str, rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Result<()> {
        let wanted = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        if pods.len() < wanted {
            let missing = (wanted - pods.len()).min(BURST);
            self.create_pods(key, rs, missing).await
        } else if pods.len() > wanted {
            let surplus = (pods.len() - wanted).min(BURST);
            self.delete_pods(key, rs, pods, surplus).await
        } else {
            Ok(())
        }
    }

    /// Creates `count` pods in batches of 1, 2, 4, ... stopping at the first
    /// batch with a failure, so that a quota or admission error costs one
    /// request rather than hundreds.
    async fn create_pods(&self, key: &str, rs: &ReplicaSet, count: usize) -> Result<()> {
        self.expectations.expect_creations(key, count);
        let template = pod_from_template(rs);
        let mut remaining = count;
        let mut batch = 1;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results = join_all((0..size).map(|_| self.client.create(&template))).await;
            remaining -= size;
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(pod) => {
                        tracing::debug!(
                            namespace = rs.namespace(),
                            name = pod.name(),
                            "created pod"
                        );
                        let message = format!("Created pod: {}", pod.name());
                        self.events
                            .record(rs, "Normal", "SuccessfulCreate", &message)
                            .await;
                    }
                    Err(error) => {
                        // This creation will never be observed.
                        self.expectations.creation_observed(key);
                        let message = format!("Error creating: {error}");
                        self.events
                            .record(rs, "Warning", "FailedCreate", &message)
                            .await;
                        first_error.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = first_error {
                for _ in 0..remaining {
                    self.expectations.creation_observed(key);
                }
                return Err(error.into());
            }
            batch *= 2;
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        key: &str,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
        count: usize,
    ) -> Result<()> {
        let mut ranked: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        rank_for_deletion(&mut ranked);
        ranked.truncate(count);
        let keys: Vec<String> = ranked.iter().map(|p| key_of(*p)).collect();
        self.expectations
            .expect_deletions(key, keys.iter().cloned());

        let options = DeleteOptions::default();
        let results = join_all(ranked.iter().map(|pod| {
            self.client
                .delete::<Pod>(pod.namespace(), pod.name(), &options)
        }))
        .await;
        let mut first_error = None;
        for ((pod, pod_key), result) in ranked.iter().zip(&keys).zip(results) {
            match result {
                Ok(_) => {
                    let message = format!("Deleted pod: {}", pod.name());
                    self.events
                        .record(rs, "Normal", "SuccessfulDelete", &message)
                        .await;
                }
                Err(error) => {
                    self.expectations.deletion_observed(key, pod_key);
                    if !error.is_not_found() {
                        let message = format!("Error deleting: {error}");
                        self.events
                            .record(rs, "Warning", "FailedDelete", &message)
                            .await;
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// Queues the ReplicaSets a pod change matters to and settles expectations.
fn on_pod_change(
    queue: &WorkQueue,
    expectations: &Expectations,
    replica_sets: &Cache<ReplicaSet>,
    change: &Change<Pod>,
) {
    match change {
        Change::Applied { old: None, new } => match controlling_replica_set(replica_sets, new) {
            Some(rs_key) => {
                if new.metadata.deletion_timestamp.is_some() {
                    expectations.deletion_observed(&rs_key, &key_of(new.as_ref()));
                } else {
                    expectations.creation_observed(&rs_key);
                }
                queue.add(rs_key);
            }
            None => {
                if new.metadata.controller().is_none() {
                    for key in matching_replica_sets(replica_sets, new) {
                        queue.add(key);
                    }
                }
            }
        },
        Change::Applied {
            old: Some(old),
            new,
        } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            let now_terminating = new.metadata.deletion_timestamp.is_some()
                && old.metadata.deletion_timestamp.is_none();
            let current = controlling_replica_set(replica_sets, new);
            if let Some(rs_key) = &current {
                if now_terminating {
                    expectations.deletion_observed(rs_key, &key_of(new.as_ref()));
                }
                queue.add(rs_key.clone());
            }
            let controller_changed = old.metadata.controller() != new.metadata.controller();
            if controller_changed && let Some(previous) = controlling_replica_set(replica_sets, old)
            {
                queue.add(previous);
            }
            let labels_changed = old.metadata.labels != new.metadata.labels;
            if current.is_none() && (labels_changed || controller_changed) {
                for key in matching_replica_sets(replica_sets, new) {
                    queue.add(key);
                }
            }
        }
        Change::Deleted(pod) => {
            if let Some(rs_key) = controlling_replica_set(replica_sets, pod) {
                expectations.deletion_observed(&rs_key, &key_of(pod.as_ref()));
                queue.add(rs_key);
            }
        }
    }
}

/// The key of the ReplicaSet that controls a pod, if it is in the cache.
fn controlling_replica_set(replica_sets: &Cache<ReplicaSet>, pod: &Pod) -> Option<String> {
    let owner = controller_of(pod, ReplicaSet::KIND)?;
    let rs = replica_sets.get(pod.namespace(), &owner.name)?;
    (rs.metadata.uid() == owner.uid).then(|| key_of(rs.as_ref()))
}

/// Keys of the ReplicaSets of a pod's namespace whose selector matches it.
fn matching_replica_sets(replica_sets: &Cache<ReplicaSet>, pod: &Pod) -> Vec<String> {
    replica_sets
        .list_namespace(pod.namespace())
        .into_iter()
        .filter(|rs| rs_selector(rs).is_some_and(|s| s.matches(&pod.metadata.labels)))
        .map(|rs| key_of(rs.as_ref()))
        .collect()
}

fn rs_selector(rs: &ReplicaSet) -> Option<Selector> {
    let spec = rs.spec.as_ref()?;
    Selector::from_label_selector(&spec.selector)
        .ok()
        .filter(|s| !s.is_empty())
}

/// Whether a pod counts: not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !matches!(pod.phase(), "Succeeded" | "Failed")
}

/// When the pod's Ready condition last turned True, if it is True now.
pub fn ready_since(pod: &Pod) -> Option<Option<Time>> {
    let condition = pod.status.as_ref()?.condition("Ready")?;
    (condition.status == "True").then_some(condition.last_transition_time)
}

/// Whether a pod has been ready for `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Time) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            since.0.timestamp() + i64::from(min_ready_seconds) <= now.0.timestamp()
        }
    }
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The status a ReplicaSet should report for its active pods.
pub fn calculate_status(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Time) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(|t| t.metadata.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let count = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(count(&|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&|p| ready_since(p).is_some())),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        terminating_replicas: old.terminating_replicas,
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
    }
}

/// When a ready pod will have been ready for `minReadySeconds`, if one is
/// still waiting for that.
fn next_availability_check(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Time) -> Requeue {
    let min_ready = i64::from(min_ready_seconds(rs));
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|pod| ready_since(pod).flatten())
        .map(|since| since.0.timestamp() + min_ready - now.0.timestamp())
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left as u64 + 1))
}

/// A new pod as the ReplicaSet's template describes it.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = Pod::new(rs.namespace(), "");
    pod.metadata.name = None;
    pod.metadata.generate_name = Some(format!("{}-", rs.name()));
    pod.metadata.labels = template.metadata.labels;
    pod.metadata.annotations = template.metadata.annotations;
    pod.metadata.finalizers = template.metadata.finalizers;
    pod.metadata.owner_references = vec![controller_reference(rs)];
    pod.spec = template.spec;
    pod
}

/// Sorts pods so that the first ones are the best to delete: unscheduled
/// before scheduled, Pending before Unknown before Running, not ready before
/// ready, lower deletion cost first, pods sharing a node with more of their
/// siblings first, ready for less time first, more restarts first, newest
/// first.
pub fn rank_for_deletion(pods: &mut [&Pod]) {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in pods.iter() {
        *per_node.entry(pod.node_name()).or_default() += 1;
    }
    let siblings = |pod: &Pod| {
        if pod.node_name().is_empty() {
            0
        } else {
            per_node[pod.node_name()]
        }
    };
    pods.sort_by(|a, b| {
        let unassigned = |p: &Pod| !p.node_name().is_empty();
        let phase = |p: &Pod| match p.phase() {
            "Running" => 2,
            "Unknown" => 1,
            _ => 0,
        };
        let ready = |p: &Pod| ready_since(p).is_some();
        let cost = |p: &Pod| {
            p.metadata
                .annotations
                .get(DELETION_COST_ANNOTATION)
                .and_then(|c| c.parse::<i32>().ok())
                .unwrap_or(0)
        };
        unassigned(a)
            .cmp(&unassigned(b))
            .then_with(|| phase(a).cmp(&phase(b)))
            .then_with(|| ready(a).cmp(&ready(b)))
            .then_with(|| cost(a).cmp(&cost(b)))
            .then_with(|| siblings(b).cmp(&siblings(a)))
            .then_with(|| {
                // Among ready pods, the one ready most recently goes first.
                match (ready_since(a).flatten(), ready_since(b).flatten()) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    _ => Ordering::Equal,
                }
            })
            .then_with(|| restarts(b).cmp(&restarts(a)))
            .then_with(|| {
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp)
            })
            .then_with(|| a.name().cmp(b.name()))
    });
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .map(|s| {
            s.container_statuses
                .iter()
                .map(|c| c.restart_count)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Creations and deletions a ReplicaSet made and has not seen in the pod
/// cache yet, per ReplicaSet key.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Expected>>,
}

struct Expected {
    /// Creations not observed yet.
    creations: i64,
    /// Keys of pods whose deletion is not observed yet.
    deletions: HashSet<String>,
    /// When these expectations were set.
    since: Instant,
}

impl Expectations {
    /// Whether the ReplicaSet may take a new decision: nothing pending, or
    /// what is pending is too old to wait for.
    pub fn satisfied(&self, key: &str) -> bool {
        let pending = self.pending.lock().expect("expectations lock");
        match pending.get(key) {
            None => true,
            Some(e) => {
                (e.creations <= 0 && e.deletions.is_empty())
                    || e.since.elapsed() > EXPECTATION_TIMEOUT
            }
        }
    }

    pub fn expect_creations(&self, key: &str, count: usize) {
        let mut pending = self.pending.lock().expect("expectations lock");
        pending.insert(
            key.to_owned(),
            Expected {
                creations: count as i64,
                deletions: HashSet::new(),
                since: Instant::now(),
            },
        );
    }

    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        let mut pending = self.pending.lock().expect("expectations lock");
        pending.insert(
            key.to_owned(),
            Expected {
                creations: 0,
                deletions: pods.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    pub fn creation_observed(&self, key: &str) {
        let mut pending = self.pending.lock().expect("expectations lock");
        if let Some(e) = pending.get_mut(key) {
            e.creations -= 1;
        }
    }

    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        let mut pending = self.pending.lock().expect("expectations lock");
        if let Some(e) = pending.get_mut(key) {
            e.deletions.remove(pod_key);
        }
    }

    pub fn forget(&self, key: &str) {
        self.pending.lock().expect("expectations lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PodCondition, PodStatus};

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: i64) -> Pod {
        let mut pod = Pod::new("default", name);
        pod.metadata.creation_timestamp =
            Some(Time(chrono::DateTime::from_timestamp(created, 0).unwrap()));
        pod.spec = Some(crate::api::PodSpec {
            node_name: (!node.is_empty()).then(|| node.into()),
            ..Default::default()
        });
        let conditions = if ready {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(
                    chrono::DateTime::from_timestamp(created + 10, 0).unwrap(),
                )),
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions,
            ..Default::default()
        });
        pod
    }

    fn replica_set(replicas: i32, min_ready: i32) -> ReplicaSet {
        let value = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid",
                         "generation": 3},
            "spec": {
                "replicas": replicas, "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"},
                                          "annotations": {"a": "b"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
            }
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn surplus_pods_are_deleted_unscheduled_then_pending_then_not_ready_then_newest() {
        let running_old = pod("running-old", "n1", "Running", true, 100);
        let running_new = pod("running-new", "n2", "Running", true, 200);
        let not_ready = pod("not-ready", "n1", "Running", false, 50);
        let pending = pod("pending", "n1", "Pending", false, 10);
        let unscheduled = pod("unscheduled", "", "Pending", false, 5);
        let mut pods = vec![
            &running_old,
            &running_new,
            &not_ready,
            &pending,
            &unscheduled,
        ];
        rank_for_deletion(&mut pods);
        let names: Vec<&str> = pods.iter().map(|p| p.name()).collect();
        // running-old shares node n1 with two siblings, so it goes before
        // running-new although it is older.
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "running-old",
                "running-new"
            ]
        );

        let a = pod("a", "n1", "Running", true, 100);
        let b = pod("b", "n2", "Running", true, 200);
        let mut pods = vec![&a, &b];
        rank_for_deletion(&mut pods);
        assert_eq!(
            pods[0].name(),
            "b",
            "the newest of otherwise equal pods goes first"
        );
    }

    #[test]
    fn status_counts_ready_available_and_fully_labelled_pods() {
        let rs = replica_set(3, 0);
        let mut labelled = pod("a", "n1", "Running", true, 100);
        labelled.metadata.labels = [("app", "web"), ("tier", "front")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let pods = vec![
            Arc::new(labelled),
            Arc::new(pod("b", "n1", "Running", true, 100)),
            Arc::new(pod("c", "n1", "Pending", false, 100)),
        ];
        let status = calculate_status(&rs, &pods, Time::now());
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(2));
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn a_pod_is_available_only_after_min_ready_seconds() {
        let p = pod("a", "n1", "Running", true, 100);
        let at = |t| Time(chrono::DateTime::from_timestamp(t, 0).unwrap());
        assert!(is_available(&p, 0, at(0)));
        assert!(
            !is_available(&p, 30, at(130)),
            "ready at 110, available at 140"
        );
        assert!(is_available(&p, 30, at(140)));
        let rs = replica_set(1, 30);
        assert_eq!(
            next_availability_check(&rs, &[Arc::new(p)], at(130)),
            Some(Duration::from_secs(11))
        );
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut terminating = pod("a", "n1", "Running", true, 1);
        terminating.metadata.deletion_timestamp = Some(Time::now());
        assert!(!is_active(&terminating));
        assert!(!is_active(&pod("b", "n1", "Succeeded", false, 1)));
        assert!(!is_active(&pod("c", "n1", "Failed", false, 1)));
        assert!(is_active(&pod("d", "", "Pending", false, 1)));
    }

    #[test]
    fn new_pods_come_from_the_template_with_a_controller_reference() {
        let pod = pod_from_template(&replica_set(1, 0));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.metadata.labels["app"], "web");
        assert_eq!(pod.metadata.annotations["a"], "b");
        let owner = &pod.metadata.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.api_version.as_str()),
            ("ReplicaSet", "apps/v1")
        );
        assert_eq!(
            (
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("rs-uid", Some(true), Some(true))
        );
        assert_eq!(pod.spec.unwrap().containers[0].name, "web");
    }

    #[test]
    fn expectations_hold_a_replica_set_until_its_pods_are_observed() {
        let expectations = Expectations::default();
        assert!(expectations.satisfied("ns/rs"));
        expectations.expect_creations("ns/rs", 2);
        assert!(!expectations.satisfied("ns/rs"));
        expectations.creation_observed("ns/rs");
        assert!(!expectations.satisfied("ns/rs"));
        expectations.creation_observed("ns/rs");
        assert!(expectations.satisfied("ns/rs"));

        expectations.expect_deletions("ns/rs", ["ns/p1".to_string()]);
        assert!(!expectations.satisfied("ns/rs"));
        expectations.deletion_observed("ns/rs", "ns/p1");
        assert!(expectations.satisfied("ns/rs"));
    }
}
