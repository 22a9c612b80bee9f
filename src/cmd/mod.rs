//! One module per subcommand, each with its own options.

pub mod apiserver;
pub mod controller_manager;
pub mod kubelet;
pub mod load;
pub mod own_thread;
pub mod scheduler;
pub mod trace;
pub mod up;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use coxswain_core::client::Client;

/// A client from a kubeconfig, with the path in the error.
pub fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    Client::from_kubeconfig(kubeconfig)
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))
}

/// A client from a kubeconfig that may not be there yet: in the bottom-up
/// path the apiserver's static pod writes it, and the controller manager
/// and the scheduler may start first. Retries with back-off, saying once
/// that it waits, and never gives up. (Whether the apiserver answers is the
/// component's own wait: a client connects on its first request.)
pub async fn client_when_ready(kubeconfig: &Path) -> Client {
    let mut backoff = Duration::from_millis(200);
    let mut waiting = false;
    loop {
        match client_from(kubeconfig) {
            Ok(client) => {
                if waiting {
                    tracing::info!(kubeconfig = %kubeconfig.display(), "kubeconfig loaded");
                }
                return client;
            }
            Err(error) => {
                if !waiting {
                    tracing::info!(kubeconfig = %kubeconfig.display(), error = format!("{error:#}"),
                        "waiting for the kubeconfig the apiserver writes");
                    waiting = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
/// How long a stopping apiserver waits for the requests under way; streams
/// that outlast it (`kubectl logs -f`, port forwards) are cut.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops an apiserver's connections before its store closes: requests
/// under way are answered for up to [`SHUTDOWN_GRACE`]; a second signal cuts
/// them at once, as a second signal makes kube-apiserver exit.
pub async fn drain(server: &coxswain_core::apiserver::ApiServer) {
    tokio::select! {
        _ = server.shutdown(SHUTDOWN_GRACE) => {}
        _ = shutdown_signal() => {
            tracing::warn!("a second signal: cutting the connections left");
            server.cut();
            server.shutdown(std::time::Duration::ZERO).await;
        }
    }
}

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
