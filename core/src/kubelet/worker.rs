//! Pod workers: one task per pod uid that makes the runtime match the pod.
//!
//! A worker syncs when its pod changes and every second: it keeps the pod
//! sandbox running (a new sandbox, and fresh containers, when it died),
//! runs the init containers one after another, each to completion, in every
//! new sandbox, then starts missing containers in spec order, restarts
//! exited ones as the
//! restart policy says with crash-loop back-off (the first restart is
//! immediate), keeps the latest exited instance of each container for
//! `lastState` and `--previous` logs, and reports the pod's status when it
//! changed. Told to stop, it stops the containers with the grace period,
//! removes them and, for an API pod being deleted, finishes the deletion.
//! A worker never gives up: runtime and API errors are logged and retried
//! on the next sync.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::manifests::is_static_pod;
use super::probe::{Probe, ProbeKind, ProbeState};
use super::runtime::{
    ContainerInfo, ContainerSpec, LABEL_CONTAINER_HASH, LOCAL_IMAGE_PREFIX, PodRef, PullPolicy,
    Runtime, RuntimeState, SANDBOX_NAME, SandboxSpec,
};
use super::spec::Downward;
use super::status::{self, Probed, StatusBoard, StatusInput, Waiting, instances};
use crate::api::{Container, DeleteOptions, Pod, PodStatus, Preconditions, Resource, Time};
use crate::client::{Client, EventRecorder, reference};

/// How often a worker syncs without being told to.
pub(crate) const RESYNC: Duration = Duration::from_secs(1);

/// How long a failed image pull shows as `ErrImagePull` before the wait
/// for the next attempt shows as `ImagePullBackOff` (at most half that
/// wait).
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(10);

/// Set by the pod manager on its own copy of a static pod: the uid of the
/// pod's live mirror pod in the API, where the worker reports the status. A
/// new mirror (deleted by someone, or lost with the apiserver's data) gets
/// the whole status again. Never written to the API.
pub const ANNOTATION_MIRROR_UID: &str = "coxswain.io/mirror-uid";

/// What every worker of one kubelet shares.
pub struct NodeContext {
    pub node: String,
    /// The node's address: `hostIP`, and `podIP` of host-network pods.
    pub host_ip: String,
    pub pause_image: String,
    /// Where emptyDir volumes live: `<root_dir>/pods/<uid>/volumes/<name>`.
    pub root_dir: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    pub client: Option<Client>,
    pub recorder: Option<EventRecorder>,
    /// Where workers publish the statuses they compute.
    pub statuses: StatusBoard,
}

/// What the kubelet wants of a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    /// Keep it running.
    Run(Pod),
    /// Stop its containers within `grace` and remove them; then, when
    /// `finish_api_delete`, delete the pod from the API for good.
    Stop {
        pod: Pod,
        grace: Duration,
        finish_api_delete: bool,
    },
}

impl Desired {
    pub fn pod(&self) -> &Pod {
        match self {
            Desired::Run(pod) | Desired::Stop { pod, .. } => pod,
        }
    }
}

/// The grace period of a pod being stopped: the deletion's, else the
/// spec's, else 30 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}

/// The state of one pod's worker.
pub struct PodWorker {
    ctx: Arc<NodeContext>,
    uid: String,
    desired: watch::Receiver<Desired>,
    /// Crash-loop back-off per container name.
    restarts: Backoff,
    /// Image pull back-off per container name.
    pulls: Backoff,
    /// When each container's last image pull failed.
    pull_failed_at: HashMap<String, chrono::DateTime<Utc>>,
    /// Why containers are held back, by container name.
    waiting: HashMap<String, Waiting>,
    /// Warning and back-off events already recorded, so each is recorded once
    /// per occurrence rather than every second.
    recorded: HashSet<String>,
    /// The sandbox whose IP was last read, and that IP.
    sandbox_ip: Option<(String, Option<String>)>,
    /// The attempt number of the last sandbox this worker created.
    sandbox_attempt: Option<u32>,
    /// Back-off of sandbox creation after failures.
    sandbox_backoff: Backoff,
    /// When the last sandbox creation failed; `None` after a success.
    sandbox_failed_at: Option<chrono::DateTime<Utc>>,
    /// Each container's probes' progress, by container name and probe.
    probes: HashMap<(String, ProbeKind), ProbeState>,
    /// The status last computed: the base of the next one.
    status: Option<PodStatus>,
    /// The status last written to the API.
    reported: Option<PodStatus>,
    /// For a static pod, the mirror pod `reported` was written to.
    reported_mirror: Option<String>,
    /// Whether a sync listed the pod's containers yet: what the first
    /// listing finds running was started before (by an earlier kubelet) and
    /// is adopted as it is.
    listed: bool,
    /// How many times this worker started, stopped or removed something in
    /// the runtime: a sync lists the pod's containers again only after it
    /// changed them, so a sync that changes nothing lists them once.
    runtime_writes: u64,
    /// Whether `status` was published on the node's status board.
    published: bool,
}

impl PodWorker {
    pub fn new(ctx: Arc<NodeContext>, uid: String, desired: watch::Receiver<Desired>) -> Self {
        let initial = desired.borrow().pod().status.clone();
        let from_api = !is_static_pod(desired.borrow().pod());
        PodWorker {
            ctx,
            uid,
            desired,
            restarts: Backoff::default(),
            pulls: Backoff::default(),
            pull_failed_at: HashMap::new(),
            waiting: HashMap::new(),
            recorded: HashSet::new(),
            sandbox_ip: None,
            sandbox_attempt: None,
            sandbox_backoff: Backoff::default(),
            sandbox_failed_at: None,
            probes: HashMap::new(),
            status: if from_api { initial.clone() } else { None },
            reported: if from_api { initial } else { None },
            listed: false,
            reported_mirror: None,
            runtime_writes: 0,
            published: false,
        }
    }

