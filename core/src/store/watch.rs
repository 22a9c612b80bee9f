//! The watch log: recent events in revision order, and cursors into it.
//!
//! Writers append and never wait for watchers. Each watcher is a cursor (the
//! last revision it has seen) that reads the events after it in batches and
//! sleeps on a revision signal when it has caught up. The log keeps a bounded
//! window of events; a cursor that falls behind that window gets
//! [`StoreError::Expired`], which the apiserver turns into `410 Gone`.
//!
//! Hot path: every watcher reads every event, so events are shared
//! (`Arc<Event>`): a read copies pointers, never keys or objects.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Event, StoreError};

/// Bounded, ordered history of changes.
pub struct WatchLog {
    /// Events in increasing revision order, at most `capacity` of them.
    events: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    /// Cursors may not start before this revision: the history before it
    /// was lost (a restarted store starts with an empty log).
    floor: u64,
    /// The newest appended revision; wakes sleeping cursors.
    latest: watch::Sender<u64>,
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
            events: Mutex::new(VecDeque::new()),
            capacity,
            floor,
            latest,
        })
    }

    /// Appends one event; its revision must be above every earlier one.
    pub fn append(&self, event: Event) {
        let revision = event.record.revision;
        {
            let mut events = self.events.lock().expect("watch log poisoned");
            if events.len() == self.capacity {
                events.pop_front();
            }
            events.push_back(Arc::new(event));
        }
        self.latest.send_replace(revision);
    }

    /// The oldest revision a cursor may still start after.
    fn oldest_resumable(&self) -> u64 {
        let events = self.events.lock().expect("watch log poisoned");
        match events.front() {
            // Starting after (first - 1) still sees the first retained event.
            Some(first) if events.len() == self.capacity => first.record.revision - 1,
            _ => self.floor,
        }
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
        })
    }

    fn read_after(&self, after: u64, max: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        let events = self.events.lock().expect("watch log poisoned");
        if let Some(first) = events.front() {
            if events.len() == self.capacity && after + 1 < first.record.revision {
                return Err(StoreError::Expired {
                    requested: after,
                    oldest: first.record.revision - 1,
                });
            }
        }
        let start = events.partition_point(|e| e.record.revision <= after);
        Ok(events.range(start..).take(max).cloned().collect())
    }
}

/// One watcher's position in the log.
pub struct WatchCursor {
    log: Arc<WatchLog>,
    /// Revision of the last event handed out.
    after: u64,
    wake: watch::Receiver<u64>,
}

impl WatchCursor {
    /// The revision of the last event handed out.
    pub fn position(&self) -> u64 {
        self.after
    }

    /// Waits for the next events after the cursor and returns them in order.
    /// Fails with `Expired` when the cursor fell out of the retained window.
    pub async fn next_batch(&mut self) -> Result<Vec<Arc<Event>>, StoreError> {
        loop {
            let batch = self.log.read_after(self.after, 512)?;
            if let Some(last) = batch.last() {
                self.after = last.record.revision;
                return Ok(batch);
            }
            if self.wake.changed().await.is_err() {
                return Err(StoreError::Unavailable("watch log closed".into()));
            }
        }
    }
}
