/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * coxswain's pod tracing probes.
 *
 * Events: exec, fork, exit, unshare, setns, cgroup mkdir/rmdir, signals
 * sent to traced tasks and OOM kills, each with the task's identity, cgroup
 * id and namespace inodes, written to one ring buffer.
 *
 * Only traced tasks produce events: tasks in a cgroup of pod_cgroups, or in
 * a namespace of pod_namespaces (both filled by the kubelet), tasks in
 * tracked_tasks, and runtime processes (comm "runc...") while the kubelet
 * holds runtime_window open around sandbox and container creation. A traced
 * runtime task is added to tracked_tasks, and so are the children of
 * tracked tasks, so that the container's first process is followed before
 * the kubelet knows its cgroup.
 *
 * Needs: BTF (every program is tp_btf; no tracefs, kprobes or ftrace),
 * Linux 5.11+; the OOM probe reads
 * mark_victim's task argument, which Linux 6.8 introduced.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Wake the reader only once this much is waiting; it also drains on a timer. */
#define WAKE_BYTES (64 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

/* Events lost because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

/* cgroup v2 id -> 1, for the containers of pods on this node. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} pod_cgroups SEC(".maps");

/* namespace inode -> 1, for the namespaces of pods on this node. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} pod_namespaces SEC(".maps");

/* tgid -> 1: runtime processes seen in a window, and their descendants. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} tracked_tasks SEC(".maps");

/* [0]: how many sandbox or container creations are under way. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} runtime_window SEC(".maps");

struct ns_ids {
	__u32 net, pid, pid_children, mnt, ipc, uts;
};

static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline void read_namespaces(struct task_struct *task, struct ns_ids *ns)
{
	struct nsproxy *proxy = BPF_CORE_READ(task, nsproxy);
	if (proxy) {
		ns->net = BPF_CORE_READ(proxy, net_ns, ns.inum);
		ns->mnt = BPF_CORE_READ(proxy, mnt_ns, ns.inum);
		ns->ipc = BPF_CORE_READ(proxy, ipc_ns, ns.inum);
		ns->uts = BPF_CORE_READ(proxy, uts_ns, ns.inum);
		ns->pid_children = BPF_CORE_READ(proxy, pid_ns_for_children, ns.inum);
	}
	/* The task's own pid namespace: the deepest level of its struct pid. */
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	if (pid) {
		unsigned int level = BPF_CORE_READ(pid, level) & 31;
		struct upid upid = {};
		void *at = (void *)pid + bpf_core_field_offset(struct pid, numbers) +
			   level * bpf_core_type_size(struct upid);
		bpf_probe_read_kernel(&upid, sizeof(upid), at);
		if (upid.ns)
			ns->pid = BPF_CORE_READ(upid.ns, ns.inum);
	}
}

static __always_inline bool comm_is_runtime(const char *comm)
{
	return comm[0] == 'r' && comm[1] == 'u' && comm[2] == 'n' && comm[3] == 'c';
}

static __always_inline bool window_open(void)
{
	__u32 zero = 0;
	__u32 *open = bpf_map_lookup_elem(&runtime_window, &zero);
	return open && *open > 0;
}

/* Whether events about `task` are wanted; tracks runtime tasks in a window. */
static __always_inline bool traced(struct task_struct *task, __u64 cgroup_id,
				   struct ns_ids *ns)
{
	if (bpf_map_lookup_elem(&pod_cgroups, &cgroup_id))
		return true;
	if (ns->net && bpf_map_lookup_elem(&pod_namespaces, &ns->net))
		return true;
	if (ns->pid && bpf_map_lookup_elem(&pod_namespaces, &ns->pid))
		return true;
	if (ns->mnt && bpf_map_lookup_elem(&pod_namespaces, &ns->mnt))
		return true;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (bpf_map_lookup_elem(&tracked_tasks, &tgid))
		return true;
	if (!window_open())
		return false;
	char comm[16];
	BPF_CORE_READ_STR_INTO(&comm, task, comm);
	if (!comm_is_runtime(comm))
		return false;
	__u8 one = 1;
	bpf_map_update_elem(&tracked_tasks, &tgid, &one, BPF_ANY);
	return true;
}

/* Reserves an event about `task`, filled with its identity; NULL if full. */
static __always_inline struct event *start_event(__u32 kind, struct task_struct *task,
						 __u64 cgroup_id, struct ns_ids *ns)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *count = bpf_map_lookup_elem(&dropped, &zero);
		if (count)
			*count += 1;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->kind = kind;
	e->cgroup_id = cgroup_id;
	e->pid = BPF_CORE_READ(task, pid);
	e->tgid = BPF_CORE_READ(task, tgid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->ns_net = ns->net;
	e->ns_pid = ns->pid;
	e->ns_pid_children = ns->pid_children;
	e->ns_mnt = ns->mnt;
	e->ns_ipc = ns->ipc;
	e->ns_uts = ns->uts;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	return e;
}

