//! A fresh cluster inside the load driver's process: the apiserver on a
//! memory store (as `coxswain up`), the controller manager, the scheduler and
//! N kubelets on the simulated runtime or on Docker.
//!
//! Every component gets a client whose requests are timed into one
//! [`RequestMetrics`], so that API latency covers the whole cluster's
//! traffic, not only the driver's.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use coxswain_core::api::Node;
use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::client::{
    Client, InProcessTransport, Kubeconfig, ListParams, MeteredTransport, RequestMetrics,
};
use coxswain_core::kubelet::docker::DockerRuntime;
use coxswain_core::kubelet::runtime::Runtime;
use coxswain_core::kubelet::sim::{self, SimProfile};
use coxswain_core::kubelet::{Kubelet, KubeletConfig};
use coxswain_core::store::{MemoryStore, Store};
use coxswain_core::{controllers, scheduler};

use crate::cmd::own_thread::run_on_own_thread;

/// Which runtime the kubelets use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// Simulated containers (no processes).
    Sim,
    /// Real containers on the local Docker engine.
    Docker,
}

/// The image of the pods, per runtime: Docker needs one that exists.
pub const DOCKER_IMAGE: &str = "coxswain/pause:0.1";

/// A running in-process cluster.
pub struct Cluster {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<RequestMetrics>,
    /// An in-process client, timed.
    pub client: Client,
    pub kubeconfig: std::path::PathBuf,
    pub node_names: Vec<String>,
    kubelets: Vec<Kubelet>,
    tasks: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Cluster {
    /// Starts everything and waits until every node is Ready.
    pub async fn start(
        data_dir: &Path,
        runtime: RuntimeKind,
        nodes: usize,
        profile: &SimProfile,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let config = ApiServerConfig {
            data_dir: data_dir.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let server = ApiServer::start(config, store.clone()).await?;
        let metrics = RequestMetrics::new();
        let inner = Arc::new(InProcessTransport::new(
            server.router.clone(),
            &server.admin_token,
        ));
        let client = Client::new(Arc::new(MeteredTransport::new(inner, metrics.clone())));

        let mut tasks = tokio::task::JoinSet::new();
        // The controller manager and the scheduler get a thread each, as
        // they would a process each; the kubelets share the main runtime.
        let c = client.clone();
        let controllers_thread = run_on_own_thread("controller-manager", || controllers::run(c));
        tasks.spawn(async move { ("controller manager", controllers_thread.await) });
        let c = client.clone();
        let scheduler_thread = run_on_own_thread("scheduler", || scheduler::run(c));
        tasks.spawn(async move { ("scheduler", scheduler_thread.await) });

        let template = KubeletConfig {
            client: Some(client.clone()),
            address: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            agent_token: server.admin_token.clone(),
            root_dir: data_dir.join("kubelet"),
            ..KubeletConfig::new("template")
        };
        let (kubelets, node_names) = match runtime {
            RuntimeKind::Sim => {
                let kubelets = sim::start_nodes(&template, "sim", nodes, profile).await?;
                let names = (0..nodes).map(|i| sim::node_name("sim", i)).collect();
                (kubelets, names)
            }
            RuntimeKind::Docker => start_docker_nodes(&template, nodes).await?,
        };
        let cluster = Cluster {
            store,
            metrics,
            client,
            kubeconfig: server.kubeconfig.clone(),
            node_names,
            kubelets,
            tasks,
        };
        cluster.wait_for_nodes(Duration::from_secs(120)).await?;
        Ok(cluster)
    }

    /// A client over HTTPS (its own connection), timed into the cluster's
    /// metrics.
    pub fn https_client(&self) -> anyhow::Result<Client> {
        let config = Kubeconfig::read(&self.kubeconfig)?;
        let https = coxswain_core::client::HttpsTransport::new(&config)?;
        Ok(Client::new(Arc::new(MeteredTransport::new(
            Arc::new(https),
            self.metrics.clone(),
        ))))
    }

    /// Fails when a component stopped.
    pub fn check_components(&mut self) -> anyhow::Result<()> {
        if let Some(finished) = self.tasks.try_join_next() {
            match finished {
                Ok((name, Ok(()))) => anyhow::bail!("the {name} stopped"),
                Ok((name, Err(error))) => return Err(error.context(format!("the {name} failed"))),
                Err(error) => anyhow::bail!("a component panicked: {error}"),
            }
        }
        Ok(())
    }

    async fn wait_for_nodes(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let nodes = self.client.list::<Node>("", &ListParams::default()).await?;
            let ready = nodes.items.iter().filter(|n| is_ready(n)).count();
            if ready >= self.node_names.len() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "only {ready} of {} nodes became Ready in {timeout:?}",
                    self.node_names.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the kubelets and the control plane.
    pub fn stop(mut self) {
        for kubelet in &self.kubelets {
            kubelet.stop();
        }
        self.tasks.abort_all();
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Kubelets on the local Docker engine, `load-docker-0000`...: several may
/// share the engine, each minding the containers labelled with its node.
async fn start_docker_nodes(
    template: &KubeletConfig,
    count: usize,
) -> anyhow::Result<(Vec<Kubelet>, Vec<String>)> {
    let mut kubelets = Vec::new();
    let mut names = Vec::new();
    for index in 0..count {
        let name = sim::node_name("load-docker", index);
        let runtime = DockerRuntime::connect(template.docker_socket.as_deref(), &name)
            .await
            .context("connecting to Docker (is it running? try `cargo xtask images`)")?;
        for image in [DOCKER_IMAGE, template.pause_image.as_str()] {
            if !runtime.image_present(image.to_owned()).await? {
                anyhow::bail!("image {image} is missing: build it with `cargo xtask images`");
            }
        }
        let config = KubeletConfig {
            node_name: name.clone(),
            root_dir: template.root_dir.join(&name),
            ..template.clone()
        };
        kubelets.push(Kubelet::start(config, Arc::new(runtime)).await?);
        names.push(name);
    }
    Ok((kubelets, names))
}
