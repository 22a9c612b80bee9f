//! Computing a pod's status from what the runtime reports, as the upstream
//! kubelet's status manager does: phase, conditions, container statuses,
//! IPs, start time and QoS class.
//!
//! Init containers get `initContainerStatuses` of the same shape: a
//! completed one is terminated with reason `Completed` and ready; the
//! `Initialized` condition stays False (`ContainersNotInitialized`) until
//! all of them completed or an app container ran; the phase is `Pending`
//! while they run, and `Failed` when one failed under restart policy
//! `Never`. Containers of a pod with init containers wait with reason
//! `PodInitializing` before they are created, as upstream's do.
//!
//! [`compute`] is pure: given the pod, its containers, the reasons the
//! worker is holding containers back (image pull errors, crash-loop
//! back-off) and the previous status, it gives the status to report.
//! Conditions keep their `lastTransitionTime` while their value is
//! unchanged, and a pod that reached `Succeeded` or `Failed` stays there.
//! A running container is ready when its probes say so ([`Probed`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::runtime::{ContainerInfo, RuntimeState};
use crate::api::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus, Time,
};

/// Why the worker holds a container back: a waiting reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// The status each pod worker computed last, by namespace and name: the
/// node agent reads from it why a container that never started waits.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    statuses: Arc<Mutex<HashMap<(String, String), PodStatus>>>,
}

impl StatusBoard {
    pub fn set(&self, namespace: &str, name: &str, status: PodStatus) {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().insert(key, status);
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<PodStatus> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().get(&key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodStatus>> {
        self.statuses.lock().expect("status board poisoned")
    }
}

/// Why `kubectl logs` cannot read a container that waits to start, in
/// upstream's words: `None` when the container is not waiting.
pub fn waiting_to_start(status: &PodStatus, container: &str, pod: &str) -> Option<String> {
    let found = status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses)
        .find(|c| c.name == container)?;
    let reason = found.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
    let words = match reason.as_str() {
        "ErrImagePull" | "ImagePullBackOff" | "ImageInspectError" => {
            "trying and failing to pull image"
        }
        "ErrImageNeverPull" | "InvalidImageName" => "image can't be pulled",
        other => other,
    };
    Some(format!(
        "container \"{container}\" in pod \"{pod}\" is waiting to start: {words}"
    ))
}

/// What a running container's probes say; a container without probes is
/// started and ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probed {
    /// Its startup probe passed (or it has none).
    pub started: bool,
    /// Started, and its readiness probe passed (or it has none).
    pub ready: bool,
}

/// Everything [`compute`] needs.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    /// The pod's containers, sandboxes included, any order.
    pub containers: &'a [ContainerInfo],
    /// Per container name, why it is held back.
    pub waiting: &'a HashMap<String, Waiting>,
    /// Per container name, what the probes of its running instance say.
    pub probed: &'a HashMap<String, Probed>,
    /// The sandbox's IP (the node's with host network).
    pub pod_ip: Option<String>,
    /// The sandbox is running (and has its network).
    pub sandbox_ready: bool,
    pub host_ip: String,
    /// The status last computed or read from the API.
    pub previous: Option<&'a PodStatus>,
    pub now: Time,
}

/// The pod's containers named `name`, newest first.
pub fn instances<'a>(containers: &'a [ContainerInfo], name: &str) -> Vec<&'a ContainerInfo> {
    let mut found: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| c.container_name == name)
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse((c.restart_count, c.created_at)));
    found
}

