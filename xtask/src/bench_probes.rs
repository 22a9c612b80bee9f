//! `cargo xtask bench probes`: what the eBPF probes cost a traced pod.
//!
//! Needs root (the probes load into the kernel), kernel BTF and clang (the
//! probes are compiled at build time). Starts the Docker engine and builds
//! the local images when missing, builds `probe_overhead` in release mode
//! and runs it: 10,000 short processes per round inside a pod's container,
//! rounds alternating without and with the probes, in one run. Its report
//! goes to stdout; the last line is
//! `probes: off=<s> on=<s> ratio=<r> execs=<n>/<iterations> dropped=<d>`.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{docker, exec, host, images, workspace};

/// Options of `cargo xtask bench probes`.
#[derive(clap::Args)]
pub struct Options {
    /// Short processes per round.
    #[arg(long, default_value_t = 10_000)]
    iterations: u32,
    /// Rounds without, and as many with, the probes.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

pub fn main(options: Options) -> Result<()> {
    if !host::is_root() {
        bail!("the probe benchmark loads eBPF probes: run it as root");
    }
    docker::ensure_engine()?;
    images::ensure(false)?;
    exec::run(
        Command::new(workspace::cargo())
            .current_dir(workspace::root())
            .args(["build", "--release", "-p", "coxswain-benches"])
            .args(["--bin", "probe_overhead"]),
    )?;
    let bench = workspace::target_dir().join("release/probe_overhead");
    exec::run(
        Command::new(bench)
            .arg("--iterations")
            .arg(options.iterations.to_string())
            .arg("--rounds")
            .arg(options.rounds.to_string()),
    )
}
