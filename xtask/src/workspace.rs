//! Where things are: the repository root and the directories xtask uses
//! under it. Every path returned here is absolute.

use std::path::{Path, PathBuf};

/// The repository root (the directory of the workspace's `Cargo.toml`).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the xtask crate lives one level below the repository root")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The cluster's data directory, where `coxswain up` writes the kubeconfig.
pub fn data_dir() -> PathBuf {
    root().join(".coxswain")
}

/// The `cargo` that runs xtask (cargo sets `CARGO` for the programs it runs).
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
