//! `coxswain kubelet`: the node agent. With `--kubeconfig` it registers its
//! node and runs the pods bound to it; without, it runs in standalone mode,
//! with the static pods of its manifest directory only.

use std::net::IpAddr;
use std::path::PathBuf;

use coxswain_core::client::Kubeconfig;
use coxswain_core::kubelet::{self, KubeletConfig};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Kubeconfig of the cluster to join; none runs in standalone mode.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Directory of static pod manifests.
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Node name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Address of the node agent (logs) and the node's InternalIP.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Port of the node agent; 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Where pod volumes (emptyDir) live; created only when a pod has one.
    #[arg(long, default_value = "/var/lib/coxswain/kubelet")]
    pub root_dir: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (client, token) = match &args.kubeconfig {
        Some(path) => {
            let config = Kubeconfig::read(path)?;
            (
                Some(super::client_from(path)?),
                config.token.unwrap_or_default(),
            )
        }
        None => (None, String::new()),
    };
    // Volume paths become Docker bind sources, which must be absolute.
    let root_dir = std::path::absolute(&args.root_dir)?;
    let config = KubeletConfig {
        pod_manifest_path: args.pod_manifest_path,
        client,
        address: args.address,
        port: args.port,
        agent_token: token,
        root_dir,
        ..KubeletConfig::new(args.node_name.unwrap_or_else(super::host_name))
    };
    tokio::select! {
        result = kubelet::run(config) => result,
        _ = super::shutdown_signal() => Ok(()),
    }
}
