//! `coxswain controller-manager`: the controllers, against a kubeconfig.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to reconcile (waited for while missing).
    #[arg(long)]
    pub kubeconfig: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let run = async {
        let client = super::client_when_ready(&args.kubeconfig).await;
        coxswain_core::controllers::run(client).await
    };
    tokio::select! {
        result = run => result,
        _ = super::shutdown_signal() => Ok(()),
    }
}
