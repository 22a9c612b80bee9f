//! The seed walk-through's bottom-up path, end to end, as a user follows it
//! in README.md: a kubelet alone runs static pods; the API server arrives as
//! a static pod and kubectl gets answers; the kubelet restarted with a
//! kubeconfig registers its node and mirrors its static pods, adopting the
//! containers that already run; a Deployment waits for the controller
//! manager, its pods stay Pending until the scheduler comes, then run. All
//! with the real kubectl and the real Docker Engine, the control plane
//! running from the `coxswain/coxswain` image that `cargo xtask images`
//! builds.
//!
//! The manifests are the committed ones, copied with their data directory
//! and API port rewritten to this test's own, so that the test runs beside
//! others (and beside a person's walk-through) on one Docker engine.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{docker_containers, docker_inspect, skip_reason};

/// The data directory the committed manifests use.
const MANIFEST_DATA_DIR: &str = "/var/lib/coxswain-walkthrough";
/// The API address the committed manifests use.
const MANIFEST_LISTEN: &str = "127.0.0.1:6443";
/// The image the control plane's static pods run.
const COXSWAIN_IMAGE: &str = "coxswain/coxswain:0.1";

/// One walk-through: its directories, its node, its kubelet process.
struct Walk {
    root: PathBuf,
    node: String,
    port: u16,
    bin: PathBuf,
    kubectl: PathBuf,
    kubelet: Option<Child>,
    /// How many times the kubelet was started (each run logs to its file).
    runs: u32,
    passed: bool,
}

impl Walk {
    fn new(test: &str) -> Walk {
        let bin = PathBuf::from(std::env::var("COXSWAIN_BIN").expect("COXSWAIN_BIN is set"));
        let kubectl =
            PathBuf::from(std::env::var("COXSWAIN_KUBECTL").expect("COXSWAIN_KUBECTL is set"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/e2e")
            .join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        Walk {
            root,
            node: format!("e2e-{test}-{}", std::process::id()),
            port: free_port(),
            bin,
            kubectl,
            kubelet: None,
            runs: 0,
            passed: false,
        }
    }

    fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("control-plane")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    fn kubelet_log(&self) -> PathBuf {
        self.root.join(format!("kubelet-{}.log", self.runs))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.kubelet_log()).unwrap_or_default()
    }

    /// Copies `manifests/<name>` into the manifest directory, with this
    /// test's data directory and API port.
    fn copy_manifest(&self, name: &str) {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("manifests")
            .join(name);
        let text = std::fs::read_to_string(&source).unwrap();
        let text = text
            .replace(MANIFEST_DATA_DIR, self.data_dir().to_str().unwrap())
            .replace(MANIFEST_LISTEN, &format!("127.0.0.1:{}", self.port));
        // Written aside, then renamed: the kubelet never reads half a file.
        let hidden = self.manifests().join(format!(".{name}"));
        std::fs::write(&hidden, text).unwrap();
        std::fs::rename(&hidden, self.manifests().join(name)).unwrap();
    }

    /// Starts `coxswain kubelet`, standalone or with the kubeconfig.
    fn start_kubelet(&mut self, with_kubeconfig: bool) {
        self.runs += 1;
        let mut command = Command::new(&self.bin);
        command
            .arg("kubelet")
            .arg("--pod-manifest-path")
            .arg(self.manifests())
            .args(["--node-name", &self.node, "--port", "0"])
            .arg("--root-dir")
            .arg(self.root.join("kubelet"));
        if with_kubeconfig {
            command.arg("--kubeconfig").arg(self.kubeconfig());
        }
        let log = std::fs::File::create(self.kubelet_log()).unwrap();
        let child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting coxswain kubelet");
        self.kubelet = Some(child);
    }

    /// Stops the kubelet with SIGTERM, by pid, and waits for it to exit.
    fn stop_kubelet(&mut self) {
        if let Some(mut child) = self.kubelet.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.root.join("kubectl-cache"))
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// Runs kubectl and returns stdout and stderr; fails on a non-zero exit.
    fn kubectl_ok(&self, args: &[&str]) -> (String, String) {
        let out = self.kubectl(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stderr}\n{stdout}"
        );
        (stdout, stderr)
    }

    /// The running containers of the static pod `name` (`<name>-<node>`),
    /// sandbox first, once there are `count` of them besides the sandbox.
    fn running_pod(&self, name: &str, count: usize) -> Option<Vec<support::Container>> {
        let selector = format!("label=io.kubernetes.pod.name={name}-{}", self.node);
        let running: Vec<_> = docker_containers(&selector)
            .into_iter()
            .filter(|c| c.state == "running")
            .collect();
        let sandbox = running
            .iter()
            .find(|c| c.label("io.kubernetes.container.name") == Some("POD"))?;
        let apps: Vec<_> = running
            .iter()
            .filter(|c| c.label("io.kubernetes.container.name") != Some("POD"))
            .cloned()
            .collect();
        (apps.len() == count).then(|| [vec![sandbox.clone()], apps].concat())
    }

