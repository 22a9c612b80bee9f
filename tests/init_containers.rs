//! Init containers end to end, with the real kubectl and the real Docker
//! Engine: an init container prepares a file in an emptyDir and the app
//! container, started only after it completed, reads it; `kubectl get pods`
//! shows `Init:0/1` then `Running`, and `kubectl logs -c` reads the init
//! container's log. A failing init container fails a `Never` pod
//! (`Init:Error`) and crash-loops in an `Always` one
//! (`Init:CrashLoopBackOff`), and the app container never starts.

mod support;

use support::{Cluster, skip_reason};

const PREPARED: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: prepared
spec:
  volumes:
  - name: shared
    emptyDir: {}
  initContainers:
  - name: init
    image: coxswain/busybox:0.1
    command: [sh, -c, 'echo written-by-init > /shared/greeting; echo init done; sleep 2']
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: app
    image: coxswain/busybox:0.1
    command: [sh, -c, 'cat /shared/greeting; sleep 3600']
    volumeMounts: [{name: shared, mountPath: /shared}]
";

/// A pod whose init container fails, with this restart policy.
fn failing(name: &str, restart_policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
         restartPolicy: {restart_policy}\n  initContainers:\n  - name: init\n    \
         image: coxswain/busybox:0.1\n    command: [sh, -c, 'echo failing; exit 3']\n  \
         containers:\n  - name: app\n    image: coxswain/busybox:0.1\n    \
         command: [sleep, '3600']\n"
    )
}

/// The STATUS column of pod `name` in `kubectl get pods`.
fn pod_status(cluster: &Cluster, name: &str) -> Option<String> {
    let pods = cluster.kubectl_ok(&["get", "pods"]);
    pods.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|row| row.first() == Some(&name))
        .and_then(|row| row.get(2).map(|s| (*s).to_owned()))
}

#[test]
fn init_containers_complete_before_the_app_container_starts() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("init");
    let manifest = cluster.data_dir.join("prepared.yml");
    std::fs::write(&manifest, PREPARED).unwrap();
    cluster.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);

    cluster.wait_for("STATUS Init:0/1", 60, || {
        (pod_status(&cluster, "prepared")? == "Init:0/1").then_some(())
    });
    cluster.wait_for("STATUS Running", 60, || {
        (pod_status(&cluster, "prepared")? == "Running").then_some(())
    });

    let init_log = cluster.kubectl_ok(&["logs", "prepared", "-c", "init"]);
    assert!(init_log.contains("init done"), "{init_log}");
    let app_log = cluster.wait_for("the app's log", 30, || {
        let log = cluster.kubectl_ok(&["logs", "prepared", "-c", "app"]);
        log.contains("written-by-init").then_some(log)
    });
    assert_eq!(app_log.trim(), "written-by-init");

    let jsonpath = |path: &str| {
        let arg = format!("jsonpath={path}");
        cluster.kubectl_ok(&["get", "pod", "prepared", "-o", &arg])
    };
    let init_state = "{.status.initContainerStatuses[0].state.terminated.reason}";
    assert_eq!(jsonpath(init_state), "Completed");
    let initialized = "{.status.conditions[?(@.type==\"Initialized\")].status}";
    assert_eq!(jsonpath(initialized), "True");
    let events = cluster.kubectl_ok(&["describe", "pod", "prepared"]);
    assert!(events.contains("Started container init"), "{events}");
    assert!(events.contains("Started container app"), "{events}");

    // A failing init container: the Never pod fails, the Always one loops.
    for (name, policy) in [("never", "Never"), ("always", "Always")] {
        let path = cluster.data_dir.join(format!("{name}.yml"));
        std::fs::write(&path, failing(name, policy)).unwrap();
        cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }
    cluster.wait_for("STATUS Init:Error of the Never pod", 60, || {
        (pod_status(&cluster, "never")? == "Init:Error").then_some(())
    });
    let phase = cluster.kubectl_ok(&["get", "pod", "never", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Failed");
    let log = cluster.kubectl_ok(&["logs", "never", "-c", "init"]);
    assert!(log.contains("failing"), "{log}");
    cluster.wait_for("STATUS Init:CrashLoopBackOff of the Always pod", 60, || {
        (pod_status(&cluster, "always")? == "Init:CrashLoopBackOff").then_some(())
    });
    let app = "jsonpath={.status.containerStatuses[0].state.waiting.reason}";
    for name in ["never", "always"] {
        let reason = cluster.kubectl_ok(&["get", "pod", name, "-o", app]);
        assert_eq!(
            reason, "PodInitializing",
            "the app container of {name} never started"
        );
    }
}
