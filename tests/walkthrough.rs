//! The seed walk-through, end to end, as a user follows it: `coxswain up`,
//! a static pod dropped into the manifest directory, the real kubectl
//! against the apiserver, a Deployment that becomes a ReplicaSet and running
//! Pods, the pod IP answering HTTP, logs, describe, and deletion, all on the
//! real Docker Engine.

mod support;

use support::{Cluster, docker_containers, docker_inspect, http_get, skip_reason};

/// Rows of a `kubectl get` table whose first column starts with `prefix`.
fn rows<'a>(table: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    table
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn the_walkthrough_runs_on_real_docker_with_real_kubectl() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("walk");
    let node = cluster.node.clone();

    // kubectl get nodes: the node is Ready with its version.
    let nodes = cluster.kubectl_ok(&["get", "nodes"]);
    assert!(nodes.starts_with("NAME"), "{nodes}");
    let row = &rows(&nodes, &node)[0];
    assert_eq!(row[1], "Ready", "{nodes}");
    assert!(row[4].starts_with("v1.35"), "{nodes}");

    // A static pod: pause sandbox plus the app container in its namespaces.
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/01-simple-web-pod.yml");
    std::fs::copy(&manifest, cluster.manifests().join("01-simple-web-pod.yml")).unwrap();
    let mirror = format!("web-{node}");
    let selector = format!("label=io.kubernetes.pod.name={mirror}");
    let (pause, app) = cluster.wait_for("the static pod's containers", 60, || {
        let running: Vec<_> = docker_containers(&selector)
            .into_iter()
            .filter(|c| c.state == "running")
            .collect();
        let pause = running
            .iter()
            .find(|c| c.label("io.kubernetes.container.name") == Some("POD"))?;
        let app = running
            .iter()
            .find(|c| c.label("io.kubernetes.container.name") == Some("web"))?;
        Some((pause.clone(), app.clone()))
    });
    assert_eq!(
        docker_inspect(&app.id, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", pause.id)
    );
    assert_eq!(
        docker_inspect(&app.id, "{{.HostConfig.IpcMode}}"),
        format!("container:{}", pause.id)
    );
    assert_eq!(
        docker_inspect(&app.id, "{{.NetworkSettings.IPAddress}}"),
        ""
    );
    let pause_ip = docker_inspect(&pause.id, "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    assert!(
        !pause_ip.is_empty(),
        "the pause container has the pod's address"
    );
    for label in [
        "io.kubernetes.pod.uid",
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
    ] {
        assert!(app.label(label).is_some(), "app container has {label}");
    }

    // The mirror pod shows up in kubectl.
    cluster.wait_for("the mirror pod to be Running", 60, || {
        let pods = cluster.kubectl_ok(&["get", "pods"]);
        let row = rows(&pods, &mirror).into_iter().next()?;
        (row[1] == "1/1" && row[2] == "Running").then_some(())
    });

    // docker stop: the kubelet starts the app container again.
    let stopped = std::process::Command::new("docker")
        .args(["stop", &app.id])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    cluster.wait_for("the app container to be restarted", 60, || {
        docker_containers(&selector).into_iter().find(|c| {
            c.state == "running"
                && c.label("io.kubernetes.container.name") == Some("web")
                && c.id != app.id
        })
    });
    cluster.wait_for("RESTARTS 1 on the mirror pod", 60, || {
        let pods = cluster.kubectl_ok(&["get", "pods"]);
        let row = rows(&pods, &mirror).into_iter().next()?;
        (row[3] == "1" && row[2] == "Running").then_some(())
    });

    // Removing the file removes the pod and its containers.
    std::fs::remove_file(cluster.manifests().join("01-simple-web-pod.yml")).unwrap();
    cluster.wait_for("the static pod's containers to go", 60, || {
        docker_containers(&selector).is_empty().then_some(())
    });
    cluster.wait_for("the mirror pod to go", 60, || {
        let pods = cluster.kubectl_ok(&["get", "pods"]);
        rows(&pods, &mirror).is_empty().then_some(())
    });

    // The Deployment: ReplicaSet, two Pods, scheduled, running.
    let deployment =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/04-nginx-deployment.yml");
    let applied = cluster.kubectl_ok(&["apply", "-f", deployment.to_str().unwrap()]);
    assert_eq!(applied.trim(), "deployment.apps/nginx-deployment created");
    cluster.wait_for("the ReplicaSet to be 2/2/2", 120, || {
        let rs = cluster.kubectl_ok(&["get", "replicaset"]);
        assert!(rs.starts_with("NAME"), "{rs}");
        let row = rows(&rs, "nginx-deployment-").into_iter().next()?;
        (row[1..4] == ["2", "2", "2"]).then_some(())
    });
    let rs_table = cluster.kubectl_ok(&["get", "replicaset"]);
    let rs_name = rows(&rs_table, "nginx-deployment-")[0][0].to_owned();
    let hash = rs_name.trim_start_matches("nginx-deployment-");
    let labels = cluster.kubectl_ok(&[
        "get",
        "rs",
        &rs_name,
        "-o",
        "jsonpath={.metadata.labels.pod-template-hash}",
    ]);
    assert_eq!(
        labels, hash,
        "the ReplicaSet's name ends with its pod-template-hash"
    );

    let pods = cluster.kubectl_ok(&["get", "pods"]);
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let ours = rows(&pods, &format!("{rs_name}-"));
    assert_eq!(ours.len(), 2, "{pods}");
    for row in &ours {
        assert_eq!((row[1], row[2], row[3]), ("1/1", "Running", "0"), "{pods}");
    }
    let wide = cluster.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let wide_header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(wide_header[5..7], ["IP", "NODE"]);
    let wide_rows = rows(&wide, &format!("{rs_name}-"));
    let (pod_name, pod_ip) = (wide_rows[0][0].to_owned(), wide_rows[0][5].to_owned());
    assert_eq!(wide_rows[0][6], node);

    // The pod IP answers HTTP from the app container.
    let page = cluster.wait_for("the pod IP to answer", 30, || {
        http_get(&format!("{pod_ip}:80"))
    });
    assert!(page.contains("Welcome to coxswain-web"), "{page}");

    // Logs and describe.
    let logs = cluster.kubectl_ok(&["logs", &pod_name]);
    assert!(
        logs.contains("GET /"),
        "the request shows in the log: {logs}"
    );
    let described = cluster.kubectl_ok(&["describe", "pod", &pod_name]);
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            described.contains(reason),
            "describe shows {reason}:\n{described}"
        );
    }
    let node_line = described
        .lines()
        .find(|l| l.starts_with("Node:"))
        .unwrap_or("");
    assert!(
        node_line
            .trim_start_matches("Node:")
            .trim()
            .starts_with(&format!("{node}/")),
        "{described}"
    );

    // Deleting the Deployment removes the ReplicaSet, the Pods, the containers.
    let deleted = cluster.kubectl_ok(&["delete", "deployment", "nginx-deployment"]);
    assert!(
        deleted.contains("deployment.apps \"nginx-deployment\" deleted"),
        "{deleted}"
    );
    cluster.wait_for("the ReplicaSet and Pods to go", 120, || {
        let rs = cluster.kubectl(&["get", "rs", "-o", "name"]);
        let pods = cluster.kubectl(&["get", "pods", "-o", "name"]);
        let rs = String::from_utf8_lossy(&rs.stdout).into_owned();
        let pods = String::from_utf8_lossy(&pods.stdout).into_owned();
        (!rs.contains("nginx-deployment") && !pods.contains("nginx-deployment")).then_some(())
    });
    cluster.wait_for("the deployment's containers to be removed", 60, || {
        docker_containers(&format!("label=io.kubernetes.pod.namespace=default"))
            .iter()
            .all(|c| {
                !c.label("io.kubernetes.pod.name")
                    .unwrap_or("")
                    .starts_with(&rs_name)
            })
            .then_some(())
    });
}

