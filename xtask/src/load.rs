//! `cargo xtask load`: a load test on a fresh cluster.
//!
//! Builds `coxswain` with the release profile and runs its hidden `load`
//! subcommand from the workspace root, passing every argument on (`cargo
//! xtask load --nodes 100 --pods 10000`; `--help` lists them all). The
//! reports land in `target/load/<timestamp>/`. With `--runtime docker` the
//! local images are built first (the pods run `coxswain/pause:0.1`).
//! Logging defaults to warnings only, so that the progress bar stays
//! readable; `RUST_LOG` overrides it.

use std::ffi::OsString;
use std::process::Command;

use anyhow::Result;

use crate::{exec, images, run, workspace};

/// Options of `cargo xtask load`: those of `coxswain load`, passed on.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Options {
    /// Arguments of `coxswain load` (try `--help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// Runs `cargo xtask load`.
pub fn main(options: Options) -> Result<()> {
    let docker = options
        .args
        .windows(2)
        .any(|pair| pair[0] == "--runtime" && pair[1] == "docker")
        || options.args.iter().any(|a| a == "--runtime=docker");
    if docker {
        images::ensure(false)?;
    }
    let coxswain = run::build_coxswain(true)?;
    let mut load = Command::new(coxswain);
    load.arg("load")
        .args(&options.args)
        .current_dir(workspace::root());
    if std::env::var_os("RUST_LOG").is_none() {
        load.env("RUST_LOG", "warn");
    }
    exec::run(&mut load)
}
