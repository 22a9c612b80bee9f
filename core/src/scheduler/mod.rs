//! The scheduler: binds each pending pod to a node that can run it.
//!
//! What it promises:
//!
//! * it takes pods with no `spec.nodeName`, no deletionTimestamp, no
//!   scheduling gates, not finished, and `schedulerName` empty or
//!   `default-scheduler`;
//! * it decides on in-memory caches only ([`cache`]): nodes are filtered
//!   ([`filter`]) and the least allocated of those left wins ([`score`]),
//!   ties taking turns; a pod is counted against its node from the moment it
//!   is chosen ("assumed"), so the next decision already sees it;
//! * binds go through `pods/binding`, at most 64 at a time, off the decision
//!   loop; queued pods are decided before further watch events are read; a
//!   success records a `Scheduled` event, a failure forgets the assumption
//!   and retries the pod after a backoff;
//! * a pod no node can take gets a `FailedScheduling` warning event and the
//!   condition `PodScheduled=False` (reason `Unschedulable`) with the
//!   upstream message, once per distinct message; it is retried when nodes
//!   change or a bound pod goes ([`queue`]), and at least every 10 s;
//! * it decides nothing before it has listed both pods and nodes, and waits
//!   for an apiserver that is not up yet.

pub mod cache;
pub mod filter;
pub mod queue;
pub mod score;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use self::cache::SchedulerCache;
use self::filter::{PodInfo, failure_message};
use self::queue::SchedulingQueue;
use crate::api::{Node, Pod, PodCondition, Resource, Time};
use crate::client::{self, Client, EventRecorder, ListParams, WatcherEvent, watcher};

/// The `schedulerName` this scheduler answers to.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Binds in flight at once.
const MAX_BINDS_IN_FLIGHT: usize = 64;
/// The most decisions taken in one turn of the loop.
const SCHEDULE_BATCH: usize = 64;
/// Status reports (events and conditions of unschedulable pods) in flight.
const MAX_REPORTS_IN_FLIGHT: usize = 8;
/// How long an identical FailedScheduling report is not repeated.
const REPORT_REPEAT: Duration = Duration::from_secs(300);

/// Runs the scheduler until the process ends.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let mut pods = watcher::<Pod>(client.clone(), "", ListParams::default());
    let mut nodes = watcher::<Node>(client.clone(), "", ListParams::default());
    let (bind_tx, mut bind_rx) = mpsc::unbounded_channel();
    let binds = Arc::new(Semaphore::new(MAX_BINDS_IN_FLIGHT));
    let mut scheduler = Scheduler::new(client);
    let started = Instant::now();
    let mut said_waiting = false;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));

    // Decisions come before watch events: a flood of pod updates (every
    // bind and status write is one) must not hold back the pods already
    // queued. Events still get their turn whenever the ready queue is empty
    // or every bind slot is taken, and only events fill the ready queue.
    loop {
        tokio::select! {
            biased;
            _ = ticker.tick() => {
                scheduler.queue.tick(Instant::now());
                if !scheduler.synced() && !said_waiting
                    && started.elapsed() > Duration::from_secs(2)
                {
                    tracing::info!("waiting for the apiserver to list pods and nodes");
                    said_waiting = true;
                }
            }
            Some(outcome) = bind_rx.recv() => scheduler.on_bind_outcome(outcome),
            permit = Arc::clone(&binds).acquire_owned(),
                if scheduler.synced() && scheduler.queue.has_ready() =>
            {
                let permit = permit.expect("the bind semaphore is never closed");
                scheduler.schedule_next(permit, &bind_tx);
                for _ in 1..SCHEDULE_BATCH {
                    if !scheduler.queue.has_ready() {
                        break;
                    }
                    let Ok(permit) = Arc::clone(&binds).try_acquire_owned() else {
                        break;
                    };
                    scheduler.schedule_next(permit, &bind_tx);
                }
            }
            event = pods.recv() => match event {
                Some(event) => scheduler.on_pod_event(event),
                None => anyhow::bail!("the pod watcher stopped"),
            },
            event = nodes.recv() => match event {
                Some(event) => scheduler.on_node_event(event),
                None => anyhow::bail!("the node watcher stopped"),
            },
        }
    }
}

