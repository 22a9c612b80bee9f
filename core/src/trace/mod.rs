//! Kernel events of the pods on this node: attribution, history, streams.
//!
//! A [`TraceHub`] owns the eBPF probes of one node (when the kernel and the
//! privileges allow them) and turns their [`TraceEvent`]s into per-pod
//! histories. The kubelet creates every sandbox and container, so it tells
//! the hub each one's first process ([`TraceHub::register_container`]); the
//! hub puts that process's cgroup id and namespace inodes in the probes'
//! maps and attributes events by, in order: cgroup id, process (and the
//! runtime processes that forked it), mount namespace. Events that arrive
//! before their container is registered are held for [`PENDING_FOR`] and
//! attributed when it lands. The network namespace names the pod but not
//! the container (every container joins the sandbox's), so an event known
//! only by it is held too, and goes to the sandbox only if no container
//! claims it in that time; what nobody claims goes to the node stream
//! unattributed. Histories are bounded
//! ([`POD_HISTORY`] events per pod, [`PODS_KEPT`] pods).
//!
//! The hub also keeps the kernel's record of how each container ended and,
//! once a pod is removed, whether any of its processes still run (see
//! `kernel.rs`).
//!
//! Without probes the hub says why once and serves histories without kernel
//! events (the containers' namespaces are still read from `/proc`).
//! Files: `runtime.rs` (the runtime decorator that registers containers),
//! `agent.rs` (the node agent's `/trace` routes), `viewer.html` (the trace
//! viewer page the agent serves), `export.rs` (Chrome trace event JSON),
//! `remote.rs` (reading traces through the apiserver), `serve.rs` (the
//! loopback proxy a browser opens the viewer through), `kernel.rs`
//! (kernel-checked container status).

pub mod agent;
pub mod export;
pub mod kernel;
pub mod remote;
pub mod runtime;
pub mod serve;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coxswain_ebpf::RuntimeWindow;
pub use coxswain_ebpf::{EventKind, Namespaces, TraceEvent};
/// The loader and `/proc` readers, for tools that drive the probes
/// themselves (the probe overhead benchmark).
pub use coxswain_ebpf::{ProbeControl, Probes, host};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::kubelet::runtime::{PodRef, SANDBOX_NAME};

/// How long an event nobody claims is held before it goes out unattributed.
pub const PENDING_FOR: Duration = Duration::from_secs(10);
/// Events kept per pod.
pub const POD_HISTORY: usize = 4096;
/// Pods whose history is kept (the oldest is forgotten first).
pub const PODS_KEPT: usize = 512;
/// Events kept for the node stream's backlog.
const NODE_HISTORY: usize = 4096;
/// Events held at most while waiting for their container.
const PENDING_MAX: usize = 16384;

/// Who an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    /// The container's name in the spec, [`SANDBOX_NAME`] for the sandbox.
    pub container: String,
}

/// A container the hub knows, and the kernel identifiers it was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub container: String,
    pub container_id: String,
    pub pid: u32,
    pub cgroup_id: Option<u64>,
    pub namespaces: Namespaces,
    /// When it was registered, Unix nanoseconds.
    pub registered_ns: u64,
    /// Its cgroup v2 path, relative to the cgroup2 mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
    /// How its first process ended, as the kernel reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<kernel::KernelExit>,
    /// Its processes the kernel killed for lack of memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oom_kills: Vec<kernel::OomKill>,
}

/// What the hub knows of one pod: its containers and kernel events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodTrace {
    pub pod: String,
    pub uid: String,
    pub containers: Vec<ContainerRecord>,
    pub events: Vec<TraceEvent>,
    /// When the kubelet removed the pod's sandbox, Unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_ns: Option<u64>,
    /// Processes of its containers still running after it was removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<kernel::Leftover>,
}

/// Whether kernel events are collected on this node, and their loss.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceStatus {
    pub available: bool,
    /// Why not, when not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Probes this kernel did not accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Events lost to a full ring buffer since load.
    pub dropped: u64,
}

/// The node's trace state, shared by the kubelet and the node agent.
pub struct TraceHub {
    control: Option<ProbeControl>,
    status: TraceStatus,
    state: Mutex<State>,
    live: broadcast::Sender<TraceEvent>,
}

