//! A simulated container runtime for load tests: containers that are only
//! entries in a table, behind the same [`Runtime`] trait as Docker.
//!
//! Everything above the runtime is the real kubelet: the pod manager, the pod
//! workers, the status computation and the API writes run exactly as they do
//! on Docker; only the engine is replaced. What callers may rely on:
//!
//! * sandboxes and containers take the delays of the [`SimProfile`] to start
//!   (drawn uniformly from each range), then report `Running`; a start can
//!   fail at the profile's rates, which the kubelet sees as an engine error;
//! * a share of started containers (`exit_rate`) exits on its own after a
//!   lifetime drawn from `lifetime_ms`, with `exit_code`; exits are computed
//!   when containers are listed, so no timer runs per container;
//! * every image is present, so nothing is pulled unless the pull policy is
//!   `Always` (which then takes `pull_ms`);
//! * each sandbox gets an address of its own in `10.0.0.0/8`, unique across
//!   the runtimes of one process as long as their `index` differs;
//! * the kubelet has no readiness probes yet, so a running container is a
//!   ready one: the profile has no separate readiness delay.
//!
//! [`start_nodes`] starts many kubelets on simulated runtimes in one
//! process, each with its own Node, Lease, pod watch and pod workers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::runtime::{
    BoxFuture, ContainerInfo, ContainerSpec, LogOptions, LogStream, PodRef, Result, Runtime,
    RuntimeError, RuntimeState, SANDBOX_NAME, SandboxSpec, container_labels,
};
use super::{Kubelet, KubeletConfig};

/// How simulated containers behave. Ranges are `[min, max]` milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimProfile {
    /// Time to create and start a pod sandbox.
    pub sandbox_start_ms: (u64, u64),
    /// Time to create and start an app container.
    pub container_start_ms: (u64, u64),
    /// Time to pull an image (pulled only with policy `Always`).
    pub pull_ms: (u64, u64),
    /// Time a stop takes, capped by the grace period.
    pub stop_ms: (u64, u64),
    /// Share of sandbox starts that fail, 0 to 1.
    pub sandbox_failure_rate: f64,
    /// Share of container starts that fail, 0 to 1.
    pub start_failure_rate: f64,
    /// Share of started containers that exit by themselves, 0 to 1.
    pub exit_rate: f64,
    /// How long those containers run before they exit.
    pub lifetime_ms: (u64, u64),
    /// The exit code of containers that exit by themselves.
    pub exit_code: i64,
}

impl Default for SimProfile {
    /// Fast, reliable containers: a few milliseconds to start, none fail.
    fn default() -> SimProfile {
        SimProfile {
            sandbox_start_ms: (5, 20),
            container_start_ms: (5, 30),
            pull_ms: (100, 500),
            stop_ms: (1, 10),
            sandbox_failure_rate: 0.0,
            start_failure_rate: 0.0,
            exit_rate: 0.0,
            lifetime_ms: (30_000, 120_000),
            exit_code: 1,
        }
    }
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading the simulation profile {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing the simulation profile {path}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("simulation profile: {0}")]
    Invalid(String),
}

impl SimProfile {
    /// Reads a profile from a YAML (or JSON) file; absent fields keep their
    /// defaults.
    pub fn read(path: &Path) -> Result<SimProfile, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: shown.clone(),
            source,
        })?;
        let profile: SimProfile =
            serde_yaml::from_str(&text).map_err(|source| ProfileError::Parse {
                path: shown,
                source,
            })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks that rates are shares and ranges are ordered.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let rates = [
            ("sandbox_failure_rate", self.sandbox_failure_rate),
            ("start_failure_rate", self.start_failure_rate),
            ("exit_rate", self.exit_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ProfileError::Invalid(format!(
                    "{name} is {rate}, not between 0 and 1"
                )));
            }
        }
        let ranges = [
            ("sandbox_start_ms", self.sandbox_start_ms),
            ("container_start_ms", self.container_start_ms),
            ("pull_ms", self.pull_ms),
            ("stop_ms", self.stop_ms),
            ("lifetime_ms", self.lifetime_ms),
        ];
        for (name, (min, max)) in ranges {
            if min > max {
                return Err(ProfileError::Invalid(format!(
                    "{name} is [{min}, {max}]: the minimum is above the maximum"
                )));
            }
        }
        Ok(())
    }
}

/// One simulated container.
struct SimContainer {
    info: ContainerInfo,
    /// When it exits by itself, if it does.
    exits_at: Option<DateTime<Utc>>,
    /// The sandbox's address (sandboxes only).
    ip: Option<String>,
}