/// The outcome of one bind, reported back to the loop.
struct BindOutcome {
    key: String,
    pod: Arc<Pod>,
    result: Result<(), client::Error>,
}

/// The decision loop's state. Only the loop touches it.
struct Scheduler {
    client: Client,
    events: EventRecorder,
    cache: SchedulerCache,
    queue: SchedulingQueue,
    /// Unbound pods this scheduler is responsible for, latest state, by key.
    pending: HashMap<String, Arc<Pod>>,
    pods_synced: bool,
    nodes_synced: bool,
    /// Turn counter for nodes that tie.
    round: usize,
    /// Last FailedScheduling message reported per pod, and when.
    reported: HashMap<String, (String, Instant)>,
    reports: Arc<Semaphore>,
}

impl Scheduler {
    fn new(client: Client) -> Scheduler {
        let events = EventRecorder::new(client.clone(), SCHEDULER_NAME, None);
        Scheduler {
            client,
            events,
            cache: SchedulerCache::new(),
            queue: SchedulingQueue::new(),
            pending: HashMap::new(),
            pods_synced: false,
            nodes_synced: false,
            round: 0,
            reported: HashMap::new(),
            reports: Arc::new(Semaphore::new(MAX_REPORTS_IN_FLIGHT)),
        }
    }

    fn synced(&self) -> bool {
        self.pods_synced && self.nodes_synced
    }

    fn on_pod_event(&mut self, event: WatcherEvent<Pod>) {
        match event {
            WatcherEvent::Restarted(pods) => {
                self.cache
                    .replace_pods(pods.iter().map(|p| (pod_key(p), p)));
                let previous: Vec<String> = self.pending.keys().cloned().collect();
                self.pending.clear();
                for pod in pods {
                    if pod.node_name().is_empty() {
                        self.apply_unbound(pod_key(&pod), pod);
                    }
                }
                for key in previous {
                    if !self.pending.contains_key(&key) {
                        self.queue.remove(&key);
                    }
                }
                if !self.pods_synced {
                    tracing::info!(pending = self.pending.len(), "scheduler listed pods");
                }
                self.pods_synced = true;
                self.queue.cluster_changed(Instant::now());
            }
            WatcherEvent::Applied(pod) => {
                let key = pod_key(&pod);
                if pod.node_name().is_empty() {
                    self.apply_unbound(key, pod);
                    return;
                }
                self.cache.apply_pod(&key, &pod);
                self.forget_pending(&key);
                if matches!(pod.phase(), "Succeeded" | "Failed") {
                    self.queue.cluster_changed(Instant::now());
                }
            }
            WatcherEvent::Deleted(pod) => {
                let key = pod_key(&pod);
                let freed = self.cache.remove_pod(&key);
                self.forget_pending(&key);
                if freed {
                    self.queue.cluster_changed(Instant::now());
                }
            }
        }
    }

    /// Takes the latest state of a pod without a node.
    fn apply_unbound(&mut self, key: String, pod: Pod) {
        if !is_schedulable(&pod) {
            if matches!(pod.phase(), "Succeeded" | "Failed") {
                self.cache.remove_pod(&key);
            }
            self.forget_pending(&key);
            return;
        }
        if self.cache.is_assumed(&key) {
            // Its bind is in flight; the outcome decides.
            return;
        }
        let spec_changed = self
            .pending
            .get(&key)
            .is_none_or(|old| old.spec != pod.spec);
        let first_seen = !self.pending.contains_key(&key);
        self.pending.insert(key.clone(), Arc::new(pod));
        if spec_changed && !first_seen {
            self.queue.activate(&key);
        } else {
            self.queue.add(&key);
        }
    }

    fn forget_pending(&mut self, key: &str) {
        self.pending.remove(key);
        self.queue.remove(key);
        self.reported.remove(key);
    }

