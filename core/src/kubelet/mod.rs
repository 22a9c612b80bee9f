//! The kubelet: runs the pods bound to its node, and static pods from a
//! manifest directory, on a container runtime.
//!
//! Pods come from two sources: the API (a watch of pods with
//! `spec.nodeName=<node>`) and the manifest directory (rescanned every
//! second). Each pod gets a [`worker::PodWorker`] that makes the runtime
//! match it and reports its status. Static pods get a mirror pod in the API;
//! deleting a mirror pod never stops its static pod (the mirror is made
//! again). Containers of pods that are no longer wanted are removed; those
//! of wanted pods are adopted as they are when the kubelet restarts.
//!
//! Without an API client the kubelet runs standalone: static pods only. With
//! one it also registers its Node, renews its Lease and records Events. The
//! node agent HTTP server (container logs) listens on `address:port`.
//!
//! Files: `runtime.rs` (the runtime trait), `docker.rs` (bollard), `sim.rs`
//! (simulated, for load tests),
//! `manifests.rs` (static pods), `worker.rs` (per-pod sync), `status.rs`
//! (PodStatus), `backoff.rs`, `node.rs` (Node and Lease), `server.rs` (node
//! agent).

pub mod backoff;
pub mod docker;
pub mod manifests;
pub mod node;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod sim;
pub mod spec;
pub mod status;
pub mod worker;

#[cfg(test)]
mod fake;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::api::{DeleteOptions, Pod, Preconditions, Resource};
use crate::client::{Client, EventRecorder, ListParams, WatcherEvent, watcher};
use manifests::{ANNOTATION_CONFIG_MIRROR, ManifestDir, is_mirror_pod, mirror_pod};
use runtime::{ContainerInfo, Runtime};
use worker::{Desired, NodeContext, PodWorker, grace_period};

/// How the kubelet is set up.
#[derive(Clone)]
pub struct KubeletConfig {
    /// The Node's name; static pods are named `<name>-<node_name>`.
    pub node_name: String,
    /// The directory of static pod manifests, if any.
    pub pod_manifest_path: Option<PathBuf>,
    /// The API; `None` runs standalone (static pods only).
    pub client: Option<Client>,
    /// Where the node agent listens; also the Node's InternalIP.
    pub address: IpAddr,
    /// The node agent's port; 0 picks a free one (see [`Kubelet::agent_port`]).
    pub port: u16,
    /// The bearer token the node agent requires.
    pub agent_token: String,
    /// The Docker socket; `None` uses the local default (`DOCKER_HOST`).
    pub docker_socket: Option<String>,
    /// The kubelet's data: emptyDir volumes under `pods/<uid>/volumes/`.
    pub root_dir: PathBuf,
    /// The pod sandbox image.
    pub pause_image: String,
    /// Kernel tracing of this node's pods; `None` traces nothing. [`run`]
    /// (the Docker path) starts one when none is given.
    pub trace: Option<Arc<crate::trace::TraceHub>>,
}

impl KubeletConfig {
    /// A configuration with the defaults: 127.0.0.1:10250, the local Docker
    /// engine, `/var/lib/coxswain`, standalone.
    pub fn new(node_name: impl Into<String>) -> KubeletConfig {
        KubeletConfig {
            node_name: node_name.into(),
            pod_manifest_path: None,
            client: None,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 10250,
            agent_token: String::new(),
            docker_socket: None,
            root_dir: PathBuf::from("/var/lib/coxswain"),
            pause_image: runtime::DEFAULT_PAUSE_IMAGE.to_owned(),
            trace: None,
        }
    }
}

/// Runs a kubelet on the Docker engine, forever. Waits for the engine when
/// it is not up yet.
pub async fn run(mut config: KubeletConfig) -> anyhow::Result<()> {
    let runtime = connect_docker(&config).await;
    if config.trace.is_none() {
        config.trace = Some(crate::trace::TraceHub::start(&config.node_name));
    }
    Kubelet::start(config, Arc::new(runtime))
        .await?
        .wait()
        .await
}

