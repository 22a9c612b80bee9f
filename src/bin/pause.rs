//! `coxswain-pause`: the process of a pod sandbox.
//!
//! A pod's sandbox container holds the namespaces (network, IPC, and
//! conceptually PID) that the pod's app containers join. Its process must do
//! nothing, cost nothing, and stay alive for as long as the pod exists. This
//! program promises exactly that:
//!
//! * it sleeps until a signal arrives, using no CPU in between;
//! * on SIGTERM or SIGINT it prints one line to stderr and exits with status 0,
//!   so that stopping a sandbox is quick and reads as a clean exit;
//! * on SIGCHLD it reaps every exited child, so that when it is PID 1 of a
//!   shared PID namespace, orphaned processes of the pod never stay zombies.
//!
//! It uses only the standard library and five C library functions (`signal`,
//! `pause`, `waitpid`, `write`, `_exit`), declared here by hand so that the
//! binary has no dependencies and links statically. The signal numbers are
//! those of Linux on x86_64 and aarch64.

use std::ffi::{c_int, c_void};

/// Interrupt from the terminal (Ctrl-C).
const SIGINT: c_int = 2;
/// The polite request to stop, sent by `docker stop` and by the kubelet.
const SIGTERM: c_int = 15;
/// A child process changed state.
const SIGCHLD: c_int = 17;
/// `waitpid` option: return at once when no child has exited.
const WNOHANG: c_int = 1;
/// What `signal` returns when it fails.
const SIG_ERR: usize = usize::MAX;
/// File descriptor of standard error.
const STDERR: c_int = 2;

/// Signal handler type as the C library sees it.
type Handler = extern "C" fn(c_int);

// SAFETY: these declarations match the C library's prototypes on Linux
// (glibc and musl): `sighandler_t` is a pointer-sized value, `pid_t` is
// `int`, and `_exit` never returns.
unsafe extern "C" {
    fn signal(signum: c_int, handler: Handler) -> usize;
    safe fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    safe fn _exit(status: c_int) -> !;
    fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
}

fn main() {
    install(SIGTERM, shut_down);
    install(SIGINT, shut_down);
    install(SIGCHLD, reap_children);

    // Every signal interrupts `pause`; the handlers do all the work, so the
    // loop only goes back to sleep.
    loop {
        pause();
    }
}

/// Installs `handler` for `signum`, or exits with status 1 if the C library
/// refuses (only possible for an invalid signal number).
fn install(signum: c_int, handler: Handler) {
    // SAFETY: both handlers only call async-signal-safe functions (`write`,
    // `waitpid`, `_exit`) and touch no Rust state shared with `main`.
    let previous = unsafe { signal(signum, handler) };
    if previous == SIG_ERR {
        eprintln!("coxswain-pause: cannot install the handler for signal {signum}");
        std::process::exit(1);
    }
}

/// SIGTERM and SIGINT: say why, then exit cleanly without unwinding.
extern "C" fn shut_down(_signum: c_int) {
    let message = b"coxswain-pause: shutting down on signal\n";
    // SAFETY: the buffer is a static byte string of the given length; a
    // failed write is harmless, the exit below happens regardless.
    unsafe { write(STDERR, message.as_ptr().cast(), message.len()) };
    _exit(0);
}

/// SIGCHLD: collect the exit status of every child that has ended.
extern "C" fn reap_children(_signum: c_int) {
    let mut status: c_int = 0;
    // One SIGCHLD may stand for several exited children, so reap until
    // `waitpid` reports none left (0) or no children at all (-1).
    // SAFETY: `status` is a valid, writable `int` for the duration of the call.
    while unsafe { waitpid(-1, &mut status, WNOHANG) } > 0 {}
}
