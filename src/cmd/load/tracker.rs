//! What the load test measures about pods, from the API side: one watch of
//! the test namespace, as any client would see it.
//!
//! For every pod it keeps when the watch first showed it created, bound to
//! a node (scheduled), `Running` and `Ready`, as seconds since the tracker
//! started; and ten times a second it samples the counts, for the plots.
//! Times are those of the watch events' arrival, so a slow watch makes
//! every stage look later, not shorter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coxswain_core::api::Pod;
use coxswain_core::client::{Client, ListParams, WatcherEvent, watcher};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cmd::own_thread::run_on_own_thread;

/// How often counts are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One pod's history, in seconds since the tracker started.
#[derive(Clone, Debug)]
pub struct PodTimeline {
    /// The workload step during which the pod appeared (0: the first
    /// creation).
    pub step: usize,
    pub created: f64,
    pub scheduled: Option<f64>,
    pub running: Option<f64>,
    pub ready: Option<f64>,
    /// Its phase is Running now.
    pub running_now: bool,
    pub ready_now: bool,
    /// It has a deletionTimestamp.
    pub terminating: bool,
    /// The watch reported it deleted.
    pub gone: bool,
}

impl PodTimeline {
    /// A pod first seen at `created`, during workload step `step`.
    pub fn new(step: usize, created: f64) -> PodTimeline {
        PodTimeline {
            step,
            created,
            scheduled: None,
            running: None,
            ready: None,
            running_now: false,
            ready_now: false,
            terminating: false,
            gone: false,
        }
    }
}

/// The counts at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Seconds since the tracker started.
    pub t: f64,
    /// Pods that exist and are not being deleted.
    pub live: usize,
    /// Live pods that are Running.
    pub running: usize,
    /// Live pods that are Ready.
    pub ready: usize,
    /// Pods ever seen bound to a node.
    pub scheduled_total: usize,
    /// Pods ever seen Running.
    pub running_total: usize,
}

/// Everything the tracker saw.
#[derive(Default)]
pub struct TrackerState {
    pub pods: HashMap<String, PodTimeline>,
    pub samples: Vec<Sample>,
    /// Times the watch had to list again (fell behind the store's window).
    pub relists: usize,
    step: usize,
    scheduled_total: usize,
    running_total: usize,
}

impl TrackerState {
    /// The counts now.
    pub fn sample(&self, t: f64) -> Sample {
        let mut sample = Sample {
            t,
            scheduled_total: self.scheduled_total,
            running_total: self.running_total,
            ..Sample::default()
        };
        for pod in self.pods.values().filter(|p| !p.gone && !p.terminating) {
            sample.live += 1;
            sample.running += usize::from(pod.running_now);
            sample.ready += usize::from(pod.ready_now);
        }
        sample
    }

    /// Pods that exist (terminating or not).
    pub fn present(&self) -> usize {
        self.pods.values().filter(|p| !p.gone).count()
    }

    fn apply(&mut self, pod: &Pod, now: f64) {
        let uid = pod.metadata.uid().to_owned();
        let step = self.step;
        let timeline = self
            .pods
            .entry(uid)
            .or_insert_with(|| PodTimeline::new(step, now));
        if !pod.node_name().is_empty() && timeline.scheduled.is_none() {
            timeline.scheduled = Some(now);
            self.scheduled_total += 1;
        }
        timeline.running_now = pod.phase() == "Running";
        if timeline.running_now && timeline.running.is_none() {
            timeline.running = Some(now);
            self.running_total += 1;
        }
        timeline.ready_now = pod
            .status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .is_some_and(|c| c.status == "True");
        if timeline.ready_now && timeline.ready.is_none() {
            timeline.ready = Some(now);
        }
        timeline.terminating = pod.metadata.deletion_timestamp.is_some();
    }

    fn delete(&mut self, uid: &str) {
        if let Some(timeline) = self.pods.get_mut(uid) {
            timeline.gone = true;
            timeline.running_now = false;
            timeline.ready_now = false;
        }
    }
}

/// A running tracker.
pub struct Tracker {
    origin: Instant,
    state: Arc<Mutex<TrackerState>>,
    task: JoinHandle<()>,
}