static __always_inline void finish_event(struct event *e)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, waiting > WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline void set_other(struct event *e, struct task_struct *other)
{
	e->other_pid = BPF_CORE_READ(other, tgid);
	BPF_CORE_READ_STR_INTO(&e->other_comm, other, comm);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	struct ns_ids ns = {};
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	read_namespaces(task, &ns);
	if (!traced(task, cgroup_id, &ns))
		return 0;
	struct event *e = start_event(EVENT_EXEC, task, cgroup_id, &ns);
	if (!e)
		return 0;
	const char *filename = BPF_CORE_READ(bprm, filename);
	bpf_probe_read_kernel_str(&e->name, sizeof(e->name), filename);
	finish_event(e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	struct ns_ids ns = {}, parent_ns = {};
	__u64 cgroup_id = task_cgroup_id(child);
	read_namespaces(child, &ns);
	/* Threads are not processes: only new thread groups are reported. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	if (!traced(parent, bpf_get_current_cgroup_id(), &ns))
		return 0;
	__u32 tgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	if (bpf_map_lookup_elem(&tracked_tasks, &parent_tgid))
		bpf_map_update_elem(&tracked_tasks, &tgid, &one, BPF_ANY);

	struct event *e = start_event(EVENT_FORK, child, cgroup_id, &ns);
	if (!e)
		return 0;
	read_namespaces(parent, &parent_ns);
	__u64 created = 0;
	if (ns.net != parent_ns.net)
		created |= CLONE_NEWNET;
	if (ns.pid != parent_ns.pid)
		created |= CLONE_NEWPID;
	if (ns.mnt != parent_ns.mnt)
		created |= CLONE_NEWNS;
	if (ns.ipc != parent_ns.ipc)
		created |= CLONE_NEWIPC;
	if (ns.uts != parent_ns.uts)
		created |= CLONE_NEWUTS;
	e->flags = created;
	set_other(e, parent);
	finish_event(e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	struct ns_ids ns = {};
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (BPF_CORE_READ(task, pid) != tgid)
		return 0;
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	read_namespaces(task, &ns);
	bool wanted = traced(task, cgroup_id, &ns);
	bpf_map_delete_elem(&tracked_tasks, &tgid);
	if (!wanted)
		return 0;
	struct event *e = start_event(EVENT_EXIT, task, cgroup_id, &ns);
	if (!e)
		return 0;
	e->result = BPF_CORE_READ(task, exit_code);
	finish_event(e);
	return 0;
}

/* x86_64 system call numbers. */
#define NR_UNSHARE 272
#define NR_SETNS 308

/*
 * unshare and setns, seen as they return: the task's namespaces are then
 * the ones it created or joined. fentry/fexit would be narrower, but need
 * ftrace trampolines that not every kernel has; sys_exit needs only BTF, and
 * the system call number is the first thing checked.
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = BPF_CORE_READ(regs, orig_ax);
	if (nr != NR_UNSHARE && nr != NR_SETNS)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct ns_ids ns = {};
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	read_namespaces(task, &ns);
	if (!traced(task, cgroup_id, &ns))
		return 0;
	__u32 kind = nr == NR_UNSHARE ? EVENT_UNSHARE : EVENT_SETNS;
	struct event *e = start_event(kind, task, cgroup_id, &ns);
	if (!e)
		return 0;
	/* unshare(flags); setns(fd, nstype). */
	e->flags = nr == NR_UNSHARE ? BPF_CORE_READ(regs, di) : BPF_CORE_READ(regs, si);
	e->result = ret;
	finish_event(e);
	return 0;
}

static __always_inline int on_cgroup(__u32 kind, struct cgroup *cgrp, const char *path)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	struct ns_ids ns = {};
	read_namespaces(task, &ns);
	bool removed_pod_cgroup = kind == EVENT_CGROUP_RMDIR &&
				  bpf_map_lookup_elem(&pod_cgroups, &id);
	if (!removed_pod_cgroup && !traced(task, bpf_get_current_cgroup_id(), &ns))
		return 0;
	struct event *e = start_event(kind, task, id, &ns);
	if (!e)
		return 0;
	e->flags = BPF_CORE_READ(cgrp, root, hierarchy_id);
	bpf_probe_read_kernel_str(&e->name, sizeof(e->name), path);
	finish_event(e);
	return 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(on_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	return on_cgroup(EVENT_CGROUP_MKDIR, cgrp, path);
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(on_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	return on_cgroup(EVENT_CGROUP_RMDIR, cgrp, path);
}

SEC("tp_btf/signal_generate")
int BPF_PROG(on_signal, int sig, struct kernel_siginfo *info, struct task_struct *target)
{
	/* Only the signals that stop containers. */
	if (sig != 1 && sig != 2 && sig != 3 && sig != 9 && sig != 15)
		return 0;
	struct ns_ids ns = {};
	__u64 cgroup_id = task_cgroup_id(target);
	read_namespaces(target, &ns);
	if (!traced(target, cgroup_id, &ns))
		return 0;
	struct event *e = start_event(EVENT_SIGNAL, target, cgroup_id, &ns);
	if (!e)
		return 0;
	e->signal = sig;
	set_other(e, (struct task_struct *)bpf_get_current_task());
	finish_event(e);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(on_oom_victim, struct task_struct *victim)
{
	struct ns_ids ns = {};
	__u64 cgroup_id = task_cgroup_id(victim);
	read_namespaces(victim, &ns);
	if (!traced(victim, cgroup_id, &ns))
		return 0;
	struct event *e = start_event(EVENT_OOM_KILL, victim, cgroup_id, &ns);
	if (!e)
		return 0;
	e->signal = 9;
	set_other(e, (struct task_struct *)bpf_get_current_task());
	finish_event(e);
	return 0;
}
