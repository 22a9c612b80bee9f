//! Installing Debian packages the tasks need (docker.io, busybox-static,
//! clang, ...).
//!
//! `ensure` installs only what `dpkg` does not already report as installed,
//! runs `apt-get update` at most once per xtask run, and waits for the dpkg
//! lock if another apt is busy. Where it cannot install (not root, or no
//! `apt-get`), it stops with a message that names the packages to install.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::{exec, host};

/// Whether this run has already refreshed the package lists.
static UPDATED: AtomicBool = AtomicBool::new(false);

/// How long apt-get waits for another apt or dpkg to release its lock.
const LOCK_TIMEOUT_SECONDS: u32 = 600;

/// Makes sure every package in `packages` is installed.
pub fn ensure(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    require_installer(&format!("the Debian packages {list}"))?;
    eprintln!("xtask: installing {list}");

    if !UPDATED.swap(true, Ordering::SeqCst) {
        exec::run(apt_get().arg("update"))?;
    }
    exec::run(apt_get().args(["install", "-y"]).args(&missing))
}

/// Fails with a clear message unless this process can install packages.
pub fn require_installer(what: &str) -> Result<()> {
    if !host::is_root() || host::which("apt-get").is_none() {
        bail!(
            "xtask needs {what}; it sets that up by itself only when run as root on \
             Debian or Ubuntu (with apt-get): please set it up, then run this command again"
        );
    }
    Ok(())
}

/// Whether dpkg reports `package` as installed.
fn installed(package: &str) -> bool {
    let mut query = Command::new("dpkg-query");
    query.args(["--show", "--showformat=${Status}", package]);
    exec::probe(&mut query).is_some_and(|status| status.trim() == "install ok installed")
}

/// `apt-get` that never asks questions and waits for the dpkg lock.
fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", &format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_SECONDS}")]);
    command
}
