//! Facts about the machine xtask runs on: who we are and which programs
//! exist.

use std::path::PathBuf;

/// Whether this process runs as root (real user id 0), read from
/// `/proc/self/status` so that no C call is needed.
pub fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .is_some_and(|uid| uid == "0")
}

/// The full path of `program` as found on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