    fn on_node_event(&mut self, event: WatcherEvent<Node>) {
        match event {
            WatcherEvent::Restarted(nodes) => {
                if !self.nodes_synced {
                    tracing::info!(nodes = nodes.len(), "scheduler listed nodes");
                }
                self.cache.replace_nodes(nodes);
                self.nodes_synced = true;
                self.queue.cluster_changed(Instant::now());
            }
            WatcherEvent::Applied(node) => {
                let fresh = node.clone();
                let helps = match self.cache.set_node(node) {
                    None => true,
                    Some(old) => may_help(&old, &fresh),
                };
                if helps {
                    self.queue.cluster_changed(Instant::now());
                }
            }
            WatcherEvent::Deleted(node) => self.cache.remove_node(node.metadata.name()),
        }
    }

    /// Decides where the next ready pod goes and starts its bind.
    fn schedule_next(
        &mut self,
        permit: OwnedSemaphorePermit,
        outcomes: &mpsc::UnboundedSender<BindOutcome>,
    ) {
        let Some(key) = self.queue.pop() else { return };
        let Some(pod) = self.pending.get(&key).cloned() else {
            return;
        };
        let info = PodInfo::new(&pod);

        let mut reasons: HashMap<String, usize> = HashMap::new();
        let mut candidates = Vec::new();
        for node in self.cache.nodes() {
            match filter::filter(&info, node) {
                Ok(()) => candidates.push((node, score::least_allocated(&info, node))),
                Err(rejections) => {
                    for reason in rejections {
                        *reasons.entry(reason).or_default() += 1;
                    }
                }
            }
        }
        let chosen = score::select(&candidates, &mut self.round).map(|n| n.name().to_owned());
        drop(candidates);

        let Some(node) = chosen else {
            let message = failure_message(self.cache.node_count(), &reasons);
            tracing::debug!(
                namespace = pod.namespace(),
                name = pod.name(),
                message,
                "pod is unschedulable"
            );
            self.queue.unschedulable(&key, Instant::now());
            self.report_unschedulable(&key, &pod, message);
            return;
        };

        tracing::debug!(
            namespace = pod.namespace(),
            name = pod.name(),
            node,
            "binding pod"
        );
        self.cache.assume(&key, &node, info.requests);
        let client = self.client.clone();
        let events = self.events.clone();
        let outcomes = outcomes.clone();
        tokio::spawn(async move {
            let result = client.bind(pod.namespace(), pod.name(), &node).await;
            drop(permit);
            if result.is_ok() {
                let message = format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.namespace(),
                    pod.name()
                );
                events
                    .record(pod.as_ref(), "Normal", "Scheduled", &message)
                    .await;
            }
            let _ = outcomes.send(BindOutcome { key, pod, result });
        });
    }

    fn on_bind_outcome(&mut self, outcome: BindOutcome) {
        let BindOutcome { key, pod, result } = outcome;
        let Err(error) = result else {
            self.forget_pending(&key);
            return;
        };
        self.cache.forget(&key);
        if error.is_not_found() {
            self.forget_pending(&key);
            return;
        }
        tracing::warn!(namespace = pod.namespace(), name = pod.name(), %error,
            "binding failed, retrying");
        // Events of the pod that arrived during the bind were skipped (it was
        // assumed), so the pod goes back to pending from here.
        self.pending
            .entry(key.clone())
            .or_insert_with(|| Arc::clone(&pod));
        self.queue.back_off(&key, Instant::now());
        if !error.is_conflict() {
            self.report_unschedulable(&key, &pod, format!("Binding rejected: {error}"));
        }
    }

    /// Records FailedScheduling and sets PodScheduled=False, unless the same
    /// message was reported recently and the condition already says it.
    fn report_unschedulable(&mut self, key: &str, pod: &Arc<Pod>, message: String) {
        let now = Instant::now();
        let repeated = self
            .reported
            .get(key)
            .is_some_and(|(m, at)| *m == message && now.duration_since(*at) < REPORT_REPEAT);
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.condition("PodScheduled"));
        let condition_current = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if repeated && condition_current {
            return;
        }
        self.reported.insert(key.to_owned(), (message.clone(), now));

        let client = self.client.clone();
        let events = self.events.clone();
        let reports = Arc::clone(&self.reports);
        let pod = Arc::clone(pod);
        tokio::spawn(async move {
            let Ok(_permit) = reports.acquire_owned().await else {
                return;
            };
            if !repeated {
                events
                    .record(pod.as_ref(), "Warning", "FailedScheduling", &message)
                    .await;
            }
            if condition_current {
                return;
            }
            let patch = unschedulable_patch(&pod, &message, Time::now());
            if let Err(error) = client
                .merge_patch_status::<Pod>(pod.namespace(), pod.name(), &patch)
                .await
            {
                tracing::debug!(namespace = pod.namespace(), name = pod.name(), %error,
                    "setting PodScheduled=False failed");
            }
        });
    }
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace(), pod.name())
}

