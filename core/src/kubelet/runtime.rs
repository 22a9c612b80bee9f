//! The container runtime as the kubelet sees it: a narrow, object-safe
//! trait over the few operations pods need, the labels and names that tie a
//! container to its pod, and the container states the status manager reads.
//!
//! Contract: every container a runtime creates for the kubelet carries the
//! labels of [`container_labels`], so a restarted kubelet can find and adopt
//! them; [`Runtime::list_containers`] returns only containers of this node.
//! The Docker implementation lives in `docker.rs`; a simulated one for load
//! tests implements the same trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

/// A boxed future, so that the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A container's log, chunk by chunk, stdout and stderr interleaved.
pub type LogStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The pod a container belongs to (`io.kubernetes.pod.uid`).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// The container's name in the pod spec, [`SANDBOX_NAME`] for the sandbox.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// How many times the kubelet had restarted this container before creating
/// this instance of it.
pub const LABEL_RESTART_COUNT: &str = "coxswain.io/restart-count";
/// A hash of the container's spec when it was created: a container whose
/// spec changed since is killed and created anew.
pub const LABEL_CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// Marks every container the kubelet created.
pub const LABEL_MANAGED: &str = "coxswain.io/managed";
/// The node whose kubelet created the container: several kubelets may share
/// one engine, and each must leave the others' containers alone.
pub const LABEL_NODE: &str = "coxswain.io/node";
/// The container name of the pod sandbox, as dockershim called it.
pub const SANDBOX_NAME: &str = "POD";

/// The default image of the pod sandbox, built by `cargo xtask images`.
pub const DEFAULT_PAUSE_IMAGE: &str = "coxswain/pause:0.1";

/// coxswain's own images are built on the machine (`cargo xtask images`)
/// and exist on no registry: they are never pulled, whatever the policy.
pub const LOCAL_IMAGE_PREFIX: &str = "coxswain/";

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is absent and may not or could not be pulled.
    #[error("pulling image {image:?} failed: {message}")]
    ImagePull { image: String, message: String },
    /// No such container.
    #[error("container {0} not found")]
    NotFound(String),
    /// The engine refused or failed an operation.
    #[error("{operation} failed: {message}")]
    Engine {
        operation: &'static str,
        message: String,
    },
}

/// When to pull an image (`imagePullPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy a container gets: the one it names, else `Always` for an
    /// untagged or `:latest` image and `IfNotPresent` otherwise, as the
    /// apiserver defaults it.
    pub fn for_container(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let last = image.rsplit('/').next().unwrap_or(image);
                let tag = last
                    .split_once('@')
                    .map(|_| "digest")
                    .or_else(|| last.split_once(':').map(|(_, tag)| tag));
                match tag {
                    None | Some("latest") => PullPolicy::Always,
                    Some(_) => PullPolicy::IfNotPresent,
                }
            }
        }
    }
}

/// Identity of a pod, as its containers' labels carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// What it takes to run a pod sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxSpec {
    pub pod: PodRef,
    pub image: String,
    /// Share the node's network namespace (`hostNetwork: true`).
    pub host_network: bool,
    /// The hostname inside the pod: the pod's name, or `spec.hostname`.
    pub hostname: String,
    /// How many sandboxes this pod had before this one.
    pub attempt: u32,
}

/// What it takes to create one app container in a sandbox.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    pub pod: PodRef,
    /// The runtime id of the sandbox whose namespaces the container joins.
    pub sandbox_id: String,
    pub name: String,
    pub image: String,
    /// Kubernetes `command`: replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// Kubernetes `args`: replace the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `host-path:container-path[:ro]` binds.
    pub binds: Vec<String>,
    /// Join the sandbox's PID namespace (`shareProcessNamespace`).
    pub share_process_namespace: bool,
    pub tty: bool,
    pub stdin: bool,
    /// Restarts before this instance; also the `attempt` in its name.
    pub restart_count: u32,
    /// Labels the container carries besides [`container_labels`] (the spec
    /// hash, [`LABEL_CONTAINER_HASH`]).
    pub labels: BTreeMap<String, String>,
}

/// A container's state as the engine reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeState {
    Created,
    Running {
        started_at: Option<DateTime<Utc>>,
    },
    Exited {
        exit_code: i64,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        oom_killed: bool,
        /// The engine's error, e.g. when the start itself failed.
        error: Option<String>,
    },
    Unknown,
}

impl RuntimeState {
    pub fn is_running(&self) -> bool {
        matches!(self, RuntimeState::Running { .. })
    }

    pub fn is_exited(&self) -> bool {
        matches!(self, RuntimeState::Exited { .. })
    }
}

/// One kubelet-managed container, as listed by the runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub pod: PodRef,
    /// The name in the pod spec, or [`SANDBOX_NAME`].
    pub container_name: String,
    pub restart_count: u32,
    pub image: String,
    /// The image's id (`sha256:...`).
    pub image_id: String,
    pub created_at: DateTime<Utc>,
    pub state: RuntimeState,
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    pub fn is_sandbox(&self) -> bool {
        self.container_name == SANDBOX_NAME
    }

    /// The spec hash the container was created with, `None` for one
    /// created without ([`LABEL_CONTAINER_HASH`]).
    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_CONTAINER_HASH).map(String::as_str)
    }

    /// Rebuilds the kubelet's view of a container from its labels; `None`
    /// when they do not name a pod and a container.
    pub fn from_labels(
        id: String,
        labels: BTreeMap<String, String>,
        image: String,
        image_id: String,
        created_at: DateTime<Utc>,
        state: RuntimeState,
    ) -> Option<ContainerInfo> {
        let pod = PodRef {
            uid: labels.get(LABEL_POD_UID)?.clone(),
            namespace: labels.get(LABEL_POD_NAMESPACE)?.clone(),
            name: labels.get(LABEL_POD_NAME)?.clone(),
        };
        let container_name = labels.get(LABEL_CONTAINER_NAME)?.clone();
        let restart_count = labels
            .get(LABEL_RESTART_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Some(ContainerInfo {
            id,
            pod,
            container_name,
            restart_count,
            image,
            image_id,
            created_at,
            state,
            labels,
        })
    }
}