#[derive(Default)]
struct State {
    by_cgroup: HashMap<u64, Owner>,
    by_tgid: HashMap<u32, Owner>,
    by_mnt: HashMap<u32, Owner>,
    by_net: HashMap<u32, Owner>,
    /// Child tgid -> parent tgid and the parent's comm, from fork events.
    parents: HashMap<u32, (u32, String)>,
    pending: VecDeque<(Instant, TraceEvent)>,
    pods: HashMap<String, PodTrace>,
    /// Pod uids, oldest first, for forgetting.
    order: VecDeque<String>,
    node: VecDeque<TraceEvent>,
}

impl TraceHub {
    /// Loads the probes and starts reading them; without them (no probes in
    /// the build, no BTF, no privileges) logs why once and goes on.
    pub fn start(node: &str) -> Arc<TraceHub> {
        match Probes::load() {
            Ok(probes) => {
                let missing: Vec<String> = probes
                    .missing()
                    .iter()
                    .map(|(name, reason)| format!("{name}: {reason}"))
                    .collect();
                if !missing.is_empty() {
                    tracing::warn!(node, ?missing, "some eBPF probes are not supported here");
                }
                tracing::info!(node, "eBPF pod tracing is on");
                let hub = Arc::new(TraceHub::new(Some(probes.control()), None, missing));
                let (tx, rx) = mpsc::channel(8192);
                tokio::spawn(async move {
                    if let Err(error) = probes.run(tx).await {
                        tracing::error!(%error, "reading the eBPF ring buffer failed");
                    }
                });
                tokio::spawn(hub.clone().consume(rx));
                hub
            }
            Err(error) => {
                let reason = error_chain(&error);
                tracing::warn!(node, %reason,
                    "eBPF pod tracing unavailable, continuing without it");
                Arc::new(TraceHub::new(None, Some(reason), Vec::new()))
            }
        }
    }

    /// A hub without probes that attributes the events it is given: for
    /// tests, and for nodes where tracing is off.
    pub fn detached(reason: &str) -> Arc<TraceHub> {
        Arc::new(TraceHub::new(None, Some(reason.to_owned()), Vec::new()))
    }

    fn new(control: Option<ProbeControl>, reason: Option<String>, missing: Vec<String>) -> Self {
        TraceHub {
            status: TraceStatus {
                available: control.is_some(),
                reason,
                missing,
                dropped: 0,
            },
            control,
            state: Mutex::new(State::default()),
            live: broadcast::channel(4096).0,
        }
    }

    /// Whether probes are running, why not, and how many events were lost.
    pub fn status(&self) -> TraceStatus {
        let mut status = self.status.clone();
        status.dropped = self
            .control
            .as_ref()
            .map(ProbeControl::dropped)
            .unwrap_or(0);
        status
    }

    /// Traces the runtime's processes until the guard drops; `None` without
    /// probes. Hold it around sandbox and container creation.
    pub fn runtime_window(&self) -> Option<RuntimeWindow> {
        self.control.as_ref().map(ProbeControl::runtime_window)
    }

    /// Registers the first process of a container (or of the sandbox, named
    /// [`SANDBOX_NAME`]): reads its cgroup id and namespaces, watches them in
    /// the probes, and attributes the events held for it.
    pub fn register_container(&self, pod: &PodRef, container: &str, container_id: &str, pid: u32) {
        let cgroup_id = host::cgroup_id_of_pid(pid);
        let namespaces = host::namespaces_of_pid(pid).unwrap_or_default();
        if let Some(control) = &self.control {
            let mut result = Ok(());
            if let Some(id) = cgroup_id {
                result = result.and(control.watch_cgroup(id));
            }
            for inode in [namespaces.mnt, namespaces.pid] {
                result = result.and(control.watch_namespace(inode));
            }
            if container == SANDBOX_NAME {
                result = result.and(control.watch_namespace(namespaces.net));
            }
            if let Err(error) = result {
                tracing::warn!(namespace = %pod.namespace, name = %pod.name, %error,
                    "registering a container with the eBPF probes failed");
            }
        }
        let record = ContainerRecord {
            container: container.to_owned(),
            container_id: container_id.to_owned(),
            pid,
            cgroup_id,
            namespaces,
            registered_ns: now_ns(),
            cgroup_path: host::cgroup_path_of_pid(pid),
            exit: None,
            oom_kills: Vec::new(),
        };
        self.add_container(pod, record);
    }