/// Whether this scheduler should place the pod.
pub fn is_schedulable(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let ours = matches!(
        spec.scheduler_name.as_deref(),
        None | Some("") | Some(SCHEDULER_NAME)
    );
    ours && pod.node_name().is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && spec.scheduling_gates.is_empty()
        && !matches!(pod.phase(), "Succeeded" | "Failed")
}

/// Whether a node's change may let a pod fit that did not before.
fn may_help(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .map(|c| c.status.clone())
    };
    let allocatable = |n: &Node| n.status.as_ref().map(|s| s.allocatable.clone());
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

/// A merge patch of the pod's status conditions with PodScheduled=False.
/// Merge patches replace lists whole, so the other conditions are kept.
fn unschedulable_patch(pod: &Pod, message: &str, now: Time) -> serde_json::Value {
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| c.type_ != "PodScheduled")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        last_transition_time: Some(now),
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        ..Default::default()
    });
    json!({"status": {"conditions": conditions}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PodSpec;

    fn pod(scheduler: Option<&str>, node: Option<&str>) -> Pod {
        let mut pod = Pod::new("default", "p");
        pod.spec = Some(PodSpec {
            scheduler_name: scheduler.map(Into::into),
            node_name: node.map(Into::into),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn only_unbound_pods_for_the_default_scheduler_are_taken() {
        assert!(is_schedulable(&pod(None, None)));
        assert!(is_schedulable(&pod(Some("default-scheduler"), None)));
        assert!(!is_schedulable(&pod(Some("other"), None)));
        assert!(!is_schedulable(&pod(None, Some("n1"))));
        let mut deleting = pod(None, None);
        deleting.metadata.deletion_timestamp = Some(Time::now());
        assert!(!is_schedulable(&deleting));
    }

    #[test]
    fn the_unschedulable_condition_keeps_other_conditions() {
        let mut p = pod(None, None);
        p.status = Some(crate::api::PodStatus {
            conditions: vec![
                PodCondition {
                    type_: "Other".into(),
                    status: "True".into(),
                    ..Default::default()
                },
                PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let patch = unschedulable_patch(
            &p,
            "0/1 nodes are available: 1 Insufficient cpu.",
            Time::now(),
        );
        let conditions = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["type"], "Other");
        assert_eq!(conditions[1]["type"], "PodScheduled");
        assert_eq!(conditions[1]["status"], "False");
        assert_eq!(conditions[1]["reason"], "Unschedulable");
        assert_eq!(
            conditions[1]["message"],
            "0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    /// A transport for tests that never reach the network.
    struct Offline;

    impl client::Transport for Offline {
        fn send(
            &self,
            _request: http::Request<bytes::Bytes>,
        ) -> futures::future::BoxFuture<'static, client::Result<http::Response<axum::body::Body>>>
        {
            Box::pin(async { Err(client::Error::Transport("offline".into())) })
        }
    }

    #[tokio::test]
    async fn pods_are_queued_once_listed_and_dropped_once_bound() {
        let client = Client::new(Arc::new(Offline));
        let mut scheduler = Scheduler::new(client);
        scheduler.on_pod_event(WatcherEvent::Restarted(vec![pod(None, None)]));
        scheduler.on_node_event(WatcherEvent::Restarted(vec![]));
        assert!(scheduler.synced());
        assert!(scheduler.pending.contains_key("default/p"));
        scheduler.on_pod_event(WatcherEvent::Applied(pod(None, Some("n1"))));
        assert!(scheduler.pending.is_empty());
        assert!(scheduler.queue.is_empty());
    }
}
