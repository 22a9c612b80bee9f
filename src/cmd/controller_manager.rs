//! `coxswain controller-manager`: the controllers, against a kubeconfig.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to reconcile.
    #[arg(long)]
    pub kubeconfig: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = super::client_from(&args.kubeconfig)?;
    tokio::select! {
        result = coxswain_core::controllers::run(client) => result,
        _ = super::shutdown_signal() => Ok(()),
    }
}
