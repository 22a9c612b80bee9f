//! `cargo xtask bench store`: coxswain's store against etcd, same workload.
//!
//! Installs what is missing (Debian's `etcd-server`, and `protobuf-compiler`
//! that the etcd client's build needs), builds `store-compare` in release
//! mode, starts etcd on loopback ports with a fresh data directory under
//! `target/bench-store/`, runs `store-compare` against it and stops etcd,
//! whatever happened. The table `store-compare` prints goes to stdout; its
//! last line is `ratio coxswain/etcd: writes@64=R reads=R range=R`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{apt, exec, host, workspace};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Options {
    #[command(subcommand)]
    target: Target,
}

#[derive(clap::Subcommand)]
enum Target {
    /// The durable store against etcd: writes, reads, ranges; then watch
    /// latency, memory per record and cold start of coxswain's store.
    Store,
    /// The eBPF probes' cost: short processes in a traced pod, without and
    /// with the probes (root only).
    Probes(crate::bench_probes::Options),
}

pub fn main(options: Options) -> Result<()> {
    match options.target {
        Target::Store => store(),
        Target::Probes(options) => crate::bench_probes::main(options),
    }
}

fn store() -> Result<()> {
    if host::which("etcd").is_none() || host::which("protoc").is_none() {
        apt::ensure(&["etcd-server", "protobuf-compiler"])?;
    }
    exec::run(
        Command::new(workspace::cargo())
            .current_dir(workspace::root())
            .args(["build", "--release", "-p", "coxswain-benches"])
            .args(["--features", "etcd", "--bin", "store-compare"]),
    )?;

    let dir = workspace::target_dir().join("bench-store");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let etcd = Etcd::start(&dir)?;
    let compare = workspace::target_dir().join("release/store-compare");
    let result = exec::run(
        Command::new(compare)
            .arg("--etcd")
            .arg(format!("http://{}", etcd.client_address))
            .arg("--data-dir")
            .arg(dir.join("work")),
    );
    drop(etcd);
    result
}

/// A single-member etcd on loopback, stopped when dropped.
struct Etcd {
    child: Child,
    client_address: String,
}

impl Etcd {
    fn start(dir: &Path) -> Result<Etcd> {
        let client_address = free_loopback_address()?;
        let peer_address = free_loopback_address()?;
        let log = dir.join("etcd.log");
        let mut command = Command::new("etcd");
        command
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://{client_address}"))
            .arg(format!("--advertise-client-urls=http://{client_address}"))
            .arg(format!("--listen-peer-urls=http://{peer_address}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://{peer_address}"
            ))
            .arg(format!("--initial-cluster=bench=http://{peer_address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        eprintln!("$ {}", exec::echo(&command));
        let child = command.spawn().context("starting etcd")?;
        let mut etcd = Etcd {
            child,
            client_address,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&etcd.client_address).is_err() {
            if let Some(status) = etcd.child.try_wait()? {
                bail!("etcd exited with {status}; see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("etcd did not listen within 30 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(etcd)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_loopback_address() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}
