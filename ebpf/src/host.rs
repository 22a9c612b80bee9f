//! A process's identifiers as the probes see them, read from `/proc` and
//! the cgroup2 mount: what the kubelet registers in the probes' maps.
//!
//! Which identifiers hold: the cgroup v2 id (the inode of the cgroup's
//! directory in the cgroup2 tree) is what `bpf_get_current_cgroup_id()`
//! returns; it is never reused while the machine runs, and it works on a
//! pure cgroup v2 host (cgroup2 at `/sys/fs/cgroup`) and on a hybrid one
//! (v1 controllers, cgroup2 at `/sys/fs/cgroup/unified`), where runc still
//! places each container in its own cgroup2 directory. On a v1-only host
//! (no cgroup2 mount) every task reports the root id, so
//! [`cgroup_id_of_pid`] returns `None` and the namespace inodes, which exist
//! everywhere but are reused within minutes of a namespace's end, are the
//! only handle.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::event::Namespaces;

/// Where the cgroup2 hierarchy is mounted, if anywhere.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(target))
    })
}

/// The cgroup v2 path of process `pid` (`/system.slice/...`, relative to
/// the cgroup2 mount); `None` when the process is gone.
pub fn cgroup_path_of_pid(pid: u32) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(path.trim().to_owned())
}

/// The cgroup v2 id of process `pid`: the inode of its directory in the
/// cgroup2 tree; `None` without a cgroup2 mount or when the process is gone.
pub fn cgroup_id_of_pid(pid: u32) -> Option<u64> {
    let mount = cgroup2_mount()?;
    let path = cgroup_path_of_pid(pid)?;
    let dir = mount.join(path.trim_start_matches('/'));
    let id = std::fs::metadata(dir).ok()?.ino();
    // The root cgroup says nothing about a container.
    (id != 1).then_some(id)
}

/// The namespace inodes of process `pid` (`/proc/<pid>/ns/*`).
pub fn namespaces_of_pid(pid: u32) -> Option<Namespaces> {
    let inode = |name: &str| -> Option<u32> {
        let meta = std::fs::metadata(format!("/proc/{pid}/ns/{name}")).ok()?;
        Some(meta.ino() as u32)
    };
    Some(Namespaces {
        net: inode("net")?,
        pid: inode("pid")?,
        pid_for_children: inode("pid_for_children").unwrap_or(0),
        mnt: inode("mnt")?,
        ipc: inode("ipc")?,
        uts: inode("uts")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_namespace_inodes() {
        let ns = namespaces_of_pid(std::process::id()).unwrap();
        assert!(ns.net > 0 && ns.mnt > 0 && ns.pid > 0);
    }
}