/// What part of a log to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming until the container stops or the reader goes away.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<i64>,
    /// Prefix every line with its RFC 3339 time (nanoseconds).
    pub timestamps: bool,
    /// Only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// How a command run in a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    /// stdout and stderr, interleaved and cut to a few kilobytes.
    pub output: String,
}

/// The container runtime: everything the kubelet asks of an engine.
pub trait Runtime: Send + Sync + 'static {
    /// `<engine>://<version>`, as `nodeInfo.containerRuntimeVersion`.
    fn version(&self) -> BoxFuture<'_, Result<String>>;

    /// Whether `image` is on the machine.
    fn image_present(&self, image: String) -> BoxFuture<'_, Result<bool>>;

    /// Pulls `image` (the worker decides when, from the pull policy).
    fn pull_image(&self, image: String) -> BoxFuture<'_, Result<()>>;

    /// Creates and starts the pod's sandbox; returns its id.
    fn run_sandbox(&self, spec: SandboxSpec) -> BoxFuture<'_, Result<String>>;

    /// Creates and starts an app container joined to its sandbox; returns
    /// its id.
    fn run_container(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<String>>;

    /// Every kubelet-managed container of this node, or of one pod.
    fn list_containers(&self, pod_uid: Option<String>)
    -> BoxFuture<'_, Result<Vec<ContainerInfo>>>;

    /// Stops a container: SIGTERM, then SIGKILL after `grace`. Stopping a
    /// container that is not running succeeds.
    fn stop_container(&self, id: String, grace: Duration) -> BoxFuture<'_, Result<()>>;

    /// Removes a container (stopped or not). Removing one that is gone
    /// succeeds.
    fn remove_container(&self, id: String) -> BoxFuture<'_, Result<()>>;

    /// The container's log.
    fn container_logs(&self, id: String, options: LogOptions) -> BoxFuture<'_, Result<LogStream>>;

    /// The sandbox's IP address on the pod network, `None` with host network
    /// or when it has none.
    fn sandbox_ip(&self, sandbox_id: String) -> BoxFuture<'_, Result<Option<String>>>;

    /// The host pid of a running container's first process, `None` when it
    /// has none (not running, or a runtime without processes). Kernel
    /// tracing reads the container's cgroup and namespaces through it.
    fn container_pid(&self, id: String) -> BoxFuture<'_, Result<Option<u32>>> {
        let _ = id;
        Box::pin(async { Ok(None) })
    }

    /// Runs `command` in a running container and waits for it, at most
    /// `timeout` (exec probes). A runtime without processes refuses.
    fn exec(
        &self,
        id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ExecOutcome>> {
        let _ = (id, command, timeout);
        Box::pin(async {
            Err(RuntimeError::Engine {
                operation: "exec",
                message: "this runtime cannot run commands in containers".into(),
            })
        })
    }
}

/// The labels of a container of `pod` (`container` is [`SANDBOX_NAME`] for
/// the sandbox).
pub fn container_labels(
    pod: &PodRef,
    container: &str,
    restart_count: u32,
    node: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_POD_UID.to_owned(), pod.uid.clone()),
        (LABEL_POD_NAMESPACE.to_owned(), pod.namespace.clone()),
        (LABEL_POD_NAME.to_owned(), pod.name.clone()),
        (LABEL_CONTAINER_NAME.to_owned(), container.to_owned()),
        (LABEL_RESTART_COUNT.to_owned(), restart_count.to_string()),
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_NODE.to_owned(), node.to_owned()),
    ])
}

/// The engine-level name of a container, dockershim style:
/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
pub fn container_name(pod: &PodRef, container: &str, attempt: u32) -> String {
    format!(
        "k8s_{container}_{}_{}_{}_{attempt}",
        pod.name, pod.namespace, pod.uid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn container_names_read_like_dockershim() {
        assert_eq!(container_name(&pod(), "POD", 0), "k8s_POD_web_default_u1_0");
        assert_eq!(
            container_name(&pod(), "nginx", 3),
            "k8s_nginx_web_default_u1_3"
        );
    }

    #[test]
    fn every_container_carries_its_pod_in_labels() {
        let labels = container_labels(&pod(), "nginx", 2, "node-a");
        assert_eq!(labels[LABEL_POD_UID], "u1");
        assert_eq!(labels[LABEL_POD_NAMESPACE], "default");
        assert_eq!(labels[LABEL_POD_NAME], "web");
        assert_eq!(labels[LABEL_CONTAINER_NAME], "nginx");
        assert_eq!(labels[LABEL_RESTART_COUNT], "2");
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_NODE], "node-a");

        let info = ContainerInfo::from_labels(
            "c1".into(),
            labels,
            "img".into(),
            "sha256:1".into(),
            Utc::now(),
            RuntimeState::Created,
        )
        .unwrap();
        assert_eq!(info.pod, pod());
        assert_eq!(info.restart_count, 2);
        assert!(!info.is_sandbox());
    }

    #[test]
    fn pull_policy_defaults_follow_the_image_tag() {
        assert_eq!(PullPolicy::for_container(None, "nginx"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::for_container(None, "nginx:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_container(None, "nginx:1.27"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::for_container(None, "localhost:5000/web"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_container(Some("Never"), "nginx"),
            PullPolicy::Never
        );
    }
}