    /// Syncs until the pod is stopped for good, then reports its uid on
    /// `done`.
    pub async fn run(mut self, done: mpsc::UnboundedSender<String>) {
        loop {
            let desired = self.desired.borrow_and_update().clone();
            match desired {
                Desired::Run(pod) => self.sync(&pod).await,
                Desired::Stop {
                    pod,
                    grace,
                    finish_api_delete,
                } => {
                    let stopped = self.terminate(&pod, grace, finish_api_delete).await;
                    let still_stop = matches!(*self.desired.borrow(), Desired::Stop { .. });
                    if stopped && still_stop {
                        break;
                    }
                }
            }
            tokio::select! {
                changed = self.desired.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
        let _ = done.send(self.uid);
    }

    /// One pass of making the runtime match a pod that should run.
    pub async fn sync(&mut self, pod: &Pod) {
        let runtime = self.ctx.runtime.clone();
        let containers = match runtime.list_containers(Some(self.uid.clone())).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(uid = %self.uid, %error, "listing the pod's containers failed");
                return;
            }
        };
        if !self.listed {
            self.listed = true;
            let running = containers.iter().filter(|c| c.state.is_running()).count();
            if running > 0 {
                tracing::info!(namespace = pod.namespace(), name = pod.name(), uid = %self.uid,
                    running, "adopting the pod's running containers");
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();

        if self.status.as_ref().is_some_and(status::is_terminal) {
            // A finished pod keeps its containers for logs, but not its sandbox.
            for sandbox in containers
                .iter()
                .filter(|c| c.is_sandbox() && c.state.is_running())
            {
                self.runtime_writes += 1;
                let _ = runtime
                    .stop_container(sandbox.id.clone(), Duration::ZERO)
                    .await;
            }
            self.report(pod, &containers, false).await;
            return;
        }

        let writes = self.runtime_writes;
        let Some(sandbox_id) = self.ensure_sandbox(pod, &containers).await else {
            let containers = self.relist_if_changed(writes, containers).await;
            self.report(pod, &containers, false).await;
            return;
        };
        // The sandbox may be new: read the containers again.
        let containers = self.relist_if_changed(writes, containers).await;
        let writes = self.runtime_writes;

        let restart_policy = spec
            .restart_policy
            .as_deref()
            .unwrap_or("Always")
            .to_owned();
        self.run_probes(pod, &spec.containers, &containers, &sandbox_id)
            .await;
        let initialized = self
            .sync_init_containers(pod, &sandbox_id, &containers, &restart_policy)
            .await;
        if initialized {
            for container in &spec.containers {
                self.sync_container(pod, container, &sandbox_id, &containers, &restart_policy)
                    .await;
            }
        }

        // Containers no longer in the spec go.
        let names: HashSet<&str> = spec
            .init_containers
            .iter()
            .chain(&spec.containers)
            .map(|c| c.name.as_str())
            .collect();
        for stray in containers
            .iter()
            .filter(|c| !c.is_sandbox() && !names.contains(c.container_name.as_str()))
        {
            self.runtime_writes += 1;
            let _ = runtime
                .stop_container(stray.id.clone(), grace_period(pod))
                .await;
            let _ = runtime.remove_container(stray.id.clone()).await;
        }

        let containers = self.relist_if_changed(writes, containers).await;
        self.report(pod, &containers, true).await;
    }

    /// The pod's containers: `listed` when this worker changed nothing in
    /// the runtime since its write number `writes`, else a fresh listing
    /// (`listed` still when listing fails).
    async fn relist_if_changed(
        &self,
        writes: u64,
        listed: Vec<ContainerInfo>,
    ) -> Vec<ContainerInfo> {
        if self.runtime_writes == writes {
            return listed;
        }
        match self
            .ctx
            .runtime
            .list_containers(Some(self.uid.clone()))
            .await
        {
            Ok(containers) => containers,
            Err(error) => {
                tracing::debug!(uid = %self.uid, %error, "listing the pod's containers failed");
                listed
            }
        }
    }

    /// Returns the id of the pod's running sandbox, creating one when there
    /// is none; `None` when it cannot run now.
    async fn ensure_sandbox(&mut self, pod: &Pod, containers: &[ContainerInfo]) -> Option<String> {
        let runtime = self.ctx.runtime.clone();
        let sandboxes = instances(containers, SANDBOX_NAME);
        if let Some(running) = sandboxes.iter().find(|s| s.state.is_running()) {
            return Some(running.id.clone());
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let ran_before = containers.iter().any(|c| !c.is_sandbox());
        if !sandboxes.is_empty() && ran_before && spec.restart_policy.as_deref() == Some("Never") {
            // Upstream does not give a Never pod a second sandbox.
            return None;
        }

        // The sandbox died or was removed: its containers lost their
        // namespaces, or run on in the old ones where no one reaches them.
        let orphans = containers
            .iter()
            .any(|c| !c.is_sandbox() && c.state.is_running());
        if !sandboxes.is_empty() || orphans {
            self.event(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
            .await;
            self.runtime_writes += 1;
            for c in containers
                .iter()
                .filter(|c| !c.is_sandbox() && c.state.is_running())
            {
                self.event(
                    pod,
                    "Normal",
                    "Killing",
                    &format!("Stopping container {}", c.container_name),
                )
                .await;
                let _ = runtime
                    .stop_container(c.id.clone(), grace_period(pod))
                    .await;
            }
            for old in &sandboxes {
                let _ = runtime.remove_container(old.id.clone()).await;
            }
        }
        let attempt = sandboxes
            .first()
            .map(|s| s.restart_count + 1)
            .or(self.sandbox_attempt.map(|a| a + 1))
            .unwrap_or(0);

        let now = Utc::now();
        if let Some(failed_at) = self.sandbox_failed_at
            && let Some(remaining) = self.sandbox_backoff.remaining(SANDBOX_NAME, failed_at, now)
        {
            tracing::debug!(uid = %self.uid, remaining_ms = remaining.as_millis() as u64,
                "pod sandbox creation in back-off");
            return None;
        }
        if self.sandbox_failed_at.is_some() {
            self.sandbox_backoff.next(SANDBOX_NAME, now);
        }

        let image = self.ctx.pause_image.clone();
        let prepared = match runtime.image_present(image.clone()).await {
            Ok(true) => Ok(()),
            Ok(false) => runtime.pull_image(image.clone()).await,
            Err(e) => Err(e),
        };
        self.runtime_writes += 1;
        let created = match prepared {
            Ok(()) => runtime.run_sandbox(self.sandbox_spec(pod, attempt)).await,
            Err(e) => Err(e),
        };
        match created {
            Ok(id) => {
                self.recorded.retain(|key| !key.starts_with("sandbox/"));
                self.sandbox_ip = None;
                self.sandbox_attempt = Some(attempt);
                self.sandbox_failed_at = None;
                self.sandbox_backoff.reset(SANDBOX_NAME);
                Some(id)
            }
            Err(error) => {
                let message = format!("Failed to create pod sandbox: {error}");
                tracing::warn!(uid = %self.uid, %error, "creating the pod sandbox failed");
                self.sandbox_failed_at = Some(Utc::now());
                let key = format!("sandbox/{}", now.timestamp_millis());
                self.warn_once(pod, &key, "FailedCreatePodSandBox", &message)
                    .await;
                None
            }
        }
    }

    fn sandbox_spec(&self, pod: &Pod, attempt: u32) -> SandboxSpec {
        let spec = pod.spec.clone().unwrap_or_default();
        SandboxSpec {
            pod: pod_ref(pod),
            image: self.ctx.pause_image.clone(),
            host_network: spec.host_network.unwrap_or(false),
            hostname: super::spec::hostname(pod),
            attempt,
        }
    }

    /// Runs the pod's init containers in order, each to successful
    /// completion, in sandbox `sandbox_id`; returns whether all completed
    /// there, so the app containers may start.
    ///
    /// Everything is read from the runtime, so a restarted kubelet does not
    /// run them again: an init container counts as completed when its
    /// latest instance, created in the current sandbox, exited with 0; the
    /// pod counts as initialized when an app container was created in the
    /// current sandbox. A new sandbox runs them all again. A failed one is
    /// restarted with crash-loop back-off unless the restart policy is
    /// `Never` (then the pod fails). Restartable init containers (sidecars,
    /// `restartPolicy: Always` on the container) are run as ordinary ones:
    /// this kubelet does not support them.
    async fn sync_init_containers(
        &mut self,
        pod: &Pod,
        sandbox_id: &str,
        containers: &[ContainerInfo],
        restart_policy: &str,
    ) -> bool {
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.init_containers.is_empty() {
            return true;
        }
        let since = containers
            .iter()
            .find(|c| c.id == sandbox_id)
            .map(|sandbox| sandbox.created_at);
        let in_sandbox = |c: &ContainerInfo| since.is_none_or(|since| c.created_at >= since);
        let app_created = spec
            .containers
            .iter()
            .flat_map(|c| instances(containers, &c.name))
            .any(in_sandbox);
        if app_created {
            return true;
        }

        // A completed init container is never restarted: under `Always`
        // too, only a failure restarts it.
        let policy = if restart_policy == "Never" {
            "Never"
        } else {
            "OnFailure"
        };
        for init in &spec.init_containers {
            let found = instances(containers, &init.name);
            match found.first() {
                Some(current) if in_sandbox(current) => {
                    if let RuntimeState::Exited { exit_code: 0, .. } = current.state {
                        self.waiting.remove(&init.name);
                        continue;
                    }
                    self.sync_container(pod, init, sandbox_id, containers, policy)
                        .await;
                }
                Some(earlier) if !earlier.state.is_running() => {
                    // It ran in an earlier sandbox: it runs again in this one.
                    self.runtime_writes += 1;
                    for old in found.iter().skip(1) {
                        let _ = self.ctx.runtime.remove_container(old.id.clone()).await;
                    }
                    let restart_count = earlier.restart_count + 1;
                    self.start_container(pod, init, sandbox_id, restart_count)
                        .await;
                }
                _ => {
                    self.sync_container(pod, init, sandbox_id, containers, policy)
                        .await
                }
            }
            return false;
        }
        true
    }

    async fn sync_container(
        &mut self,
        pod: &Pod,
        container: &Container,
        sandbox_id: &str,
        containers: &[ContainerInfo],
        restart_policy: &str,
    ) {
        let runtime = self.ctx.runtime.clone();
        let name = container.name.as_str();
        let found = instances(containers, name);

        // Keep the current instance and the one before it; older ones go.
        for old in found.iter().skip(2).filter(|c| !c.state.is_running()) {
            self.runtime_writes += 1;
            let _ = runtime.remove_container(old.id.clone()).await;
        }

        let now = Utc::now();
        let restart_count = match found.first() {
            None => 0,
            Some(current) => match &current.state {
                RuntimeState::Running { .. } => {
                    self.waiting.remove(name);
                    let Some(message) = self.kill_reason(container, current, restart_policy) else {
                        return;
                    };
                    self.event(pod, "Normal", "Killing", &message).await;
                    tracing::info!(uid = %self.uid, container = name, container_id = %current.id,
                        reason = %message, "killing a container");
                    self.runtime_writes += 1;
                    if let Err(error) = runtime
                        .stop_container(current.id.clone(), grace_period(pod))
                        .await
                    {
                        tracing::warn!(uid = %self.uid, %error, "stopping a container failed");
                        return;
                    }
                    if !message.ends_with("will be restarted") {
                        return;
                    }
                    current.restart_count + 1
                }
                RuntimeState::Exited {
                    exit_code,
                    finished_at,
                    ..
                } => {
                    let restart = match restart_policy {
                        "Never" => false,
                        "OnFailure" => *exit_code != 0,
                        _ => true,
                    };
                    if !restart {
                        self.waiting.remove(name);
                        return;
                    }
                    let failed_at = finished_at.unwrap_or(now);
                    if let Some(remaining) = self.restarts.remaining(name, failed_at, now) {
                        let delay = self.restarts.delay(name).as_secs();
                        let message = format!(
                            "back-off {delay}s restarting failed container={name} pod={}_{}({})",
                            pod.name(),
                            pod.namespace(),
                            self.uid
                        );
                        tracing::debug!(uid = %self.uid, container = name,
                            remaining_ms = remaining.as_millis() as u64, "in crash-loop back-off");
                        self.waiting.insert(
                            name.to_owned(),
                            Waiting {
                                reason: "CrashLoopBackOff".into(),
                                message,
                            },
                        );
                        let event = format!(
                            "Back-off restarting failed container {name} in pod {}_{}({})",
                            pod.name(),
                            pod.namespace(),
                            self.uid
                        );
                        let key = format!("backoff/{}", current.id);
                        self.warn_once(pod, &key, "BackOff", &event).await;
                        return;
                    }
                    self.restarts.next(name, now);
                    current.restart_count + 1
                }
                RuntimeState::Created | RuntimeState::Unknown => {
                    // Created but never started: start over with a fresh one.
                    self.runtime_writes += 1;
                    let _ = runtime.remove_container(current.id.clone()).await;
                    current.restart_count
                }
            },
        };
        self.start_container(pod, container, sandbox_id, restart_count)
            .await;
    }

    /// Why the running instance `current` of `container` must be killed:
    /// the event message, ending in "will be restarted" when a new instance
    /// follows at once; `None` to keep it.
    fn kill_reason(
        &mut self,
        container: &Container,
        current: &ContainerInfo,
        restart_policy: &str,
    ) -> Option<String> {
        let name = &container.name;
        let wanted = super::spec::container_hash(container);
        if current.spec_hash().is_some_and(|hash| hash != wanted) {
            // A changed spec restarts whatever the restart policy says.
            return Some(format!(
                "Container {name} definition changed, will be restarted"
            ));
        }
        let failed = |kind| {
            self.probes
                .get(&(name.clone(), kind))
                .is_some_and(|p| p.container_id == current.id && p.passed == Some(false))
        };
        let probe = if failed(ProbeKind::Startup) {
            "startup"
        } else if failed(ProbeKind::Liveness) {
            "liveness"
        } else {
            return None;
        };
        let restarts = if restart_policy == "Never" {
            ""
        } else {
            ", will be restarted"
        };
        Some(format!("Container {name} failed {probe} probe{restarts}"))
    }

    /// Runs the probes that are due on the running containers; records an
    /// Unhealthy event per failed run.
    async fn run_probes(
        &mut self,
        pod: &Pod,
        specs: &[Container],
        containers: &[ContainerInfo],
        sandbox_id: &str,
    ) {
        let runtime = self.ctx.runtime.clone();
        let now = Utc::now();
        let pod_ip = self.pod_ip(pod, sandbox_id).await;
        for container in specs {
            let Some(current) = instances(containers, &container.name).first().copied() else {
                continue;
            };
            let RuntimeState::Running { started_at } = current.state else {
                continue;
            };
            let started_at = started_at.unwrap_or(current.created_at);
            let started = Probe::of(container, ProbeKind::Startup).is_none()
                || self.passed(&container.name, ProbeKind::Startup, &current.id) == Some(true);
            for kind in [
                ProbeKind::Startup,
                ProbeKind::Liveness,
                ProbeKind::Readiness,
            ] {
                let Some(probe) = Probe::of(container, kind) else {
                    continue;
                };
                if (kind == ProbeKind::Startup) == started {
                    continue;
                }
                let key = (container.name.clone(), kind);
                let state = self
                    .probes
                    .entry(key.clone())
                    .or_insert_with(|| ProbeState::new(&current.id));
                if state.container_id != current.id {
                    *state = ProbeState::new(&current.id);
                }
                if !state.due(&probe, started_at, now) {
                    continue;
                }
                let result = super::probe::run(
                    &probe.action,
                    probe.timeout,
                    runtime.as_ref(),
                    &current.id,
                    pod_ip.as_deref(),
                )
                .await;
                if let Some(state) = self.probes.get_mut(&key) {
                    state.record(&probe, result.is_ok(), now);
                }
                if let Err(output) = result {
                    tracing::debug!(uid = %self.uid, container = %container.name,
                        probe = kind.label(), output, "probe failed");
                    let message = format!("{} probe failed: {output}", kind.label());
                    self.event(pod, "Warning", "Unhealthy", &message).await;
                }
            }
        }
    }

    /// The verdict of a probe on container instance `id`.
    fn passed(&self, name: &str, kind: ProbeKind, id: &str) -> Option<bool> {
        self.probes
            .get(&(name.to_owned(), kind))
            .filter(|p| p.container_id == id)
            .and_then(|p| p.passed)
    }

    /// What the probes say of each running container with probes.
    fn probed(&self, pod: &Pod, containers: &[ContainerInfo]) -> HashMap<String, Probed> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut out = HashMap::new();
        for container in &spec.containers {
            let Some(current) = instances(containers, &container.name).first().copied() else {
                continue;
            };
            let verdict = |kind| match Probe::of(container, kind) {
                None => true,
                Some(_) => self.passed(&container.name, kind, &current.id) == Some(true),
            };
            let started = verdict(ProbeKind::Startup);
            let ready = started && verdict(ProbeKind::Readiness);
            out.insert(container.name.clone(), Probed { started, ready });
        }
        out
    }

    /// Pulls the image as the policy says, then creates and starts one
    /// instance of `container`.
    async fn start_container(
        &mut self,
        pod: &Pod,
        container: &Container,
        sandbox_id: &str,
        restart_count: u32,
    ) {
        let runtime = self.ctx.runtime.clone();
        let name = container.name.clone();
        let image = container.image.clone().unwrap_or_default();
        let now = Utc::now();

        if let Some(&failed_at) = self.pull_failed_at.get(&name)
            && self.pulls.remaining(&name, failed_at, now).is_some()
        {
            // The failed attempt shows as ErrImagePull for a while (as long
            // as upstream's pod worker waits before its next sync), then as
            // ImagePullBackOff until the next attempt.
            let shown = ERR_IMAGE_PULL_SHOWN.min(self.pulls.delay(&name) / 2);
            let since = (now - failed_at).to_std().unwrap_or_default();
            let pulling_failed = self
                .waiting
                .get(&name)
                .is_some_and(|w| w.reason == "ErrImagePull");
            if since < shown && pulling_failed {
                return;
            }
            let message = format!("Back-off pulling image {image:?}");
            self.waiting.insert(
                name.clone(),
                Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: message.clone(),
                },
            );
            let key = format!("pullbackoff/{name}/{}", failed_at.timestamp());
            self.record_once(pod, &key, "Normal", "BackOff", &message)
                .await;
            return;
        }

        let policy = PullPolicy::for_container(container.image_pull_policy.as_deref(), &image);
        let present = match runtime.image_present(image.clone()).await {
            Ok(present) => present,
            Err(error) => {
                tracing::warn!(uid = %self.uid, %error, image, "inspecting an image failed");
                return;
            }
        };
        let pull = match policy {
            _ if present && image.starts_with(LOCAL_IMAGE_PREFIX) => false,
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Never => {
                if !present {
                    let message = format!(
                        "Container image {image:?} is not present with pull policy of Never"
                    );
                    self.waiting.insert(
                        name.clone(),
                        Waiting {
                            reason: "ErrImageNeverPull".into(),
                            message: message.clone(),
                        },
                    );
                    let key = format!("neverpull/{name}");
                    self.warn_once(pod, &key, "ErrImageNeverPull", &message)
                        .await;
                    return;
                }
                false
            }
        };
        if pull {
            self.event(
                pod,
                "Normal",
                "Pulling",
                &format!("Pulling image {image:?}"),
            )
            .await;
            if let Err(error) = runtime.pull_image(image.clone()).await {
                tracing::warn!(uid = %self.uid, container = %name, %error,
                    "pulling an image failed");
                self.pull_failed_at.insert(name.clone(), now);
                self.pulls.next(&name, now);
                let message = error.to_string();
                self.waiting.insert(
                    name.clone(),
                    Waiting {
                        reason: "ErrImagePull".into(),
                        message: message.clone(),
                    },
                );
                self.event(
                    pod,
                    "Warning",
                    "Failed",
                    &format!("Failed to pull image {image:?}: {message}"),
                )
                .await;
                return;
            }
            self.pull_failed_at.remove(&name);
            self.pulls.reset(&name);
            self.event(
                pod,
                "Normal",
                "Pulled",
                &format!("Successfully pulled image {image:?}"),
            )
            .await;
        } else {
            let message = format!("Container image {image:?} already present on machine");
            self.event(pod, "Normal", "Pulled", &message).await;
        }

        let mut downward = Downward::for_host(&self.ctx.host_ip);
        downward.pod_ips = self.pod_ip(pod, sandbox_id).await.into_iter().collect();
        let spec = container_spec(
            pod,
            container,
            sandbox_id,
            restart_count,
            &self.ctx.root_dir,
            &downward,
        );
        for dir in empty_dirs(pod, &self.ctx.root_dir) {
            if let Err(error) = std::fs::create_dir_all(&dir) {
                tracing::warn!(uid = %self.uid, path = %dir.display(), %error,
                    "creating an emptyDir volume failed");
            }
        }
        if let Err(message) = prepare_host_paths(pod) {
            tracing::warn!(uid = %self.uid, container = %name, message,
                "a hostPath volume is not usable");
            self.waiting.insert(
                name.clone(),
                Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: message.clone(),
                },
            );
            let key = format!("hostpath/{name}/{message}");
            self.warn_once(pod, &key, "Failed", &format!("Error: {message}"))
                .await;
            return;
        }
        self.runtime_writes += 1;
        match runtime.run_container(spec).await {
            Ok(id) => {
                tracing::debug!(uid = %self.uid, container = %name, container_id = %id,
                    "container started");
                self.waiting.remove(&name);
                self.event(
                    pod,
                    "Normal",
                    "Created",
                    &format!("Created container {name}"),
                )
                .await;
                self.event(
                    pod,
                    "Normal",
                    "Started",
                    &format!("Started container {name}"),
                )
                .await;
            }
            Err(error) => {
                tracing::warn!(uid = %self.uid, container = %name, %error,
                    "starting a container failed");
                let message = error.to_string();
                self.waiting.insert(
                    name.clone(),
                    Waiting {
                        reason: "CreateContainerError".into(),
                        message: message.clone(),
                    },
                );
                let key = format!("create/{name}/{message}");
                self.warn_once(pod, &key, "Failed", &format!("Error: {message}"))
                    .await;
            }
        }
    }

    /// Stops and removes the pod's containers; then finishes an API
    /// deletion. Returns whether all of it is done.
    pub async fn terminate(&mut self, pod: &Pod, grace: Duration, finish_api_delete: bool) -> bool {
        let runtime = self.ctx.runtime.clone();
        let containers = match runtime.list_containers(Some(self.uid.clone())).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(uid = %self.uid, %error, "listing the pod's containers failed");
                return false;
            }
        };