    /// Polls `check` until it returns Some, or fails with `what` and the logs.
    fn wait_for<T>(&self, what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- kubelet log ---\n{}\n{}",
                    self.log_text(),
                    self.control_plane_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The logs of the control plane's containers, for failure messages.
    fn control_plane_logs(&self) -> String {
        let mut text = String::new();
        for c in docker_containers(&format!("label=coxswain.io/node={}", self.node)) {
            let name = c.label("io.kubernetes.container.name").unwrap_or("");
            if !name.starts_with("kube-") {
                continue;
            }
            let out = Command::new("docker")
                .args(["logs", "--tail", "30", &c.id])
                .output()
                .unwrap();
            text.push_str(&format!("--- {} ({}) ---\n", c.name, c.state));
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        text
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.stop_kubelet();
        // The kubelet leaves containers running when it stops: remove every
        // container this walk-through's node created.
        let ours: Vec<String> = docker_containers(&format!("label=coxswain.io/node={}", self.node))
            .into_iter()
            .map(|c| c.id)
            .collect();
        if !ours.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ours)
                .output();
        }
        if self.passed {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Rows of a `kubectl get` table whose first column starts with `prefix`.
fn rows<'a>(table: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    table
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_bottom_up_path_runs_each_component_as_a_static_pod() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    assert!(
        image_present(COXSWAIN_IMAGE),
        "{COXSWAIN_IMAGE} is missing: run `cargo xtask images`"
    );
    let mut walk = Walk::new("bottom-up");
    let node = walk.node.clone();

    // Step 2: a kubelet alone, in standalone mode, says so once.
    walk.start_kubelet(false);
    walk.wait_for("the kubelet to say it runs standalone", 30, || {
        walk.log_text().contains("standalone mode").then_some(())
    });
    let node_filter = format!("label=coxswain.io/node={node}");
    assert!(docker_containers(&node_filter).is_empty());

    // The simple pod: a pause sandbox and the app in its namespaces.
    walk.copy_manifest("01-simple-web-pod.yml");
    let web = walk.wait_for("the web pod's containers", 60, || {
        walk.running_pod("web", 1)
    });
    let (pause, app) = (&web[0], &web[1]);
    assert_eq!(
        docker_inspect(&app.id, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", pause.id)
    );
    // docker stop: the kubelet brings the container back.
    let stopped = Command::new("docker")
        .args(["stop", &app.id])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    let web = walk.wait_for("the web container to be restarted", 60, || {
        walk.running_pod("web", 1)
            .filter(|running| running[1].id != app.id && running[0].id == pause.id)
    });

    assert_eq!(
        walk.log_text().matches("standalone mode").count(),
        1,
        "standalone mode is said once"
    );

    // kubectl has no server to talk to yet.
    let refused = Command::new(&walk.kubectl)
        .arg(format!("--server=https://127.0.0.1:{}", walk.port))
        .args(["--token=none", "--insecure-skip-tls-verify", "get", "pods"])
        .arg("--cache-dir")
        .arg(walk.root.join("kubectl-cache"))
        .env("KUBECONFIG", walk.root.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let expected = format!(
        "The connection to the server 127.0.0.1:{} was refused",
        walk.port
    );
    assert!(stderr.contains(&expected), "{stderr}");

    // Step 3: the API server (with its store) as a static pod.
    walk.copy_manifest("02-api-server.yml");
    let apiserver = walk.wait_for("the API server's containers", 60, || {
        walk.running_pod("kube-apiserver", 1)
    });
    assert_eq!(
        docker_inspect(&apiserver[0].id, "{{.HostConfig.NetworkMode}}"),
        "host",
        "hostNetwork: the sandbox shares the node's network"
    );
    let binds = docker_inspect(&apiserver[1].id, "{{json .HostConfig.Binds}}");
    assert!(
        binds.contains(walk.data_dir().to_str().unwrap()),
        "the data directory is a hostPath volume: {binds}"
    );
    let (nodes_out, nodes_err) = walk.wait_for("kubectl get nodes to answer", 60, || {
        if !walk.kubeconfig().exists() {
            return None;
        }
        let out = walk.kubectl(&["get", "nodes"]);
        out.status.success().then(|| {
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    });
    assert!(nodes_out.is_empty(), "{nodes_out}");
    assert!(nodes_err.contains("No resources found"), "{nodes_err}");
    let kubeconfig = std::fs::read_to_string(walk.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: https://127.0.0.1:{}", walk.port)),
        "the API server listens on loopback: {kubeconfig}"
    );

    // The kubelet, restarted with the kubeconfig, registers its node and
    // adopts the containers that run: none is started again.
    let before: Vec<String> = docker_containers(&node_filter)
        .into_iter()
        .map(|c| c.id)
        .collect();
    walk.stop_kubelet();
    for id in [&web[0].id, &web[1].id, &apiserver[0].id, &apiserver[1].id] {
        assert_eq!(
            docker_inspect(id, "{{.State.Running}}"),
            "true",
            "containers outlive the kubelet"
        );
    }
    walk.start_kubelet(true);
    walk.wait_for("the node to be Ready", 60, || {
        let (nodes, _) = walk.kubectl_ok(&["get", "nodes"]);
        let row = rows(&nodes, &node).into_iter().next()?;
        (row[1] == "Ready").then_some(())
    });
    walk.wait_for("the static pods' mirror pods to be Running", 60, || {
        let (pods, _) = walk.kubectl_ok(&["get", "pods", "-A"]);
        let apiserver = rows(&pods, "kube-system")
            .into_iter()
            .find(|r| r[1] == format!("kube-apiserver-{node}"))?;
        let web = rows(&pods, "default")
            .into_iter()
            .find(|r| r[1] == format!("web-{node}"))?;
        (apiserver[2..4] == ["1/1", "Running"] && web[2..4] == ["1/1", "Running"]).then_some(())
    });
    let log = walk.log_text();
    assert!(!log.contains("standalone mode"), "{log}");
    assert_eq!(
        log.matches("adopting the pod's running containers").count(),
        2,
        "{log}"
    );
    // One more sync round, then compare: the same containers, still running.
    std::thread::sleep(Duration::from_secs(3));
    let mut after: Vec<String> = docker_containers(&node_filter)
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "the kubelet adopted the running containers");

    // A mirror pod deleted with kubectl comes back, with its status, and
    // the static pod's containers are left alone.
    let mirror = format!("kube-apiserver-{node}");
    let uid_of = |walk: &Walk| {
        let (uid, _) = walk.kubectl_ok(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            &mirror,
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        uid
    };
    let first_mirror = uid_of(&walk);
    walk.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        &mirror,
        "--wait=false",
    ]);
    walk.wait_for("a new mirror pod, Running", 60, || {
        let out = walk.kubectl(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            &mirror,
            "-o",
            "jsonpath={.metadata.uid} {.status.phase} {.metadata.deletionTimestamp}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let fields: Vec<&str> = text.split_whitespace().collect();
        (fields.len() == 2 && fields[0] != first_mirror && fields[1] == "Running").then_some(())
    });
    assert_eq!(
        walk.running_pod("kube-apiserver", 1)
            .map(|c| c[1].id.clone()),
        Some(apiserver[1].id.clone()),
        "deleting the mirror pod leaves the static pod running"
    );

    // Step 4: a Deployment, and nothing happens yet: no controller manager.
    let deployment =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/04-nginx-deployment.yml");
    let (applied, _) = walk.kubectl_ok(&["apply", "-f", deployment.to_str().unwrap()]);
    assert_eq!(applied.trim(), "deployment.apps/nginx-deployment created");
    std::thread::sleep(Duration::from_secs(5));
    let (rs, rs_err) = walk.kubectl_ok(&["get", "replicaset"]);
    assert!(rs.is_empty(), "no ReplicaSet yet: {rs}");
    assert!(rs_err.contains("No resources found"), "{rs_err}");
    let (pods, _) = walk.kubectl_ok(&["get", "pods"]);
    assert!(rows(&pods, "nginx-deployment-").is_empty(), "{pods}");

    // The controller manager: a ReplicaSet and two Pending pods.
    walk.copy_manifest("05-controller-manager.yml");
    walk.wait_for("the ReplicaSet to want and have 2", 90, || {
        let (rs, _) = walk.kubectl_ok(&["get", "replicaset"]);
        let row = rows(&rs, "nginx-deployment-").into_iter().next()?;
        (row[1..4] == ["2", "2", "0"]).then_some(())
    });
    let pending = |walk: &Walk| {
        let (pods, _) = walk.kubectl_ok(&["get", "pods", "-o", "wide"]);
        let ours = rows(&pods, "nginx-deployment-");
        let all_pending = ours.len() == 2
            && ours
                .iter()
                .all(|r| r[1..3] == ["0/1", "Pending"] && r[6] == "<none>");
        all_pending.then_some(())
    };
    walk.wait_for("two Pending pods", 30, || pending(&walk));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        pending(&walk).is_some(),
        "no scheduler yet: the pods stay Pending"
    );

    // The scheduler: the pods are bound to the node and run.
    walk.copy_manifest("06-scheduler.yml");
    walk.wait_for("two Running pods on the node", 120, || {
        let (pods, _) = walk.kubectl_ok(&["get", "pods", "-o", "wide"]);
        let ours = rows(&pods, "nginx-deployment-");
        let running = ours.len() == 2
            && ours
                .iter()
                .all(|r| r[1..3] == ["1/1", "Running"] && r[6] == node);
        running.then_some(())
    });
    let (pods, _) = walk.kubectl_ok(&["get", "pods", "-n", "kube-system"]);
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let row = rows(&pods, &format!("{component}-{node}"));
        assert_eq!(row.len(), 1, "{component} has a mirror pod: {pods}");
        assert_eq!(row[0][2], "Running", "{pods}");
    }

    // The API server's container stopped: the kubelet starts it again, and
    // its store, on the hostPath, still holds the cluster.
    let (before, _) = walk.kubectl_ok(&["get", "pods", "-o", "name"]);
    let current = walk.running_pod("kube-apiserver", 1).unwrap();
    let stopped = Command::new("docker")
        .args(["stop", &current[1].id])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    walk.wait_for("the API server to be restarted and answer", 60, || {
        let running = walk.running_pod("kube-apiserver", 1)?;
        let out = walk.kubectl(&["get", "pods", "-o", "name"]);
        (running[1].id != current[1].id && out.status.success())
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let (after, _) = walk.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert_eq!(before, after, "the store kept the pods");

    // Mirror pods follow the files: removing one removes its pod.
    std::fs::remove_file(walk.manifests().join("01-simple-web-pod.yml")).unwrap();
    walk.wait_for("the web pod and its mirror to go", 60, || {
        let (pods, _) = walk.kubectl_ok(&["get", "pods"]);
        let gone =
            rows(&pods, &format!("web-{node}")).is_empty() && walk.running_pod("web", 1).is_none();
        gone.then_some(())
    });
    walk.passed = true;
}

/// Processes a test started, stopped by pid (SIGTERM) when it ends, even
/// when it fails.
struct Started(Vec<Child>);

impl Started {
    fn stop(&mut self, index: usize) {
        let child = &mut self.0[index];
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        let _ = child.wait();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        for index in 0..self.0.len() {
            self.stop(index);
        }
    }
}

#[test]
fn control_plane_components_wait_for_a_missing_apiserver_without_crashing() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let bin = PathBuf::from(std::env::var("COXSWAIN_BIN").expect("COXSWAIN_BIN is set"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/e2e")
        .join(format!("waiting-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let kubeconfig = root.join("data/kubeconfig");
    let log = |name: &str| root.join(format!("{name}.log"));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();

    let components = ["controller-manager", "scheduler"];
    let mut started = Started(Vec::new());
    for component in components {
        let child = Command::new(&bin)
            .arg(component)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(log(component)).unwrap())
            .spawn()
            .unwrap();
        started.0.push(child);
    }

    // No kubeconfig yet (the apiserver writes it) for a while; then one
    // whose apiserver is down: an apiserver run aside writes it and stops.
    std::thread::sleep(Duration::from_secs(3));
    let listen = format!("127.0.0.1:{}", free_port());
    let apiserver_dir = root.join("apiserver");
    let apiserver = || {
        Command::new(&bin)
            .args(["apiserver", "--listen", &listen])
            .arg("--data-dir")
            .arg(&apiserver_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log("apiserver")).unwrap())
            .spawn()
            .unwrap()
    };
    started.0.push(apiserver());
    let written = apiserver_dir.join("kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !written.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    started.stop(2);
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::copy(&written, root.join("kubeconfig.part")).unwrap();
    std::fs::rename(root.join("kubeconfig.part"), &kubeconfig).unwrap();
    std::thread::sleep(Duration::from_secs(8));

    for (index, component) in components.iter().enumerate() {
        let text = read(&log(component));
        if let Ok(Some(status)) = started.0[index].try_wait() {
            panic!("{component} exited with {status}:\n{text}");
        }
        assert_eq!(
            text.matches("waiting for the kubeconfig").count(),
            1,
            "{component} says once that it waits for the kubeconfig:\n{text}"
        );
        assert_eq!(
            text.matches("waiting for the apiserver").count(),
            1,
            "{component} says once that it waits for the apiserver:\n{text}"
        );
        assert!(
            !text.contains(" WARN "),
            "{component} waits without warnings:\n{text}"
        );
    }

    // The apiserver comes up: the controllers start without a restart.
    started.0.push(apiserver());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read(&log("controller-manager")).contains("controller caches synced") {
        assert!(
            Instant::now() < deadline,
            "the controller manager never synced:\n{}",
            read(&log("controller-manager"))
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(started);
    let _ = std::fs::remove_dir_all(&root);
}
