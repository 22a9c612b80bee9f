//! A recording fake [`Runtime`] for unit tests: containers live in memory,
//! every call is recorded, and tests make containers exit at will.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;

use super::runtime::{
    BoxFuture, ContainerInfo, ContainerSpec, ExecOutcome, LogOptions, LogStream, Result, Runtime,
    RuntimeError, RuntimeState, SANDBOX_NAME, SandboxSpec, container_labels,
};

/// One call made to the fake.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    PullImage(String),
    RunSandbox(SandboxSpec),
    RunContainer(ContainerSpec),
    Stop(String, Duration),
    Remove(String),
    /// A command run in a container: its id and the command.
    Exec(String, Vec<String>),
}

#[derive(Default)]
struct State {
    images: HashSet<String>,
    containers: Vec<ContainerInfo>,
    calls: Vec<Call>,
    next_id: u64,
    /// Exit codes of commands run in containers, by container name; 0 when
    /// absent.
    exec_codes: HashMap<String, i64>,
    /// Sandbox creation fails with this message while set.
    sandbox_error: Option<String>,
}

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    /// A fake with these images present; pulls of any other image fail.
    pub fn with_images(images: &[&str]) -> Arc<FakeRuntime> {
        let fake = FakeRuntime::default();
        fake.state().images = images.iter().map(|i| (*i).to_owned()).collect();
        Arc::new(fake)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake runtime poisoned")
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    pub fn all(&self) -> Vec<ContainerInfo> {
        self.state().containers.clone()
    }

    pub fn containers_named(&self, name: &str) -> Vec<ContainerInfo> {
        self.all()
            .into_iter()
            .filter(|c| c.container_name == name)
            .collect()
    }

    /// Makes commands run in container `name` exit with `code` from now on.
    pub fn set_exec_code(&self, name: &str, code: i64) {
        self.state().exec_codes.insert(name.to_owned(), code);
    }

    /// Makes sandbox creation fail with `message`, or succeed again (`None`).
    pub fn fail_sandboxes(&self, message: Option<&str>) {
        self.state().sandbox_error = message.map(str::to_owned);
    }

    /// Removes a container behind the kubelet's back (`docker rm -f`).
    pub fn remove_behind_the_back(&self, name: &str) {
        self.state().containers.retain(|c| c.container_name != name);
    }

    /// Makes the running instance of container `name` exit with `code`.
    pub fn exit(&self, name: &str, code: i64) {
        let mut state = self.state();
        for c in state.containers.iter_mut() {
            if c.container_name == name
                && let RuntimeState::Running { started_at } = c.state
            {
                c.state = RuntimeState::Exited {
                    exit_code: code,
                    started_at,
                    finished_at: Some(Utc::now()),
                    oom_killed: false,
                    error: None,
                };
            }
        }
    }

    fn add(
        &self,
        spec_pod: &super::runtime::PodRef,
        name: &str,
        restarts: u32,
        image: &str,
        extra_labels: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("c{}", state.next_id);
        let mut labels = container_labels(spec_pod, name, restarts, "n1");
        labels.extend(extra_labels.clone());
        let info = ContainerInfo::from_labels(
            id.clone(),
            labels,
            image.to_owned(),
            format!("sha256:{image}"),
            Utc::now() + chrono::Duration::milliseconds(state.next_id as i64),
            RuntimeState::Running {
                started_at: Some(Utc::now()),
            },
        )
        .expect("labels name the pod");
        state.containers.push(info);
        id
    }
}

impl Runtime for FakeRuntime {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async { Ok("fake://0.1".to_owned()) })
    }

    fn image_present(&self, image: String) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move { Ok(self.state().images.contains(&image)) })
    }

    fn pull_image(&self, image: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.state().calls.push(Call::PullImage(image.clone()));
            Err(RuntimeError::ImagePull {
                image,
                message: "no registry here".into(),
            })
        })
    }

    fn run_sandbox(&self, spec: SandboxSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            self.state().calls.push(Call::RunSandbox(spec.clone()));
            if let Some(message) = self.state().sandbox_error.clone() {
                return Err(RuntimeError::Engine {
                    operation: "creating container",
                    message,
                });
            }
            let labels = Default::default();
            Ok(self.add(&spec.pod, SANDBOX_NAME, spec.attempt, &spec.image, &labels))
        })
    }

    fn run_container(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            self.state().calls.push(Call::RunContainer(spec.clone()));
            Ok(self.add(
                &spec.pod,
                &spec.name,
                spec.restart_count,
                &spec.image,
                &spec.labels,
            ))
        })
    }

    fn list_containers(
        &self,
        pod_uid: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<ContainerInfo>>> {
        Box::pin(async move {
            Ok(self
                .all()
                .into_iter()
                .filter(|c| pod_uid.as_ref().is_none_or(|uid| &c.pod.uid == uid))
                .collect())
        })
    }

    fn stop_container(&self, id: String, grace: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(Call::Stop(id.clone(), grace));
            for c in state.containers.iter_mut().filter(|c| c.id == id) {
                if let RuntimeState::Running { started_at } = c.state {
                    c.state = RuntimeState::Exited {
                        exit_code: 137,
                        started_at,
                        finished_at: Some(Utc::now()),
                        oom_killed: false,
                        error: None,
                    };
                }
            }
            Ok(())
        })
    }

    fn remove_container(&self, id: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(Call::Remove(id.clone()));
            state.containers.retain(|c| c.id != id);
            Ok(())
        })
    }

    fn container_logs(&self, id: String, options: LogOptions) -> BoxFuture<'_, Result<LogStream>> {
        Box::pin(async move {
            if !self.state().containers.iter().any(|c| c.id == id) {
                return Err(RuntimeError::NotFound(id));
            }
            let mut lines: Vec<String> = (1..=3).map(|n| format!("{id} line {n}\n")).collect();
            if let Some(tail) = options.tail_lines {
                let skip = lines.len().saturating_sub(tail.max(0) as usize);
                lines.drain(..skip);
            }
            let chunks: Vec<Result<Bytes>> =
                lines.into_iter().map(|l| Ok(Bytes::from(l))).collect();
            Ok(futures::stream::iter(chunks).boxed())
        })
    }

    fn sandbox_ip(&self, _sandbox_id: String) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async { Ok(Some("172.17.0.2".to_owned())) })
    }

    fn exec(
        &self,
        id: String,
        command: Vec<String>,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<ExecOutcome>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(Call::Exec(id.clone(), command));
            let Some(container) = state.containers.iter().find(|c| c.id == id) else {
                return Err(RuntimeError::NotFound(id));
            };
            let name = container.container_name.clone();
            let exit_code = state.exec_codes.get(&name).copied().unwrap_or(0);
            Ok(ExecOutcome {
                exit_code,
                output: String::new(),
            })
        })
    }
}