        let mut stops = Vec::new();
        for c in containers
            .iter()
            .filter(|c| !c.is_sandbox() && c.state.is_running())
        {
            self.event(
                pod,
                "Normal",
                "Killing",
                &format!("Stopping container {}", c.container_name),
            )
            .await;
            stops.push(runtime.stop_container(c.id.clone(), grace));
        }
        let mut ok = true;
        for result in futures::future::join_all(stops).await {
            if let Err(error) = result {
                tracing::warn!(uid = %self.uid, %error, "stopping a container failed");
                ok = false;
            }
        }
        for sandbox in containers
            .iter()
            .filter(|c| c.is_sandbox() && c.state.is_running())
        {
            let _ = runtime
                .stop_container(sandbox.id.clone(), Duration::ZERO)
                .await;
        }
        for c in &containers {
            if let Err(error) = runtime.remove_container(c.id.clone()).await {
                tracing::warn!(uid = %self.uid, container_id = %c.id, %error,
                    "removing a container failed");
                ok = false;
            }
        }
        if !ok {
            return false;
        }
        let pod_dir = self.ctx.root_dir.join("pods").join(&self.uid);
        if pod_dir.exists() {
            let _ = std::fs::remove_dir_all(&pod_dir);
        }

        if finish_api_delete && let Some(client) = &self.ctx.client {
            let options = DeleteOptions {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match client
                .delete::<Pod>(pod.namespace(), pod.name(), &options)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(error) => {
                    tracing::warn!(namespace = pod.namespace(), name = pod.name(), %error,
                        "finishing the pod's deletion failed");
                    return false;
                }
            }
        }
        self.ctx.statuses.remove(pod.namespace(), pod.name());
        tracing::info!(namespace = pod.namespace(), name = pod.name(), uid = %self.uid,
            "pod stopped");
        true
    }

    /// Computes the status and writes it to the API when it changed.
    async fn report(&mut self, pod: &Pod, containers: &[ContainerInfo], sandbox_ok: bool) {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let sandbox = instances(containers, SANDBOX_NAME)
            .into_iter()
            .find(|s| s.state.is_running())
            .map(|s| s.id.clone());
        let mut pod_ip = None;
        if let Some(id) = &sandbox
            && !host_network
        {
            pod_ip = self.pod_ip(pod, id).await;
        }
        let probed = self.probed(pod, containers);
        let computed = status::compute(&StatusInput {
            pod,
            containers,
            waiting: &self.waiting,
            probed: &probed,
            pod_ip,
            sandbox_ready: sandbox_ok && sandbox.is_some(),
            host_ip: self.ctx.host_ip.clone(),
            previous: self.status.as_ref(),
            now: Time::now(),
        });
        // Most syncs change nothing: then there is nothing to copy.
        if !self.published || self.status.as_ref() != Some(&computed) {
            self.ctx
                .statuses
                .set(pod.namespace(), pod.name(), computed.clone());
            self.published = true;
            self.status = Some(computed);
        }
        let Some(computed) = &self.status else {
            return;
        };

        let Some(client) = &self.ctx.client else {
            return;
        };
        let mut reported = self.reported.as_ref();
        let mirror = pod.metadata.annotations.get(ANNOTATION_MIRROR_UID).cloned();
        if is_static_pod(pod) {
            if mirror.is_none() {
                // No mirror pod yet: nothing to write the status to.
                return;
            }
            if self.reported_mirror != mirror {
                reported = None;
            }
        }
        if reported == Some(computed) {
            return;
        }
        let patch = status_patch(reported, computed, pod, &self.uid);
        let written = computed.clone();
        match client
            .merge_patch_status::<Pod>(pod.namespace(), pod.name(), &patch)
            .await
        {
            Ok(_) => {
                self.reported = Some(written);
                self.reported_mirror = mirror;
            }
            // A static pod's mirror may not exist yet; a deleted pod is gone.
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(error) => tracing::warn!(namespace = pod.namespace(), name = pod.name(), %error,
                "writing the pod status failed"),
        }
    }

    /// The pod's IP in sandbox `sandbox_id` (the node's with host network),
    /// read once per sandbox.
    async fn pod_ip(&mut self, pod: &Pod, sandbox_id: &str) -> Option<String> {
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network);
        if host_network.unwrap_or(false) {
            return Some(self.ctx.host_ip.clone());
        }
        match &self.sandbox_ip {
            Some((known, ip)) if known == sandbox_id => ip.clone(),
            _ => {
                let id = sandbox_id.to_owned();
                let ip = self.ctx.runtime.sandbox_ip(id.clone()).await.ok().flatten();
                self.sandbox_ip = Some((id, ip.clone()));
                ip
            }
        }
    }

    /// The status last computed.
    pub fn status(&self) -> Option<&PodStatus> {
        self.status.as_ref()
    }

    async fn event(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        if let Some(recorder) = &self.ctx.recorder {
            // The reference, not a copy of the whole pod, goes with the task.
            let (recorder, involved) = (recorder.clone(), reference(pod));
            let (kind, reason, message) = (kind.to_owned(), reason.to_owned(), message.to_owned());
            tokio::spawn(async move {
                recorder
                    .record_ref(involved, &kind, &reason, &message)
                    .await
            });
        }
    }

    async fn record_once(&mut self, pod: &Pod, key: &str, kind: &str, reason: &str, msg: &str) {
        if self.recorded.insert(key.to_owned()) {
            self.event(pod, kind, reason, msg).await;
        }
    }

    async fn warn_once(&mut self, pod: &Pod, key: &str, reason: &str, message: &str) {
        self.record_once(pod, key, "Warning", reason, message).await;
    }
}