/// The status the pod should report.
pub fn compute(input: &StatusInput<'_>) -> PodStatus {
    let spec = input.pod.spec.clone().unwrap_or_default();
    let previous = input.previous;

    let not_created = if spec.init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let container_statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                &c.name,
                c.image.as_deref().unwrap_or(""),
                &instances(input.containers, &c.name),
                input.waiting.get(&c.name),
                input.probed.get(&c.name).copied(),
                not_created,
            )
        })
        .collect();
    let init_container_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .map(|c| {
            let mut status = container_status(
                &c.name,
                c.image.as_deref().unwrap_or(""),
                &instances(input.containers, &c.name),
                input.waiting.get(&c.name),
                None,
                not_created,
            );
            // An init container is ready once it completed, started while
            // it runs (upstream's prober for init containers without probes).
            let state = status.state.clone().unwrap_or_default();
            status.started = Some(state.running.is_some());
            status.ready = state.terminated.is_some_and(|t| t.exit_code == 0);
            status
        })
        .collect();

    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut phase = match init_phase(restart_policy, &init_container_statuses) {
        Some(phase) => phase,
        None => phase(restart_policy, &container_statuses),
    };
    if let Some(prev) = previous.and_then(|p| p.phase.as_deref())
        && matches!(prev, "Succeeded" | "Failed")
    {
        phase = prev;
    }

    let unready: Vec<&str> = container_statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let all_ready = unready.is_empty();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted".to_owned()), None)
    } else if all_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_owned()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let ready = all_ready && !terminal;
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            input.sandbox_ready && !terminal,
            None,
            None,
        ),
        initialized(
            &init_container_statuses,
            &container_statuses,
            phase == "Succeeded",
        ),
        condition("Ready", ready, ready_reason.clone(), ready_message.clone()),
        condition("ContainersReady", ready, ready_reason, ready_message),
        condition("PodScheduled", true, None, None),
    ];
    for c in &mut conditions {
        let kept = previous
            .and_then(|p| p.condition(&c.type_))
            .filter(|old| old.status == c.status)
            .and_then(|old| old.last_transition_time);
        c.last_transition_time = Some(kept.unwrap_or(input.now));
    }

    let host_network = spec.host_network.unwrap_or(false);
    let pod_ip = if host_network {
        Some(input.host_ip.clone())
    } else {
        input.pod_ip.clone()
    };
    let start_time = previous
        .and_then(|p| p.start_time)
        .or_else(|| super::manifests::seen_time(input.pod))
        .unwrap_or(input.now);

    PodStatus {
        phase: Some(phase.to_owned()),
        conditions,
        host_ip: Some(input.host_ip.clone()),
        host_ips: vec![HostIP {
            ip: input.host_ip.clone(),
        }],
        pod_ips: pod_ip.iter().map(|ip| PodIP { ip: ip.clone() }).collect(),
        pod_ip,
        start_time: Some(start_time),
        container_statuses,
        init_container_statuses,
        qos_class: Some(qos_class(input.pod).to_owned()),
        observed_generation: input.pod.metadata.generation,
        ..Default::default()
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason,
        message,
        ..Default::default()
    }
}

/// The `Initialized` condition (upstream `GeneratePodInitializedCondition`):
/// True once every init container completed, or an app container ran (a
/// pod initialized before stays so), `PodCompleted` for a pod that
/// succeeded; else False with the init containers not yet completed.
fn initialized(init: &[ContainerStatus], app: &[ContainerStatus], succeeded: bool) -> PodCondition {
    if succeeded {
        return condition("Initialized", true, Some("PodCompleted".into()), None);
    }
    let app_ran = app.iter().any(|s| {
        let state = s.state.clone().unwrap_or_default();
        state.running.is_some() || state.terminated.is_some()
    });
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|s| !completed(s))
        .map(|s| s.name.as_str())
        .collect();
    if app_ran || incomplete.is_empty() {
        return condition("Initialized", true, None, None);
    }
    let message = format!(
        "containers with incomplete status: [{}]",
        incomplete.join(" ")
    );
    condition(
        "Initialized",
        false,
        Some("ContainersNotInitialized".into()),
        Some(message),
    )
}

/// Whether a container's current state is a successful termination.
fn completed(status: &ContainerStatus) -> bool {
    status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

/// The phase the init containers impose (upstream `getPhase`): `Failed`
/// when one failed and the pod never restarts, `Pending` while one has yet
/// to complete and has not failed; `None` when the app containers decide.
fn init_phase(restart_policy: &str, init: &[ContainerStatus]) -> Option<&'static str> {
    let (mut pending, mut failed) = (0, 0);
    for status in init {
        let state = status.state.clone().unwrap_or_default();
        let last_failed = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code != 0);
        if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed += 1;
            }
        } else if state.waiting.is_some() && last_failed.is_some() {
            if last_failed == Some(true) {
                failed += 1;
            }
        } else {
            pending += 1;
        }
    }
    if failed > 0 && restart_policy == "Never" {
        return Some("Failed");
    }
    (pending > 0).then_some("Pending")
}

