//! A component on an OS thread of its own, as it would be in a process of
//! its own.
//!
//! `coxswain up` and `coxswain load` run the whole cluster in one process.
//! On one shared runtime the scheduler and the controller manager are two
//! tasks among thousands of kubelet tasks, and get that share of the CPU:
//! under load, pods are created much faster than they are scheduled. In a
//! real cluster each is a process that the kernel schedules beside the
//! others; [`run_on_own_thread`] gives a component the same standing, a
//! thread with a single-threaded runtime. Its watchers, its spawned tasks
//! and the in-process apiserver requests it makes run on that thread too.
//!
//! What callers may rely on: the returned future resolves with the
//! component's result; dropping it (as `JoinSet::abort_all` does) stops the
//! component and its tasks, and the thread ends.

use std::future::Future;

use anyhow::Context;
use tokio::sync::oneshot;

/// Starts `component` on a new thread named `coxswain-<name>`, in a runtime
/// of its own; the returned future resolves with its result.
pub fn run_on_own_thread<F, Fut>(
    name: &'static str,
    component: F,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + 'static,
{
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (result_tx, result_rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("coxswain-{name}"))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the component's runtime")
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        tokio::select! {
                            result = component() => result,
                            // The caller is gone: stop.
                            _ = stop_rx => Ok(()),
                        }
                    })
                });
            let _ = result_tx.send(result);
        });
    async move {
        spawned.with_context(|| format!("starting the {name} thread"))?;
        // Held until the result comes: dropping it stops the component.
        let _stop = stop_tx;
        match result_rx.await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the {name} thread ended without a result"),
        }
    }
}