/// The merge patch that turns the reported status into `status`: fields
/// that disappeared are set to null; for API pods the uid is a precondition
/// (a pod recreated under the same name is not ours).
fn status_patch(reported: Option<&PodStatus>, status: &PodStatus, pod: &Pod, uid: &str) -> Value {
    let mut new = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let (Some(old), Some(fields)) = (reported, new.as_object_mut())
        && let Ok(Value::Object(old)) = serde_json::to_value(old)
    {
        for key in old.keys() {
            if !fields.contains_key(key) {
                fields.insert(key.clone(), Value::Null);
            }
        }
    }
    if is_static_pod(pod) {
        json!({ "status": new })
    } else {
        json!({ "metadata": { "uid": uid }, "status": new })
    }
}

/// The identity of a pod in its containers' labels.
pub fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        uid: pod.metadata.uid().to_owned(),
        namespace: pod.namespace().to_owned(),
        name: pod.name().to_owned(),
    }
}

/// The emptyDir directories of a pod.
fn empty_dirs(pod: &Pod, root_dir: &std::path::Path) -> Vec<PathBuf> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.volumes
        .iter()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| empty_dir_path(root_dir, pod.metadata.uid(), &v.name))
        .collect()
}

/// Makes the pod's hostPath volumes match their `type`: `DirectoryOrCreate`
/// and `FileOrCreate` create what is missing (a directory with its parents,
/// an empty file); `Directory`, `File`, `Socket`, `CharDevice` and
/// `BlockDevice` must already be there as such; no type checks nothing.
/// The error is the message a user sees.
pub(crate) fn prepare_host_paths(pod: &Pod) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;

    let Some(spec) = &pod.spec else {
        return Ok(());
    };
    for volume in &spec.volumes {
        let Some(host) = &volume.host_path else {
            continue;
        };
        let path = std::path::Path::new(&host.path);
        let kind = host.type_.as_deref().unwrap_or("");
        let created = match kind {
            "DirectoryOrCreate" => std::fs::create_dir_all(path),
            "FileOrCreate" if !path.exists() => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(path).map(drop)),
            _ => Ok(()),
        };
        if let Err(error) = created {
            return Err(format!("creating hostPath {}: {error}", host.path));
        }
        let file_type = std::fs::metadata(path).map(|m| m.file_type());
        let fits = match kind {
            "" => true,
            "DirectoryOrCreate" | "Directory" => file_type.is_ok_and(|t| t.is_dir()),
            "FileOrCreate" | "File" => file_type.is_ok_and(|t| t.is_file()),
            "Socket" => file_type.is_ok_and(|t| t.is_socket()),
            "CharDevice" => file_type.is_ok_and(|t| t.is_char_device()),
            "BlockDevice" => file_type.is_ok_and(|t| t.is_block_device()),
            other => return Err(format!("hostPath type {other:?} is not supported")),
        };
        if !fits {
            return Err(format!(
                "hostPath type check failed: {} is not a {kind}",
                host.path
            ));
        }
    }
    Ok(())
}