impl SimContainer {
    /// Makes the state current: a container past its lifetime has exited
    /// with `exit_code`.
    fn refresh(&mut self, now: DateTime<Utc>, exit_code: i64) {
        if let (Some(exits_at), RuntimeState::Running { started_at }) =
            (self.exits_at, &self.info.state)
            && exits_at <= now
        {
            self.info.state = RuntimeState::Exited {
                exit_code,
                started_at: *started_at,
                finished_at: Some(exits_at),
                oom_killed: false,
                error: None,
            };
        }
    }
}

/// The table behind one runtime.
#[derive(Default)]
struct SimState {
    /// Containers by pod uid, in creation order.
    pods: HashMap<String, Vec<SimContainer>>,
    /// The pod uid of each container id.
    owners: HashMap<String, String>,
    /// Containers created so far: ids and addresses come from it.
    created: u64,
}

/// A runtime that runs no processes. Cheap: one small table per node.
pub struct SimRuntime {
    node: String,
    /// Distinguishes the runtimes of one process (ids, addresses).
    index: u32,
    profile: SimProfile,
    state: Mutex<SimState>,
}

impl SimRuntime {
    pub fn new(node: impl Into<String>, index: u32, profile: SimProfile) -> SimRuntime {
        SimRuntime {
            node: node.into(),
            index,
            profile,
            state: Mutex::new(SimState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().expect("simulated runtime poisoned")
    }

    /// How many containers (sandboxes included) the runtime holds.
    pub fn container_count(&self) -> usize {
        self.state().owners.len()
    }

    /// Adds a running container and returns its id.
    fn add(&self, pod: &PodRef, name: &str, attempt: u32, image: &str, sandbox: bool) -> String {
        let exits = !sandbox && chance(self.profile.exit_rate);
        let lifetime = draw(self.profile.lifetime_ms);
        let now = Utc::now();
        let mut state = self.state();
        state.created += 1;
        let serial = state.created;
        let id = format!("sim{:04x}{serial:08x}", self.index);
        let ip = sandbox.then(|| address(self.index, serial));
        let info = ContainerInfo::from_labels(
            id.clone(),
            container_labels(pod, name, attempt, &self.node),
            image.to_owned(),
            format!("sha256:{:064x}", fnv(image)),
            now,
            RuntimeState::Running {
                started_at: Some(now),
            },
        )
        .expect("the labels name the pod and the container");
        let exits_at =
            exits.then(|| now + chrono::Duration::from_std(lifetime).unwrap_or_default());
        state.owners.insert(id.clone(), pod.uid.clone());
        state
            .pods
            .entry(pod.uid.clone())
            .or_default()
            .push(SimContainer { info, exits_at, ip });
        id
    }

    /// Runs `f` on container `id`; `NotFound` when there is none.
    fn with_container<T>(&self, id: &str, f: impl FnOnce(&mut SimContainer) -> T) -> Result<T> {
        let mut state = self.state();
        let uid = state
            .owners
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        let container = state
            .pods
            .get_mut(&uid)
            .and_then(|cs| cs.iter_mut().find(|c| c.info.id == id))
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        Ok(f(container))
    }
}

impl Runtime for SimRuntime {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async { Ok("sim://0.1".to_owned()) })
    }

