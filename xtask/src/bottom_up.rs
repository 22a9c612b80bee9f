//! `cargo xtask bottom-up`: the command lines of README's bottom-up path.
//!
//! Builds what the path needs (the images, `coxswain/coxswain` among them,
//! and the `coxswain` binary they carry), creates the kubelet's manifest
//! directory `target/bottom-up/manifests/`, and prints on stdout, in order
//! and with absolute paths, what to run: the kubelet alone, the manifests to
//! copy one by one, the kubelet again with the kubeconfig the API server
//! writes, kubectl, and how to clean up. It starts nothing itself: the
//! point of the path is to watch each step happen.
//!
//! The control plane's data directory is read from the API server's
//! manifest (`--data-dir=`), so that the printed kubeconfig path is the one
//! the manifests use.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{images, kubectl, run, workspace};

/// Options of `cargo xtask bottom-up`.
#[derive(clap::Args)]
pub struct Options {}

/// The API server's manifest, which names the control plane's data directory.
const API_SERVER_MANIFEST: &str = "manifests/02-api-server.yml";

/// Runs `cargo xtask bottom-up`.
pub fn main(_options: Options) -> Result<()> {
    images::ensure(false)?;
    let coxswain = run::build_coxswain(false)?;
    let kubectl = kubectl::kubectl_path()?;

    let root = workspace::root();
    let work = workspace::target_dir().join("bottom-up");
    let manifests = work.join("manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;
    let api_server = root.join(API_SERVER_MANIFEST);
    let text = std::fs::read_to_string(&api_server)
        .with_context(|| format!("reading {}", api_server.display()))?;
    let data_dir = data_dir_of(&text)
        .with_context(|| format!("{} names no --data-dir=", api_server.display()))?;
    let kubeconfig = Path::new(data_dir).join("kubeconfig");
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());

    let kubelet = format!(
        "{} kubelet --pod-manifest-path {} --root-dir {}",
        coxswain.display(),
        manifests.display(),
        work.join("kubelet").display()
    );
    let copy = |name: &str| {
        format!(
            "cp {} {}/",
            root.join("manifests").join(name).display(),
            manifests.display()
        )
    };
    let leftovers = std::fs::read_dir(&manifests)?.flatten().count();

    println!("# The bottom-up path (README.md), as root, with `cargo xtask run` stopped.");
    if leftovers > 0 {
        println!(
            "# Note: {} holds {leftovers} file(s) from an earlier run.",
            manifests.display()
        );
    }
    println!();
    println!("# 1. First shell: the kubelet alone (standalone mode).");
    println!("{kubelet}");
    println!();
    println!("# 2. Second shell: a static pod, then the API server and its store.");
    println!("{}", copy("01-simple-web-pod.yml"));
    println!("docker ps");
    println!("{}", copy("02-api-server.yml"));
    println!(
        "alias kubectl='{} --kubeconfig {}'",
        kubectl.display(),
        kubeconfig.display()
    );
    println!("kubectl get nodes");
    println!();
    println!("# 3. First shell: Ctrl-C, then the kubelet again, joining the cluster.");
    println!("{kubelet} --kubeconfig {}", kubeconfig.display());
    println!();
    println!("# 4. Second shell: a Deployment, the controller manager, the scheduler.");
    println!("kubectl get nodes");
    println!("kubectl get pods -A");
    println!(
        "kubectl apply -f {}",
        root.join("manifests/04-nginx-deployment.yml").display()
    );
    println!("kubectl get replicaset");
    println!("{}", copy("05-controller-manager.yml"));
    println!("kubectl get replicaset");
    println!("kubectl get pods");
    println!("{}", copy("06-scheduler.yml"));
    println!("kubectl get pods");
    println!();
    println!("# Cleaning up: stop the kubelet (Ctrl-C), then");
    println!("docker rm -f $(docker ps -aq --filter label=coxswain.io/node={node})");
    println!("rm -rf {data_dir} {}/*", manifests.display());
    Ok(())
}

/// The value of `--data-dir=` in a manifest's command line.
fn data_dir_of(manifest: &str) -> Option<&str> {
    manifest.lines().find_map(|line| {
        let (_, value) = line.split_once("--data-dir=")?;
        let value = value.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_comes_from_the_api_servers_command_line() {
        let manifest = "spec:\n  containers:\n  - command:\n    - /coxswain\n    \
                        - apiserver\n    - --data-dir=/var/lib/coxswain-walkthrough\n";
        assert_eq!(data_dir_of(manifest), Some("/var/lib/coxswain-walkthrough"));
        assert_eq!(data_dir_of("spec: {}\n"), None);
    }

    #[test]
    fn the_committed_api_server_manifest_names_its_data_dir() {
        let text = std::fs::read_to_string(workspace::root().join(API_SERVER_MANIFEST)).unwrap();
        assert_eq!(data_dir_of(&text), Some("/var/lib/coxswain-walkthrough"));
    }
}
