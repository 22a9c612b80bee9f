//! `coxswain apiserver`: the API and its store, alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use coxswain_core::apiserver::{ApiServer, ApiServerConfig};
use coxswain_core::store::{DurableOptions, DurableStore, WalIo};

#[derive(clap::Args)]
pub struct Args {
    /// The store (DIR/store), certificates, tokens and the kubeconfig are
    /// kept here. One apiserver per directory: a second one refuses to start.
    #[arg(long, default_value = ".coxswain")]
    pub data_dir: PathBuf,
    /// Address to serve HTTPS on (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// How the write-ahead log reaches the disk: std (pwrite + fdatasync,
    /// the default: faster where measured), io_uring, or auto (io_uring
    /// where the kernel allows it). The start-up log line says which.
    #[arg(long, default_value = "std")]
    pub wal_io: WalIo,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let store_dir = args.data_dir.join("store");
    let store = Arc::new(
        DurableStore::open_with(
            &store_dir,
            DurableOptions {
                wal_io: args.wal_io,
                ..DurableOptions::default()
            },
        )
        .with_context(|| format!("opening the store in {}", store_dir.display()))?,
    );
    let config = ApiServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
    };
    let server = ApiServer::start(config, store.clone()).await?;
    println!(
        "apiserver ready at https://{}; kubeconfig: {}",
        server.local_addr,
        server.kubeconfig.display()
    );
    super::shutdown_signal().await;
    tracing::info!("apiserver stopping");
    super::drain(&server).await;
    store.close().await.context("closing the store")?;
    Ok(())
}
