//! `probe_overhead`: what the eBPF probes cost a traced pod, run by `cargo
//! xtask bench probes` (as root, after the images are built).
//!
//! Starts a pod's worth of containers with Docker (the pause sandbox, and a
//! busybox container in its network and IPC namespaces, as the kubelet
//! makes them; images are local, Docker never pulls), then times a loop of
//! short processes run inside the busybox container by `docker exec`, in
//! alternating rounds without and with the probes loaded and watching the
//! container, as the node agent watches it. With the probes, every event is
//! read from the ring buffer and attributed by a [`TraceHub`], so the user
//! space side of the cost is in the figure too. Prints each round, the
//! median of each side, their ratio, the events read and the ring buffer's
//! drop count; the last line is
//! `probes: off=<s> on=<s> ratio=<r> execs=<n>/<iterations> dropped=<d>`.
//! Removes its containers whatever happened.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coxswain_core::kubelet::runtime::{PodRef, SANDBOX_NAME};
use coxswain_core::trace::{ContainerRecord, EventKind, Probes, TraceHub, host};
use tokio::sync::mpsc;

const PAUSE_IMAGE: &str = "coxswain/pause:0.1";
const BUSYBOX_IMAGE: &str = "coxswain/busybox:0.1";
/// The label every container of this benchmark carries.
const LABEL: &str = "coxswain.io/bench=probes";

struct Options {
    iterations: u32,
    rounds: u32,
}

fn options() -> Options {
    let mut options = Options {
        iterations: 10_000,
        rounds: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--iterations", Some(v)) => options.iterations = v,
            ("--rounds", Some(v)) => options.rounds = v,
            _ => {
                eprintln!("usage: probe_overhead [--iterations N] [--rounds N]");
                std::process::exit(2);
            }
        }
    }
    options
}

/// The benchmark's pod: two containers, removed when dropped.
struct Pod {
    sandbox: String,
    busybox: String,
}

impl Pod {
    fn start() -> Pod {
        let suffix = std::process::id();
        let sandbox = format!("coxswain-bench-pause-{suffix}");
        let busybox = format!("coxswain-bench-busybox-{suffix}");
        let pod = Pod {
            sandbox: sandbox.clone(),
            busybox: busybox.clone(),
        };
        docker(&[
            "run",
            "-d",
            "--pull",
            "never",
            "--label",
            LABEL,
            "--name",
            &sandbox,
            "--ipc",
            "shareable",
            PAUSE_IMAGE,
        ]);
        let joined = format!("container:{sandbox}");
        docker(&[
            "run",
            "-d",
            "--pull",
            "never",
            "--label",
            LABEL,
            "--name",
            &busybox,
            "--network",
            &joined,
            "--ipc",
            &joined,
            BUSYBOX_IMAGE,
            "sleep",
            "86400",
        ]);
        pod
    }

    fn pid(name: &str) -> u32 {
        docker(&["inspect", "-f", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .expect("a container pid")
    }

    /// Runs `iterations` short processes in the busybox container; the wall
    /// time of the whole `docker exec`.
    fn run_loop(&self, iterations: u32) -> Duration {
        // `/bin/busybox true` by its path: the shell forks and executes it
        // (a bare `true` would be the shell's builtin).
        let script =
            format!("i=0; while [ $i -lt {iterations} ]; do /bin/busybox true; i=$((i+1)); done");
        let started = Instant::now();
        docker(&["exec", &self.busybox, "sh", "-c", &script]);
        started.elapsed()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.busybox, &self.sandbox])
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    if !out.status.success() {
        panic!(
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What one round with the probes read.
struct Traced {
    elapsed: Duration,
    events: u64,
    execs: u64,
    dropped: u64,
}

/// One round with the probes loaded, watching the pod as the kubelet's
/// registration does, their events attributed by a hub; unloaded after.
async fn traced_round(pod: &Pod, iterations: u32) -> Traced {
    let probes = Probes::load().unwrap_or_else(|error| {
        panic!("the probes do not load here (root, BTF and clang needed): {error}")
    });
    let control = probes.control();
    let hub = TraceHub::detached("benchmark");
    let pod_ref = PodRef {
        uid: "bench".into(),
        namespace: "bench".into(),
        name: "probes".into(),
    };
    for (container, name) in [(SANDBOX_NAME, &pod.sandbox), ("busybox", &pod.busybox)] {
        let pid = Pod::pid(name);
        let cgroup_id = host::cgroup_id_of_pid(pid);
        let namespaces = host::namespaces_of_pid(pid).expect("the container's namespaces");
        if let Some(id) = cgroup_id {
            control.watch_cgroup(id).expect("watching the cgroup");
        }
        for inode in [namespaces.mnt, namespaces.pid] {
            control
                .watch_namespace(inode)
                .expect("watching a namespace");
        }
        hub.add_container(
            &pod_ref,
            ContainerRecord {
                container: container.into(),
                container_id: name.clone(),
                pid,
                cgroup_id,
                namespaces,
                registered_ns: 0,
                cgroup_path: host::cgroup_path_of_pid(pid),
                exit: None,
                oom_kills: Vec::new(),
            },
        );
    }

    let (tx, mut rx) = mpsc::channel(8192);
    let reader = tokio::spawn(probes.run(tx));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let consumer = {
        let counts = counts.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                counts.0.fetch_add(1, Ordering::Relaxed);
                if event.kind == EventKind::Exec && event.name == "/bin/busybox" {
                    counts.1.fetch_add(1, Ordering::Relaxed);
                }
                hub.ingest(event);
            }
        })
    };

    let elapsed = tokio::task::block_in_place(|| pod.run_loop(iterations));
    // Let the reader drain what is left (it drains every 50 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped = control.dropped();
    consumer.abort();
    let _ = consumer.await;
    // The receiver is gone: the reader returns and detaches the probes.
    let _ = reader.await;
    Traced {
        elapsed,
        events: counts.0.load(Ordering::Relaxed),
        execs: counts.1.load(Ordering::Relaxed),
        dropped,
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    let pod = Pod::start();
    println!(
        "probe overhead: {} short processes per round in a traced pod, {} rounds each way",
        options.iterations, options.rounds
    );
    // A warm-up round: page cache, Docker's exec path.
    tokio::task::block_in_place(|| pod.run_loop(options.iterations / 10));

    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut events, mut execs, mut dropped) = (0, u64::MAX, 0);
    for round in 1..=options.rounds {
        let plain = tokio::task::block_in_place(|| pod.run_loop(options.iterations));
        println!("round {round}: probes off {:>8.3} s", plain.as_secs_f64());
        off.push(plain);
        let traced = traced_round(&pod, options.iterations).await;
        println!(
            "round {round}: probes on  {:>8.3} s  events={} execs={} dropped={}",
            traced.elapsed.as_secs_f64(),
            traced.events,
            traced.execs,
            traced.dropped
        );
        on.push(traced.elapsed);
        events += traced.events;
        execs = execs.min(traced.execs);
        dropped += traced.dropped;
    }
    drop(pod);

    let (off, on) = (median(off), median(on));
    let ratio = on.as_secs_f64() / off.as_secs_f64();
    println!(
        "target: under 5% slower ({}), zero events lost ({})",
        if ratio < 1.05 { "met" } else { "missed" },
        if dropped == 0 { "met" } else { "missed" }
    );
    println!(
        "probes: off={:.3}s on={:.3}s ratio={ratio:.3} execs={execs}/{} events={events} \
         dropped={dropped}",
        off.as_secs_f64(),
        on.as_secs_f64(),
        options.iterations
    );
}
