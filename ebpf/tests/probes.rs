//! The probes on the real kernel: a process put in a watched cgroup
//! unshares a network namespace and exits, and its events come back.
//!
//! Needs root, kernel BTF and a cgroup2 mount; runs only with
//! `COXSWAIN_E2E=1` (`cargo xtask test` sets it).

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use coxswain_ebpf::{EventKind, Probes, TraceEvent, host};

fn enabled() -> bool {
    std::env::var("COXSWAIN_E2E").is_ok_and(|v| v == "1")
}

#[tokio::test]
async fn a_process_in_a_watched_cgroup_reports_exec_unshare_and_exit() {
    if !enabled() {
        eprintln!("skipped: set COXSWAIN_E2E=1 (root, real kernel)");
        return;
    }
    let probes = Probes::load().expect("loading the probes");
    assert!(
        probes.missing().is_empty(),
        "missing: {:?}",
        probes.missing()
    );
    let control = probes.control();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let reader = tokio::spawn(probes.run(tx));

    let mount = host::cgroup2_mount().expect("a cgroup2 mount");
    let dir = mount.join(format!("coxswain-probe-test-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("creating a test cgroup");
    let cgroup_id = std::fs::metadata(&dir).unwrap().ino();
    control.watch_cgroup(cgroup_id).unwrap();

    // The shell moves itself into the cgroup, then becomes `unshare`.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --net --mount sh -c 'exit 3'",
        dir.display()
    );
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert_eq!(status.code(), Some(3));

    let mut seen: Vec<TraceEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(event)) if event.cgroup_id == cgroup_id => seen.push(event),
            Ok(Some(_)) => {}
            _ => {
                if seen
                    .iter()
                    .any(|e| e.kind == EventKind::Exit && e.exit_code == Some(3))
                {
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_dir(&dir);
    drop(rx);
    let _ = reader.await;

    let describe: Vec<String> = seen.iter().map(TraceEvent::summary).collect();
    let execs: Vec<&str> = seen
        .iter()
        .filter(|e| e.kind == EventKind::Exec)
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        execs.iter().any(|n| n.ends_with("unshare")),
        "{describe:#?}"
    );
    let unshare = seen
        .iter()
        .find(|e| e.kind == EventKind::Unshare)
        .unwrap_or_else(|| panic!("no unshare event: {describe:#?}"));
    assert!(unshare.namespace_flags.contains(&"net".to_owned()));
    assert!(unshare.creates_namespaces());
    // The shell after unshare lives in the new network namespace.
    let exit = seen
        .iter()
        .find(|e| e.kind == EventKind::Exit && e.exit_code == Some(3))
        .unwrap_or_else(|| panic!("no exit 3: {describe:#?}"));
    assert_eq!(exit.namespaces.net, unshare.namespaces.net);
    let own = host::namespaces_of_pid(std::process::id()).unwrap();
    assert_ne!(exit.namespaces.net, own.net);
    assert_ne!(exit.namespaces.mnt, own.mnt);
    assert!(
        exit.time_ns > 1_600_000_000_000_000_000,
        "unix time: {}",
        exit.time_ns
    );
    assert_eq!(control.dropped(), 0);
}
