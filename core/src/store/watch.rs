//! The watch log: recent events in revision order, and cursors into it.
//!
//! Writers append and never wait for watchers: the log is a lock-free
//! ordered map (a crossbeam skip list) from revision to event, so a watcher
//! reading its batch and the store appending the next event never hold a
//! lock against each other. Each watcher is a cursor (the last revision it
//! has seen) that reads the events after it in batches and sleeps on a
//! revision signal when it has caught up. The log keeps a bounded window of
//! events: at most `capacity` of them, and no more than [`WINDOW_BYTES`] of
//! their objects' JSON. A cursor that falls behind that window gets
//! [`StoreError::Expired`], which the apiserver turns into `410 Gone`.
//!
//! A cursor narrowed to one resource ([`WatchCursor::only`]) is woken only by
//! that resource's changes and hands out only its events, so a flood of
//! writes to one kind does not wake the watchers of every other. Pods are
//! also indexed by node ([`WatchCursor::only_node`]): each watched node has
//! its own list of the window's events of pods that are, or were, on it, so
//! a kubelet's watch wakes for and reads only its own pods' changes, and
//! falls behind only when one of those leaves the window before it read it;
//! a thousand kubelets do not each read every pod change of the cluster.
//! The one wait between the appender and the watchers: when a node gets its
//! first cursor, its list is filled from the window under a lock that the
//! appender takes too.
//!
//! Hot path: every watcher reads every event of its resource, so events are
//! shared (`Arc<Event>`): a read copies pointers, never keys or objects.
//!
//! One appender at a time: the store's serial part (the durable store's
//! log thread, the memory store's lock holder) appends; cursors read from any
//! thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crossbeam_skiplist::SkipMap;
use tokio::sync::watch;

use super::{Event, StoreError};

/// The most JSON (of the events' objects) the window retains, which bounds
/// the window's memory; a watcher further behind re-lists.
pub const WINDOW_BYTES: usize = 64 << 20;
/// The most events one read hands out.
const BATCH: usize = 512;
/// The most events one read looks at, matching or not.
const SCAN: usize = 4096;
/// The resource indexed by node, and the field that names the node.
const BY_NODE: (&str, &str) = ("pods", "spec.nodeName");

/// Bounded, ordered history of changes.
pub struct WatchLog {
    /// The retained events by revision.
    events: SkipMap<u64, Arc<Event>>,
    /// The JSON bytes of the retained events' objects.
    bytes: AtomicUsize,
    /// Cursors may not start before this revision: the events up to it were
    /// dropped from the window, or never retained (a restarted store starts
    /// with an empty log). Raised before an event is dropped.
    floor: AtomicU64,
    capacity: usize,
    /// The newest appended revision; wakes sleeping cursors of any resource.
    latest: watch::Sender<u64>,
    /// The newest appended revision per resource, for narrowed cursors.
    /// Written only when a resource gets its first narrowed cursor.
    per_resource: RwLock<HashMap<String, watch::Sender<u64>>>,
    /// Per node that has a cursor, the changes of pods on it.
    per_node: RwLock<HashMap<String, Arc<NodeChanges>>>,
}

/// The changes of the pods on one node, as node cursors need them.
struct NodeChanges {
    /// The window's events of pods that are, or were, on the node.
    events: SkipMap<u64, Arc<Event>>,
    /// The newest revision that touched a pod on the node.
    wake: watch::Sender<u64>,
    /// The newest such revision dropped from the window: a node cursor
    /// before it may have missed a change of its own.
    floor: AtomicU64,
}

impl WatchLog {
    pub fn new(capacity: usize, revision: u64) -> Arc<WatchLog> {
        WatchLog::with_floor(capacity, revision, 0)
    }

    /// A log for a store reopened at `revision`: the events up to it are not
    /// retained, so a cursor from before it is expired at once.
    pub fn resuming(capacity: usize, revision: u64) -> Arc<WatchLog> {
        WatchLog::with_floor(capacity, revision, revision)
    }

    fn with_floor(capacity: usize, revision: u64, floor: u64) -> Arc<WatchLog> {
        let (latest, _) = watch::channel(revision);
        Arc::new(WatchLog {
            events: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            floor: AtomicU64::new(floor),
            capacity: capacity.max(1),
            latest,
            per_resource: RwLock::new(HashMap::new()),
            per_node: RwLock::new(HashMap::new()),
        })
    }