fn empty_dir_path(root_dir: &std::path::Path, uid: &str, volume: &str) -> PathBuf {
    root_dir.join("pods").join(uid).join("volumes").join(volume)
}

/// How one container of the pod is created.
pub fn container_spec(
    pod: &Pod,
    container: &Container,
    sandbox_id: &str,
    restart_count: u32,
    root_dir: &std::path::Path,
    downward: &Downward,
) -> ContainerSpec {
    let spec = pod.spec.clone().unwrap_or_default();
    let resolved = super::spec::resolve(pod, container, downward);
    let limits = container
        .resources
        .as_ref()
        .map(|r| r.limits.clone())
        .unwrap_or_default();

    let mut binds = Vec::new();
    for mount in &container.volume_mounts {
        let Some(volume) = spec.volumes.iter().find(|v| v.name == mount.name) else {
            tracing::warn!(uid = pod.metadata.uid(), volume = %mount.name,
                "volume mount names no volume, skipping");
            continue;
        };
        let source = if let Some(host) = &volume.host_path {
            host.path.clone()
        } else if volume.empty_dir.is_some() {
            empty_dir_path(root_dir, pod.metadata.uid(), &volume.name)
                .display()
                .to_string()
        } else {
            tracing::warn!(uid = pod.metadata.uid(), volume = %volume.name,
                "only hostPath and emptyDir volumes are supported, skipping");
            continue;
        };
        let read_only = if mount.read_only.unwrap_or(false) {
            ":ro"
        } else {
            ""
        };
        binds.push(format!("{source}:{}{read_only}", mount.mount_path));
    }

    ContainerSpec {
        pod: pod_ref(pod),
        sandbox_id: sandbox_id.to_owned(),
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        entrypoint: (!resolved.command.is_empty()).then_some(resolved.command),
        cmd: (!resolved.args.is_empty()).then_some(resolved.args),
        env: resolved.env,
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        memory_limit: limits.get("memory").and_then(|q| q.to_bytes().ok()),
        nano_cpus: limits
            .get("cpu")
            .and_then(|q| q.to_milli().ok())
            .map(|m| m * 1_000_000),
        binds,
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
        restart_count,
        labels: [(
            LABEL_CONTAINER_HASH.to_owned(),
            super::spec::container_hash(container),
        )]
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{
        EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, PodSpec, ResourceRequirements, Volume,
        VolumeMount,
    };
    use crate::kubelet::fake::{Call, FakeRuntime};
    use serde_json::json;

    fn pod(restart_policy: &str, containers: &[&str]) -> Pod {
        let mut pod = Pod::new("default", "web");
        pod.metadata.uid = Some("u1".into());
        pod.spec = Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            node_name: Some("n1".into()),
            containers: containers
                .iter()
                .map(|n| Container {
                    name: (*n).into(),
                    image: Some("coxswain/web:0.1".into()),
                    image_pull_policy: Some("IfNotPresent".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        pod
    }

    fn worker(fake: &Arc<FakeRuntime>, pod: &Pod) -> PodWorker {
        let ctx = Arc::new(NodeContext {
            node: "n1".into(),
            host_ip: "10.0.0.1".into(),
            pause_image: "coxswain/pause:0.1".into(),
            root_dir: std::env::temp_dir().join("coxswain-worker-tests"),
            runtime: fake.clone(),
            client: None,
            recorder: None,
            statuses: StatusBoard::default(),
        });
        let (_tx, rx) = watch::channel(Desired::Run(pod.clone()));
        PodWorker::new(ctx, pod.metadata.uid().to_owned(), rx)
    }

    fn waiting_reason(worker: &PodWorker, index: usize) -> Option<String> {
        let status = worker.status().unwrap();
        status.container_statuses[index]
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    }

    #[tokio::test]
    async fn a_new_pod_gets_a_sandbox_then_its_containers_in_order() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["a", "b"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;

        let runs: Vec<String> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::RunSandbox(s) => Some(format!("sandbox:{}", s.attempt)),
                Call::RunContainer(s) => Some(format!("{}:{}", s.name, s.restart_count)),
                _ => None,
            })
            .collect();
        assert_eq!(runs, ["sandbox:0", "a:0", "b:0"]);
        let status = w.status().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("172.17.0.2"));

        // A second sync adopts what runs and starts nothing.
        fake.clear_calls();
        w.sync(&pod).await;
        assert!(
            !fake
                .calls()
                .iter()
                .any(|c| matches!(c, Call::RunContainer(_) | Call::RunSandbox(_)))
        );
    }

    fn with_init(restart_policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        let mut p = pod(restart_policy, apps);
        let spec = p.spec.as_mut().unwrap();
        spec.init_containers = pod(restart_policy, inits).spec.unwrap().containers;
        p
    }

    /// The containers the worker created, `name:restart_count`, in order.
    fn started(fake: &FakeRuntime) -> Vec<String> {
        fake.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::RunContainer(s) => Some(format!("{}:{}", s.name, s.restart_count)),
                _ => None,
            })
            .collect()
    }

    fn state_of(status: &crate::api::ContainerStatus) -> crate::api::ContainerState {
        status.state.clone().unwrap()
    }

    #[tokio::test]
    async fn init_containers_run_one_after_another_before_the_app_containers() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = with_init("Always", &["i1", "i2"], &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["i1:0"], "i2 waits for i1 to complete");
        let status = w.status().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let initialized = status.condition("Initialized").unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.reason.as_deref(),
            Some("ContainersNotInitialized")
        );
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
        let init = &status.init_container_statuses;
        assert_eq!(init.len(), 2);
        assert!(state_of(&init[0]).running.is_some());
        assert_eq!((init[0].started, init[0].ready), (Some(true), false));
        let i2 = state_of(&init[1]).waiting.unwrap();
        assert_eq!(i2.reason.as_deref(), Some("PodInitializing"));
        let web = state_of(&status.container_statuses[0]).waiting.unwrap();
        assert_eq!(web.reason.as_deref(), Some("PodInitializing"));

        fake.exit("i1", 0);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["i1:0", "i2:0"]);
        fake.exit("i2", 0);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["i1:0", "i2:0", "web:0"]);

        let status = w.status().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.condition("Initialized").unwrap().status, "True");
        for init in &status.init_container_statuses {
            let done = state_of(init).terminated.unwrap();
            assert_eq!(
                (done.exit_code, done.reason.as_deref()),
                (0, Some("Completed"))
            );
            assert_eq!((init.started, init.ready), (Some(false), true));
        }
        // Completed init containers are kept (for logs and for a restarted
        // kubelet) and never run again.
        fake.clear_calls();
        w.sync(&pod).await;
        assert!(started(&fake).is_empty());
        assert_eq!(fake.containers_named("i1").len(), 1);
    }

    #[tokio::test]
    async fn a_failed_init_container_restarts_with_crash_loop_back_off() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = with_init("Always", &["init"], &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("init", 1);
        w.sync(&pod).await;
        assert_eq!(
            started(&fake),
            ["init:0", "init:1"],
            "the first restart is at once"
        );

        fake.exit("init", 1);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:0", "init:1"]);
        let status = w.status().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let init = &status.init_container_statuses[0];
        assert_eq!(init.restart_count, 1);
        let waiting = state_of(init).waiting.unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = init.last_state.clone().unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(status.condition("Initialized").unwrap().status, "False");

        // After the back-off it runs again, and once it completes the app
        // container starts.
        w.restarts.reset("init");
        w.sync(&pod).await;
        fake.exit("init", 0);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:0", "init:1", "init:2", "web:0"]);
    }

    #[tokio::test]
    async fn a_failed_init_container_fails_a_pod_that_never_restarts() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = with_init("Never", &["init"], &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("init", 2);
        w.sync(&pod).await;
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:0"]);
        let status = w.status().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.condition("Initialized").unwrap().status, "False");
        let failed = state_of(&status.init_container_statuses[0])
            .terminated
            .unwrap();
        assert_eq!(
            (failed.exit_code, failed.reason.as_deref()),
            (2, Some("Error"))
        );
        assert!(!fake.containers_named("POD")[0].state.is_running());
    }

    #[tokio::test]
    async fn a_restarted_kubelet_does_not_run_completed_init_containers_again() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = with_init("Always", &["init"], &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("init", 0);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:0", "web:0"]);

        fake.clear_calls();
        let mut restarted = worker(&fake, &pod);
        restarted.sync(&pod).await;
        assert!(started(&fake).is_empty());
        let status = restarted.status().unwrap();
        assert_eq!(status.condition("Initialized").unwrap().status, "True");
        assert_eq!(status.phase.as_deref(), Some("Running"));

        // Without the init container's record, the app container that ran
        // in this sandbox says the pod was initialized.
        fake.remove_behind_the_back("init");
        let mut restarted = worker(&fake, &pod);
        restarted.sync(&pod).await;
        assert!(started(&fake).is_empty());
    }

    #[tokio::test]
    async fn a_new_sandbox_runs_the_init_containers_again() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = with_init("Always", &["init"], &["web"]);
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("init", 0);
        w.sync(&pod).await;

        fake.exit("POD", 0);
        fake.clear_calls();
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:1"]);
        fake.exit("init", 0);
        w.sync(&pod).await;
        assert_eq!(started(&fake), ["init:1", "web:1"]);
        assert_eq!(fake.containers_named("init").len(), 2);
    }

    #[tokio::test]
    async fn a_new_worker_adopts_the_containers_an_earlier_kubelet_started() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["a", "b"]);
        worker(&fake, &pod).sync(&pod).await;
        let before = fake.all();

        // A restarted kubelet: a fresh worker, the same containers.
        fake.clear_calls();
        let mut restarted = worker(&fake, &pod);
        restarted.sync(&pod).await;
        assert!(!fake.calls().iter().any(|c| matches!(
            c,
            Call::RunContainer(_) | Call::RunSandbox(_) | Call::Stop(..)
        )));
        assert_eq!(fake.all(), before);
        assert_eq!(
            restarted.status().unwrap().phase.as_deref(),
            Some("Running")
        );
    }

    #[tokio::test]
    async fn an_exited_container_restarts_at_once_then_backs_off() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;

        fake.exit("web", 1);
        w.sync(&pod).await;
        let status = w.status().unwrap();
        assert_eq!(status.container_statuses[0].restart_count, 1);
        assert!(
            status.container_statuses[0]
                .state
                .as_ref()
                .unwrap()
                .running
                .is_some()
        );

        fake.exit("web", 1);
        w.sync(&pod).await;
        assert_eq!(waiting_reason(&w, 0).as_deref(), Some("CrashLoopBackOff"));
        let status = w.status().unwrap();
        let last = status.container_statuses[0].last_state.clone().unwrap();
        assert_eq!(last.terminated.unwrap().exit_code, 1);
        // Two instances are kept: the current one and the one before it.
        assert_eq!(fake.containers_named("web").len(), 2);
    }

    #[tokio::test]
    async fn only_the_latest_exited_instance_is_kept() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        for _ in 0..3 {
            fake.exit("web", 2);
            w.restarts.reset("web");
            w.sync(&pod).await;
        }
        w.sync(&pod).await;
        let kept = fake.containers_named("web");
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.iter().any(|c| c.state.is_running()));
    }

    #[tokio::test]
    async fn restart_policy_never_leaves_exited_containers_and_the_pod_finishes() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Never", &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("web", 0);
        w.sync(&pod).await;
        assert_eq!(fake.containers_named("web").len(), 1);
        assert_eq!(w.status().unwrap().phase.as_deref(), Some("Succeeded"));

        // The finished pod's sandbox is stopped; the container stays for logs.
        w.sync(&pod).await;
        assert!(!fake.containers_named("POD")[0].state.is_running());
        assert_eq!(fake.containers_named("web").len(), 1);
    }

    #[tokio::test]
    async fn on_failure_restarts_only_failed_containers() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("OnFailure", &["ok", "bad"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("ok", 0);
        fake.exit("bad", 3);
        w.sync(&pod).await;
        assert_eq!(fake.containers_named("ok").len(), 1);
        assert_eq!(fake.containers_named("bad").len(), 2);
    }

    #[tokio::test]
    async fn a_failed_pull_waits_with_err_image_pull_then_backs_off() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1"]);
        let mut pod = pod("Always", &["web"]);
        pod.spec.as_mut().unwrap().containers[0].image = Some("registry.invalid/web:1".into());
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        assert_eq!(waiting_reason(&w, 0).as_deref(), Some("ErrImagePull"));
        assert_eq!(w.status().unwrap().phase.as_deref(), Some("Pending"));

        // The failed attempt stays visible for a while, then the wait shows.
        fake.clear_calls();
        w.sync(&pod).await;
        assert_eq!(waiting_reason(&w, 0).as_deref(), Some("ErrImagePull"));
        let failed_at = w.pull_failed_at["web"] - chrono::Duration::seconds(6);
        w.pull_failed_at.insert("web".into(), failed_at);
        w.sync(&pod).await;
        assert_eq!(waiting_reason(&w, 0).as_deref(), Some("ImagePullBackOff"));
        assert!(!fake.calls().iter().any(|c| matches!(c, Call::PullImage(_))));
    }

    #[tokio::test]
    async fn a_changed_image_kills_the_container_and_starts_the_new_one() {
        let fake = FakeRuntime::with_images(&[
            "coxswain/pause:0.1",
            "coxswain/web:0.1",
            "coxswain/busybox:0.1",
        ]);
        let mut pod = pod("Always", &["web"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        let first = fake.containers_named("web")[0].clone();

        // Nothing changed: nothing happens.
        fake.clear_calls();
        w.sync(&pod).await;
        assert!(!fake.calls().iter().any(|c| matches!(c, Call::Stop(..))));

        pod.spec.as_mut().unwrap().containers[0].image = Some("coxswain/busybox:0.1".into());
        fake.clear_calls();
        w.sync(&pod).await;
        let calls = fake.calls();
        assert!(calls.contains(&Call::Stop(first.id.clone(), Duration::from_secs(30))));
        let started: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::RunContainer(s) => Some((s.image.clone(), s.restart_count)),
                _ => None,
            })
            .collect();
        assert_eq!(started, [("coxswain/busybox:0.1".to_owned(), 1)]);
        let status = w.status().unwrap().container_statuses[0].clone();
        assert_eq!(status.image, "coxswain/busybox:0.1");
        assert_eq!(status.restart_count, 1);
        assert!(status.state.unwrap().running.is_some());
    }

    #[tokio::test]
    async fn a_removed_sandbox_takes_its_running_containers_with_it() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = pod("Always", &["web"]);
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        let old = fake.containers_named("web")[0].clone();

        fake.remove_behind_the_back("POD");
        fake.clear_calls();
        w.sync(&pod).await;
        let calls = fake.calls();
        assert!(calls.contains(&Call::Stop(old.id.clone(), Duration::ZERO)));
        let sandbox = fake.containers_named("POD")[0].clone();
        assert_eq!(sandbox.restart_count, 1);
        let running: Vec<_> = fake
            .containers_named("web")
            .into_iter()
            .filter(|c| c.state.is_running())
            .collect();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].restart_count, 1);
        let joined = calls.iter().find_map(|c| match c {
            Call::RunContainer(s) => Some(s.sandbox_id.clone()),
            _ => None,
        });
        assert_eq!(joined, Some(sandbox.id));
    }

    #[tokio::test]
    async fn failed_sandbox_creation_is_retried_with_back_off() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["web"]);
        let mut w = worker(&fake, &pod);
        fake.fail_sandboxes(Some("sethostname: invalid argument"));
        let attempts = |fake: &FakeRuntime| {
            fake.calls()
                .iter()
                .filter(|c| matches!(c, Call::RunSandbox(_)))
                .count()
        };
        w.sync(&pod).await;
        w.sync(&pod).await;
        assert_eq!(attempts(&fake), 2, "the first retry is immediate");
        for _ in 0..3 {
            w.sync(&pod).await;
        }
        assert_eq!(attempts(&fake), 2, "later ones wait");

        fake.fail_sandboxes(None);
        w.sandbox_failed_at = Some(Utc::now() - chrono::Duration::seconds(11));
        w.sync(&pod).await;
        assert_eq!(attempts(&fake), 3);
        assert!(fake.containers_named("web")[0].state.is_running());
    }

    #[tokio::test]
    async fn readiness_probes_drive_container_and_pod_readiness() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = pod("Always", &["ok", "bad"]);
        for c in &mut pod.spec.as_mut().unwrap().containers {
            c.readiness_probe = Some(json!({"exec": {"command": ["check"]}}));
        }
        fake.set_exec_code("bad", 1);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        w.sync(&pod).await;
        let status = w.status().unwrap();
        assert!(status.container_statuses[0].ready);
        assert!(!status.container_statuses[1].ready);
        assert_eq!(status.condition("Ready").unwrap().status, "False");
        assert_eq!(status.condition("ContainersReady").unwrap().status, "False");
        assert!(
            fake.calls()
                .iter()
                .any(|c| matches!(c, Call::Exec(_, cmd) if cmd == &["check"]))
        );
        // The failing probe does not kill: readiness only gates traffic.
        assert_eq!(fake.containers_named("bad").len(), 1);

        fake.set_exec_code("bad", 0);
        w.probes.values_mut().for_each(|p| p.last_run = None);
        w.sync(&pod).await;
        assert_eq!(
            w.status().unwrap().condition("Ready").unwrap().status,
            "True"
        );
    }

    #[tokio::test]
    async fn a_failing_liveness_probe_kills_and_restarts_the_container() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = pod("Always", &["web"]);
        pod.spec.as_mut().unwrap().containers[0].liveness_probe = Some(json!({
            "exec": {"command": ["false"]},
            "failureThreshold": 2,
        }));
        fake.set_exec_code("web", 1);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        let first = fake.containers_named("web")[0].clone();
        w.sync(&pod).await;
        assert!(
            first.state.is_running(),
            "one failure is below the threshold"
        );
        assert!(fake.containers_named("web")[0].state.is_running());

        w.probes.values_mut().for_each(|p| p.last_run = None);
        w.sync(&pod).await;
        let web = fake.containers_named("web");
        let old = web.iter().find(|c| c.id == first.id).unwrap();
        assert!(!old.state.is_running());
        let new = web.iter().find(|c| c.state.is_running()).unwrap();
        assert_eq!(new.restart_count, 1);
        assert_eq!(w.status().unwrap().container_statuses[0].restart_count, 1);
    }

    #[tokio::test]
    async fn probes_wait_for_the_startup_probe_and_the_initial_delay() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = pod("Always", &["web"]);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        c.startup_probe = Some(json!({"exec": {"command": ["started"]}}));
        c.liveness_probe = Some(json!({"exec": {"command": ["alive"]}, "initialDelaySeconds": 60}));
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        assert_eq!(
            w.status().unwrap().container_statuses[0].started,
            Some(false)
        );
        w.sync(&pod).await;
        w.sync(&pod).await;
        let status = w.status().unwrap().container_statuses[0].clone();
        assert_eq!(status.started, Some(true));
        assert!(status.ready);
        let commands: Vec<Vec<String>> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec(_, cmd) => Some(cmd),
                _ => None,
            })
            .collect();
        assert_eq!(commands, [vec!["started".to_owned()]]);
    }

    #[test]
    fn sandboxes_of_long_named_pods_get_a_valid_hostname() {
        let fake = FakeRuntime::with_images(&[]);
        let mut p = pod("Always", &["web"]);
        p.metadata.name = Some(format!("{}-x", "a".repeat(62)));
        let w = worker(&fake, &p);
        assert_eq!(w.sandbox_spec(&p, 0).hostname, "a".repeat(62));
    }

    #[tokio::test]
    async fn pull_policy_never_without_the_image_waits() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1"]);
        let mut pod = pod("Always", &["web"]);
        pod.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Never".into());
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        assert_eq!(waiting_reason(&w, 0).as_deref(), Some("ErrImageNeverPull"));
        assert!(!fake.calls().iter().any(|c| matches!(c, Call::PullImage(_))));
    }

    #[tokio::test]
    async fn a_dead_sandbox_is_replaced_and_its_containers_restarted() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let mut pod = pod("Always", &["web"]);
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        fake.exit("POD", 0);
        w.sync(&pod).await;

        let sandboxes = fake.containers_named("POD");
        assert_eq!(sandboxes.len(), 1);
        assert_eq!(sandboxes[0].restart_count, 1);
        assert!(sandboxes[0].state.is_running());
        let web = fake.containers_named("web");
        let running: Vec<_> = web.iter().filter(|c| c.state.is_running()).collect();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].restart_count, 1);
    }

    #[tokio::test]
    async fn terminating_stops_and_removes_every_container() {
        let fake = FakeRuntime::with_images(&["coxswain/pause:0.1", "coxswain/web:0.1"]);
        let pod = pod("Always", &["a", "b"]);
        let mut w = worker(&fake, &pod);
        w.sync(&pod).await;
        assert!(w.terminate(&pod, Duration::from_secs(3), false).await);
        assert!(fake.all().is_empty());
        let stops: Vec<Duration> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Stop(_, grace) => Some(grace),
                _ => None,
            })
            .collect();
        assert!(stops.contains(&Duration::from_secs(3)));
    }

    #[test]
    fn grace_period_prefers_the_deletion_then_the_spec() {
        let mut p = pod("Always", &["a"]);
        assert_eq!(grace_period(&p), Duration::from_secs(30));
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(5);
        assert_eq!(grace_period(&p), Duration::from_secs(5));
        p.metadata.deletion_grace_period_seconds = Some(1);
        assert_eq!(grace_period(&p), Duration::from_secs(1));
    }

    #[test]
    fn container_specs_map_command_env_limits_and_volumes() {
        let mut p = pod("Always", &["web"]);
        let spec = p.spec.as_mut().unwrap();
        spec.volumes = vec![
            Volume {
                name: "data".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/srv".into(),
                    type_: None,
                }),
                ..Default::default()
            },
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ];
        let c = &mut spec.containers[0];
        c.command = vec!["/bin/sh".into()];
        c.args = vec!["-c".into(), "sleep 1".into()];
        c.env = vec![EnvVar {
            name: "A".into(),
            value: Some("1".into()),
            value_from: None,
        }];
        c.working_dir = Some("/work".into());
        c.resources = Some(ResourceRequirements {
            limits: BTreeMap::from([
                ("cpu".to_owned(), "500m".into()),
                ("memory".to_owned(), "64Mi".into()),
            ]),
            ..Default::default()
        });
        c.volume_mounts = vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "scratch".into(),
                mount_path: "/tmp/s".into(),
                ..Default::default()
            },
        ];
        let container = c.clone();

        let s = container_spec(
            &p,
            &container,
            "sb1",
            2,
            std::path::Path::new("/var/lib/cx"),
            &Downward::default(),
        );
        assert_eq!(s.entrypoint, Some(vec!["/bin/sh".to_owned()]));
        assert_eq!(s.cmd, Some(vec!["-c".to_owned(), "sleep 1".to_owned()]));
        assert_eq!(s.env, ["A=1"]);
        assert_eq!(s.working_dir.as_deref(), Some("/work"));
        assert_eq!(s.nano_cpus, Some(500_000_000));
        assert_eq!(s.memory_limit, Some(64 * 1024 * 1024));
        assert_eq!(
            s.binds,
            [
                "/srv:/data:ro",
                "/var/lib/cx/pods/u1/volumes/scratch:/tmp/s"
            ]
        );
        assert_eq!((s.sandbox_id.as_str(), s.restart_count), ("sb1", 2));
    }

    fn with_host_path(path: &std::path::Path, kind: &str) -> Pod {
        let mut p = pod("Always", &["web"]);
        p.spec.as_mut().unwrap().volumes = vec![Volume {
            name: "data".into(),
            host_path: Some(HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some(kind.into()),
            }),
            ..Default::default()
        }];
        p
    }

    #[test]
    fn host_paths_are_created_or_checked_as_their_type_says() {
        let dir = std::env::temp_dir().join(format!("coxswain-hostpath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);

        let data = dir.join("data/nested");
        prepare_host_paths(&with_host_path(&data, "DirectoryOrCreate")).unwrap();
        assert!(data.is_dir());
        let file = dir.join("files/state.txt");
        prepare_host_paths(&with_host_path(&file, "FileOrCreate")).unwrap();
        assert!(file.is_file());

        prepare_host_paths(&with_host_path(&data, "Directory")).unwrap();
        let error = prepare_host_paths(&with_host_path(&file, "Directory")).unwrap_err();
        assert!(error.contains("is not a Directory"), "{error}");
        let missing = dir.join("missing");
        assert!(prepare_host_paths(&with_host_path(&missing, "File")).is_err());
        assert!(!missing.exists(), "a checked type creates nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_patches_null_out_vanished_fields_and_pin_the_uid() {
        let p = pod("Always", &["a"]);
        let old = PodStatus {
            pod_ip: Some("1.2.3.4".into()),
            ..Default::default()
        };
        let new = PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        let patch = status_patch(Some(&old), &new, &p, "u1");
        assert_eq!(patch["status"]["podIP"], Value::Null);
        assert_eq!(patch["status"]["phase"], "Running");
        assert_eq!(patch["metadata"]["uid"], "u1");
    }
}
