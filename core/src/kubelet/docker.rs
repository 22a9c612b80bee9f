//! The [`Runtime`] over the Docker Engine API, through bollard.
//!
//! A pod is a pause container (the sandbox: it holds the network and IPC
//! namespaces, created with `ipc_mode: shareable`) and app containers that
//! join it with `network_mode`/`ipc_mode: container:<sandbox>`, named
//! dockershim style so `docker ps` reads like the seed walk-through.
//!
//! Facts about the engine this code relies on (Debian's dockerd speaks API
//! 1.41): the version is negotiated on connect; the stop signal is sent with
//! `kill` because `StopContainerOptions.signal` needs 1.42; the pod IP is
//! read from `networks["bridge"]`. coxswain's own images (`coxswain/...`)
//! exist on no registry and are never pulled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::runtime::{
    BoxFuture, ContainerInfo, ContainerSpec, ExecOutcome, LABEL_MANAGED, LABEL_NODE, LABEL_POD_UID,
    LOCAL_IMAGE_PREFIX, LogOptions, LogStream, Result, Runtime, RuntimeError, RuntimeState,
    SANDBOX_NAME, SandboxSpec, container_labels, container_name,
};

/// The Docker runtime of one node.
pub struct DockerRuntime {
    docker: Docker,
    /// The node whose containers this runtime creates and lists.
    node: String,
    /// Inspect results by container id, with the summary state they were
    /// read at: a container is inspected again only when its state changes.
    inspected: Mutex<HashMap<String, (String, ContainerInfo)>>,
}

impl DockerRuntime {
    /// Connects to the engine at `socket` (the local default when `None`)
    /// and negotiates the API version.
    pub async fn connect(socket: Option<&str>, node: &str) -> Result<DockerRuntime> {
        let docker = match socket {
            Some(path) => Docker::connect_with_socket(path, 120, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(|e| engine("connecting to docker", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| engine("negotiating", e))?;
        Ok(DockerRuntime {
            docker,
            node: node.to_owned(),
            inspected: Mutex::new(HashMap::new()),
        })
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine("inspecting image", e)),
        }
    }

    async fn pull(&self, image: &str) -> Result<()> {
        if image.starts_with(LOCAL_IMAGE_PREFIX) {
            return Err(RuntimeError::ImagePull {
                image: image.to_owned(),
                message: "coxswain images are built locally (cargo xtask images), not pulled"
                    .into(),
            });
        }
        let (from_image, tag) = split_tag(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| RuntimeError::ImagePull {
                image: image.to_owned(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    async fn create_and_start(&self, name: String, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine("creating container", e))?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            // Keep the container: its exit shows up in the status, and the
            // next sync removes it before retrying.
            return Err(engine("starting container", e));
        }
        Ok(created.id)
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine("inspecting container", e)),
        }
    }

    async fn is_running(&self, id: &str) -> Result<bool> {
        Ok(self
            .inspect(id)
            .await?
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false))
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: not running; 404: gone. Either way there is nothing to kill.
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(engine("killing container", e)),
        }
    }

    /// Runs `command` in container `id` and reads its output and exit code.
    async fn exec(&self, id: &str, command: Vec<String>) -> Result<ExecOutcome> {
        const OUTPUT_LIMIT: usize = 10 * 1024;
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| engine("creating exec", e))?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(|e| engine("starting exec", e))?;
        let mut output = Vec::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = started
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| engine("reading exec output", e))?;
                if output.len() < OUTPUT_LIMIT {
                    output.extend_from_slice(&chunk.into_bytes());
                }
            }
        }
        output.truncate(OUTPUT_LIMIT);
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| engine("inspecting exec", e))?;
        Ok(ExecOutcome {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }

    async fn list(&self, pod_uid: Option<String>) -> Result<Vec<ContainerInfo>> {
        let full_listing = pod_uid.is_none();
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_NODE}={}", self.node),
        ];
        if let Some(uid) = pod_uid {
            labels.push(format!("{LABEL_POD_UID}={uid}"));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine("listing containers", e))?;

        let mut out = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            let state = summary.state.map(|s| s.to_string()).unwrap_or_default();
            let cached = self
                .inspected
                .lock()
                .expect("inspect cache poisoned")
                .get(&id)
                .cloned();
            if let Some((seen_state, info)) = cached
                && seen_state == state
            {
                out.push(info);
                continue;
            }
            let Some(inspected) = self.inspect(&id).await? else {
                continue;
            };
            let Some(info) = info_from_inspect(id.clone(), inspected) else {
                continue;
            };
            self.inspected
                .lock()
                .expect("inspect cache poisoned")
                .insert(id, (state, info.clone()));
            out.push(info);
        }

        // A full listing tells which containers are gone: forget them.
        if full_listing {
            let live: HashSet<&str> = out.iter().map(|c| c.id.as_str()).collect();
            let mut cache = self.inspected.lock().expect("inspect cache poisoned");
            cache.retain(|id, _| live.contains(id.as_str()));
        }
        Ok(out)
    }
}

