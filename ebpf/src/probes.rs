//! Loading the probes with aya, filling their maps, and reading their ring
//! buffer.
//!
//! [`Probes::load`] either attaches the probes or says why it cannot (no
//! probes in this build, no BTF, no privileges); callers log that once and
//! go on without kernel events. Probes a kernel lacks (an older
//! `mark_victim`, say) are skipped one by one and listed by
//! [`Probes::missing`]. Everything is detached when the [`Probes`] value
//! and the reader are dropped (nothing is pinned).
//!
//! The kernel side submits events without waking the reader until 64 KiB
//! are waiting; [`Probes::run`] therefore also drains every 50 ms. Events
//! lost to a full ring buffer are counted per CPU: [`ProbeControl::dropped`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::event::TraceEvent;

/// The compiled probes, or nothing when clang or libbpf-dev was missing.
const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trace.bpf.o"));

/// How often the reader drains the ring buffer without being woken.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Program name in `trace.bpf.c`, and the BTF tracepoint it attaches to.
const PROGRAMS: &[(&str, &str)] = &[
    ("on_exec", "sched_process_exec"),
    ("on_fork", "sched_process_fork"),
    ("on_exit", "sched_process_exit"),
    ("on_sys_exit", "sys_exit"),
    ("on_cgroup_mkdir", "cgroup_mkdir"),
    ("on_cgroup_rmdir", "cgroup_rmdir"),
    ("on_signal", "signal_generate"),
    ("on_oom_victim", "mark_victim"),
];

