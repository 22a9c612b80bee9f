//! A work queue of object keys, as every controller loop uses.
//!
//! What callers may rely on:
//!
//! * a key added several times before a worker takes it is handed out once;
//! * a key is never handed to two workers at the same time: a key added while
//!   it is being processed is handed out again after [`WorkQueue::done`];
//! * [`WorkQueue::add_rate_limited`] re-adds a key after a delay that doubles
//!   with each consecutive failure of that key (10 ms up to 30 s), until
//!   [`WorkQueue::forget`] resets it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The first retry delay of a failing key.
const BASE_DELAY: Duration = Duration::from_millis(10);
/// The longest retry delay of a failing key.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// A deduplicating queue of keys with per-key retry backoff.
#[derive(Default)]
pub struct WorkQueue {
    /// Keys, their states and failure counts, behind one lock.
    state: Mutex<State>,
    /// Wakes a worker waiting in [`WorkQueue::next`].
    ready: Notify,
}

#[derive(Default)]
struct State {
    /// Keys waiting for a worker, in order of arrival.
    queue: VecDeque<String>,
    /// Keys that need processing: queued, or re-added while processing.
    dirty: HashSet<String>,
    /// Keys a worker holds now.
    processing: HashSet<String>,
    /// Consecutive failures per key, for the retry delay.
    failures: HashMap<String, u32>,
}

impl WorkQueue {
    pub fn new() -> Arc<WorkQueue> {
        Arc::new(WorkQueue::default())
    }

    /// Adds a key, unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut state = self.state.lock().expect("work queue lock");
        if !state.dirty.insert(key.clone()) {
            return;
        }
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Adds a key once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Adds a key after its backoff delay, and counts one more failure.
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let delay = {
            let mut state = self.state.lock().expect("work queue lock");
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = backoff_delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
    }

    /// Forgets the failures of a key: its next retry starts from the base
    /// delay again.
    pub fn forget(&self, key: &str) {
        self.state
            .lock()
            .expect("work queue lock")
            .failures
            .remove(key);
    }

    /// Waits for the next key. The caller must call [`WorkQueue::done`] with
    /// it when finished.
    pub async fn next(&self) -> String {
        loop {
            if let Some(key) = self.try_next() {
                return key;
            }
            self.ready.notified().await;
        }
    }

    /// Marks a key as processed; if it was added meanwhile, queues it again.
    pub fn done(&self, key: &str) {
        let mut state = self.state.lock().expect("work queue lock");
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.to_owned());
            drop(state);
            self.ready.notify_one();
        }
    }

    /// How many keys wait for a worker.
    pub fn len(&self) -> usize {
        self.state.lock().expect("work queue lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn try_next(&self) -> Option<String> {
        let mut state = self.state.lock().expect("work queue lock");
        let key = state.queue.pop_front()?;
        state.dirty.remove(&key);
        state.processing.insert(key.clone());
        let more = !state.queue.is_empty();
        drop(state);
        // One wake-up permit is stored at most; pass it on so that other idle
        // workers see the rest of the queue.
        if more {
            self.ready.notify_one();
        }
        Some(key)
    }
}

/// The delay before retry number `failures` (0 for the first retry).
fn backoff_delay(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_added_twice_is_handed_out_once() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.next().await, "a");
        assert_eq!(queue.next().await, "b");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_comes_back_after_done() {
        let queue = WorkQueue::new();
        queue.add("a");
        let key = queue.next().await;
        queue.add("a");
        assert!(queue.is_empty(), "not handed out while a worker holds it");
        queue.done(&key);
        assert_eq!(queue.next().await, "a");
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        assert_eq!(backoff_delay(0), Duration::from_millis(10));
        assert_eq!(backoff_delay(1), Duration::from_millis(20));
        assert_eq!(backoff_delay(3), Duration::from_millis(80));
        assert_eq!(backoff_delay(40), MAX_DELAY);
    }

    #[tokio::test]
    async fn a_failed_key_returns_after_its_backoff() {
        let queue = WorkQueue::new();
        queue.add_rate_limited("a");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(queue.next().await, "a");
    }
}