/// One container's status from its instances (newest first); `not_created`
/// is the waiting reason of a container that has no instance yet and
/// nothing holding it back.
fn container_status(
    name: &str,
    image: &str,
    instances: &[&ContainerInfo],
    waiting: Option<&Waiting>,
    probed: Option<Probed>,
    not_created: &str,
) -> ContainerStatus {
    let current = instances.first();
    let mut status = ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        restart_count: current.map(|c| c.restart_count as i32).unwrap_or(0),
        started: Some(false),
        ..Default::default()
    };
    let Some(current) = current else {
        let (reason, message) = match waiting {
            Some(w) => (
                w.reason.clone(),
                Some(w.message.clone()).filter(|m| !m.is_empty()),
            ),
            None => (not_created.to_owned(), None),
        };
        status.state = Some(waiting_state(reason, message));
        return status;
    };

    // The image of the instance that runs (or ran), not the spec's: they
    // differ while a changed container is being replaced.
    if !current.image.is_empty() {
        status.image = current.image.clone();
    }
    status.image_id = current.image_id.clone();
    status.container_id = Some(format!("docker://{}", current.id));
    let held_back = waiting.filter(|_| !current.state.is_running());
    if let Some(w) = held_back {
        // Crash-loop back-off or a failed re-pull: the last run is history.
        let message = Some(w.message.clone()).filter(|m| !m.is_empty());
        status.state = Some(waiting_state(w.reason.clone(), message));
        status.last_state = terminated_state(current);
        return status;
    }
    match &current.state {
        RuntimeState::Running { started_at } => {
            status.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: started_at.map(time),
                }),
                ..Default::default()
            });
            let probed = probed.unwrap_or(Probed {
                started: true,
                ready: true,
            });
            status.ready = probed.ready;
            status.started = Some(probed.started);
        }
        RuntimeState::Exited { .. } => status.state = terminated_state(current),
        RuntimeState::Created | RuntimeState::Unknown => {
            status.state = Some(waiting_state("ContainerCreating".into(), None));
        }
    }
    status.last_state = instances
        .get(1)
        .and_then(|previous| terminated_state(previous));
    status
}

fn waiting_state(reason: String, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason),
            message,
        }),
        ..Default::default()
    }
}