    fn image_present(&self, _image: String) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async { Ok(true) })
    }

    fn pull_image(&self, _image: String) -> BoxFuture<'_, Result<()>> {
        let delay = draw(self.profile.pull_ms);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(())
        })
    }

    fn run_sandbox(&self, spec: SandboxSpec) -> BoxFuture<'_, Result<String>> {
        let delay = draw(self.profile.sandbox_start_ms);
        let fails = chance(self.profile.sandbox_failure_rate);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fails {
                return Err(RuntimeError::Engine {
                    operation: "starting the sandbox",
                    message: "simulated failure".into(),
                });
            }
            Ok(self.add(&spec.pod, SANDBOX_NAME, spec.attempt, &spec.image, true))
        })
    }

    fn run_container(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<String>> {
        let delay = draw(self.profile.container_start_ms);
        let fails = chance(self.profile.start_failure_rate);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fails {
                return Err(RuntimeError::Engine {
                    operation: "starting the container",
                    message: "simulated failure".into(),
                });
            }
            Ok(self.add(
                &spec.pod,
                &spec.name,
                spec.restart_count,
                &spec.image,
                false,
            ))
        })
    }

    fn list_containers(
        &self,
        pod_uid: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<ContainerInfo>>> {
        Box::pin(async move {
            let now = Utc::now();
            let mut state = self.state();
            let mut listed = Vec::new();
            let exit_code = self.profile.exit_code;
            let mut take = |containers: &mut Vec<SimContainer>| {
                for c in containers.iter_mut() {
                    c.refresh(now, exit_code);
                    listed.push(c.info.clone());
                }
            };
            match &pod_uid {
                Some(uid) => {
                    if let Some(containers) = state.pods.get_mut(uid) {
                        take(containers);
                    }
                }
                None => state.pods.values_mut().for_each(&mut take),
            }
            Ok(listed)
        })
    }

    fn stop_container(&self, id: String, grace: Duration) -> BoxFuture<'_, Result<()>> {
        let delay = draw(self.profile.stop_ms).min(grace);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let now = Utc::now();
            let exit_code = self.profile.exit_code;
            let stopped = self.with_container(&id, |c| {
                c.refresh(now, exit_code);
                if let RuntimeState::Running { started_at } = c.info.state {
                    c.info.state = RuntimeState::Exited {
                        exit_code: 137,
                        started_at,
                        finished_at: Some(now),
                        oom_killed: false,
                        error: None,
                    };
                }
            });
            match stopped {
                Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    fn remove_container(&self, id: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.state();
            if let Some(uid) = state.owners.remove(&id)
                && let Some(containers) = state.pods.get_mut(&uid)
            {
                containers.retain(|c| c.info.id != id);
                if containers.is_empty() {
                    state.pods.remove(&uid);
                }
            }
            Ok(())
        })
    }

    fn container_logs(&self, id: String, options: LogOptions) -> BoxFuture<'_, Result<LogStream>> {
        Box::pin(async move {
            let name = self.with_container(&id, |c| c.info.container_name.clone())?;
            let mut lines = vec![
                format!("simulated container {name} ({id}) started\n"),
                format!("simulated container {name} runs no process\n"),
            ];
            if let Some(tail) = options.tail_lines {
                let skip = lines.len().saturating_sub(tail.max(0) as usize);
                lines.drain(..skip);
            }
            let chunks: Vec<Result<Bytes>> =
                lines.into_iter().map(|l| Ok(Bytes::from(l))).collect();
            Ok(futures::stream::iter(chunks).boxed())
        })
    }

    fn sandbox_ip(&self, sandbox_id: String) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move { self.with_container(&sandbox_id, |c| c.ip.clone()) })
    }
}

/// Starts `count` kubelets on simulated runtimes, named `<prefix>-0000`,
/// `<prefix>-0001`, ...; each gets the settings of `template` with its own
/// name, a free node agent port and its own directory under
/// `template.root_dir`. Static pods are left to real nodes.
pub async fn start_nodes(
    template: &KubeletConfig,
    prefix: &str,
    count: usize,
    profile: &SimProfile,
) -> anyhow::Result<Vec<Kubelet>> {
    let mut kubelets = Vec::with_capacity(count);
    for index in 0..count {
        let name = node_name(prefix, index);
        let config = KubeletConfig {
            node_name: name.clone(),
            pod_manifest_path: None,
            port: 0,
            root_dir: template.root_dir.join(&name),
            ..template.clone()
        };
        let runtime = Arc::new(SimRuntime::new(&name, index as u32, profile.clone()));
        kubelets.push(Kubelet::start(config, runtime).await?);
    }
    Ok(kubelets)
}

/// The name of simulated node `index`.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:04}")
}

/// A duration drawn uniformly from a `[min, max]` millisecond range.
fn draw((min, max): (u64, u64)) -> Duration {
    if max <= min {
        return Duration::from_millis(min);
    }
    Duration::from_micros(rand::rng().random_range(min * 1000..=max * 1000))
}

/// True with probability `rate`.
fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::rng().random_bool(rate.min(1.0))
}

