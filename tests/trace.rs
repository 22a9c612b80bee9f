//! eBPF pod tracing end to end: the walk-through's pod on a real kernel and
//! real Docker, asserted from `coxswain trace --output json`.
//!
//! Needs root, kernel BTF and probes built with clang; runs under `cargo
//! xtask test` (COXSWAIN_E2E=1).

mod support;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use coxswain_core::trace::{EventKind, TraceEvent};
use support::{Cluster, docker_containers, skip_reason};

/// `coxswain trace --output json` with `args`, parsed; `None` when it fails
/// (say, before the pod exists), with the reason on stderr.
fn trace(cluster: &Cluster, args: &[&str]) -> Option<Vec<TraceEvent>> {
    let bin = std::env::var("COXSWAIN_BIN").expect("COXSWAIN_BIN is set");
    let out = Command::new(bin)
        .arg("trace")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--output", "json"])
        .args(args)
        .output()
        .expect("running coxswain trace");
    if !out.status.success() {
        eprintln!(
            "coxswain trace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one event per line"))
        .collect();
    Some(events)
}

/// The exec of a container's own program, not of the runtime re-executing
/// itself (`/proc/self/exe init`).
fn program_exec(event: &TraceEvent) -> bool {
    event.kind == EventKind::Exec
        && event.name != "/proc/self/exe"
        && !event.name.ends_with("/runc")
        && !event.comm.starts_with("runc")
}

fn own_namespace(name: &str) -> u32 {
    std::fs::metadata(format!("/proc/self/ns/{name}"))
        .unwrap()
        .ino() as u32
}

fn of<'a>(events: &'a [TraceEvent], container: &str) -> Vec<&'a TraceEvent> {
    events
        .iter()
        .filter(|e| e.container.as_deref() == Some(container))
        .collect()
}

#[test]
fn the_kernel_shows_the_walk_through_pods_namespaces_signals_and_oom_kill() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("trace");
    let node = cluster.node.clone();
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/01-simple-web-pod.yml");
    std::fs::copy(&manifest, cluster.manifests().join("01-simple-web-pod.yml")).unwrap();
    let pod = format!("default/web-{node}");

    // The sandbox's process creates the pod's network namespace; the app
    // container's process runs in it, in mount and pid namespaces of its own.
    let (netns, events) = cluster.wait_for("the pod's namespace events", 60, || {
        let events = trace(&cluster, &["--pod", &pod])?;
        let created = of(&events, "POD")
            .into_iter()
            .find(|e| e.creates_namespaces() && e.namespace_flags.iter().any(|f| f == "net"))?;
        let netns = created.namespaces.net;
        of(&events, "POD")
            .iter()
            .find(|e| program_exec(e) && e.namespaces.net == netns)?;
        of(&events, "web").iter().find(|e| program_exec(e))?;
        Some((netns, events))
    });
    assert_ne!(netns, own_namespace("net"));
    let pause = of(&events, "POD")
        .into_iter()
        .rfind(|e| program_exec(e))
        .unwrap();
    let app = of(&events, "web")
        .into_iter()
        .rfind(|e| program_exec(e))
        .unwrap();
    let listing: Vec<String> = events
        .iter()
        .map(|e| format!("{:?} {}", e.container, e.summary()))
        .collect();
    assert_eq!(
        app.namespaces.net, netns,
        "the app joins the sandbox's netns: {listing:#?}"
    );
    assert_ne!(app.namespaces.mnt, pause.namespaces.mnt);
    assert_ne!(app.namespaces.mnt, own_namespace("mnt"));
    assert_ne!(app.namespaces.pid, pause.namespaces.pid);
    assert_ne!(app.namespaces.pid, own_namespace("pid"));
    assert!(
        events
            .iter()
            .all(|e| e.pod.as_deref() == Some(pod.as_str())),
        "every event of the pod's trace is attributed to it"
    );

    // `docker stop` of the app container: SIGTERM, then its exit.
    let selector = format!("label=io.kubernetes.pod.name=web-{node}");
    let web = docker_containers(&selector)
        .into_iter()
        .find(|c| c.state == "running" && c.label("io.kubernetes.container.name") == Some("web"))
        .expect("the app container runs");
    let stopped = Command::new("docker")
        .args(["stop", "-t", "5", &web.id])
        .status()
        .unwrap();
    assert!(stopped.success());
    let app_pids: HashSet<u32> = of(&events, "web").iter().map(|e| e.tgid).collect();
    cluster.wait_for("SIGTERM and exit events of the app", 30, || {
        let events = trace(&cluster, &["--pod", &pod])?;
        let web = of(&events, "web");
        let term = web
            .iter()
            .find(|e| e.kind == EventKind::Signal && e.signal == Some(15))?;
        web.iter().find(|e| {
            e.kind == EventKind::Exit && e.tgid == term.tgid && app_pids.contains(&e.tgid)
        })?;
        Some(())
    });

    // A container over its memory limit: the kernel's OOM kill.
    let oom = cluster.data_dir.join("oom.yml");
    std::fs::write(
        &oom,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hog\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: hog\n    image: coxswain/busybox:0.1\n    command: [\"sh\", \"-c\", \
         \"sleep 3; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 3600\"]\n    resources:\n      \
         limits:\n        memory: 16Mi\n",
    )
    .unwrap();
    cluster.kubectl_ok(&["apply", "-f", oom.to_str().unwrap()]);
    let killed = cluster.wait_for("an OOM kill event", 60, || {
        let events = trace(&cluster, &["--pod", "default/hog"])?;
        events
            .into_iter()
            .find(|e| e.kind == EventKind::OomKill && e.container.as_deref() == Some("hog"))
    });
    assert_eq!(killed.comm, "dd");
    cluster.kubectl_ok(&["delete", "pod", "hog", "--grace-period=0"]);
}
