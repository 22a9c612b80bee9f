//! What the probes report: [`TraceEvent`], decoded from the C `struct
//! event` of `probes/event.h`.
//!
//! Decoding reads the record field by field at the offsets of that struct
//! (little endian, as on every target the probes are built for); a record of
//! another size is refused rather than misread. Times are converted from
//! boot time to Unix time with the offset measured at load.

use serde::{Deserialize, Serialize};

/// The size of `struct event` in `probes/event.h`.
pub const RAW_EVENT_SIZE: usize = 112 + NAME_LEN;
const NAME_LEN: usize = 128;

/// `CLONE_NEW*` flags, as unshare, setns and the fork probe report them.
pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;

const NAMESPACE_FLAGS: &[(u64, &str)] = &[
    (CLONE_NEWNET, "net"),
    (CLONE_NEWPID, "pid"),
    (CLONE_NEWNS, "mnt"),
    (CLONE_NEWIPC, "ipc"),
    (CLONE_NEWUTS, "uts"),
    (CLONE_NEWCGROUP, "cgroup"),
    (CLONE_NEWUSER, "user"),
];

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Exec,
    Fork,
    Exit,
    Unshare,
    Setns,
    CgroupMkdir,
    CgroupRmdir,
    Signal,
    OomKill,
}

impl EventKind {
    fn from_raw(kind: u32) -> Option<EventKind> {
        Some(match kind {
            1 => EventKind::Exec,
            2 => EventKind::Fork,
            3 => EventKind::Exit,
            4 => EventKind::Unshare,
            5 => EventKind::Setns,
            6 => EventKind::CgroupMkdir,
            7 => EventKind::CgroupRmdir,
            8 => EventKind::Signal,
            9 => EventKind::OomKill,
            _ => return None,
        })
    }

    /// The name used in JSON and in the CLI, e.g. `oom_kill`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Unshare => "unshare",
            EventKind::Setns => "setns",
            EventKind::CgroupMkdir => "cgroup_mkdir",
            EventKind::CgroupRmdir => "cgroup_rmdir",
            EventKind::Signal => "signal",
            EventKind::OomKill => "oom_kill",
        }
    }
}

/// The inode numbers of a task's namespaces (as in `/proc/<pid>/ns/*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Namespaces {
    pub net: u32,
    /// The pid namespace the task lives in.
    pub pid: u32,
    /// The pid namespace its children will live in (differs after
    /// `unshare(CLONE_NEWPID)`).
    pub pid_for_children: u32,
    pub mnt: u32,
    pub ipc: u32,
    pub uts: u32,
}

/// One kernel event about one task, attributed to a pod when the kubelet
/// knows the task's cgroup or namespaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub kind: EventKind,
    /// The task the event is about (thread id): the child of a fork, the
    /// target of a signal, the victim of an OOM kill.
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub comm: String,
    /// The task's cgroup v2 id; for cgroup events, the cgroup's own id.
    pub cgroup_id: u64,
    pub namespaces: Namespaces,
    /// exec: the file name; cgroup events: the cgroup's path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// unshare, setns, fork: the namespaces created or joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_flags: Vec<String>,
    /// The other task: the parent of a fork, the sender of a signal, the
    /// task that hit the memory limit of an OOM kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_comm: Option<String>,
    /// signal, oom_kill: the signal number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<u32>,
    /// exit: the exit code, when the task exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// exit: the signal that ended the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i32>,
    /// unshare, setns: the system call's result (0 or -errno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i32>,
    /// cgroup events: the hierarchy (0 is cgroup v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<u32>,
    /// The pod, `namespace/name`, once attributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The container's name in the pod spec (`POD` for the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Why a ring buffer record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("event record of {0} bytes, expected {RAW_EVENT_SIZE}")]
    Size(usize),
    #[error("unknown event kind {0}")]
    Kind(u32),
}

