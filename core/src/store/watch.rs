//! The watch log: recent events in revision order, and cursors into it.
//!
//! Writers append and never wait for watchers. Each watcher is a cursor (the
//! last revision it has seen) that reads the events after it in batches and
//! sleeps on a revision signal when it has caught up. The log keeps a bounded
//! window of events: at most `capacity` of them, and no more than
//! [`WINDOW_BYTES`] of their objects' JSON. A cursor that falls behind that
//! window gets [`StoreError::Expired`], which the apiserver turns into
//! `410 Gone`.
//!
//! A cursor narrowed to one resource ([`WatchCursor::only`]) is woken only by
//! that resource's changes and hands out only its events, so a flood of
//! writes to one kind does not wake the watchers of every other.
//!
//! Hot path: every watcher reads every event of its resource, so events are
//! shared (`Arc<Event>`): a read copies pointers, never keys or objects.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

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
    /// The retained events and what they weigh.
    window: Mutex<Window>,
    capacity: usize,
    /// The newest appended revision; wakes sleeping cursors of any resource.
    latest: watch::Sender<u64>,
    /// The newest appended revision per resource, for narrowed cursors.
    per_resource: Mutex<HashMap<String, watch::Sender<u64>>>,
}

struct Window {
    /// Events in increasing revision order.
    events: VecDeque<Arc<Event>>,
    /// The JSON bytes of the retained events' objects.
    bytes: usize,
    /// Cursors may not start before this revision: the events up to it were
    /// dropped from the window, or never retained (a restarted store starts
    /// with an empty log).
    floor: u64,
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
            window: Mutex::new(Window {
                events: VecDeque::new(),
                bytes: 0,
                floor,
            }),
            capacity: capacity.max(1),
            latest,
            per_resource: Mutex::new(HashMap::new()),
        })
    }

    /// Appends one event; its revision must be above every earlier one.
    pub fn append(&self, event: Event) {
        let revision = event.record.revision;
        let resource = event.record.key.resource.clone();
        {
            let mut window = self.window.lock().expect("watch log poisoned");
            window.bytes += event.record.json.len();
            window.events.push_back(Arc::new(event));
            while window.events.len() > self.capacity
                || (window.bytes > WINDOW_BYTES && window.events.len() > 1)
            {
                let dropped = window.events.pop_front().expect("not empty");
                window.bytes -= dropped.record.json.len();
                window.floor = window.floor.max(dropped.record.revision);
            }
        }
        // Looked up after the event is in: a cursor narrowed meanwhile has
        // either read it or subscribed before this, so no wake is lost.
        if let Some(wake) = self
            .per_resource
            .lock()
            .expect("watch log poisoned")
            .get(&resource)
        {
            wake.send_replace(revision);
        }
        self.latest.send_replace(revision);
    }

    /// The oldest revision a cursor may still start after.
    fn oldest_resumable(&self) -> u64 {
        self.window.lock().expect("watch log poisoned").floor
    }

    /// A cursor over the events after `after`.
    pub fn cursor(self: &Arc<Self>, after: u64) -> Result<WatchCursor, StoreError> {
        let oldest = self.oldest_resumable();
        if after < oldest {
            return Err(StoreError::Expired {
                requested: after,
                oldest,
            });
        }
        Ok(WatchCursor {
            log: self.clone(),
            after,
            wake: self.latest.subscribe(),
            resource: None,
        })
    }

    /// The wake signal of one resource's changes.
    fn subscribe(&self, resource: &str) -> watch::Receiver<u64> {
        let mut wakers = self.per_resource.lock().expect("watch log poisoned");
        match wakers.get(resource) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(*self.latest.borrow());
                wakers.insert(resource.to_owned(), sender);
                receiver
            }
        }
    }

    /// Up to [`BATCH`] events after `after` (of `resource` only, when
    /// given), and the revision the read got to.
    fn read_after(
        &self,
        after: u64,
        resource: Option<&str>,
    ) -> Result<(Vec<Arc<Event>>, u64), StoreError> {
        let window = self.window.lock().expect("watch log poisoned");
        if after < window.floor {
            return Err(StoreError::Expired {
                requested: after,
                oldest: window.floor,
            });
        }
        let events = &window.events;
        let start = events.partition_point(|e| e.record.revision <= after);
        let mut batch = Vec::new();
        let mut reached = after;
        for event in events.range(start..).take(SCAN) {
            reached = event.record.revision;
            if resource.is_none_or(|r| r == event.record.key.resource) {
                batch.push(Arc::clone(event));
                if batch.len() == BATCH {
                    break;
                }
            }
        }
        Ok((batch, reached))
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
        let window = log.window.lock().unwrap();
        assert!(window.bytes <= WINDOW_BYTES);
        assert_eq!(window.events.len(), 8);
    }
}
