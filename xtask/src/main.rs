//! `cargo xtask`: the project's own tasks, run through the cargo alias in
//! `.cargo/config.toml`.
//!
//! This file only parses the command line and dispatches; every subcommand
//! lives in its own module with its own options. Progress lines go to
//! stderr, so that what a subcommand prints on stdout (a path, a test
//! summary) can be read by scripts.

mod apt;
mod bench;
mod bench_probes;
mod bottom_up;
mod docker;
mod exec;
mod host;
mod images;
mod kubectl;
mod load;
mod run;
mod test;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tasks for developing coxswain: set up Docker, build the images, run the
/// cluster, run every test.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the local container images (pause, web, busybox, coxswain).
    Images(images::Options),
    /// Start a one-node cluster in the foreground (`coxswain up`).
    Run(run::Options),
    /// Run every test, end-to-end tests included, against Docker and kubectl.
    Test(test::Options),
    /// Run kubectl v1.35 against the cluster that `cargo xtask run` started.
    Kubectl(kubectl::Options),
    /// Load-test a fresh cluster of simulated (or Docker) nodes and write
    /// a report: `cargo xtask load --nodes 100 --pods 10000` (see `--help`).
    Load(load::Options),
    /// Benchmark against a reference: `store` runs the store's workload
    /// against coxswain and against etcd, and prints the ratios; `probes`
    /// times a traced pod without and with the eBPF probes.
    Bench(bench::Options),
    /// Print the commands of the bottom-up path: a kubelet alone, then each
    /// control-plane component as a static pod.
    BottomUp(bottom_up::Options),
    /// Print the absolute path of kubectl v1.35, fetching it when missing.
    #[command(hide = true)]
    KubectlPath,
}

fn main() -> ExitCode {
    // Errors are printed as one chain of causes, without the backtrace that
    // `RUST_BACKTRACE` would add: the failing step is named already.
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Images(options) => images::main(options),
        Command::Run(options) => run::main(options),
        Command::Test(options) => test::main(options),
        Command::Kubectl(options) => kubectl::main(options),
        Command::Load(options) => load::main(options),
        Command::Bench(options) => bench::main(options),
        Command::KubectlPath => kubectl::print_path(),
        Command::BottomUp(options) => bottom_up::main(options),
    }
}
