//! The kubelet against the real Docker engine: a standalone kubelet runs a
//! static pod from a manifest directory, as in the seed walk-through.
//!
//! Runs only with `COXSWAIN_E2E=1` and a running engine that has the
//! images of `cargo xtask images` (`coxswain/pause`, `coxswain/busybox`,
//! tagged `0.1` or `latest`); nothing is ever pulled. Every container it
//! creates carries this test's node label and is removed at the end, also
//! on failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use coxswain_core::kubelet::{Kubelet, KubeletConfig, docker::DockerRuntime};

fn enabled() -> bool {
    if std::env::var("COXSWAIN_E2E").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping: set COXSWAIN_E2E=1 to run the kubelet against Docker");
    false
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The local image `repo` with tag 0.1, else latest.
fn local_image(repo: &str) -> String {
    for tag in ["0.1", "latest"] {
        let image = format!("{repo}:{tag}");
        if Command::new("docker")
            .args(["image", "inspect", &image])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return image;
        }
    }
    panic!("image {repo} is missing: run `cargo xtask images`");
}

/// Removes every container of the test's node when dropped.
struct Cleanup {
    node: String,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = containers(&self.node, None);
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            docker(&args);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Ids of the node's containers, optionally only running ones of one
/// container name.
fn containers(node: &str, running_named: Option<&str>) -> Vec<String> {
    let node_filter = format!("label=coxswain.io/node={node}");
    let mut args = vec!["ps", "-q", "--filter", &node_filter];
    let name_filter;
    if let Some(name) = running_named {
        name_filter = format!("label=io.kubernetes.container.name={name}");
        args.extend(["--filter", &name_filter]);
    } else {
        args.push("-a");
    }
    docker(&args).lines().map(str::to_owned).collect()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id])
}

fn http_get(port: u16, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the agent");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_kubelet_runs_restarts_and_removes_a_static_pod() {
    if !enabled() {
        return;
    }
    let node = format!("kubelet-e2e-{}", std::process::id());
    let base = std::env::temp_dir().join(&node);
    let manifests = base.join("manifests");
    let root = base.join("root");
    std::fs::create_dir_all(&manifests).unwrap();
    let _cleanup = Cleanup {
        node: node.clone(),
        dirs: vec![base.clone()],
    };

    let busybox = local_image("coxswain/busybox");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {busybox}
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do echo hello; sleep 1; done\"]
"
    );
    std::fs::write(manifests.join("hello.yaml"), manifest).unwrap();
    // A broken manifest beside it must not stop anything.
    std::fs::write(manifests.join("broken.yaml"), "kind: Pod\nmetadata: [\n").unwrap();

    let mut config = KubeletConfig::new(node.clone());
    config.pod_manifest_path = Some(manifests.clone());
    config.port = 0;
    config.agent_token = "e2e-token".into();
    config.root_dir = root;
    config.pause_image = local_image("coxswain/pause");
    let runtime = DockerRuntime::connect(None, &node)
        .await
        .expect("docker is running");
    let kubelet = Kubelet::start(config, std::sync::Arc::new(runtime))
        .await
        .unwrap();
    let port = kubelet.agent_port();
    assert_ne!(port, 0);

    // The sandbox and the app container come up, labelled and named.
    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the pod's containers", Duration::from_secs(30), || {
            !containers(&n, Some("POD")).is_empty() && !containers(&n, Some("app")).is_empty()
        })
    })
    .await
    .unwrap();
    let sandbox = containers(&node, Some("POD")).remove(0);
    let app = containers(&node, Some("app")).remove(0);
    let pod_name = format!("hello-{node}");
    assert_eq!(
        inspect(&app, "{{index .Config.Labels \"io.kubernetes.pod.name\"}}"),
        pod_name
    );
    assert_eq!(
        inspect(
            &app,
            "{{index .Config.Labels \"io.kubernetes.pod.namespace\"}}"
        ),
        "default"
    );
    assert_eq!(
        inspect(&app, "{{index .Config.Labels \"coxswain.io/managed\"}}"),
        "true"
    );
    assert_eq!(
        inspect(
            &app,
            "{{index .Config.Labels \"coxswain.io/restart-count\"}}"
        ),
        "0"
    );
    assert_eq!(
        inspect(
            &sandbox,
            "{{index .Config.Labels \"io.kubernetes.container.name\"}}"
        ),
        "POD"
    );
    assert!(inspect(&app, "{{.Name}}").starts_with(&format!("/k8s_app_{pod_name}_default_")));
    assert!(inspect(&sandbox, "{{.Name}}").starts_with(&format!("/k8s_POD_{pod_name}_default_")));

    // The app lives in the sandbox's network namespace.
    let netns = |id: &str| {
        let pid = inspect(id, "{{.State.Pid}}");
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
    };
    assert_eq!(netns(&app), netns(&sandbox));
    let ip = inspect(&sandbox, "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    assert!(!ip.is_empty(), "the sandbox has a bridge IP");

    // Logs through the node agent, which wants its token.
    let logs_path = format!("/containerLogs/default/{pod_name}/app?tailLines=2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, body) = tokio::task::spawn_blocking({
        let path = logs_path.clone();
        move || http_get(port, &path, "e2e-token")
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello"), "{body}");
    let (code, _) = tokio::task::spawn_blocking(move || http_get(port, &logs_path, "nope"))
        .await
        .unwrap();
    assert_eq!(code, 401);

    // `docker stop` of the app is followed by a prompt restart.
    docker(&["stop", "-t", "1", &app]);
    let stopped = Instant::now();
    let n = node.clone();
    let first = app.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the app's restart", Duration::from_secs(10), || {
            containers(&n, Some("app"))
                .iter()
                .any(|id| !first.starts_with(id.as_str()))
        })
    })
    .await
    .unwrap();
    eprintln!("restarted {:?} after the stop", stopped.elapsed());
    let restarted = containers(&node, Some("app")).remove(0);
    assert_eq!(
        inspect(
            &restarted,
            "{{index .Config.Labels \"coxswain.io/restart-count\"}}"
        ),
        "1"
    );
    // The stopped run is kept for `--previous` logs.
    let previous_path = format!("/containerLogs/default/{pod_name}/app?previous=true");
    let (code, body) =
        tokio::task::spawn_blocking(move || http_get(port, &previous_path, "e2e-token"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");

    // Removing the manifest removes the pod's containers.
    std::fs::remove_file(manifests.join("hello.yaml")).unwrap();
    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the pod's removal", Duration::from_secs(30), || {
            containers(&n, None).is_empty()
        })
    })
    .await
    .unwrap();
    kubelet.stop();
}