impl Tracker {
    /// Starts watching pods of `namespace` and returns once the first list
    /// arrived.
    ///
    /// The watch runs on a thread of its own, apart from the cluster it
    /// measures, as an outside client would: on the cluster's busy runtime
    /// it would read events late, and stamp a pod's stages all at once
    /// when it caught up.
    pub async fn start(client: Client, namespace: &str) -> anyhow::Result<Tracker> {
        let origin = Instant::now();
        let state = Arc::new(Mutex::new(TrackerState::default()));
        let (listed_tx, listed_rx) = oneshot::channel();
        let shared = state.clone();
        let namespace = namespace.to_owned();
        let watching = run_on_own_thread("load-tracker", move || {
            track(client, namespace, origin, shared, listed_tx)
        });
        let task = tokio::spawn(async move {
            if let Err(error) = watching.await {
                eprintln!("load: the pod tracker stopped: {error:#}");
            }
        });
        let listed = tokio::time::timeout(Duration::from_secs(30), listed_rx).await;
        if !matches!(listed, Ok(Ok(()))) {
            task.abort();
            anyhow::bail!("the pod watch of the load test did not start");
        }
        Ok(Tracker {
            origin,
            state,
            task,
        })
    }

    /// Seconds since the tracker started.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// Pods that appear from now on belong to workload step `step`.
    pub fn set_step(&self, step: usize) {
        self.lock().step = step;
    }

    /// The counts now.
    pub fn sample(&self) -> Sample {
        let now = self.now();
        self.lock().sample(now)
    }

    /// Reads the state under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&TrackerState) -> T) -> T {
        f(&self.lock())
    }

    /// Stops watching and hands over what was seen.
    pub fn finish(self) -> TrackerState {
        self.task.abort();
        let now = self.now();
        let mut state = std::mem::take(&mut *self.lock());
        let last = state.sample(now);
        state.samples.push(last);
        state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().expect("tracker poisoned")
    }
}

/// Applies the pod watch's events to `shared`, stamped with the time since
/// `origin`, and samples the counts every [`SAMPLE_EVERY`]; says on
/// `listed` when the first list is in.
async fn track(
    client: Client,
    namespace: String,
    origin: Instant,
    shared: Arc<Mutex<TrackerState>>,
    listed: oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let mut events = watcher::<Pod>(client, &namespace, ListParams::default());
    let mut listed = Some(listed);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => Some(event),
                None => anyhow::bail!("the pod watch ended"),
            },
            _ = tick.tick(), if listed.is_none() => None,
        };
        let now = origin.elapsed().as_secs_f64();
        let mut state = shared.lock().expect("tracker poisoned");
        match event {
            None => {
                let sample = state.sample(now);
                state.samples.push(sample);
            }
            Some(WatcherEvent::Restarted(pods)) => {
                if !state.pods.is_empty() {
                    state.relists += 1;
                }
                let listed: std::collections::HashSet<String> =
                    pods.iter().map(|p| p.metadata.uid().to_owned()).collect();
                let vanished: Vec<String> = state
                    .pods
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                for uid in vanished {
                    state.delete(&uid);
                }
                for pod in &pods {
                    state.apply(pod, now);
                }
            }
            Some(WatcherEvent::Applied(pod)) => state.apply(&pod, now),
            Some(WatcherEvent::Deleted(pod)) => state.delete(pod.metadata.uid()),
        }
        drop(state);
        if let Some(listed) = listed.take() {
            let _ = listed.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coxswain_core::api::{PodCondition, PodSpec, PodStatus};

    fn pod(uid: &str, node: Option<&str>, phase: Option<&str>, ready: bool) -> Pod {
        let mut pod = Pod::new("load", uid);
        pod.metadata.uid = Some(uid.into());
        pod.spec = Some(PodSpec {
            node_name: node.map(Into::into),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: phase.map(Into::into),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        pod
    }

    #[test]
    fn each_stage_is_timed_when_first_seen() {
        let mut state = TrackerState::default();
        state.apply(&pod("a", None, Some("Pending"), false), 1.0);
        state.apply(&pod("a", Some("n1"), Some("Pending"), false), 2.0);
        state.apply(&pod("a", Some("n1"), Some("Running"), true), 3.0);
        state.apply(&pod("a", Some("n1"), Some("Running"), true), 4.0);
        let a = &state.pods["a"];
        assert_eq!(
            (a.created, a.scheduled, a.running, a.ready),
            (1.0, Some(2.0), Some(3.0), Some(3.0))
        );
        let sample = state.sample(5.0);
        assert_eq!((sample.live, sample.running, sample.ready), (1, 1, 1));
        assert_eq!((sample.scheduled_total, sample.running_total), (1, 1));
    }

    #[test]
    fn deleted_and_terminating_pods_are_not_live() {
        let mut state = TrackerState::default();
        state.apply(&pod("a", Some("n1"), Some("Running"), true), 1.0);
        let mut b = pod("b", Some("n1"), Some("Running"), true);
        state.apply(&b, 1.0);
        b.metadata.deletion_timestamp = Some(coxswain_core::api::Time::now());
        state.apply(&b, 2.0);
        state.delete("a");
        let sample = state.sample(3.0);
        assert_eq!((sample.live, sample.running), (0, 0));
        assert_eq!(state.present(), 1);
        assert_eq!(sample.running_total, 2);
    }
}