impl Runtime for DockerRuntime {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let version = self
                .docker
                .version()
                .await
                .map_err(|e| engine("reading version", e))?;
            Ok(format!("docker://{}", version.version.unwrap_or_default()))
        })
    }

    fn image_present(&self, image: String) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move { self.image_present(&image).await })
    }

    fn pull_image(&self, image: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.pull(&image).await })
    }

    fn run_sandbox(&self, spec: SandboxSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let labels = container_labels(&spec.pod, SANDBOX_NAME, spec.attempt, &self.node);
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                hostname: (!spec.host_network).then(|| spec.hostname.clone()),
                labels: Some(labels.into_iter().collect()),
                host_config: Some(HostConfig {
                    ipc_mode: Some("shareable".into()),
                    network_mode: Some(if spec.host_network { "host" } else { "bridge" }.into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.create_and_start(container_name(&spec.pod, SANDBOX_NAME, spec.attempt), body)
                .await
        })
    }

    fn run_container(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let mut labels =
                container_labels(&spec.pod, &spec.name, spec.restart_count, &self.node);
            labels.extend(spec.labels.clone());
            let sandbox = format!("container:{}", spec.sandbox_id);
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                entrypoint: spec.entrypoint.clone(),
                cmd: spec.cmd.clone(),
                env: (!spec.env.is_empty()).then(|| spec.env.clone()),
                working_dir: spec.working_dir.clone(),
                tty: Some(spec.tty),
                open_stdin: Some(spec.stdin),
                labels: Some(labels.into_iter().collect()),
                host_config: Some(HostConfig {
                    network_mode: Some(sandbox.clone()),
                    ipc_mode: Some(sandbox.clone()),
                    pid_mode: spec.share_process_namespace.then(|| sandbox.clone()),
                    memory: spec.memory_limit,
                    nano_cpus: spec.nano_cpus,
                    binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let name = container_name(&spec.pod, &spec.name, spec.restart_count);
            self.create_and_start(name, body).await
        })
    }

    fn list_containers(
        &self,
        pod_uid: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<ContainerInfo>>> {
        Box::pin(self.list(pod_uid))
    }

    fn stop_container(&self, id: String, grace: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if !self.is_running(&id).await? {
                return Ok(());
            }
            if !grace.is_zero() {
                self.kill(&id, "SIGTERM").await?;
                let deadline = tokio::time::Instant::now() + grace;
                while tokio::time::Instant::now() < deadline {
                    if !self.is_running(&id).await? {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            self.kill(&id, "SIGKILL").await
        })
    }

    fn remove_container(&self, id: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                // 409: removal already in progress.
                Err(e) if status_code(&e) == Some(409) => {}
                Err(e) => return Err(engine("removing container", e)),
            }
            self.inspected
                .lock()
                .expect("inspect cache poisoned")
                .remove(&id);
            Ok(())
        })
    }

    fn container_logs(&self, id: String, options: LogOptions) -> BoxFuture<'_, Result<LogStream>> {
        Box::pin(async move {
            let docker_options = LogsOptions {
                follow: options.follow,
                stdout: true,
                stderr: true,
                timestamps: options.timestamps,
                since: options.since.map(|t| t.timestamp() as i32).unwrap_or(0),
                tail: options
                    .tail_lines
                    .map(|n| n.max(0).to_string())
                    .unwrap_or("all".into()),
                ..Default::default()
            };
            let stream = self
                .docker
                .logs(&id, Some(docker_options))
                .map_ok(|out| out.into_bytes())
                .map_err(|e| match status_code(&e) {
                    Some(404) => RuntimeError::NotFound("log".into()),
                    _ => engine("reading logs", e),
                });
            Ok(stream.boxed())
        })
    }

    fn sandbox_ip(&self, sandbox_id: String) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            let Some(inspected) = self.inspect(&sandbox_id).await? else {
                return Err(RuntimeError::NotFound(sandbox_id));
            };
            Ok(inspected
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|mut n| n.remove("bridge"))
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty()))
        })
    }

    fn exec(
        &self,
        id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<ExecOutcome>> {
        Box::pin(async move {
            let shown = command.join(" ");
            match tokio::time::timeout(timeout, self.exec(&id, command)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(RuntimeError::Engine {
                    operation: "exec",
                    message: format!(
                        "command {shown:?} timed out after {}s",
                        timeout.as_secs_f64()
                    ),
                }),
            }
        })
    }

    fn container_pid(&self, id: String) -> BoxFuture<'_, Result<Option<u32>>> {
        Box::pin(async move {
            let Some(inspected) = self.inspect(&id).await? else {
                return Err(RuntimeError::NotFound(id));
            };
            Ok(inspected
                .state
                .and_then(|s| s.pid)
                .filter(|pid| *pid > 0)
                .map(|pid| pid as u32))
        })
    }
}

