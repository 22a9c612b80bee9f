//! Helpers of the end-to-end tests: a cluster started with `coxswain up` in
//! a fresh data directory, the real kubectl pointed at it, and the real
//! Docker Engine.
//!
//! The tests run only under `cargo xtask test` (which sets `COXSWAIN_E2E=1`,
//! `COXSWAIN_BIN` and `COXSWAIN_KUBECTL`, and builds the local images); under
//! plain `cargo test` they print why they skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why end-to-end tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<&'static str> {
    if std::env::var("COXSWAIN_E2E").as_deref() != Ok("1") {
        return Some("end-to-end tests run under `cargo xtask test` (COXSWAIN_E2E=1)");
    }
    None
}

/// A running `coxswain up`, its data directory and its node.
pub struct Cluster {
    pub data_dir: PathBuf,
    pub node: String,
    child: Child,
    kubectl: PathBuf,
    log: PathBuf,
}

impl Cluster {
    /// Starts a cluster with its own node name and waits for its ready line.
    pub fn start(test: &str) -> Cluster {
        let bin = PathBuf::from(std::env::var("COXSWAIN_BIN").expect("COXSWAIN_BIN is set"));
        let kubectl =
            PathBuf::from(std::env::var("COXSWAIN_KUBECTL").expect("COXSWAIN_KUBECTL is set"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
        let data_dir = root.join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let node = format!("e2e-{test}-{}", std::process::id());
        let log = data_dir.join("coxswain.log");
        let mut child = Command::new(&bin)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--kubelet-port",
                "0",
                "--node-name",
                &node,
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting coxswain up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let cluster = Cluster {
            data_dir,
            node,
            child,
            kubectl,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(line) if line.contains("coxswain is ready") => {
                    assert!(
                        line.contains("kubeconfig"),
                        "ready line names the kubeconfig: {line}"
                    );
                    break;
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "coxswain up exited before it was ready:\n{}",
                        cluster.log_text()
                    )
                }
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 120 s:\n{}",
                cluster.log_text()
            );
        }
        cluster
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn manifests(&self) -> PathBuf {
        self.data_dir.join("manifests")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Runs kubectl with this cluster's kubeconfig and a private cache.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.data_dir.join("kubectl-cache"))
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// Runs kubectl and returns stdout; fails the test on a non-zero exit.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Containers of this cluster's pods, as `docker ps` sees them.
    pub fn containers(&self, filter_label: &str) -> Vec<Container> {
        docker_containers(&format!("label={filter_label}"))
    }

    /// Polls `check` until it returns Some, or fails with `what`.
    pub fn wait_for<T>(&self, what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- coxswain log ---\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGTERM by pid: the process we started, and nothing else.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        // The kubelet leaves containers running when it stops, as upstream's
        // does; remove every container of this test's pods.
        let pods = docker_containers("label=coxswain.io/managed=true");
        let ours: Vec<String> = pods
            .into_iter()
            .filter(|c| {
                c.label("coxswain.io/node") == Some(self.node.as_str())
                    || c.label("io.kubernetes.pod.name")
                        .is_some_and(|n| n.ends_with(&self.node))
            })
            .map(|c| c.id)
            .collect();
        if !ours.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ours)
                .output();
        }
    }
}

/// One container as `docker ps -a` lists it.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: String,
    pub labels: Vec<(String, String)>,
}

impl Container {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn docker_containers(filter: &str) -> Vec<Container> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--filter", filter, "--format"])
        .arg("{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Labels}}")
        .output()
        .expect("running docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, '\t');
            let id = parts.next()?.to_owned();
            let name = parts.next()?.to_owned();
            let state = parts.next()?.to_owned();
            let labels = parts
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Some(Container {
                id,
                name,
                state,
                labels,
            })
        })
        .collect()
}

/// `docker inspect -f FORMAT ID`.
pub fn docker_inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// GET / over plain HTTP; the body, or None when nothing answers.
pub fn http_get(address: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}
