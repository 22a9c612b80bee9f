//! `coxswain up`: the whole cluster in one process.
//!
//! The apiserver serves HTTPS for kubectl; the controller manager and the
//! scheduler each run on a thread of their own (as they would in a process
//! of their own), the kubelet in a task, each with an in-process client that
//! goes through the same router. Once the node is Ready, one line
//! says so, with the kubeconfig's path.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coxswain_core::api::Node;
use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::client::{Client, InProcessTransport};
use coxswain_core::kubelet::{self, KubeletConfig};
use coxswain_core::store::DurableStore;
use coxswain_core::{controllers, scheduler};

use super::own_thread::run_on_own_thread;

#[derive(clap::Args)]
pub struct Args {
    /// State, certificates and the kubeconfig are kept here.
    #[arg(long, default_value = ".coxswain")]
    pub data_dir: PathBuf,
    /// Address to serve the API on (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Static pod manifests (default: DATA_DIR/manifests).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Node name of the kubelet (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Port of the kubelet's node agent; 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The nodes' container runtime: Docker, or simulated containers that
    /// run no process (for load tests; static pods are not run).
    #[arg(long, value_enum, default_value = "docker")]
    pub runtime: super::load::RuntimeKind,
    /// With `--runtime sim`: how many nodes, named `<node-name>-0000`...
    /// (default prefix `sim`), each with its own Node, Lease and pod workers.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// With `--runtime sim`: a profile (YAML) of delays and failure rates.
    #[arg(long)]
    pub sim_profile: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let manifests = args
        .pod_manifest_path
        .clone()
        .unwrap_or_else(|| data_dir.join("manifests"));
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;

    let config = ApiServerConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
    };
    let store_dir = data_dir.join("store");
    let store = Arc::new(
        DurableStore::open(&store_dir)
            .with_context(|| format!("opening the store in {}", store_dir.display()))?,
    );
    let server = ApiServer::start(config, store.clone()).await?;
    let client = Client::new(Arc::new(InProcessTransport::new(
        server.router.clone(),
        &server.admin_token,
    )));

    let sim = args.runtime == super::load::RuntimeKind::Sim;
    let node_name = match &args.node_name {
        Some(name) => name.clone(),
        None if sim => "sim".to_owned(),
        None => super::host_name(),
    };
    let kubelet_config = KubeletConfig {
        pod_manifest_path: Some(manifests.clone()),
        client: Some(client.clone()),
        address: IpAddr::from([127, 0, 0, 1]),
        port: args.kubelet_port,
        agent_token: server.admin_token.clone(),
        root_dir: data_dir.join("kubelet"),
        ..KubeletConfig::new(node_name.clone())
    };

    let mut tasks = tokio::task::JoinSet::new();
    let c = client.clone();
    let controllers_thread = run_on_own_thread("controller-manager", || controllers::run(c));
    tasks.spawn(async move { ("controller manager", controllers_thread.await) });
    let c = client.clone();
    let scheduler_thread = run_on_own_thread("scheduler", || scheduler::run(c));
    tasks.spawn(async move { ("scheduler", scheduler_thread.await) });
    let mut _sim_nodes = Vec::new();
    let node_name = if sim {
        let profile = match &args.sim_profile {
            Some(path) => kubelet::sim::SimProfile::read(path)?,
            None => kubelet::sim::SimProfile::default(),
        };
        let count = args.nodes.max(1);
        _sim_nodes = kubelet::sim::start_nodes(&kubelet_config, &node_name, count, &profile)
            .await
            .context("starting the simulated nodes")?;
        // The last one registers last: when it is Ready, so are the others.
        kubelet::sim::node_name(&node_name, count - 1)
    } else {
        tasks.spawn(async move { ("kubelet", kubelet::run(kubelet_config).await) });
        node_name
    };

    let ready = wait_for_node(client.clone(), node_name.clone());
    tokio::pin!(ready);
    let mut announced = false;
    loop {
        tokio::select! {
            _ = &mut ready, if !announced => {
                announced = true;
                println!(
                    "coxswain is ready: node {node_name} is Ready; kubeconfig: {}; static pods: {}; \
                     try `cargo xtask kubectl -- get nodes`",
                    server.kubeconfig.display(),
                    manifests.display(),
                );
            }
            finished = tasks.join_next() => {
                match finished {
                    Some(Ok((name, Ok(())))) => anyhow::bail!("the {name} stopped"),
                    Some(Ok((name, Err(error)))) => return Err(error.context(format!("the {name} failed"))),
                    Some(Err(error)) => anyhow::bail!("a component panicked: {error}"),
                    None => anyhow::bail!("no component is running"),
                }
            }
            _ = super::shutdown_signal() => {
                tracing::info!("shutting down; containers keep running until their pods are deleted");
                tasks.abort_all();
                super::drain(&server).await;
                store.close().await.context("closing the store")?;
                return Ok(());
            }
        }
    }
}

/// Resolves once the node reports Ready.
async fn wait_for_node(client: Client, name: String) {
    loop {
        if let Ok(Some(node)) = client.get_opt::<Node>("", &name).await {
            let ready = node
                .status
                .as_ref()
                .map(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
                .unwrap_or(false);
            if ready {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