    /// Attributes a container's identifiers (already read) to it.
    pub fn add_container(&self, pod: &PodRef, record: ContainerRecord) {
        let owner = Owner {
            pod: format!("{}/{}", pod.namespace, pod.name),
            uid: pod.uid.clone(),
            container: record.container.clone(),
        };
        let mut state = self.state.lock().expect("trace state lock");
        if let Some(id) = record.cgroup_id {
            state.by_cgroup.insert(id, owner.clone());
        }
        state.by_tgid.insert(record.pid, owner.clone());
        // The runtime processes that forked the container did its unshare
        // and setns calls: they belong to it too.
        let mut child = record.pid;
        for _ in 0..4 {
            let Some((parent, comm)) = state.parents.get(&child).cloned() else {
                break;
            };
            if !comm.starts_with("runc") {
                break;
            }
            state.by_tgid.insert(parent, owner.clone());
            child = parent;
        }
        if record.namespaces.mnt != 0 {
            state.by_mnt.insert(record.namespaces.mnt, owner.clone());
        }
        if record.container == SANDBOX_NAME && record.namespaces.net != 0 {
            state.by_net.insert(record.namespaces.net, owner.clone());
        }
        let trace = state.pod_entry(&owner);
        trace
            .containers
            .retain(|c| c.container_id != record.container_id);
        trace.containers.push(record);

        // Held events this registration explains.
        let pending = std::mem::take(&mut state.pending);
        for (since, event) in pending {
            match state.sure_owner_of(&event) {
                Some(owner) => self.record(&mut state, event, Some(owner)),
                None => state.pending.push_back((since, event)),
            }
        }
    }

    /// Stops watching a removed container's identifiers (namespace inodes
    /// are reused soon after); its history stays. When the container was a
    /// pod's sandbox, the pod is gone: notes when, and returns its uid for
    /// [`TraceHub::check_leftovers`].
    pub fn container_removed(&self, container_id: &str) -> Option<String> {
        let mut state = self.state.lock().expect("trace state lock");
        let found = state.pods.values_mut().find_map(|p| {
            let record = p
                .containers
                .iter()
                .find(|c| c.container_id == container_id)
                .cloned()?;
            if record.container == SANDBOX_NAME {
                p.removed_ns = Some(now_ns());
            }
            Some((p.uid.clone(), record))
        });
        let (uid, record) = found?;
        if let Some(id) = record.cgroup_id {
            state.by_cgroup.remove(&id);
        }
        state.by_mnt.remove(&record.namespaces.mnt);
        if record.container == SANDBOX_NAME {
            state.by_net.remove(&record.namespaces.net);
        }
        drop(state);
        if let Some(control) = &self.control {
            if let Some(id) = record.cgroup_id {
                control.forget_cgroup(id);
            }
            control.forget_namespace(record.namespaces.mnt);
            control.forget_namespace(record.namespaces.pid);
            if record.container == SANDBOX_NAME {
                control.forget_namespace(record.namespaces.net);
            }
        }
        (record.container == SANDBOX_NAME).then_some(uid)
    }

    /// Lists (and keeps in the pod's trace) the processes of removed pod
    /// `uid` that still run, logging each; see [`kernel::leftovers`].
    pub fn check_leftovers(&self, uid: &str) -> Vec<kernel::Leftover> {
        let state = self.state.lock().expect("trace state lock");
        let Some(trace) = state.pods.get(uid) else {
            return Vec::new();
        };
        let containers = trace.containers.clone();
        let pod = trace.pod.clone();
        let tracked: Vec<u32> = state
            .by_tgid
            .iter()
            .filter(|(_, owner)| owner.uid == uid)
            .map(|(tgid, _)| *tgid)
            .collect();
        drop(state);

        let found = kernel::leftovers(host::cgroup2_mount().as_deref(), &containers, &tracked);
        for leftover in &found {
            tracing::warn!(pod = %pod, uid, container = %leftover.container,
                container_id = %leftover.container_id, pid = leftover.pid, comm = %leftover.comm,
                "a process of a removed pod still runs");
        }
        let mut state = self.state.lock().expect("trace state lock");
        if let Some(trace) = state.pods.get_mut(uid) {
            trace.leftovers = found.clone();
        }
        found
    }

