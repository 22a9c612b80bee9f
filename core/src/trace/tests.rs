//! The hub's attribution, without a kernel: events are made by hand.

use super::*;

fn pod() -> PodRef {
    PodRef {
        uid: "u1".into(),
        namespace: "default".into(),
        name: "web".into(),
    }
}

fn event(kind: EventKind, tgid: u32, cgroup_id: u64, net: u32, mnt: u32) -> TraceEvent {
    TraceEvent {
        time_ns: tgid as u64,
        kind,
        pid: tgid,
        tgid,
        ppid: 1,
        comm: "x".into(),
        cgroup_id,
        namespaces: Namespaces {
            net,
            mnt,
            ..Default::default()
        },
        name: String::new(),
        namespace_flags: Vec::new(),
        other_pid: None,
        other_comm: None,
        signal: None,
        exit_code: None,
        exit_signal: None,
        result: None,
        hierarchy: None,
        pod: None,
        pod_uid: None,
        container: None,
    }
}

fn record(container: &str, pid: u32, cgroup: u64, net: u32, mnt: u32) -> ContainerRecord {
    ContainerRecord {
        container: container.into(),
        container_id: format!("id-{container}"),
        pid,
        cgroup_id: Some(cgroup),
        namespaces: Namespaces {
            net,
            mnt,
            ..Default::default()
        },
        registered_ns: 1,
    }
}

#[test]
fn events_before_registration_are_held_then_attributed() {
    let hub = TraceHub::detached("test");
    // runc's child forks the container's first process, which execs.
    let mut fork = event(EventKind::Fork, 100, 7, 50, 60);
    fork.other_pid = Some(99);
    fork.other_comm = Some("runc:[1:CHILD]".into());
    hub.ingest(fork);
    let mut unshare = event(EventKind::Unshare, 99, 1, 50, 60);
    unshare.namespace_flags = vec!["net".into()];
    hub.ingest(unshare);
    hub.ingest(event(EventKind::Exec, 100, 7, 50, 60));
    assert!(hub.pod("default", "web").is_none());

    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    let trace = hub.pod("default", "web").unwrap();
    let kinds: Vec<EventKind> = trace.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Unshare, EventKind::Fork, EventKind::Exec]
    );
    assert!(
        trace
            .events
            .iter()
            .all(|e| e.container.as_deref() == Some("POD"))
    );
    assert_eq!(trace.events[0].pod.as_deref(), Some("default/web"));
}

#[test]
fn an_app_container_is_told_apart_from_the_sandbox_sharing_its_netns() {
    let hub = TraceHub::detached("test");
    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    hub.add_container(&pod(), record("app", 200, 8, 50, 61));
    hub.ingest(event(EventKind::Exec, 201, 8, 50, 61));
    // runc joining the pod's network namespace, before the app's cgroup.
    hub.ingest(event(EventKind::Setns, 300, 1, 50, 1));
    let trace = hub.pod("default", "web").unwrap();
    let owners: Vec<&str> = trace
        .events
        .iter()
        .map(|e| e.container.as_deref().unwrap())
        .collect();
    assert_eq!(owners, ["app", "POD"]);
    assert_eq!(trace.containers.len(), 2);
}

#[test]
fn unclaimed_events_go_to_the_node_stream_unattributed_after_the_wait() {
    let hub = TraceHub::detached("test");
    let (_, mut live) = hub.subscribe();
    hub.ingest(event(EventKind::Exec, 5, 1, 2, 3));
    assert!(live.try_recv().is_err());
    let later = Instant::now() + PENDING_FOR;
    let mut state = hub.state.lock().unwrap();
    hub.expire(&mut state, later);
    drop(state);
    let event = live.try_recv().unwrap();
    assert_eq!(event.pod, None);
}

#[test]
fn a_removed_container_stops_claiming_its_namespaces() {
    let hub = TraceHub::detached("test");
    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    hub.container_removed("id-POD");
    hub.ingest(event(EventKind::Exec, 400, 9, 50, 60));
    assert_eq!(hub.pod("default", "web").unwrap().events.len(), 0);
}

#[test]
fn the_chrome_trace_has_a_row_per_container_and_a_span_per_process() {
    let mut exec = event(EventKind::Exec, 10, 7, 1, 1);
    exec.container = Some("app".into());
    exec.name = "/web".into();
    let mut exit = event(EventKind::Exit, 10, 7, 1, 1);
    exit.time_ns = 2_000;
    exit.container = Some("app".into());
    exit.exit_code = Some(0);
    let trace = export::chrome_trace("default/web", &[exec, exit]);
    let events = trace["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X" && e["name"] == "/web"));
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "M" && e["args"]["name"] == "app")
    );
    assert_eq!(events.iter().filter(|e| e["ph"] == "i").count(), 2);
}
