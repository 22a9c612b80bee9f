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
        cgroup_path: None,
        exit: None,
        oom_kills: Vec::new(),
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
    // runc joining the pod's network namespace for a container nobody
    // registers: held, then given to the sandbox.
    hub.ingest(event(EventKind::Setns, 300, 1, 50, 1));
    assert_eq!(hub.pod("default", "web").unwrap().events.len(), 1);
    let later = Instant::now() + PENDING_FOR;
    hub.expire(&mut hub.state.lock().unwrap(), later);
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
fn a_containers_setup_in_the_pods_netns_is_its_own_not_the_sandboxs() {
    let hub = TraceHub::detached("test");
    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    // runc's child joins the pod's netns, forks the app's first process,
    // which execs; all before the app container is registered.
    let mut setns = event(EventKind::Setns, 210, 1, 50, 1);
    setns.namespace_flags = vec!["net".into()];
    hub.ingest(setns);
    let mut fork = event(EventKind::Fork, 211, 1, 50, 61);
    fork.other_pid = Some(210);
    fork.other_comm = Some("runc:[1:CHILD]".into());
    hub.ingest(fork);
    hub.ingest(event(EventKind::Exec, 211, 1, 50, 61));
    hub.add_container(&pod(), record("app", 211, 8, 50, 61));

    let trace = hub.pod("default", "web").unwrap();
    let kinds: Vec<(EventKind, &str)> = trace
        .events
        .iter()
        .map(|e| (e.kind, e.container.as_deref().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Setns, "app"),
            (EventKind::Fork, "app"),
            (EventKind::Exec, "app")
        ]
    );
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

#[test]
fn the_kernel_record_of_a_containers_end_is_kept_next_to_it() {
    let hub = TraceHub::detached("test");
    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    hub.add_container(&pod(), record("hog", 200, 8, 50, 61));
    // A child of the container's process is OOM killed; then the first
    // process itself dies of SIGKILL.
    let mut oom = event(EventKind::OomKill, 201, 8, 50, 61);
    oom.comm = "dd".into();
    oom.signal = Some(9);
    hub.ingest(oom);
    let mut child_exit = event(EventKind::Exit, 201, 8, 50, 61);
    child_exit.exit_signal = Some(9);
    hub.ingest(child_exit);
    let mut exit = event(EventKind::Exit, 200, 8, 50, 61);
    exit.time_ns = 500;
    exit.exit_signal = Some(9);
    hub.ingest(exit);

    let trace = hub.pod("default", "web").unwrap();
    let hog = trace
        .containers
        .iter()
        .find(|c| c.container == "hog")
        .unwrap();
    let ended = hog.exit.clone().unwrap();
    assert_eq!(
        (ended.pid, ended.signal, ended.exit_code),
        (200, Some(9), None)
    );
    assert_eq!(hog.oom_kills.len(), 1);
    assert_eq!(
        hog.kernel_summary().unwrap(),
        "OOM kill (dd, pid 201); killed by SIGKILL"
    );
    let sandbox = trace
        .containers
        .iter()
        .find(|c| c.container == "POD")
        .unwrap();
    assert_eq!(sandbox.kernel_summary(), None);
}

#[test]
fn removing_the_sandbox_marks_the_pod_gone_and_names_its_uid() {
    let hub = TraceHub::detached("test");
    hub.add_container(&pod(), record(SANDBOX_NAME, 100, 7, 50, 60));
    hub.add_container(&pod(), record("app", 200, 8, 50, 61));
    assert_eq!(hub.container_removed("id-app"), None);
    assert!(hub.pod("default", "web").unwrap().removed_ns.is_none());
    assert_eq!(hub.container_removed("id-POD").as_deref(), Some("u1"));
    assert!(hub.pod("default", "web").unwrap().removed_ns.is_some());
    // Made-up pids and a cgroup path that is not there: nothing is left.
    assert!(hub.check_leftovers("u1").is_empty());
}

#[test]
fn processes_still_in_a_removed_containers_cgroup_are_leftovers() {
    // A directory standing in for the cgroup2 mount, whose container cgroup
    // still lists this (running) test process.
    let root = std::env::temp_dir().join(format!("coxswain-leftovers-{}", std::process::id()));
    let cgroup = root.join("system.slice/docker-abc.scope");
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(
        cgroup.join("cgroup.procs"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let mut app = record("app", 200, 8, 50, 61);
    app.cgroup_path = Some("/system.slice/docker-abc.scope".into());
    let gone = record("old", 300, 9, 50, 62);

    let found = kernel::leftovers(Some(&root), &[app, gone], &[]);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].container, "app");
    assert_eq!(found[0].pid, std::process::id());
    assert!(!found[0].comm.is_empty());
}

#[test]
fn a_tracked_process_alive_in_a_containers_mount_namespace_is_a_leftover() {
    // This test process stands for a container's process: the container
    // record carries this process's mount namespace.
    let me = std::process::id();
    let mut app = record("app", 200, 8, 50, 61);
    app.namespaces = coxswain_ebpf::host::namespaces_of_pid(me).unwrap();
    let found = kernel::leftovers(None, &[app.clone()], &[me, u32::MAX - 1]);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].pid, found[0].container.as_str()), (me, "app"));

    app.namespaces.mnt = 1;
    assert!(kernel::leftovers(None, &[app], &[me]).is_empty());
}

#[tokio::test]
async fn the_agent_serves_the_viewer_page_to_token_holders_only() {
    use tower::ServiceExt;
    let routes = agent::routes(TraceHub::detached("test"), "secret", "n1");
    let request = |token: Option<&str>| {
        let mut builder = http::Request::get("/trace/view/default/web");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(axum::body::Body::empty()).unwrap()
    };
    let refused = routes.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(refused.status(), http::StatusCode::UNAUTHORIZED);

    let page = routes.oneshot(request(Some("secret"))).await.unwrap();
    assert_eq!(page.status(), http::StatusCode::OK);
    let kind = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    let body = http_body_util::BodyExt::collect(page.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8_lossy(&body);
    assert!(html.contains("data-step"), "the page draws waterfall steps");
    // No external assets: nothing is loaded from another origin.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}
