//! Making sure a Docker engine answers.
//!
//! `ensure_engine` returns once `docker version` gets an answer from a
//! server. When none answers and this is Debian and we are root, it installs
//! `docker.io` if `dockerd` is missing, starts `dockerd` in the background
//! (its own process group, so Ctrl-C in this terminal does not stop it; log
//! in `target/dockerd.log`) and waits up to a minute for it. Anywhere else it
//! stops with a message saying what to install. Each step prints one line.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{apt, exec, host, workspace};

/// The socket dockerd listens on, and where the docker CLI looks by default.
const SOCKET: &str = "unix:///var/run/docker.sock";
/// How long a freshly started dockerd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often to ask whether it answers yet.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often to say that we are still waiting.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Returns once a Docker engine answers, setting one up when possible.
pub fn ensure_engine() -> Result<()> {
    if server_version().is_some() {
        return Ok(());
    }
    eprintln!("xtask: no Docker engine answers; setting one up");
    apt::require_installer("a running Docker engine (Debian: docker.io, then dockerd)")?;

    if host::which("dockerd").is_none() || host::which("docker").is_none() {
        apt::ensure(&["docker.io"])?;
    }
    let dockerd = start_dockerd()?;
    wait_until_ready(dockerd)
}

/// The engine's version, if a server answers.
fn server_version() -> Option<String> {
    let mut version = Command::new("docker");
    version.args(["version", "--format", "{{.Server.Version}}"]);
    exec::probe(&mut version)
        .map(|out| out.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Starts dockerd detached from this terminal, logging to a file.
fn start_dockerd() -> Result<Child> {
    let log_path = log_path();
    std::fs::create_dir_all(workspace::target_dir())?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;

    eprintln!(
        "xtask: starting dockerd in the background (log: {})",
        log_path.display()
    );
    let mut command = Command::new("nohup");
    command
        .args(["dockerd", "--host", SOCKET])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    exec::echo(&command);
    command.spawn().context("cannot start dockerd")
}

/// Where dockerd's output goes.
fn log_path() -> PathBuf {
    workspace::target_dir().join("dockerd.log")
}

/// Waits for the engine to answer, failing early if dockerd exits.
fn wait_until_ready(mut dockerd: Child) -> Result<()> {
    let started = Instant::now();
    let mut last_progress = started;
    eprintln!(
        "xtask: waiting for dockerd to answer (up to {}s)",
        START_TIMEOUT.as_secs()
    );

    loop {
        if let Some(version) = server_version() {
            eprintln!("xtask: dockerd {version} is ready");
            return Ok(());
        }
        if let Some(status) = dockerd.try_wait()? {
            bail!("dockerd exited with {status}; see {}", log_path().display());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "dockerd did not answer within {}s; see {}",
                START_TIMEOUT.as_secs(),
                log_path().display()
            );
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            eprintln!(
                "xtask: still waiting for dockerd ({}s)",
                started.elapsed().as_secs()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