#[test]
fn a_pull_that_fails_shows_errimagepull_and_the_server_keeps_serving() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("pull");
    // A registry on a loopback port that refuses: never an outside host.
    cluster.kubectl_ok(&[
        "run",
        "bad",
        "--image=127.0.0.1:1/none:1",
        "--restart=Never",
    ]);
    cluster.wait_for("ErrImagePull or ImagePullBackOff", 60, || {
        let pods = cluster.kubectl_ok(&["get", "pods"]);
        let row = rows(&pods, "bad").into_iter().next()?;
        matches!(row[2], "ErrImagePull" | "ImagePullBackOff").then_some(())
    });

    // Errors are Kubernetes Status objects kubectl can print.
    let missing = cluster.kubectl(&["get", "pod", "nope"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("Error from server (NotFound): pods \"nope\" not found")
    );
    let invalid = cluster.data_dir.join("invalid.yml");
    std::fs::write(
        &invalid,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  selector:\n    \
         matchLabels: {app: a}\n  template:\n    metadata:\n      labels: {app: b}\n    spec:\n      \
         containers:\n      - name: c\n        image: coxswain/web:0.1\n",
    )
    .unwrap();
    let rejected = cluster.kubectl(&["apply", "-f", invalid.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(!rejected.status.success());
    assert!(
        stderr.contains("spec.template.metadata.labels"),
        "422 names the field: {stderr}"
    );

    // A wrong token is refused with 401.
    let config = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let token = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap();
    let bad = cluster.data_dir.join("bad-kubeconfig");
    std::fs::write(&bad, config.replace(token, "not-the-token")).unwrap();
    let out = cluster.kubectl(&["--kubeconfig", bad.to_str().unwrap(), "get", "pods"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"));
    assert!(
        cluster.kubectl(&["get", "nodes"]).status.success(),
        "the server keeps serving"
    );

    // An exec readiness probe that fails keeps a running pod out of Ready.
    let probed = cluster.data_dir.join("probed.yml");
    std::fs::write(
        &probed,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probed\nspec:\n  containers:\n  \
         - name: c\n    image: coxswain/busybox:0.1\n    command: [sleep, \"3600\"]\n    \
         readinessProbe:\n      exec:\n        command: [\"false\"]\n      periodSeconds: 1\n",
    )
    .unwrap();
    cluster.kubectl_ok(&["apply", "-f", probed.to_str().unwrap()]);
    cluster.wait_for("the probed pod to run unready", 60, || {
        let pods = cluster.kubectl_ok(&["get", "pods"]);
        let row = rows(&pods, "probed").into_iter().next()?;
        let unhealthy = cluster.kubectl_ok(&["describe", "pod", "probed"]);
        (row[1] == "0/1" && row[2] == "Running" && unhealthy.contains("Readiness probe failed"))
            .then_some(())
    });

    // `--sort-by` on a field outside metadata needs whole objects in rows.
    let sorted = cluster.kubectl_ok(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert!(sorted.contains("Scheduled"), "{sorted}");

    // A namespace is Terminating until the pods in it are gone, then it goes.
    let ns = cluster.data_dir.join("ns.yml");
    std::fs::write(
        &ns,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
    )
    .unwrap();
    cluster.kubectl_ok(&["apply", "-f", ns.to_str().unwrap()]);
    let run = [
        "-n",
        "scratch",
        "run",
        "sleeper",
        "--image=coxswain/busybox:0.1",
        "--",
        "sleep",
        "3600",
    ];
    cluster.kubectl_ok(&run);
    cluster.wait_for("the pod in the scratch namespace to run", 60, || {
        let pods = cluster.kubectl_ok(&["-n", "scratch", "get", "pods"]);
        let row = rows(&pods, "sleeper").into_iter().next()?;
        (row[2] == "Running").then_some(())
    });
    let deleted = cluster.kubectl(&["delete", "namespace", "scratch", "--wait=false"]);
    assert!(deleted.status.success());
    let phase = cluster.kubectl_ok(&[
        "get",
        "namespace",
        "scratch",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Terminating");
    cluster.wait_for("the namespace to be removed", 90, || {
        let out = cluster.kubectl(&["get", "namespace", "scratch"]);
        String::from_utf8_lossy(&out.stderr)
            .contains("NotFound")
            .then_some(())
    });
    let _ = cluster.kubectl(&["delete", "pod", "bad", "--grace-period=0", "--force"]);
}
