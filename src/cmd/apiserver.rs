//! `coxswain apiserver`: the API and its store, alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::store::MemoryStore;

#[derive(clap::Args)]
pub struct Args {
    /// Certificates, tokens and the kubeconfig are kept here.
    #[arg(long, default_value = ".coxswain")]
    pub data_dir: PathBuf,
    /// Address to serve HTTPS on (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let config = ApiServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
    };
    let server = ApiServer::start(config, Arc::new(MemoryStore::new())).await?;
    println!(
        "apiserver ready at https://{}; kubeconfig: {}",
        server.local_addr,
        server.kubeconfig.display()
    );
    super::shutdown_signal().await;
    tracing::info!("apiserver stopping");
    Ok(())
}
