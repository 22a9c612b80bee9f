//! Kernel-checked container status: the kernel's own record of how a
//! container ended, kept next to what the kubelet reports.
//!
//! * When the exit of a container's first process (the one the runtime
//!   started, whose end is the container's end) is attributed, its exit code
//!   or killing signal is kept on the container's [`ContainerRecord`] as a
//!   [`KernelExit`]; every OOM kill in the container is kept as an
//!   [`OomKill`]. A restarted container is a new record, so each instance
//!   keeps its own ending.
//! * When a pod's sandbox is removed, [`leftovers`] lists the processes of
//!   its containers that still run: those in a container's cgroup (the
//!   kernel's list, `cgroup.procs`), and those the probes saw start in the
//!   pod that are still alive in one of its containers' mount namespaces.
//!   That check reads a few small files per container and runs once per pod.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ContainerRecord, EventKind, PodTrace, TraceEvent};

/// How a container's first process ended, as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelExit {
    /// Unix nanoseconds.
    pub time_ns: u64,
    pub pid: u32,
    /// The exit code, when the process exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// A process the kernel killed because its container ran out of memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    /// Unix nanoseconds.
    pub time_ns: u64,
    pub pid: u32,
    pub comm: String,
}

/// A process of a pod's container still running after the pod was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    pub container: String,
    pub container_id: String,
    pub pid: u32,
    pub comm: String,
}

impl ContainerRecord {
    /// The kernel's view in a few words: `exit code 0`, `killed by
    /// SIGKILL`, `OOM kill (dd, pid 42)`, `;`-joined; `None` while it runs
    /// (or when no probes saw it end).
    pub fn kernel_summary(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .oom_kills
            .iter()
            .map(|k| format!("OOM kill ({}, pid {})", k.comm, k.pid))
            .collect();
        match &self.exit {
            Some(KernelExit {
                signal: Some(signal),
                ..
            }) => parts.push(format!(
                "killed by {}",
                coxswain_ebpf::event::signal_name(*signal as u32)
            )),
            Some(KernelExit {
                exit_code: Some(code),
                ..
            }) => parts.push(format!("exit code {code}")),
            _ => {}
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Keeps what `event` (attributed to `container` of `trace`) says about how
/// a container ended.
pub(super) fn note(trace: &mut PodTrace, container: &str, event: &TraceEvent) {
    match event.kind {
        EventKind::Exit if event.pid == event.tgid => {
            let Some(record) = trace
                .containers
                .iter_mut()
                .find(|c| c.container == container && c.pid == event.tgid)
            else {
                return;
            };
            record.exit = Some(KernelExit {
                time_ns: event.time_ns,
                pid: event.tgid,
                exit_code: event.exit_code,
                signal: event.exit_signal,
            });
        }
        EventKind::OomKill => {
            // The newest instance of the container started before the kill
            // that still ran.
            let Some(record) = trace
                .containers
                .iter_mut()
                .filter(|c| c.container == container)
                .max_by_key(|c| {
                    (
                        c.registered_ns <= event.time_ns,
                        c.exit.is_none(),
                        c.registered_ns,
                    )
                })
            else {
                return;
            };
            record.oom_kills.push(OomKill {
                time_ns: event.time_ns,
                pid: event.pid,
                comm: event.comm.clone(),
            });
        }
        _ => {}
    }
}

/// The processes of `containers` that still run: listed in a container's
/// cgroup under `cgroup_root` (the cgroup2 mount, when there is one), or
/// among `tracked` (pids the probes saw start in the pod) and alive in a
/// container's mount namespace.
pub fn leftovers(
    cgroup_root: Option<&Path>,
    containers: &[ContainerRecord],
    tracked: &[u32],
) -> Vec<Leftover> {
    let mut found: Vec<Leftover> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |record: &ContainerRecord, pid: u32| {
        if seen.insert(pid) {
            found.push(Leftover {
                container: record.container.clone(),
                container_id: record.container_id.clone(),
                pid,
                comm: comm_of(pid),
            });
        }
    };
    for record in containers {
        let (Some(root), Some(path)) = (cgroup_root, record.cgroup_path.as_deref()) else {
            continue;
        };
        // The root cgroup (or none) says nothing about a container.
        if path.trim_matches('/').is_empty() {
            continue;
        }
        let procs = root.join(path.trim_start_matches('/')).join("cgroup.procs");
        let Ok(text) = std::fs::read_to_string(procs) else {
            continue;
        };
        for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            add(record, pid);
        }
    }
    for &pid in tracked {
        let Some(mnt) = mount_namespace_of(pid) else {
            continue;
        };
        // The sandbox's mount namespace is the pause process's own; the
        // runtime's processes live in the host's.
        if let Some(record) = containers
            .iter()
            .find(|c| c.namespaces.mnt != 0 && c.namespaces.mnt == mnt)
        {
            add(record, pid);
        }
    }
    found
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

fn mount_namespace_of(pid: u32) -> Option<u32> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    Some(meta.ino() as u32)
}