/// The address of the `serial`-th sandbox of runtime `index`: 1,024
/// addresses per runtime, from 10.0.4.0 on.
fn address(index: u32, serial: u64) -> String {
    let n = 1024 + index.wrapping_mul(1024) + (serial % 1024) as u32;
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// A stable stand-in for an image digest.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant() -> SimProfile {
        SimProfile {
            sandbox_start_ms: (0, 0),
            container_start_ms: (0, 0),
            stop_ms: (0, 0),
            ..SimProfile::default()
        }
    }

    fn pod(uid: &str) -> PodRef {
        PodRef {
            uid: uid.into(),
            namespace: "default".into(),
            name: format!("p-{uid}"),
        }
    }

    async fn run_pod(runtime: &SimRuntime, uid: &str) -> (String, String) {
        let sandbox = runtime
            .run_sandbox(SandboxSpec {
                pod: pod(uid),
                image: "coxswain/pause:0.1".into(),
                host_network: false,
                hostname: "p".into(),
                attempt: 0,
            })
            .await
            .unwrap();
        let app = runtime
            .run_container(ContainerSpec {
                pod: pod(uid),
                sandbox_id: sandbox.clone(),
                name: "web".into(),
                image: "coxswain/web:0.1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        (sandbox, app)
    }

    #[tokio::test]
    async fn started_containers_run_and_are_listed_by_pod() {
        let runtime = SimRuntime::new("n1", 0, instant());
        run_pod(&runtime, "a").await;
        run_pod(&runtime, "b").await;
        let a = runtime.list_containers(Some("a".into())).await.unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|c| c.state.is_running() && c.pod.uid == "a"));
        assert_eq!(runtime.list_containers(None).await.unwrap().len(), 4);
        assert_eq!(a[0].labels[super::super::runtime::LABEL_NODE], "n1");
    }

    #[tokio::test]
    async fn sandboxes_get_distinct_addresses_across_runtimes() {
        let one = SimRuntime::new("n1", 0, instant());
        let two = SimRuntime::new("n2", 1, instant());
        let (s1, _) = run_pod(&one, "a").await;
        let (s2, _) = run_pod(&two, "b").await;
        let ip1 = one.sandbox_ip(s1).await.unwrap().unwrap();
        let ip2 = two.sandbox_ip(s2).await.unwrap().unwrap();
        assert_ne!(ip1, ip2);
        assert!(ip1.starts_with("10."));
    }

    #[tokio::test]
    async fn stopped_containers_exit_and_removed_ones_are_gone() {
        let runtime = SimRuntime::new("n1", 0, instant());
        let (sandbox, app) = run_pod(&runtime, "a").await;
        runtime
            .stop_container(app.clone(), Duration::from_secs(1))
            .await
            .unwrap();
        let listed = runtime.list_containers(Some("a".into())).await.unwrap();
        let stopped = listed.iter().find(|c| c.id == app).unwrap();
        assert!(matches!(
            stopped.state,
            RuntimeState::Exited { exit_code: 137, .. }
        ));
        runtime.remove_container(app.clone()).await.unwrap();
        runtime.remove_container(sandbox).await.unwrap();
        assert_eq!(runtime.container_count(), 0);
        // Both are idempotent, as the trait asks.
        runtime
            .stop_container(app.clone(), Duration::ZERO)
            .await
            .unwrap();
        runtime.remove_container(app).await.unwrap();
    }

    #[tokio::test]
    async fn containers_exit_on_their_own_at_the_exit_rate() {
        let profile = SimProfile {
            exit_rate: 1.0,
            lifetime_ms: (0, 0),
            exit_code: 3,
            ..instant()
        };
        let runtime = SimRuntime::new("n1", 0, profile);
        let (_, app) = run_pod(&runtime, "a").await;
        let listed = runtime.list_containers(Some("a".into())).await.unwrap();
        let app = listed.iter().find(|c| c.id == app).unwrap();
        assert!(matches!(
            app.state,
            RuntimeState::Exited { exit_code: 3, .. }
        ));
        // Sandboxes never exit by themselves.
        assert!(
            listed
                .iter()
                .any(|c| c.is_sandbox() && c.state.is_running())
        );
    }

    #[tokio::test]
    async fn starts_fail_at_the_failure_rate() {
        let profile = SimProfile {
            start_failure_rate: 1.0,
            ..instant()
        };
        let runtime = SimRuntime::new("n1", 0, profile);
        let result = runtime
            .run_container(ContainerSpec {
                pod: pod("a"),
                name: "web".into(),
                ..Default::default()
            })
            .await;
        assert!(matches!(result, Err(RuntimeError::Engine { .. })));
        assert_eq!(runtime.container_count(), 0);
    }

    #[test]
    fn profiles_read_partial_yaml_and_reject_nonsense() {
        let dir = std::env::temp_dir().join(format!("coxswain-sim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.yaml");
        std::fs::write(&path, "container_start_ms: [50, 100]\nexit_rate: 0.1\n").unwrap();
        let profile = SimProfile::read(&path).unwrap();
        assert_eq!(profile.container_start_ms, (50, 100));
        assert_eq!(profile.exit_rate, 0.1);
        assert_eq!(
            profile.sandbox_start_ms,
            SimProfile::default().sandbox_start_ms
        );

        std::fs::write(&path, "exit_rate: 2\n").unwrap();
        assert!(matches!(
            SimProfile::read(&path),
            Err(ProfileError::Invalid(_))
        ));
        std::fs::write(&path, "no_such_knob: 1\n").unwrap();
        assert!(matches!(
            SimProfile::read(&path),
            Err(ProfileError::Parse { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn draws_stay_inside_their_range() {
        for _ in 0..100 {
            let d = draw((5, 10));
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(10));
        }
        assert_eq!(draw((7, 7)), Duration::from_millis(7));
    }
}
