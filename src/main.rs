//! `coxswain`: every component of the cluster in one binary.
//!
//! `coxswain up` runs them all in one process (the controller manager and
//! the scheduler on a thread each, see `cmd::own_thread`), talking through
//! the in-process transport; the other subcommands run one component
//! as its own process against a kubeconfig, over HTTPS.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

/// mimalloc keeps allocation cheap and fragmentation low under the many
/// small, short-lived allocations of JSON requests and watch events.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "coxswain", version = coxswain_core::COXSWAIN_VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole cluster: apiserver, controller manager, scheduler and a kubelet.
    Up(cmd::up::Args),
    /// Run the apiserver and its store alone.
    Apiserver(cmd::apiserver::Args),
    /// Run the controller manager against a kubeconfig.
    ControllerManager(cmd::controller_manager::Args),
    /// Run the scheduler against a kubeconfig.
    Scheduler(cmd::scheduler::Args),
    /// Run a kubelet: with a kubeconfig it joins the cluster, without one it
    /// runs the static pods of its manifest directory alone.
    Kubelet(cmd::kubelet::Args),
    /// Show a node's or a pod's kernel events (eBPF), live or as a trace file.
    Trace(cmd::trace::Args),
    /// Start a fresh cluster in this process, load it with pods and report
    /// what was measured (run through `cargo xtask load`).
    #[command(hide = true)]
    Load(cmd::load::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Load(args) = &cli.command {
        runtime.worker_threads(args.node_threads.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => cmd::up::run(args).await,
            Command::Apiserver(args) => cmd::apiserver::run(args).await,
            Command::ControllerManager(args) => cmd::controller_manager::run(args).await,
            Command::Scheduler(args) => cmd::scheduler::run(args).await,
            Command::Kubelet(args) => cmd::kubelet::run(args).await,
            Command::Trace(args) => cmd::trace::run(args).await,
            Command::Load(args) => cmd::load::run(args).await,
        }
    })
}