/// Builds the kubelet's view of an inspected container.
fn info_from_inspect(id: String, c: ContainerInspectResponse) -> Option<ContainerInfo> {
    let config = c.config.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let created_at = c
        .created
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_else(Utc::now);
    let state = c.state.unwrap_or_default();
    let started_at = state.started_at.as_deref().and_then(parse_time);
    let error = state.error.clone().filter(|e| !e.is_empty());
    let runtime_state = if state.running.unwrap_or(false) {
        RuntimeState::Running { started_at }
    } else {
        match state.status.map(|s| s.to_string()).as_deref() {
            // A container whose start failed stays "created" with an error.
            Some("created") if error.is_none() => RuntimeState::Created,
            Some("created" | "exited" | "dead") => RuntimeState::Exited {
                exit_code: state
                    .exit_code
                    .filter(|c| *c != 0)
                    .unwrap_or(if error.is_some() { 128 } else { 0 }),
                started_at,
                finished_at: state.finished_at.as_deref().and_then(parse_time),
                oom_killed: state.oom_killed.unwrap_or(false),
                error,
            },
            _ => RuntimeState::Unknown,
        }
    };
    ContainerInfo::from_labels(
        id,
        labels,
        config.image.unwrap_or_default(),
        c.image.unwrap_or_default(),
        created_at,
        runtime_state,
    )
}

/// Parses an engine timestamp; the zero time (`0001-01-01...`) means unset.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (parsed.timestamp() > 0).then_some(parsed)
}

/// Splits `repo[:tag]` (the tag defaults to `latest`; a registry port is
/// not a tag).
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn status_code(error: &DockerError) -> Option<u16> {
    match error {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn engine(operation: &'static str, error: DockerError) -> RuntimeError {
    RuntimeError::Engine {
        operation,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(split_tag("nginx"), ("nginx", "latest"));
        assert_eq!(split_tag("nginx:1.27"), ("nginx", "1.27"));
        assert_eq!(
            split_tag("localhost:5000/web"),
            ("localhost:5000/web", "latest")
        );
        assert_eq!(
            split_tag("localhost:5000/web:2"),
            ("localhost:5000/web", "2")
        );
    }

    #[test]
    fn the_engines_zero_time_means_unset() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert!(parse_time("2024-05-01T10:00:00.123456789Z").is_some());
    }
}