/// Why the probes are not running.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("eBPF probes were not built: clang/libbpf-dev missing")]
    NotBuilt,
    #[error("kernel BTF is not available (/sys/kernel/btf/vmlinux)")]
    Btf(#[source] aya::BtfError),
    #[error("loading the eBPF object failed (needs root or CAP_BPF and CAP_PERFMON)")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF map {0} is missing or of another type")]
    Map(&'static str),
    #[error("no eBPF probe could be attached")]
    NothingAttached(#[source] aya::programs::ProgramError),
    #[error("updating eBPF map {map} failed")]
    Update {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("watching the ring buffer failed")]
    Poll(#[source] std::io::Error),
}

/// Loaded and attached probes, until [`Probes::run`] consumes them.
pub struct Probes {
    /// Owns the programs: dropping it detaches them.
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    control: ProbeControl,
    /// Probes not attached, with why.
    missing: Vec<(&'static str, String)>,
    boot_offset_ns: i64,
}

/// The maps user space writes, shared by every clone.
#[derive(Clone)]
pub struct ProbeControl {
    maps: Arc<Mutex<ControlMaps>>,
}

struct ControlMaps {
    /// cgroup v2 id -> 1.
    cgroups: HashMap<MapData, u64, u8>,
    /// namespace inode -> 1.
    namespaces: HashMap<MapData, u32, u8>,
    /// [0]: creations under way.
    window: Array<MapData, u32>,
    /// Events lost, per CPU.
    dropped: PerCpuArray<MapData, u64>,
}

impl Probes {
    /// Loads the probes with the kernel's BTF and attaches every one the
    /// kernel has.
    pub fn load() -> Result<Probes, ProbeError> {
        if OBJECT.is_empty() {
            return Err(ProbeError::NotBuilt);
        }
        let btf = Btf::from_sys_fs().map_err(ProbeError::Btf)?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .load(OBJECT)
            .map_err(ProbeError::Load)?;

        let mut missing = Vec::new();
        let mut last_error = None;
        for (name, tracepoint) in PROGRAMS {
            if let Err(error) = attach(&mut ebpf, name, tracepoint, &btf) {
                let reason = match &error {
                    aya::programs::ProgramError::LoadError {
                        io_error,
                        verifier_log,
                    } => {
                        format!("{io_error}: {verifier_log}")
                    }
                    other => other.to_string(),
                };
                tracing::debug!(program = name, %reason, "an eBPF probe could not be attached");
                missing.push((*name, reason));
                last_error = Some(error);
            }
        }
        if missing.len() == PROGRAMS.len() {
            return Err(ProbeError::NothingAttached(
                last_error.expect("an error per probe"),
            ));
        }

        let ring =
            RingBuf::try_from(take(&mut ebpf, "events")?).map_err(|_| ProbeError::Map("events"))?;
        let maps = ControlMaps {
            cgroups: HashMap::try_from(take(&mut ebpf, "pod_cgroups")?)
                .map_err(|_| ProbeError::Map("pod_cgroups"))?,
            namespaces: HashMap::try_from(take(&mut ebpf, "pod_namespaces")?)
                .map_err(|_| ProbeError::Map("pod_namespaces"))?,
            window: Array::try_from(take(&mut ebpf, "runtime_window")?)
                .map_err(|_| ProbeError::Map("runtime_window"))?,
            dropped: PerCpuArray::try_from(take(&mut ebpf, "dropped")?)
                .map_err(|_| ProbeError::Map("dropped"))?,
        };
        Ok(Probes {
            ebpf,
            ring,
            control: ProbeControl {
                maps: Arc::new(Mutex::new(maps)),
            },
            missing,
            boot_offset_ns: boot_offset_ns(),
        })
    }

    /// A handle on the filter maps, for the kubelet.
    pub fn control(&self) -> ProbeControl {
        self.control.clone()
    }

    /// The probes this kernel did not accept, with the reason.
    pub fn missing(&self) -> &[(&'static str, String)] {
        &self.missing
    }

    /// Reads events into `events` until its receiver is dropped, which
    /// detaches the probes.
    pub async fn run(self, events: mpsc::Sender<TraceEvent>) -> Result<(), ProbeError> {
        let Probes {
            ebpf,
            ring,
            boot_offset_ns,
            ..
        } = self;
        // SAFETY: the ring buffer owns its map's file descriptor, which stays
        // open and the same until the AsyncFd (and so the ring) is dropped.
        let registered =
            unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
        let mut ring = registered.map_err(|e| ProbeError::Poll(e.into()))?;
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                ready = ring.readable_mut() => {
                    let mut guard = ready.map_err(ProbeError::Poll)?;
                    drain(guard.get_inner_mut(), boot_offset_ns, &mut batch);
                    guard.clear_ready();
                }
                _ = tokio::time::sleep(DRAIN_INTERVAL) => {
                    drain(ring.get_mut(), boot_offset_ns, &mut batch);
                }
                _ = events.closed() => break,
            }
            for event in batch.drain(..) {
                if events.send(event).await.is_err() {
                    drop(ebpf);
                    return Ok(());
                }
            }
        }
        drop(ebpf);
        Ok(())
    }
}

impl ProbeControl {
    /// Makes tasks in cgroup `id` (cgroup v2) produce events.
    pub fn watch_cgroup(&self, id: u64) -> Result<(), ProbeError> {
        let mut maps = self.maps.lock().expect("probe maps lock");
        maps.cgroups
            .insert(id, 1, 0)
            .map_err(|source| ProbeError::Update {
                map: "pod_cgroups",
                source,
            })
    }

    /// Stops watching cgroup `id`; forgetting an unknown one succeeds.
    pub fn forget_cgroup(&self, id: u64) {
        let _ = self
            .maps
            .lock()
            .expect("probe maps lock")
            .cgroups
            .remove(&id);
    }

    /// Makes tasks in the namespace with inode `inode` produce events.
    pub fn watch_namespace(&self, inode: u32) -> Result<(), ProbeError> {
        let mut maps = self.maps.lock().expect("probe maps lock");
        maps.namespaces
            .insert(inode, 1, 0)
            .map_err(|source| ProbeError::Update {
                map: "pod_namespaces",
                source,
            })
    }

    /// Stops watching a namespace; inode numbers are reused, so this must
    /// follow the namespace's end.
    pub fn forget_namespace(&self, inode: u32) {
        let _ = self
            .maps
            .lock()
            .expect("probe maps lock")
            .namespaces
            .remove(&inode);
    }

    /// Traces the runtime's own processes (`runc...`) until the guard is
    /// dropped: hold it while a sandbox or a container is being created.
    pub fn runtime_window(&self) -> RuntimeWindow {
        self.add_to_window(1);
        RuntimeWindow {
            control: self.clone(),
        }
    }

    fn add_to_window(&self, delta: i64) {
        let mut maps = self.maps.lock().expect("probe maps lock");
        let open = maps.window.get(&0, 0).unwrap_or(0) as i64;
        let next = (open + delta).max(0) as u32;
        if let Err(error) = maps.window.set(0, next, 0) {
            tracing::warn!(%error, "updating the eBPF runtime window failed");
        }
    }

    /// Events lost because the ring buffer was full, since load.
    pub fn dropped(&self) -> u64 {
        let maps = self.maps.lock().expect("probe maps lock");
        maps.dropped
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }
}

/// Keeps the runtime window open; see [`ProbeControl::runtime_window`].
pub struct RuntimeWindow {
    control: ProbeControl,
}

impl Drop for RuntimeWindow {
    fn drop(&mut self) {
        self.control.add_to_window(-1);
    }
}

fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    tracepoint: &str,
    btf: &Btf,
) -> Result<(), aya::programs::ProgramError> {
    let program = ebpf
        .program_mut(name)
        .ok_or(aya::programs::ProgramError::UnexpectedProgramType)?;
    let program: &mut BtfTracePoint = program.try_into()?;
    program.load(tracepoint, btf)?;
    program.attach()?;
    Ok(())
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::Map(name))
}

/// Decodes every record waiting in the ring buffer into `batch`.
fn drain(ring: &mut RingBuf<MapData>, boot_offset_ns: i64, batch: &mut Vec<TraceEvent>) {
    while let Some(record) = ring.next() {
        match TraceEvent::decode(&record, boot_offset_ns) {
            Ok(event) => batch.push(event),
            Err(error) => tracing::warn!(%error, "an eBPF event could not be decoded"),
        }
    }
}

/// Unix time minus boot time, in nanoseconds.
fn boot_offset_ns() -> i64 {
    let read = |clock| {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec for the call's duration.
        unsafe { libc::clock_gettime(clock, &mut now) };
        now.tv_sec * 1_000_000_000 + now.tv_nsec
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_BOOTTIME)
}