    /// Appends one event; its revision must be above every earlier one.
    pub fn append(&self, event: Event) {
        let revision = event.record.revision;
        let size = event.record.json.len();
        let event = Arc::new(event);
        self.events.insert(revision, event.clone());
        let mut bytes = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        while self.events.len() > self.capacity || (bytes > WINDOW_BYTES && self.events.len() > 1) {
            let Some(oldest) = self.events.front() else {
                break;
            };
            // The floors move first: a cursor that read an old floor checks
            // it again after its scan, so it cannot miss a dropped event.
            self.floor.fetch_max(*oldest.key(), Ordering::SeqCst);
            for node in self.nodes_of(oldest.value()) {
                node.floor.fetch_max(*oldest.key(), Ordering::SeqCst);
                node.events.remove(oldest.key());
            }
            let dropped = oldest.value().record.json.len();
            oldest.remove();
            bytes = self.bytes.fetch_sub(dropped, Ordering::Relaxed) - dropped;
        }
        // Looked up after the event is in: a cursor narrowed after these
        // lookups reads the event before it first sleeps, so no wake is lost.
        if let Some(wake) = self
            .per_resource
            .read()
            .expect("watch log poisoned")
            .get(&event.record.key.resource)
        {
            wake.send_replace(revision);
        }
        for node in self.nodes_of(&event) {
            node.events.insert(revision, event.clone());
            node.wake.send_replace(revision);
        }
        self.latest.send_replace(revision);
    }

    /// The watched nodes a pod event concerns: the pod's node after the
    /// change and before it.
    fn nodes_of(&self, event: &Event) -> Vec<Arc<NodeChanges>> {
        if event.record.key.resource != BY_NODE.0 {
            return Vec::new();
        }
        let per_node = self.per_node.read().expect("watch log poisoned");
        if per_node.is_empty() {
            return Vec::new();
        }
        let mut nodes = Vec::new();
        for record in std::iter::once(&event.record).chain(&event.previous) {
            let name = record.attrs().field(BY_NODE.1).unwrap_or("");
            if let Some(node) = per_node.get(name)
                && !nodes.iter().any(|n| Arc::ptr_eq(n, node))
            {
                nodes.push(node.clone());
            }
        }
        nodes
    }

