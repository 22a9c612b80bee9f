//! One module per subcommand, each with its own options.

pub mod apiserver;
pub mod controller_manager;
pub mod kubelet;
pub mod scheduler;
pub mod up;

use std::path::Path;

use anyhow::Context;
use coxswain_core::client::Client;

/// A client from a kubeconfig, with the path in the error.
pub fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    Client::from_kubeconfig(kubeconfig)
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The host name, used as the node name by default.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
