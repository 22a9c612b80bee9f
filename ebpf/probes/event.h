/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The record every probe writes to the ring buffer. ebpf/src/raw.rs mirrors
 * it field for field (repr(C)); change both together.
 */
#ifndef COXSWAIN_EVENT_H
#define COXSWAIN_EVENT_H

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_FORK = 2,
	EVENT_EXIT = 3,
	EVENT_UNSHARE = 4,
	EVENT_SETNS = 5,
	EVENT_CGROUP_MKDIR = 6,
	EVENT_CGROUP_RMDIR = 7,
	EVENT_SIGNAL = 8,
	EVENT_OOM_KILL = 9,
};

#define NAME_LEN 128

struct event {
	__u64 boot_ns;     /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;   /* the task's cgroup v2 id; the new or removed cgroup's for mkdir/rmdir */
	__u64 flags;       /* CLONE_NEW* of unshare, setns and fork; hierarchy id of mkdir/rmdir */
	__u32 kind;        /* enum event_kind */
	__u32 pid;         /* the task the event is about (thread id) */
	__u32 tgid;
	__u32 ppid;        /* its real parent's tgid */
	__u32 other_pid;   /* fork: parent; signal: sender; oom: the task that hit the limit */
	__s32 result;      /* exit: the wait status; unshare/setns: the syscall's return value */
	__u32 signal;      /* signal: the signal number */
	__u32 ns_net;
	__u32 ns_pid;      /* the pid namespace the task itself lives in */
	__u32 ns_pid_children;
	__u32 ns_mnt;
	__u32 ns_ipc;
	__u32 ns_uts;
	__u32 _pad;
	char comm[16];
	char other_comm[16];
	char name[NAME_LEN]; /* exec: file name; mkdir/rmdir: cgroup path */
};

_Static_assert(sizeof(struct event) == 240, "ebpf/src/event.rs decodes 240 bytes");

#endif
