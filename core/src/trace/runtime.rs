//! [`TracedRuntime`]: a runtime that tells the [`TraceHub`] about every
//! sandbox and container it starts.
//!
//! Creation runs inside the probes' runtime window, so runc's unshare and
//! setns calls are seen; as soon as the engine answers, the container's
//! first process is registered, and the events held until then are
//! attributed. Removing a container makes the hub forget its identifiers;
//! removing a sandbox also makes it look, a second later, for the pod's
//! processes that still run.
//! Every other call goes straight to the inner runtime.

use std::sync::Arc;
use std::time::Duration;

use super::TraceHub;
use crate::kubelet::runtime::{
    BoxFuture, ContainerInfo, ContainerSpec, LogOptions, LogStream, PodRef, Result, Runtime,
    SANDBOX_NAME, SandboxSpec,
};

/// How long after a pod's sandbox is removed its leftovers are looked for.
const LEFTOVER_CHECK_AFTER: Duration = Duration::from_secs(1);

/// A runtime decorated with kernel tracing.
pub struct TracedRuntime {
    inner: Arc<dyn Runtime>,
    hub: Arc<TraceHub>,
}

impl TracedRuntime {
    pub fn new(inner: Arc<dyn Runtime>, hub: Arc<TraceHub>) -> TracedRuntime {
        TracedRuntime { inner, hub }
    }

    async fn register(&self, pod: &PodRef, container: &str, id: &str) {
        match self.inner.container_pid(id.to_owned()).await {
            Ok(Some(pid)) => self.hub.register_container(pod, container, id, pid),
            Ok(None) => {}
            Err(error) => tracing::debug!(container_id = id, %error,
                "reading a container's pid for tracing failed"),
        }
    }
}

impl Runtime for TracedRuntime {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        self.inner.version()
    }

    fn image_present(&self, image: String) -> BoxFuture<'_, Result<bool>> {
        self.inner.image_present(image)
    }

    fn pull_image(&self, image: String) -> BoxFuture<'_, Result<()>> {
        self.inner.pull_image(image)
    }

    fn run_sandbox(&self, spec: SandboxSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let window = self.hub.runtime_window();
            let pod = spec.pod.clone();
            let id = self.inner.run_sandbox(spec).await?;
            self.register(&pod, SANDBOX_NAME, &id).await;
            drop(window);
            Ok(id)
        })
    }

    fn run_container(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let window = self.hub.runtime_window();
            let (pod, name) = (spec.pod.clone(), spec.name.clone());
            let id = self.inner.run_container(spec).await?;
            self.register(&pod, &name, &id).await;
            drop(window);
            Ok(id)
        })
    }

    fn list_containers(
        &self,
        pod_uid: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<ContainerInfo>>> {
        self.inner.list_containers(pod_uid)
    }

    fn stop_container(&self, id: String, grace: Duration) -> BoxFuture<'_, Result<()>> {
        self.inner.stop_container(id, grace)
    }

    fn remove_container(&self, id: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let result = self.inner.remove_container(id.clone()).await;
            if let Some(uid) = self.hub.container_removed(&id) {
                // The pod is gone: once its processes have had a moment to
                // be reaped, say whether any still run.
                let hub = self.hub.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(LEFTOVER_CHECK_AFTER).await;
                    hub.check_leftovers(&uid);
                });
            }
            result
        })
    }

    fn container_logs(&self, id: String, options: LogOptions) -> BoxFuture<'_, Result<LogStream>> {
        self.inner.container_logs(id, options)
    }

    fn sandbox_ip(&self, sandbox_id: String) -> BoxFuture<'_, Result<Option<String>>> {
        self.inner.sandbox_ip(sandbox_id)
    }

    fn container_pid(&self, id: String) -> BoxFuture<'_, Result<Option<u32>>> {
        self.inner.container_pid(id)
    }

    fn exec(
        &self,
        id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<crate::kubelet::runtime::ExecOutcome>> {
        self.inner.exec(id, command, timeout)
    }
}
