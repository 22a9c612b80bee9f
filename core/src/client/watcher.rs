//! List-then-watch that never gives up: the building block of every
//! component's view of the cluster.
//!
//! [`watcher`] lists a collection, reports the whole set as
//! [`WatcherEvent::Restarted`], then streams changes. When the watch ends it
//! resumes from the last revision seen; when the server says that revision is
//! gone (410), or one it has not reached (504), it lists again; when the
//! server is unreachable it retries with backoff. It logs one warning when a
//! server it had listed from stops answering (or answers with an error), and
//! one line when it answers again; an unreachable server before the first
//! list is logged at debug only, since the component says once that it is
//! waiting for the apiserver. It stops when its receiver is dropped.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Client, ListParams};
use crate::api::Resource;

/// A change in the watched set.
#[derive(Clone, Debug)]
pub enum WatcherEvent<T> {
    /// The full current set, after a (re-)list: replace any cache.
    Restarted(Vec<T>),
    /// An object was added or modified.
    Applied(T),
    /// An object was deleted; its last state.
    Deleted(T),
}

/// Starts watching; events arrive on the returned channel.
pub fn watcher<T: Resource>(
    client: Client,
    namespace: &str,
    params: ListParams,
) -> mpsc::Receiver<WatcherEvent<T>> {
    let (tx, rx) = mpsc::channel(1024);
    let namespace = namespace.to_owned();
    tokio::spawn(async move { run(client, namespace, params, tx).await });
    rx
}

async fn run<T: Resource>(
    client: Client,
    namespace: String,
    params: ListParams,
    tx: mpsc::Sender<WatcherEvent<T>>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut outage = Outage::default();
    'relist: loop {
        let list = match client.list::<T>(&namespace, &params).await {
            Ok(list) => list,
            Err(error) => {
                outage.failed(T::KIND, "list", &error);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if tx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        outage.listed(T::KIND);
        let mut revision = list.metadata.resource_version.clone().unwrap_or_default();
        if tx.send(WatcherEvent::Restarted(list.items)).await.is_err() {
            return;
        }
        loop {
            let stream = match client.watch::<T>(&namespace, &params, &revision, 300).await {
                Ok(stream) => stream,
                Err(error) if error.is_gone() || error.is_too_large_resource_version() => {
                    continue 'relist;
                }
                Err(error) => {
                    outage.failed(T::KIND, "watch", &error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if tx.is_closed() {
                        return;
                    }
                    continue 'relist;
                }
            };
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) if error.is_gone() => continue 'relist,
                    Err(error) => {
                        tracing::debug!(kind = T::KIND, %error, "watch stream broke");
                        break;
                    }
                };
                if let Some(rv) = &event.object.meta().resource_version {
                    revision = rv.clone();
                }
                let sent = match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => tx.send(WatcherEvent::Applied(event.object)).await,
                    "DELETED" => tx.send(WatcherEvent::Deleted(event.object)).await,
                    _ => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}

/// What the watcher has said about failures, so that an outage is one line.
#[derive(Default)]
struct Outage {
    /// Whether a list ever succeeded.
    listed_once: bool,
    /// Whether failures are going on and were reported.
    reported: bool,
}

impl Outage {
    fn failed(&mut self, kind: &str, request: &str, error: &super::Error) {
        // Before the first list, an unreachable server is the component's
        // to report (once); an answer that refuses us is worth a line.
        let unreachable = matches!(error, super::Error::Transport(_));
        if (self.listed_once || !unreachable) && !self.reported {
            tracing::warn!(kind, request, %error,
                "requests to the apiserver fail, retrying with backoff");
            self.reported = true;
        } else {
            tracing::debug!(kind, request, %error, "request failed, retrying");
        }
    }

    fn listed(&mut self, kind: &str) {
        if self.reported {
            tracing::info!(kind, "apiserver reachable again, listed");
            self.reported = false;
        }
        self.listed_once = true;
    }
}
