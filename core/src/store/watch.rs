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
//! writes to one kind does not wake the watchers of every other.
//!
//! Hot path: every watcher reads every event of its resource, so events are
//! shared (`Arc<Event>`): a read copies pointers, never keys or objects.
//!
//! One appender at a time: the store's serial part (the durable store's
//! committer, the memory store's lock holder) appends; cursors read from any
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
        })
    }

    /// Appends one event; its revision must be above every earlier one.
    pub fn append(&self, event: Event) {
        let revision = event.record.revision;
        let size = event.record.json.len();
        let wake = self
            .per_resource
            .read()
            .expect("watch log poisoned")
            .get(&event.record.key.resource)
            .cloned();
        self.events.insert(revision, Arc::new(event));
        let mut bytes = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        while self.events.len() > self.capacity || (bytes > WINDOW_BYTES && self.events.len() > 1) {
            let Some(oldest) = self.events.front() else {
                break;
            };
            // The floor moves first: a cursor that read the old floor checks
            // it again after its scan, so it cannot miss a dropped event.
            self.floor.fetch_max(*oldest.key(), Ordering::SeqCst);
            let dropped = oldest.value().record.json.len();
            oldest.remove();
            bytes = self.bytes.fetch_sub(dropped, Ordering::Relaxed) - dropped;
        }
        // A cursor narrowed after the lookup above subscribed after the
        // event was in, and reads it before it sleeps: no wake is lost.
        if let Some(wake) = wake {
            wake.send_replace(revision);
        }
        self.latest.send_replace(revision);
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
        })
    }

    fn check_floor(&self, after: u64) -> Result<(), StoreError> {
        let oldest = self.oldest_resumable();
        if after < oldest {
            return Err(StoreError::Expired {
                requested: after,
                oldest,
            });
        }
        Ok(())
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
    ) -> Result<(Vec<Arc<Event>>, u64), StoreError> {
        self.check_floor(after)?;
        let mut batch = Vec::new();
        let mut reached = after;
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
        self.check_floor(after)?;
        Ok((batch, reached))
    }

    /// How many events and how many bytes of JSON the window holds.
    #[cfg(test)]
    fn retained(&self) -> (usize, usize) {
        (self.events.len(), self.bytes.load(Ordering::Relaxed))
    }
}
/// One watcher's position in the log.
pub struct WatchCursor {
    log: Arc<WatchLog>,
    /// Revision of the last event handed out or skipped.
    after: u64,
    wake: watch::Receiver<u64>,
    /// The only resource whose events this cursor hands out, if narrowed.
    resource: Option<String>,
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

    /// Waits for the next events after the cursor and returns them in order.
    /// Fails with `Expired` when the cursor fell out of the retained window.
    pub async fn next_batch(&mut self) -> Result<Vec<Arc<Event>>, StoreError> {
        loop {
            let (batch, reached) = self.log.read_after(self.after, self.resource.as_deref())?;
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

    /// Readers on other threads, while one appender fills a small window:
    /// each sees every event after its start, in order and without a gap,
    /// or is told it fell behind; never a silent skip.
    #[test]
    fn cursors_racing_the_appender_see_no_gaps() {
        const EVENTS: u64 = 20_000;
        let log = WatchLog::new(64, 1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let mut cursor = log.cursor(1).unwrap();
                runtime.spawn(async move {
                    let mut last = 1;
                    loop {
                        match cursor.next_batch().await {
                            Ok(batch) => {
                                for event in batch {
                                    assert_eq!(event.record.revision, last + 1, "a gap");
                                    last += 1;
                                }
                                if last == EVENTS + 1 {
                                    return Ok(last);
                                }
                            }
                            Err(StoreError::Expired { .. }) => return Err(last),
                            Err(other) => panic!("{other}"),
                        }
                    }
                })
            })
            .collect();
        for revision in 2..=EVENTS + 1 {
            log.append(event("pods", revision, 10));
        }
        for reader in readers {
            match runtime.block_on(reader).unwrap() {
                Ok(last) => assert_eq!(last, EVENTS + 1),
                // Fell behind the 64-event window: told so, not skipped.
                Err(last) => assert!(last < EVENTS + 1),
            }
        }
        assert_eq!(log.retained().0, 64);
    }
}