/// The names of the namespaces in `flags` (`CLONE_NEW*`), e.g. `["net"]`.
pub fn namespace_names(flags: u64) -> Vec<String> {
    NAMESPACE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

impl TraceEvent {
    /// Decodes one ring buffer record; `boot_offset_ns` turns boot time into
    /// Unix time.
    pub fn decode(raw: &[u8], boot_offset_ns: i64) -> Result<TraceEvent, DecodeError> {
        if raw.len() != RAW_EVENT_SIZE {
            return Err(DecodeError::Size(raw.len()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
        let kind_raw = u32_at(24);
        let kind = EventKind::from_raw(kind_raw).ok_or(DecodeError::Kind(kind_raw))?;
        let flags = u64_at(16);
        let result = u32_at(44) as i32;
        let other_pid = u32_at(40);
        let signal = u32_at(48);
        let mut event = TraceEvent {
            time_ns: (u64_at(0) as i64).saturating_add(boot_offset_ns).max(0) as u64,
            kind,
            pid: u32_at(28),
            tgid: u32_at(32),
            ppid: u32_at(36),
            comm: c_string(&raw[80..96]),
            cgroup_id: u64_at(8),
            namespaces: Namespaces {
                net: u32_at(52),
                pid: u32_at(56),
                pid_for_children: u32_at(60),
                mnt: u32_at(64),
                ipc: u32_at(68),
                uts: u32_at(72),
            },
            name: c_string(&raw[112..112 + NAME_LEN]),
            namespace_flags: Vec::new(),
            other_pid: None,
            other_comm: None,
            signal: None,
            exit_code: None,
            exit_signal: None,
            result: None,
            hierarchy: None,
            pod: None,
            pod_uid: None,
            container: None,
        };
        match kind {
            EventKind::Fork | EventKind::Signal | EventKind::OomKill => {
                event.other_pid = Some(other_pid);
                event.other_comm = Some(c_string(&raw[96..112]));
            }
            _ => {}
        }
        match kind {
            EventKind::Fork | EventKind::Unshare | EventKind::Setns => {
                event.namespace_flags = namespace_names(flags);
            }
            EventKind::CgroupMkdir | EventKind::CgroupRmdir => {
                event.hierarchy = Some(flags as u32);
            }
            _ => {}
        }
        match kind {
            EventKind::Unshare | EventKind::Setns => event.result = Some(result),
            EventKind::Signal | EventKind::OomKill => event.signal = Some(signal),
            EventKind::Exit => {
                // A wait status: the low 7 bits are the killing signal, if any.
                let status = result;
                if status & 0x7f != 0 {
                    event.exit_signal = Some(status & 0x7f);
                } else {
                    event.exit_code = Some((status >> 8) & 0xff);
                }
            }
            _ => {}
        }
        Ok(event)
    }

    /// Whether this event is a namespace being created: an unshare or a fork
    /// into new namespaces (runc never passes `CLONE_NEW*` to clone; it
    /// unshares, then forks).
    pub fn creates_namespaces(&self) -> bool {
        matches!(self.kind, EventKind::Unshare | EventKind::Fork)
            && !self.namespace_flags.is_empty()
            && self.result.unwrap_or(0) == 0
    }

    /// One line for people: time, pod/container, task, what happened.
    pub fn summary(&self) -> String {
        let mut what = match self.kind {
            EventKind::Exec => format!("exec {}", self.name),
            EventKind::Fork => format!(
                "fork from {} ({})",
                self.other_pid.unwrap_or(0),
                self.other_comm.as_deref().unwrap_or("")
            ),
            EventKind::Exit => match (self.exit_code, self.exit_signal) {
                (_, Some(signal)) => format!("exit by signal {}", signal_name(signal as u32)),
                (Some(code), None) => format!("exit code {code}"),
                (None, None) => "exit".to_owned(),
            },
            EventKind::Unshare => format!("unshare result={}", self.result.unwrap_or(0)),
            EventKind::Setns => format!("setns result={}", self.result.unwrap_or(0)),
            EventKind::CgroupMkdir => format!("cgroup created {}", self.name),
            EventKind::CgroupRmdir => format!("cgroup removed {}", self.name),
            EventKind::Signal => format!(
                "signal {} from {} ({})",
                signal_name(self.signal.unwrap_or(0)),
                self.other_pid.unwrap_or(0),
                self.other_comm.as_deref().unwrap_or("")
            ),
            EventKind::OomKill => "OOM kill".to_owned(),
        };
        if !self.namespace_flags.is_empty() {
            what.push_str(&format!(" ns=[{}]", self.namespace_flags.join(",")));
        }
        format!(
            "{pid}/{comm} {what} netns={net} pidns={pidns} mntns={mnt}",
            pid = self.tgid,
            comm = self.comm,
            net = self.namespaces.net,
            pidns = self.namespaces.pid,
            mnt = self.namespaces.mnt,
        )
    }
}

/// `SIGTERM`, `SIGKILL`, ... for the signals the probes report.
pub fn signal_name(signal: u32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        3 => "SIGQUIT".into(),
        9 => "SIGKILL".into(),
        15 => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u32) -> Vec<u8> {
        let mut raw = vec![0u8; RAW_EVENT_SIZE];
        raw[0..8].copy_from_slice(&1_000u64.to_le_bytes());
        raw[8..16].copy_from_slice(&4242u64.to_le_bytes());
        raw[24..28].copy_from_slice(&kind.to_le_bytes());
        raw[28..32].copy_from_slice(&7u32.to_le_bytes());
        raw[32..36].copy_from_slice(&7u32.to_le_bytes());
        raw[52..56].copy_from_slice(&4026531840u32.to_le_bytes());
        raw[80..84].copy_from_slice(b"runc");
        raw
    }

    #[test]
    fn an_exec_record_decodes_with_its_file_name_and_unix_time() {
        let mut bytes = raw(1);
        bytes[112..120].copy_from_slice(b"/pause\0\0");
        let event = TraceEvent::decode(&bytes, 5_000).unwrap();
        assert_eq!(event.kind, EventKind::Exec);
        assert_eq!(event.time_ns, 6_000);
        assert_eq!(event.name, "/pause");
        assert_eq!(event.comm, "runc");
        assert_eq!(event.cgroup_id, 4242);
        assert_eq!(event.namespaces.net, 4026531840);
    }

    #[test]
    fn an_unshare_record_names_the_namespaces_it_created() {
        let mut bytes = raw(4);
        bytes[16..24].copy_from_slice(&(CLONE_NEWNET | CLONE_NEWNS).to_le_bytes());
        let event = TraceEvent::decode(&bytes, 0).unwrap();
        assert_eq!(event.namespace_flags, ["net", "mnt"]);
        assert_eq!(event.result, Some(0));
        assert!(event.creates_namespaces());
    }

    #[test]
    fn exit_records_split_the_wait_status_into_code_or_signal() {
        let mut bytes = raw(3);
        bytes[44..48].copy_from_slice(&(3i32 << 8).to_le_bytes());
        let event = TraceEvent::decode(&bytes, 0).unwrap();
        assert_eq!((event.exit_code, event.exit_signal), (Some(3), None));

        bytes[44..48].copy_from_slice(&9i32.to_le_bytes());
        let event = TraceEvent::decode(&bytes, 0).unwrap();
        assert_eq!((event.exit_code, event.exit_signal), (None, Some(9)));
        assert!(event.summary().contains("SIGKILL"), "{}", event.summary());
    }

    #[test]
    fn records_of_another_size_or_kind_are_refused() {
        assert_eq!(TraceEvent::decode(&[0; 10], 0), Err(DecodeError::Size(10)));
        assert_eq!(TraceEvent::decode(&raw(77), 0), Err(DecodeError::Kind(77)));
    }

    #[test]
    fn events_round_trip_through_json_without_empty_fields() {
        let event = TraceEvent::decode(&raw(2), 0).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "fork");
        assert!(json.get("exit_code").is_none());
        let back: TraceEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