    /// The changes of pods on `node`, tracked from now on.
    fn node_changes(&self, node: &str) -> Arc<NodeChanges> {
        if let Some(changes) = self.per_node.read().expect("watch log poisoned").get(node) {
            return changes.clone();
        }
        let mut per_node = self.per_node.write().expect("watch log poisoned");
        per_node
            .entry(node.to_owned())
            .or_insert_with(|| {
                // Filled from the window while the appender waits for the
                // lock: every event it appended before is in the window,
                // every later one it adds itself.
                let events = SkipMap::new();
                for entry in self.events.iter() {
                    if entry.value().record.key.resource == BY_NODE.0
                        && on_node(entry.value(), node)
                    {
                        events.insert(*entry.key(), entry.value().clone());
                    }
                }
                Arc::new(NodeChanges {
                    events,
                    wake: watch::channel(*self.latest.borrow()).0,
                    floor: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// The oldest revision a cursor may still start after.
    fn oldest_resumable(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    /// A cursor over the events after `after`.
    pub fn cursor(self: &Arc<Self>, after: u64) -> Result<WatchCursor, StoreError> {
        self.check_floor(after)?;
        Ok(WatchCursor {
            log: self.clone(),
            after,
            wake: self.latest.subscribe(),
            resource: None,
            node: None,
        })
    }

    fn check_floor(&self, after: u64) -> Result<(), StoreError> {
        check_against(after, self.oldest_resumable())
    }

    /// The wake signal of one resource's changes.
    fn subscribe(&self, resource: &str) -> watch::Receiver<u64> {
        if let Some(sender) = self
            .per_resource
            .read()
            .expect("watch log poisoned")
            .get(resource)
        {
            return sender.subscribe();
        }
        let mut wakers = self.per_resource.write().expect("watch log poisoned");
        wakers
            .entry(resource.to_owned())
            .or_insert_with(|| watch::channel(*self.latest.borrow()).0)
            .subscribe()
    }

    /// Up to [`BATCH`] events after `after` (of `resource` only, when
    /// given), and the revision the read got to.
    fn read_after(
        &self,
        after: u64,
        resource: Option<&str>,
        node: Option<&NodeChanges>,
    ) -> Result<(Vec<Arc<Event>>, u64), StoreError> {
        let check = || match node {
            // Only a dropped change of its own node puts it behind.
            Some(changes) => check_against(after, changes.floor.load(Ordering::SeqCst)),
            None => self.check_floor(after),
        };
        check()?;
        let mut batch = Vec::new();
        let mut reached = after;
        if let Some(changes) = node {
            // The node's own list: every event in it is wanted.
            for entry in changes.events.range(after + 1..).take(BATCH) {
                reached = *entry.key();
                batch.push(entry.value().clone());
            }
            check()?;
            return Ok((batch, reached));
        }
        for entry in self.events.range(after + 1..).take(SCAN) {
            let event = entry.value();
            reached = event.record.revision;
            if resource.is_none_or(|r| r == event.record.key.resource) {
                batch.push(Arc::clone(event));
                if batch.len() == BATCH {
                    break;
                }
            }
        }
        // Dropped while this read ran? Then it may have skipped them.
        check()?;
        Ok((batch, reached))
    }

    /// How many events and how many bytes of JSON the window holds.
    #[cfg(test)]
    fn retained(&self) -> (usize, usize) {
        (self.events.len(), self.bytes.load(Ordering::Relaxed))
    }
}
fn check_against(after: u64, oldest: u64) -> Result<(), StoreError> {
    if after < oldest {
        return Err(StoreError::Expired {
            requested: after,
            oldest,
        });
    }
    Ok(())
}

/// Whether a pod event concerns `node`: the pod is on it after the change,
/// or was before.
fn on_node(event: &Event, node: &str) -> bool {
    std::iter::once(&event.record)
        .chain(&event.previous)
        .any(|record| record.attrs().field(BY_NODE.1).unwrap_or("") == node)
}

/// One watcher's position in the log.
pub struct WatchCursor {
    log: Arc<WatchLog>,
    /// Revision of the last event handed out or skipped.
    after: u64,
    wake: watch::Receiver<u64>,
    /// The only resource whose events this cursor hands out, if narrowed.
    resource: Option<String>,
    /// The node whose pods' events this cursor hands out, if narrowed.
    node: Option<Arc<NodeChanges>>,
}

impl WatchCursor {
    /// The revision of the last event handed out (or passed over, for a
    /// narrowed cursor).
    pub fn position(&self) -> u64 {
        self.after
    }

    /// Narrows the cursor to one resource (a [`super::Key`]'s `resource`):
    /// it hands out only that resource's events and sleeps through the
    /// others' changes.
    pub fn only(mut self, resource: &str) -> WatchCursor {
        self.wake = self.log.subscribe(resource);
        self.resource = Some(resource.to_owned());
        self
    }

    /// Narrows the cursor to the pods on one node (`spec.nodeName`, "" for
    /// unscheduled pods): it hands out only the changes of pods that are or
    /// were on it, and sleeps through every other. Fails with `Expired` when
    /// the window already moved past the cursor.
    pub fn only_node(mut self, node: &str) -> Result<WatchCursor, StoreError> {
        let changes = self.log.node_changes(node);
        // Drops before the node was tracked raised only the log's floor.
        self.log.check_floor(self.after)?;
        self.wake = changes.wake.subscribe();
        self.resource = Some(BY_NODE.0.to_owned());
        self.node = Some(changes);
        Ok(self)
    }

    /// Waits for the next events after the cursor and returns them in order.
    /// Fails with `Expired` when the cursor fell out of the retained window.
    pub async fn next_batch(&mut self) -> Result<Vec<Arc<Event>>, StoreError> {
        loop {
            let (batch, reached) =
                self.log
                    .read_after(self.after, self.resource.as_deref(), self.node.as_deref())?;
            let moved = reached != self.after;
            self.after = reached;
            if !batch.is_empty() {
                return Ok(batch);
            }
            if moved {
                // Passed over other resources' events; there may be more.
                continue;
            }
            if self.wake.changed().await.is_err() {
                return Err(StoreError::Unavailable("watch log closed".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::{EventType, Key, Record};

    fn event(resource: &str, revision: u64, json_len: usize) -> Event {
        Event {
            kind: EventType::Added,
            record: Record::new(
                Key::new(resource, "default", &format!("o{revision}")),
                revision,
                Bytes::from(vec![b' '; json_len]),
            ),
            previous: None,
        }
    }

    fn revisions(batch: &[Arc<Event>]) -> Vec<u64> {
        batch.iter().map(|e| e.record.revision).collect()
    }

    #[tokio::test]
    async fn a_narrowed_cursor_hands_out_only_its_resource() {
        let log = WatchLog::new(100, 1);
        let mut cursor = log.cursor(1).unwrap().only("pods");
        log.append(event("events", 2, 10));
        log.append(event("pods", 3, 10));
        log.append(event("events", 4, 10));
        assert_eq!(revisions(&cursor.next_batch().await.unwrap()), [3]);

        log.append(event("pods", 5, 10));
        assert_eq!(revisions(&cursor.next_batch().await.unwrap()), [5]);
        assert_eq!(cursor.position(), 5);
    }

    #[tokio::test]
    async fn a_narrowed_cursor_wakes_for_its_resource_only() {
        let log = WatchLog::new(100, 1);
        let mut cursor = log.cursor(1).unwrap().only("pods");
        let waiting = tokio::spawn(async move { cursor.next_batch().await.map(|b| revisions(&b)) });
        tokio::task::yield_now().await;
        log.append(event("events", 2, 10));
        log.append(event("pods", 3, 10));
        assert_eq!(waiting.await.unwrap().unwrap(), [3]);
    }

    #[tokio::test]
    async fn the_window_drops_the_oldest_events_past_its_byte_budget() {
        let log = WatchLog::new(1000, 1);
        let size = WINDOW_BYTES / 8;
        for revision in 2..=20 {
            log.append(event("pods", revision, size));
        }
        assert!(matches!(log.cursor(1), Err(StoreError::Expired { .. })));
        let mut cursor = log.cursor(19).unwrap();
        assert_eq!(revisions(&cursor.next_batch().await.unwrap()), [20]);
        let (events, bytes) = log.retained();
        assert!(bytes <= WINDOW_BYTES);
        assert_eq!(events, 8);
    }

    /// Four readers on other threads, each on a cursor `open` makes, while
    /// this thread appends `event_at(r)` for every r in `2..=last` to a
    /// 64-event window: each sees the revisions `start + step, start + 2 *
    /// step, ...` up to `end`, in order and without a gap, or is told it
    /// fell behind; never a silent skip.
    fn race_readers(
        log: &Arc<WatchLog>,
        open: impl Fn() -> WatchCursor,
        start: u64,
        step: u64,
        end: u64,
        last: u64,
        event_at: impl Fn(u64) -> Event,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let mut cursor = open();
                let mut seen = start;
                runtime.spawn(async move {
                    loop {
                        match cursor.next_batch().await {
                            Ok(batch) => {
                                for event in batch {
                                    assert_eq!(event.record.revision, seen + step, "a gap");
                                    seen += step;
                                }
                                if seen == end {
                                    return Ok(seen);
                                }
                            }
                            Err(StoreError::Expired { .. }) => return Err(seen),
                            Err(other) => panic!("{other}"),
                        }
                    }
                })
            })
            .collect();
        // Readers are waiting before the first append, and the appender
        // pauses now and then, so that they race it rather than all find
        // themselves behind at their first read.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for revision in 2..=last {
            log.append(event_at(revision));
            if revision % 128 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        for reader in readers {
            match runtime.block_on(reader).unwrap() {
                Ok(seen) => assert_eq!(seen, end),
                // Fell behind the window: told so, not skipped.
                Err(seen) => assert!(seen < end),
            }
        }
    }

    #[test]
    fn cursors_racing_the_appender_see_no_gaps() {
        const EVENTS: u64 = 20_000;
        let log = WatchLog::new(64, 1);
        let open = || log.cursor(1).unwrap();
        race_readers(&log, open, 1, 1, EVENTS + 1, EVENTS + 1, |r| {
            event("pods", r, 10)
        });
        assert_eq!(log.retained().0, 64);
    }

    /// A pod event: the pod on `node`, and on `before` until this change.
    fn pod_event(revision: u64, node: &str, before: Option<&str>) -> Event {
        let pod = |node: &str| {
            let json = format!(r#"{{"metadata":{{"name":"p"}},"spec":{{"nodeName":"{node}"}}}}"#);
            Record::new(
                Key::new("pods", "default", "p"),
                revision,
                Bytes::from(json),
            )
        };
        Event {
            kind: EventType::Modified,
            record: pod(node),
            previous: before.map(pod),
        }
    }

    #[tokio::test]
    async fn a_node_cursor_hands_out_and_wakes_for_its_node_only() {
        let log = WatchLog::new(100, 1);
        let mut cursor = log.cursor(1).unwrap().only_node("n1").unwrap();
        log.append(pod_event(2, "n2", None));
        log.append(pod_event(3, "n1", Some("")));
        log.append(event("events", 4, 10));
        log.append(pod_event(5, "n2", Some("n1")));
        log.append(pod_event(6, "n3", None));
        assert_eq!(revisions(&cursor.next_batch().await.unwrap()), [3, 5]);

        let waiting = tokio::spawn(async move {
            let batch = cursor.next_batch().await.map(|b| revisions(&b));
            (batch, cursor.position())
        });
        tokio::task::yield_now().await;
        log.append(pod_event(7, "n2", None));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "woken by another node's pod");
        log.append(pod_event(8, "n1", None));
        let (batch, position) = waiting.await.unwrap();
        assert_eq!(batch.unwrap(), [8]);
        assert_eq!(position, 8);
    }

    #[tokio::test]
    async fn a_node_cursor_falls_behind_only_when_its_own_changes_leave_the_window() {
        let log = WatchLog::new(4, 1);
        let mut quiet = log.cursor(1).unwrap().only_node("n1").unwrap();
        let mut busy = log.cursor(1).unwrap().only_node("n2").unwrap();
        for revision in 2..20 {
            log.append(pod_event(revision, "n2", None));
        }
        // Only n2's changes left the window: n1's cursor is still good.
        log.append(pod_event(20, "n1", None));
        assert_eq!(revisions(&quiet.next_batch().await.unwrap()), [20]);
        assert!(matches!(
            busy.next_batch().await,
            Err(StoreError::Expired { .. })
        ));
        // A node cursor that starts behind the window is expired at once.
        assert!(log.cursor(3).is_err());
    }

    #[tokio::test]
    async fn a_node_cursor_started_late_sees_its_node_changes_still_in_the_window() {
        let log = WatchLog::new(100, 1);
        log.append(pod_event(2, "n1", Some("")));
        log.append(pod_event(3, "n2", None));
        log.append(pod_event(4, "n1", None));
        // The node gets its first cursor after its changes were appended.
        let mut from_start = log.cursor(1).unwrap().only_node("n1").unwrap();
        assert_eq!(revisions(&from_start.next_batch().await.unwrap()), [2, 4]);
        let mut from_three = log.cursor(3).unwrap().only_node("n1").unwrap();
        assert_eq!(revisions(&from_three.next_batch().await.unwrap()), [4]);
        log.append(pod_event(5, "n1", None));
        assert_eq!(revisions(&from_start.next_batch().await.unwrap()), [5]);
        assert_eq!(revisions(&from_three.next_batch().await.unwrap()), [5]);
    }

    /// Node cursors racing the appender over pods of two nodes: n1's pods
    /// are the even revisions, and its cursors see each of them.
    #[test]
    fn node_cursors_racing_the_appender_see_no_gaps() {
        const EVENTS: u64 = 10_000;
        let log = WatchLog::new(64, 1);
        let open = || log.cursor(1).unwrap().only_node("n1").unwrap();
        race_readers(&log, open, 0, 2, EVENTS, EVENTS + 1, |revision| {
            let node = if revision % 2 == 0 { "n1" } else { "n2" };
            pod_event(revision, node, None)
        });
    }
}