    /// Attributes one event, or holds it for its container.
    pub fn ingest(&self, mut event: TraceEvent) {
        let mut state = self.state.lock().expect("trace state lock");
        if event.kind == EventKind::Fork
            && let (Some(parent), Some(comm)) = (event.other_pid, event.other_comm.clone())
        {
            if state.parents.len() > 65536 {
                state.parents.clear();
            }
            state.parents.insert(event.tgid, (parent, comm));
        }
        let owner = state.sure_owner_of(&event);
        match owner {
            Some(owner) => {
                if event.kind == EventKind::Fork {
                    state.by_tgid.insert(event.tgid, owner.clone());
                }
                self.record(&mut state, event, Some(owner));
            }
            None => {
                event.pod = None;
                state.pending.push_back((Instant::now(), event));
            }
        }
        self.expire(&mut state, Instant::now());
    }

    /// Sends events held past [`PENDING_FOR`] (or past the cap) out
    /// unattributed.
    fn expire(&self, state: &mut State, now: Instant) {
        while let Some((since, _)) = state.pending.front() {
            let old = now.duration_since(*since) >= PENDING_FOR;
            if !old && state.pending.len() <= PENDING_MAX {
                break;
            }
            let (_, event) = state.pending.pop_front().expect("a front element");
            let owner = state.net_owner_of(&event);
            self.record(state, event, owner);
        }
    }

    fn record(&self, state: &mut State, mut event: TraceEvent, owner: Option<Owner>) {
        if let Some(owner) = &owner {
            event.pod = Some(owner.pod.clone());
            event.pod_uid = Some(owner.uid.clone());
            event.container = Some(owner.container.clone());
            let trace = state.pod_entry(owner);
            kernel::note(trace, &owner.container, &event);
            if trace.events.len() >= POD_HISTORY {
                trace.events.remove(0);
            }
            trace.events.push(event.clone());
        }
        if state.node.len() >= NODE_HISTORY {
            state.node.pop_front();
        }
        state.node.push_back(event.clone());
        let _ = self.live.send(event);
    }

    /// The pod's containers and events in time order; `None` when the hub
    /// has never heard of it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodTrace> {
        let key = format!("{namespace}/{name}");
        let mut state = self.state.lock().expect("trace state lock");
        self.expire(&mut state, Instant::now());
        let mut trace = state
            .pods
            .values()
            .filter(|p| p.pod == key)
            .max_by_key(|p| p.containers.iter().map(|c| c.registered_ns).max())?
            .clone();
        trace.events.sort_by_key(|e| e.time_ns);
        Some(trace)
    }

    /// The node's recent events, and a receiver of those that follow.
    pub fn subscribe(&self) -> (Vec<TraceEvent>, broadcast::Receiver<TraceEvent>) {
        let state = self.state.lock().expect("trace state lock");
        let backlog = state.node.iter().cloned().collect();
        (backlog, self.live.subscribe())
    }

    /// Reads probe events until the probes stop; expires held events even
    /// when none arrive.
    async fn consume(self: Arc<Self>, mut events: mpsc::Receiver<TraceEvent>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.ingest(event),
                    None => return,
                },
                _ = tick.tick() => {
                    let mut state = self.state.lock().expect("trace state lock");
                    self.expire(&mut state, Instant::now());
                }
            }
        }
    }
}

impl State {
    /// The owner by cgroup, process or mount namespace: the container.
    fn sure_owner_of(&self, event: &TraceEvent) -> Option<Owner> {
        let ns = &event.namespaces;
        let by_cgroup = match event.kind {
            // The cgroup of a cgroup event is the new or removed one.
            EventKind::CgroupMkdir | EventKind::CgroupRmdir if event.hierarchy != Some(0) => None,
            _ => self.by_cgroup.get(&event.cgroup_id),
        };
        by_cgroup
            .or_else(|| self.by_tgid.get(&event.tgid))
            .or_else(|| self.by_mnt.get(&ns.mnt))
            .cloned()
    }

    /// The sandbox owning the event's network namespace: the pod, when no
    /// container claimed the event.
    fn net_owner_of(&self, event: &TraceEvent) -> Option<Owner> {
        self.by_net.get(&event.namespaces.net).cloned()
    }

    fn pod_entry(&mut self, owner: &Owner) -> &mut PodTrace {
        if !self.pods.contains_key(&owner.uid) {
            if self.order.len() >= PODS_KEPT
                && let Some(oldest) = self.order.pop_front()
            {
                self.pods.remove(&oldest);
            }
            self.order.push_back(owner.uid.clone());
        }
        self.pods
            .entry(owner.uid.clone())
            .or_insert_with(|| PodTrace {
                pod: owner.pod.clone(),
                uid: owner.uid.clone(),
                ..Default::default()
            })
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// An error and its sources, `: `-separated, for the one log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
