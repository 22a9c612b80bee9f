//! `cargo xtask run`: a one-node cluster in the foreground.
//!
//! Builds the images (setting up Docker when needed) and the `coxswain`
//! binary, then replaces xtask with `coxswain up --data-dir .coxswain` plus
//! the arguments given after `--`. Because xtask is replaced (exec), Ctrl-C
//! reaches coxswain alone, and its exit status is the command's. coxswain
//! prints its own ready line; xtask prints nothing after starting it.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{apt, exec, images, workspace};

/// Options of `cargo xtask run`.
#[derive(clap::Args)]
pub struct Options {
    /// Build and run coxswain with the release profile.
    #[arg(long)]
    release: bool,
    /// Arguments passed on to `coxswain up`, after `--`.
    #[arg(last = true)]
    args: Vec<OsString>,
}

/// Runs `cargo xtask run`.
pub fn main(options: Options) -> Result<()> {
    images::ensure(false)?;
    let coxswain = build_coxswain(options.release)?;

    let mut up = Command::new(&coxswain);
    up.arg("up");
    // `.coxswain/` unless the user names another data directory.
    let own_data_dir = options
        .args
        .iter()
        .any(|a| a == "--data-dir" || a.to_string_lossy().starts_with("--data-dir="));
    if !own_data_dir {
        up.arg("--data-dir").arg(workspace::data_dir());
    }
    up.args(&options.args).current_dir(workspace::root());
    exec::echo(&up);
    let error = up.exec();
    Err(error).with_context(|| format!("cannot run {}", coxswain.display()))
}

/// Builds the `coxswain` binary and returns its path.
///
/// `--workspace` keeps the feature set the same as `cargo test --workspace`,
/// so that switching between run and test does not rebuild shared crates.
pub fn build_coxswain(release: bool) -> Result<PathBuf> {
    // The eBPF probes are C, compiled by clang against libbpf's headers.
    apt::ensure(&["clang", "libbpf-dev"])?;
    let mut build = Command::new(workspace::cargo());
    build
        .args(["build", "--workspace", "--bin", "coxswain"])
        .current_dir(workspace::root());
    if release {
        build.arg("--release");
    }
    exec::run(&mut build)?;
    let profile = if release { "release" } else { "debug" };
    Ok(workspace::target_dir().join(profile).join("coxswain"))
}