/// Connects to Docker, retrying with back-off and one log line until it
/// answers.
async fn connect_docker(config: &KubeletConfig) -> docker::DockerRuntime {
    let mut backoff = Duration::from_millis(500);
    let mut logged = false;
    loop {
        match docker::DockerRuntime::connect(config.docker_socket.as_deref(), &config.node_name)
            .await
        {
            Ok(runtime) => {
                if logged {
                    tracing::info!(node = %config.node_name, "container runtime reachable");
                }
                return runtime;
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(node = %config.node_name, %error,
                        "waiting for the container runtime");
                    logged = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A running kubelet.
pub struct Kubelet {
    agent_port: u16,
    manager: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
    node: Option<JoinHandle<()>>,
}

impl Kubelet {
    /// Starts a kubelet on `runtime`: binds the node agent, registers the
    /// Node (in the background) and starts syncing pods.
    pub async fn start(
        config: KubeletConfig,
        runtime: Arc<dyn Runtime>,
    ) -> anyhow::Result<Kubelet> {
        let node = config.node_name.clone();
        let address = SocketAddr::new(config.address, config.port);
        let listener = server::bind(address)
            .await
            .with_context(|| format!("binding the node agent to {address}"))?;
        let agent_port = listener
            .local_addr()
            .context("reading the node agent's address")?
            .port();
        let statuses = status::StatusBoard::default();
        let mut agent = server::router(
            runtime.clone(),
            config.agent_token.clone(),
            statuses.clone(),
        );
        let runtime: Arc<dyn Runtime> = match &config.trace {
            Some(hub) => {
                agent = agent.merge(crate::trace::agent::routes(
                    hub.clone(),
                    &config.agent_token,
                    &node,
                ));
                Arc::new(crate::trace::runtime::TracedRuntime::new(
                    runtime,
                    hub.clone(),
                ))
            }
            None => runtime,
        };
        let server = tokio::spawn(async move { axum::serve(listener, agent).await });
        tracing::info!(node = %node, port = agent_port, "node agent listening");

        let (node_uid_tx, node_uid) = watch::channel(None);
        let node_task = match &config.client {
            Some(client) => {
                let runtime_version = match runtime.version().await {
                    Ok(version) => version,
                    Err(error) => {
                        tracing::warn!(%error, "reading the runtime version failed");
                        "docker://unknown".to_owned()
                    }
                };
                let params = node::NodeParams {
                    name: node.clone(),
                    address: config.address.to_string(),
                    agent_port,
                    runtime_version,
                    host: node::HostInfo::read(),
                };
                Some(tokio::spawn(node::run(client.clone(), params, node_uid_tx)))
            }
            None => {
                tracing::warn!(node = %node, "standalone mode, no API client");
                None
            }
        };

        let ctx = Arc::new(NodeContext {
            node: node.clone(),
            host_ip: config.address.to_string(),
            pause_image: config.pause_image.clone(),
            root_dir: config.root_dir.clone(),
            runtime,
            client: config.client.clone(),
            recorder: config
                .client
                .clone()
                .map(|c| EventRecorder::new(c, "kubelet", Some(&node))),
            statuses,
        });
        let manager = PodManager::new(ctx, config.pod_manifest_path.clone(), node_uid);
        let span = tracing::info_span!("kubelet", node = %node);
        let manager = tokio::spawn(manager.run().instrument(span));
        Ok(Kubelet {
            agent_port,
            manager,
            server,
            node: node_task,
        })
    }

    /// The node agent's port (the bound one when configured as 0).
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }

    /// Runs until the node agent fails; the pod loop never ends by itself.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        tokio::select! {
            result = &mut self.server => {
                result.context("node agent task")?.context("node agent server")?;
                anyhow::bail!("node agent server stopped")
            }
            result = &mut self.manager => {
                result.context("pod manager task")?;
                anyhow::bail!("pod manager stopped")
            }
        }
    }

    /// Stops the kubelet's loops (not the containers, as a real kubelet
    /// leaves them running when it stops).
    pub fn stop(&self) {
        self.manager.abort();
        self.server.abort();
        if let Some(node) = &self.node {
            node.abort();
        }
    }
}

/// What to do about mirror pods.
#[derive(Clone, Debug, PartialEq)]
pub enum MirrorAction {
    Create(Box<Pod>),
    Delete {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// The mirror pod changes that make the API match the static pods:
/// missing mirrors are created, mirrors being deleted, outdated (another
/// hash) or orphaned are deleted (and created again on a later pass).
pub fn mirror_actions(
    static_pods: &HashMap<String, Pod>,
    api_pods: &HashMap<String, Pod>,
    node: &str,
    node_uid: &str,
) -> Vec<MirrorAction> {
    let by_name: HashMap<(&str, &str), &Pod> = api_pods
        .values()
        .map(|p| ((p.namespace(), p.name()), p))
        .collect();
    let mut actions = Vec::new();
    let mut wanted = HashSet::new();
    for (uid, pod) in static_pods {
        wanted.insert((pod.namespace(), pod.name()));
        match by_name.get(&(pod.namespace(), pod.name())) {
            None => actions.push(MirrorAction::Create(Box::new(mirror_pod(
                pod, node, node_uid,
            )))),
            Some(existing) if is_mirror_pod(existing) => {
                let hash = existing.metadata.annotations.get(ANNOTATION_CONFIG_MIRROR);
                if hash != Some(uid) || existing.metadata.deletion_timestamp.is_some() {
                    actions.push(delete_action(existing));
                }
            }
            Some(_) => tracing::debug!(
                namespace = pod.namespace(),
                name = pod.name(),
                "an API pod has the static pod's name, no mirror pod"
            ),
        }
    }
    for pod in api_pods.values() {
        if is_mirror_pod(pod) && !wanted.contains(&(pod.namespace(), pod.name())) {
            actions.push(delete_action(pod));
        }
    }
    actions
}

fn delete_action(pod: &Pod) -> MirrorAction {
    MirrorAction::Delete {
        namespace: pod.namespace().to_owned(),
        name: pod.name().to_owned(),
        uid: pod.metadata.uid().to_owned(),
    }
}

async fn apply_mirror_actions(client: Client, actions: Vec<MirrorAction>) {
    for action in actions {
        match action {
            MirrorAction::Create(pod) => match client.create(pod.as_ref()).await {
                Ok(_) => tracing::info!(
                    namespace = pod.namespace(),
                    name = pod.name(),
                    "mirror pod created"
                ),
                Err(e) if e.is_conflict() => {}
                Err(error) => tracing::warn!(namespace = pod.namespace(), name = pod.name(),
                    %error, "creating a mirror pod failed"),
            },
            MirrorAction::Delete {
                namespace,
                name,
                uid,
            } => {
                let options = DeleteOptions {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match client.delete::<Pod>(&namespace, &name, &options).await {
                    Ok(_) => tracing::info!(namespace, name, "mirror pod deleted"),
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(error) => tracing::warn!(namespace, name, %error,
                        "deleting a mirror pod failed"),
                }
            }
        }
    }
}

/// The kubelet's pod loop: merges the sources and drives the workers.
struct PodManager {
    ctx: Arc<NodeContext>,
    manifests: Option<ManifestDir>,
    /// Static pods by uid, from the last scan.
    static_pods: HashMap<String, Pod>,
    /// API pods bound to this node (mirror pods included) by uid.
    api_pods: HashMap<String, Pod>,
    /// Whether the API pods were listed at least once (always, standalone).
    api_synced: bool,
    /// Whether the manifest directory was scanned at least once.
    scanned: bool,
    /// One worker per pod uid, told what is wanted through its channel.
    workers: HashMap<String, watch::Sender<Desired>>,
    /// API pods whose deletion this kubelet finished, until the API drops them.
    finished: HashSet<String>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
    node_uid: watch::Receiver<Option<String>>,
    mirror_task: Option<JoinHandle<()>>,
    gc_task: Option<JoinHandle<()>>,
    orphans_tx: mpsc::UnboundedSender<Vec<ContainerInfo>>,
    orphans_rx: mpsc::UnboundedReceiver<Vec<ContainerInfo>>,
}

impl PodManager {
    fn new(
        ctx: Arc<NodeContext>,
        manifest_dir: Option<PathBuf>,
        node_uid: watch::Receiver<Option<String>>,
    ) -> PodManager {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (orphans_tx, orphans_rx) = mpsc::unbounded_channel();
        let manifests = manifest_dir.map(|dir| ManifestDir::new(dir, &ctx.node));
        PodManager {
            api_synced: ctx.client.is_none(),
            scanned: manifests.is_none(),
            ctx,
            manifests,
            static_pods: HashMap::new(),
            api_pods: HashMap::new(),
            workers: HashMap::new(),
            finished: HashSet::new(),
            done_tx,
            done_rx,
            node_uid,
            mirror_task: None,
            gc_task: None,
            orphans_tx,
            orphans_rx,
        }
    }

    async fn run(mut self) {
        let mut api = self.ctx.client.clone().map(|client| {
            let selector = format!("spec.nodeName={}", self.ctx.node);
            watcher::<Pod>(client, "", ListParams::fields(selector))
        });
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                event = next_event(&mut api) => match event {
                    Some(event) => self.apply_api_event(event),
                    None => {
                        tracing::error!("the API pod watch ended");
                        api = None;
                    }
                },
                Some(uid) = self.done_rx.recv() => self.worker_done(uid),
                Some(listed) = self.orphans_rx.recv() => self.remove_orphans(listed),
                _ = tick.tick() => {
                    ticks += 1;
                    self.scan_manifests();
                    self.reconcile_all();
                    self.sync_mirrors();
                    if ticks % 5 == 1 {
                        self.collect_garbage();
                    }
                }
            }
        }
    }

    fn apply_api_event(&mut self, event: WatcherEvent<Pod>) {
        match event {
            WatcherEvent::Restarted(pods) => {
                self.api_pods = pods
                    .into_iter()
                    .map(|p| (p.metadata.uid().to_owned(), p))
                    .collect();
                self.api_synced = true;
                self.finished.retain(|uid| self.api_pods.contains_key(uid));
                self.reconcile_all();
            }
            WatcherEvent::Applied(pod) => {
                let uid = pod.metadata.uid().to_owned();
                let mirrored = mirrored_uid(&pod);
                self.api_pods.insert(uid.clone(), pod);
                self.reconcile(&uid);
                if let Some(static_uid) = mirrored {
                    self.reconcile(&static_uid);
                }
            }
            WatcherEvent::Deleted(pod) => {
                let uid = pod.metadata.uid().to_owned();
                self.api_pods.remove(&uid);
                self.finished.remove(&uid);
                self.reconcile(&uid);
                if let Some(static_uid) = mirrored_uid(&pod) {
                    self.reconcile(&static_uid);
                }
            }
        }
    }

    fn scan_manifests(&mut self) {
        if let Some(manifests) = &mut self.manifests {
            self.static_pods = manifests.scan();
            self.scanned = true;
        }
    }

    /// What is wanted of pod `uid`, `None` when nothing.
    fn desired(&self, uid: &str) -> Option<Desired> {
        if let Some(pod) = self.static_pods.get(uid) {
            let mut pod = pod.clone();
            if let Some(mirror) = self.mirror_of(&pod) {
                let mirror_uid = mirror.metadata.uid().to_owned();
                pod.metadata
                    .annotations
                    .insert(worker::ANNOTATION_MIRROR_UID.into(), mirror_uid);
            }
            return Some(Desired::Run(pod));
        }
        let pod = self.api_pods.get(uid)?;
        if is_mirror_pod(pod) || self.finished.contains(uid) {
            return None;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return Some(Desired::Stop {
                pod: pod.clone(),
                grace: grace_period(pod),
                finish_api_delete: true,
            });
        }
        Some(Desired::Run(pod.clone()))
    }

    /// The live mirror pod of a static pod, if the API has one.
    fn mirror_of(&self, static_pod: &Pod) -> Option<&Pod> {
        self.api_pods.values().find(|p| {
            p.namespace() == static_pod.namespace()
                && p.name() == static_pod.name()
                && p.metadata.deletion_timestamp.is_none()
                && p.metadata
                    .annotations
                    .get(ANNOTATION_CONFIG_MIRROR)
                    .map(String::as_str)
                    == Some(static_pod.metadata.uid())
        })
    }

    fn reconcile_all(&mut self) {
        let uids: HashSet<String> = self
            .static_pods
            .keys()
            .chain(self.api_pods.keys())
            .chain(self.workers.keys())
            .cloned()
            .collect();
        for uid in uids {
            self.reconcile(&uid);
        }
    }

    /// Whether pod `uid`'s worker already runs the API pod's current
    /// version: an API object's content is fixed by its resourceVersion, so
    /// then there is nothing to tell it. This keeps the periodic reconcile
    /// of every pod to a lookup, with no copy or comparison of the pod.
    fn worker_runs_current(&self, uid: &str) -> bool {
        let (Some(pod), Some(worker)) = (self.api_pods.get(uid), self.workers.get(uid)) else {
            return false;
        };
        let running_as_is = pod.metadata.deletion_timestamp.is_none()
            && pod.metadata.resource_version.is_some()
            && !is_mirror_pod(pod)
            && !self.static_pods.contains_key(uid)
            && !self.finished.contains(uid);
        running_as_is
            && matches!(&*worker.borrow(), Desired::Run(current)
                if current.metadata.uid == pod.metadata.uid
                    && current.metadata.resource_version == pod.metadata.resource_version)
    }

    /// Tells pod `uid`'s worker what is wanted, starting one if needed.
    fn reconcile(&mut self, uid: &str) {
        if self.worker_runs_current(uid) {
            return;
        }
        match (self.desired(uid), self.workers.get(uid)) {
            (Some(desired), Some(tx)) => {
                tx.send_if_modified(|current| {
                    if *current == desired {
                        return false;
                    }
                    *current = desired;
                    true
                });
            }
            (Some(desired), None) => {
                if matches!(desired, Desired::Stop { .. }) && !self.api_synced {
                    return;
                }
                tracing::info!(
                    namespace = desired.pod().namespace(),
                    name = desired.pod().name(),
                    uid,
                    "pod worker starting"
                );
                let (tx, rx) = watch::channel(desired);
                let worker = PodWorker::new(self.ctx.clone(), uid.to_owned(), rx);
                tokio::spawn(worker.run(self.done_tx.clone()).in_current_span());
                self.workers.insert(uid.to_owned(), tx);
            }
            (None, Some(tx)) => {
                tx.send_if_modified(|current| match current {
                    Desired::Run(pod) => {
                        let grace = grace_period(pod);
                        *current = Desired::Stop {
                            pod: pod.clone(),
                            grace,
                            finish_api_delete: false,
                        };
                        true
                    }
                    Desired::Stop { .. } => false,
                });
            }
            (None, None) => {}
        }
    }

    fn worker_done(&mut self, uid: String) {
        self.workers.remove(&uid);
        if self
            .api_pods
            .get(&uid)
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        {
            self.finished.insert(uid.clone());
        }
        // Wanted again while it was stopping: start over.
        self.reconcile(&uid);
    }

    fn sync_mirrors(&mut self) {
        let Some(client) = self.ctx.client.clone() else {
            return;
        };
        if !self.api_synced || self.mirror_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let Some(node_uid) = self.node_uid.borrow().clone() else {
            return;
        };
        let actions = mirror_actions(&self.static_pods, &self.api_pods, &self.ctx.node, &node_uid);
        if !actions.is_empty() {
            self.mirror_task = Some(tokio::spawn(apply_mirror_actions(client, actions)));
        }
    }

    /// Lists the node's containers in the background; the answer comes back
    /// to [`Self::remove_orphans`].
    fn collect_garbage(&mut self) {
        if !self.api_synced || !self.scanned {
            return;
        }
        if self.gc_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let runtime = self.ctx.runtime.clone();
        let tx = self.orphans_tx.clone();
        self.gc_task = Some(tokio::spawn(async move {
            match runtime.list_containers(None).await {
                Ok(listed) => {
                    let _ = tx.send(listed);
                }
                Err(error) => tracing::warn!(%error, "listing containers failed"),
            }
        }));
    }

    /// Removes the containers of pods that have no worker and are not wanted.
    fn remove_orphans(&mut self, listed: Vec<ContainerInfo>) {
        let orphans: Vec<ContainerInfo> = listed
            .into_iter()
            .filter(|c| {
                !self.workers.contains_key(&c.pod.uid) && self.desired(&c.pod.uid).is_none()
            })
            .collect();
        if orphans.is_empty() {
            return;
        }
        let runtime = self.ctx.runtime.clone();
        tokio::spawn(async move {
            for c in orphans {
                tracing::info!(namespace = %c.pod.namespace, name = %c.pod.name,
                    container_id = %c.id, "removing a container of a pod no longer wanted");
                let _ = runtime
                    .stop_container(c.id.clone(), Duration::from_secs(1))
                    .await;
                let _ = runtime.remove_container(c.id.clone()).await;
            }
        });
    }
}

/// The uid of the static pod that `pod` mirrors, if it is a mirror pod.
fn mirrored_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .get(ANNOTATION_CONFIG_MIRROR)
        .cloned()
}

/// The next API event, or never when there is no API.
async fn next_event(
    api: &mut Option<mpsc::Receiver<WatcherEvent<Pod>>>,
) -> Option<WatcherEvent<Pod>> {
    match api {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::kubelet::fake::FakeRuntime;

    const WEB: &str = "kind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    \
                       image: coxswain/web:0.1\n";

    fn static_pods(content: &str) -> HashMap<String, Pod> {
        let pod =
            manifests::parse_manifest(Path::new("/m/web.yaml"), content.as_bytes(), "n1").unwrap();
        HashMap::from([(pod.metadata.uid().to_owned(), pod)])
    }

    fn as_api(mut pod: Pod, uid: &str) -> Pod {
        pod.metadata.uid = Some(uid.into());
        pod
    }

    #[test]
    fn a_static_pod_without_a_mirror_gets_one() {
        let actions = mirror_actions(&static_pods(WEB), &HashMap::new(), "n1", "node-uid");
        let [MirrorAction::Create(mirror)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(mirror.name(), "web-n1");
        assert_eq!(mirror.metadata.owner_references[0].uid, "node-uid");
    }

    #[test]
    fn an_up_to_date_mirror_is_left_alone() {
        let statics = static_pods(WEB);
        let mirror = mirror_pod(statics.values().next().unwrap(), "n1", "node-uid");
        let api = HashMap::from([("m1".to_owned(), as_api(mirror, "m1"))]);
        assert!(mirror_actions(&statics, &api, "n1", "node-uid").is_empty());
    }

    #[test]
    fn outdated_deleted_and_orphaned_mirrors_are_deleted() {
        let old = static_pods(WEB);
        let new = static_pods(&WEB.replace("0.1", "0.2"));
        let mirror = as_api(
            mirror_pod(old.values().next().unwrap(), "n1", "node-uid"),
            "m1",
        );
        let api = HashMap::from([("m1".to_owned(), mirror.clone())]);
        let delete = MirrorAction::Delete {
            namespace: "default".into(),
            name: "web-n1".into(),
            uid: "m1".into(),
        };
        // The manifest changed: the old mirror goes.
        assert_eq!(
            mirror_actions(&new, &api, "n1", "node-uid"),
            std::slice::from_ref(&delete)
        );
        // The manifest is gone: so is its mirror.
        let none = HashMap::new();
        assert_eq!(
            mirror_actions(&none, &api, "n1", "node-uid"),
            std::slice::from_ref(&delete)
        );
        // Someone deleted the mirror: finish it, to be created again.
        let mut deleting = mirror;
        deleting.metadata.deletion_timestamp = Some(crate::api::Time::now());
        let api = HashMap::from([("m1".to_owned(), deleting)]);
        assert_eq!(mirror_actions(&old, &api, "n1", "node-uid"), [delete]);
    }

    fn manager(fake: &Arc<FakeRuntime>) -> PodManager {
        let ctx = Arc::new(NodeContext {
            node: "n1".into(),
            host_ip: "10.0.0.1".into(),
            pause_image: "coxswain/pause:0.1".into(),
            root_dir: std::env::temp_dir().join("coxswain-manager-tests"),
            runtime: fake.clone(),
            client: None,
            recorder: None,
            statuses: status::StatusBoard::default(),
        });
        let (_tx, rx) = watch::channel(None);
        PodManager::new(ctx, None, rx)
    }

    #[tokio::test]
    async fn a_mirror_pod_from_the_api_never_gets_a_worker() {
        let fake = FakeRuntime::with_images(&[]);
        let mut m = manager(&fake);
        let statics = static_pods(WEB);
        let mirror = as_api(
            mirror_pod(statics.values().next().unwrap(), "n1", "x"),
            "m1",
        );
        m.apply_api_event(WatcherEvent::Restarted(vec![mirror.clone()]));
        assert!(m.workers.is_empty());
        m.static_pods = statics;
        m.reconcile_all();
        assert_eq!(m.workers.len(), 1);
        // The worker is told which mirror pod to report the status to.
        let uid = m.static_pods.keys().next().unwrap().clone();
        let told = |m: &PodManager| {
            let desired = m.workers[&uid].borrow();
            let annotations = &desired.pod().metadata.annotations;
            annotations.get(worker::ANNOTATION_MIRROR_UID).cloned()
        };
        assert_eq!(told(&m).as_deref(), Some("m1"));

        // Deleting the mirror leaves the static pod's worker running; a new
        // mirror is announced to it.
        m.apply_api_event(WatcherEvent::Deleted(mirror.clone()));
        assert!(matches!(*m.workers[&uid].borrow(), Desired::Run(_)));
        assert_eq!(told(&m), None);
        m.apply_api_event(WatcherEvent::Applied(as_api(mirror, "m2")));
        assert_eq!(told(&m).as_deref(), Some("m2"));
    }

    #[tokio::test]
    async fn api_pods_being_deleted_are_stopped_then_forgotten() {
        let fake = FakeRuntime::with_images(&[]);
        let mut m = manager(&fake);
        let mut pod = as_api(Pod::new("default", "api"), "a1");
        pod.spec = Some(Default::default());
        m.apply_api_event(WatcherEvent::Applied(pod.clone()));
        assert!(matches!(*m.workers["a1"].borrow(), Desired::Run(_)));

        pod.metadata.deletion_timestamp = Some(crate::api::Time::now());
        m.apply_api_event(WatcherEvent::Applied(pod.clone()));
        assert!(matches!(
            *m.workers["a1"].borrow(),
            Desired::Stop {
                finish_api_delete: true,
                ..
            }
        ));

        m.worker_done("a1".into());
        assert!(m.workers.is_empty());
        assert!(m.finished.contains("a1"));
        m.apply_api_event(WatcherEvent::Deleted(pod));
        assert!(m.finished.is_empty());
    }

    #[tokio::test]
    async fn every_new_version_of_an_api_pod_reaches_its_worker() {
        let fake = FakeRuntime::with_images(&[]);
        let mut m = manager(&fake);
        let mut pod = as_api(Pod::new("default", "api"), "a1");
        pod.spec = Some(Default::default());
        pod.metadata.resource_version = Some("1".into());
        m.apply_api_event(WatcherEvent::Applied(pod.clone()));
        let told = |m: &PodManager| m.workers["a1"].borrow().clone();

        // The periodic pass over a worker that has the current version
        // leaves it as it is.
        m.reconcile_all();
        assert_eq!(told(&m), Desired::Run(pod.clone()));

        pod.metadata.resource_version = Some("2".into());
        pod.metadata.labels.insert("tier".into(), "web".into());
        m.apply_api_event(WatcherEvent::Applied(pod.clone()));
        assert_eq!(told(&m), Desired::Run(pod.clone()));

        pod.metadata.resource_version = Some("3".into());
        pod.metadata.deletion_timestamp = Some(crate::api::Time::now());
        m.apply_api_event(WatcherEvent::Applied(pod.clone()));
        m.reconcile_all();
        assert!(matches!(
            told(&m),
            Desired::Stop {
                finish_api_delete: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn orphaned_containers_are_removed_and_wanted_ones_adopted() {
        let fake = FakeRuntime::with_images(&[]);
        let mut m = manager(&fake);
        let statics = static_pods(WEB);
        let wanted_uid = statics.keys().next().unwrap().clone();
        m.static_pods = statics;
        let runtime: Arc<dyn Runtime> = fake.clone();
        for uid in [wanted_uid.as_str(), "gone"] {
            let pod = runtime::PodRef {
                uid: uid.into(),
                namespace: "default".into(),
                name: "p".into(),
            };
            runtime
                .run_container(runtime::ContainerSpec {
                    pod,
                    name: "c".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let listed = runtime.list_containers(None).await.unwrap();
        m.remove_orphans(listed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left: Vec<String> = fake.all().into_iter().map(|c| c.pod.uid).collect();
        assert_eq!(left, [wanted_uid]);
    }
}