/// The `terminated` state of an exited container, `None` otherwise.
fn terminated_state(container: &ContainerInfo) -> Option<ContainerState> {
    let RuntimeState::Exited {
        exit_code,
        started_at,
        finished_at,
        oom_killed,
        error,
    } = &container.state
    else {
        return None;
    };
    let reason = if *oom_killed {
        "OOMKilled"
    } else if error.is_some() {
        "ContainerCannotRun"
    } else if *exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: *exit_code as i32,
            reason: Some(reason.to_owned()),
            message: error.clone(),
            started_at: started_at.map(time),
            finished_at: finished_at.map(time),
            container_id: Some(format!("docker://{}", container.id)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The pod phase from its container statuses (upstream `getPhase`).
fn phase(restart_policy: &str, statuses: &[ContainerStatus]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in statuses {
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            let terminated_before = status
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some());
            if terminated_before {
                stopped += 1
            } else {
                waiting += 1
            }
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 || statuses.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        // OnFailure: the failed ones are being restarted. A container that
        // waits with an earlier successful run counts as succeeded above.
        return "Running";
    }
    "Pending"
}

/// Whether the pod is done: `Succeeded` or `Failed`, never to run again.
pub fn is_terminal(status: &PodStatus) -> bool {
    matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// The pod's QoS class: `Guaranteed` when every container has equal cpu
/// and memory requests and limits, `BestEffort` when none has any, else
/// `Burstable`.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let mut guaranteed = true;
    let mut any = false;
    for container in spec.init_containers.iter().chain(&spec.containers) {
        let resources = container.resources.clone().unwrap_or_default();
        for name in ["cpu", "memory"] {
            let limit = resources.limits.get(name);
            let request = resources.requests.get(name).or(limit);
            if limit.is_some() || request.is_some() {
                any = true;
            }
            let value =
                |q: Option<&crate::api::quantity::Quantity>| q.and_then(|q| q.to_milli().ok());
            if limit.is_none() || value(limit) != value(request) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn time(t: DateTime<Utc>) -> Time {
    Time(chrono::SubsecRound::trunc_subsecs(t, 0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{Container, PodSpec, ResourceRequirements};
    use crate::kubelet::runtime::{PodRef, container_labels};

    fn pod(containers: &[&str], restart_policy: &str) -> Pod {
        let mut pod = Pod::new("default", "web");
        pod.metadata.uid = Some("u1".into());
        pod.spec = Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            containers: containers
                .iter()
                .map(|n| Container {
                    name: (*n).into(),
                    image: Some("coxswain/web:0.1".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        pod
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn container(id: &str, name: &str, restarts: u32, state: RuntimeState) -> ContainerInfo {
        let pod = PodRef {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
        };
        ContainerInfo::from_labels(
            id.into(),
            container_labels(&pod, name, restarts, "n1"),
            "coxswain/web:0.1".into(),
            "sha256:abc".into(),
            at(restarts as i64 * 100),
            state,
        )
        .unwrap()
    }

    fn running(since: i64) -> RuntimeState {
        RuntimeState::Running {
            started_at: Some(at(since)),
        }
    }

    fn exited(code: i64) -> RuntimeState {
        RuntimeState::Exited {
            exit_code: code,
            started_at: Some(at(1)),
            finished_at: Some(at(5)),
            oom_killed: false,
            error: None,
        }
    }

    fn status(
        pod: &Pod,
        containers: &[ContainerInfo],
        waiting: &HashMap<String, Waiting>,
        previous: Option<&PodStatus>,
        now: i64,
    ) -> PodStatus {
        compute(&StatusInput {
            pod,
            containers,
            waiting,
            probed: &HashMap::new(),
            pod_ip: Some("172.17.0.2".into()),
            sandbox_ready: true,
            host_ip: "10.0.0.1".into(),
            previous,
            now: Time(at(now)),
        })
    }

    #[test]
    fn a_pod_with_all_containers_running_is_running_and_ready() {
        let pod = pod(&["web"], "Always");
        let containers = [
            container("s", "POD", 0, running(0)),
            container("c", "web", 0, running(2)),
        ];
        let s = status(&pod, &containers, &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.condition("Ready").unwrap().status, "True");
        assert_eq!(s.condition("ContainersReady").unwrap().status, "True");
        assert_eq!(s.condition("PodScheduled").unwrap().status, "True");
        assert_eq!(
            s.condition("PodReadyToStartContainers").unwrap().status,
            "True"
        );
        assert_eq!(s.pod_ip.as_deref(), Some("172.17.0.2"));
        assert_eq!(s.pod_ips[0].ip, "172.17.0.2");
        assert_eq!(s.host_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let c = &s.container_statuses[0];
        assert_eq!(c.container_id.as_deref(), Some("docker://c"));
        assert!(c.ready);
        assert_eq!(c.started, Some(true));
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
            Some(Time(at(2)))
        );
        assert_eq!(c.image_id, "sha256:abc");
    }

    #[test]
    fn a_pod_waits_in_pending_until_every_container_started() {
        let pod = pod(&["a", "b"], "Always");
        let containers = [
            container("s", "POD", 0, running(0)),
            container("a", "a", 0, running(1)),
        ];
        let s = status(&pod, &containers, &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let ready = s.condition("Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b]")
        );
        let b = &s.container_statuses[1];
        assert_eq!(
            b.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
    }

    #[test]
    fn a_crash_looping_container_waits_with_its_last_termination() {
        let pod = pod(&["web"], "Always");
        let containers = [
            container("s", "POD", 0, running(0)),
            container("old", "web", 0, exited(1)),
            container("new", "web", 1, exited(2)),
        ];
        let waiting = HashMap::from([(
            "web".to_owned(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s".into(),
            },
        )]);
        let s = status(&pod, &containers, &waiting, None, 10);
        let c = &s.container_statuses[0];
        assert_eq!(c.restart_count, 1);
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
        assert_eq!(last.container_id.as_deref(), Some("docker://new"));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.condition("Ready").unwrap().status, "False");
    }

    #[test]
    fn a_restarted_container_reports_the_previous_run_as_last_state() {
        let pod = pod(&["web"], "Always");
        let containers = [
            container("s", "POD", 0, running(0)),
            container("old", "web", 0, exited(137)),
            container("new", "web", 1, running(150)),
        ];
        let s = status(&pod, &containers, &HashMap::new(), None, 200);
        let c = &s.container_statuses[0];
        assert_eq!(c.restart_count, 1);
        assert!(c.ready);
        let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
        assert_eq!(last.container_id.as_deref(), Some("docker://old"));
    }

    #[test]
    fn run_to_completion_pods_succeed_or_fail_by_exit_code() {
        let containers = |code| {
            [
                container("s", "POD", 0, running(0)),
                container("c", "web", 0, exited(code)),
            ]
        };
        let never = pod(&["web"], "Never");
        let s = status(&never, &containers(0), &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let t = s.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        assert_eq!(
            s.condition("Ready").unwrap().reason.as_deref(),
            Some("PodCompleted")
        );

        let s = status(&never, &containers(3), &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Failed"));

        let on_failure = pod(&["web"], "OnFailure");
        let s = status(&on_failure, &containers(3), &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let s = status(&on_failure, &containers(0), &HashMap::new(), None, 10);
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn an_oom_killed_container_says_so() {
        let pod = pod(&["web"], "Never");
        let oom = RuntimeState::Exited {
            exit_code: 137,
            started_at: None,
            finished_at: None,
            oom_killed: true,
            error: None,
        };
        let containers = [
            container("s", "POD", 0, running(0)),
            container("c", "web", 0, oom),
        ];
        let s = status(&pod, &containers, &HashMap::new(), None, 10);
        let t = s.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
    }

    #[test]
    fn image_pull_errors_show_as_waiting_reasons() {
        let pod = pod(&["web"], "Always");
        let containers = [container("s", "POD", 0, running(0))];
        let waiting = HashMap::from([(
            "web".to_owned(),
            Waiting {
                reason: "ErrImagePull".into(),
                message: "no such image".into(),
            },
        )]);
        let s = status(&pod, &containers, &waiting, None, 10);
        let w = s.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .clone()
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ErrImagePull"));
        assert_eq!(w.message.as_deref(), Some("no such image"));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn transition_times_stay_while_conditions_hold() {
        let pod = pod(&["web"], "Always");
        let starting = [container("s", "POD", 0, running(0))];
        let first = status(&pod, &starting, &HashMap::new(), None, 10);
        assert_eq!(
            first.condition("Ready").unwrap().last_transition_time,
            Some(Time(at(10)))
        );

        let up = [
            container("s", "POD", 0, running(0)),
            container("c", "web", 0, running(15)),
        ];
        let second = status(&pod, &up, &HashMap::new(), Some(&first), 20);
        assert_eq!(
            second.condition("Ready").unwrap().last_transition_time,
            Some(Time(at(20)))
        );
        assert_eq!(
            second
                .condition("PodScheduled")
                .unwrap()
                .last_transition_time,
            Some(Time(at(10)))
        );
        assert_eq!(second.start_time, Some(Time(at(10))));

        let third = status(&pod, &up, &HashMap::new(), Some(&second), 30);
        assert_eq!(third, second);
    }

    #[test]
    fn host_network_pods_report_the_node_address() {
        let mut pod = pod(&["web"], "Always");
        pod.spec.as_mut().unwrap().host_network = Some(true);
        let s = compute(&StatusInput {
            pod: &pod,
            containers: &[],
            waiting: &HashMap::new(),
            probed: &HashMap::new(),
            pod_ip: None,
            sandbox_ready: false,
            host_ip: "10.0.0.1".into(),
            previous: None,
            now: Time(at(0)),
        });
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn qos_class_follows_requests_and_limits() {
        let with = |limits: &[(&str, &str)], requests: &[(&str, &str)]| {
            let mut pod = pod(&["web"], "Always");
            let map = |pairs: &[(&str, &str)]| -> BTreeMap<_, _> {
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                    .collect()
            };
            pod.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
                limits: map(limits),
                requests: map(requests),
                ..Default::default()
            });
            qos_class(&pod)
        };
        assert_eq!(with(&[], &[]), "BestEffort");
        assert_eq!(with(&[("cpu", "1"), ("memory", "64Mi")], &[]), "Guaranteed");
        assert_eq!(
            with(
                &[("cpu", "1"), ("memory", "64Mi")],
                &[("cpu", "1000m"), ("memory", "64Mi")]
            ),
            "Guaranteed"
        );
        assert_eq!(with(&[("cpu", "1")], &[]), "Burstable");
        assert_eq!(with(&[], &[("memory", "64Mi")]), "Burstable");
        assert_eq!(
            with(&[("cpu", "2"), ("memory", "1Gi")], &[("cpu", "1")]),
            "Burstable"
        );
    }
}
