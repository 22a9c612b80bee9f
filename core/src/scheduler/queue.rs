//! The scheduling queue: which pending pod to try next.
//!
//! What callers may rely on:
//!
//! * a pod key is in at most one place: ready (tried in arrival order),
//!   backing off (after an error, for 1 s doubling up to 10 s per attempt),
//!   or unschedulable (no node fitted);
//! * unschedulable pods are tried again when the cluster changes in a way
//!   that may help ([`SchedulingQueue::cluster_changed`]: they go through
//!   their backoff first), and at the latest 10 s after they failed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// First retry delay of a pod.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of a pod.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct SchedulingQueue {
    /// Keys to try now, in order.
    ready: VecDeque<String>,
    /// The same keys, for membership.
    in_ready: HashSet<String>,
    /// Keys waiting until an instant before they are ready again.
    backoff: HashMap<String, Instant>,
    /// Keys no node fitted, and when that was found.
    unschedulable: HashMap<String, Instant>,
    /// Failed attempts per key, for the backoff.
    attempts: HashMap<String, u32>,
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    /// Queues a key to be tried now, unless it waits in backoff or as
    /// unschedulable already.
    pub fn add(&mut self, key: &str) {
        if self.in_ready.contains(key)
            || self.backoff.contains_key(key)
            || self.unschedulable.contains_key(key)
        {
            return;
        }
        self.push_ready(key.to_owned());
    }

    /// Queues a key to be tried now, even if it was waiting.
    pub fn activate(&mut self, key: &str) {
        self.backoff.remove(key);
        self.unschedulable.remove(key);
        if !self.in_ready.contains(key) {
            self.push_ready(key.to_owned());
        }
    }

    /// The next key to try.
    pub fn pop(&mut self) -> Option<String> {
        let key = self.ready.pop_front()?;
        self.in_ready.remove(&key);
        Some(key)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Records that no node fitted the pod.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        *self.attempts.entry(key.to_owned()).or_default() += 1;
        self.unschedulable.insert(key.to_owned(), now);
    }

    /// Records a failed attempt (a bind error): retry after the backoff.
    pub fn back_off(&mut self, key: &str, now: Instant) {
        let attempts = self.attempts.entry(key.to_owned()).or_default();
        *attempts += 1;
        let delay = backoff(*attempts);
        self.backoff.insert(key.to_owned(), now + delay);
    }

    /// Forgets a key entirely (the pod was bound or deleted).
    pub fn remove(&mut self, key: &str) {
        if self.in_ready.remove(key) {
            self.ready.retain(|k| k != key);
        }
        self.backoff.remove(key);
        self.unschedulable.remove(key);
        self.attempts.remove(key);
    }

    /// Something changed that may let unschedulable pods fit: they are
    /// retried once their backoff has passed.
    pub fn cluster_changed(&mut self, now: Instant) {
        for (key, since) in self.unschedulable.drain() {
            let attempts = self.attempts.get(&key).copied().unwrap_or(1);
            self.backoff
                .insert(key, (since + backoff(attempts)).max(now));
        }
    }

    /// Moves keys whose backoff has passed, and unschedulable keys older
    /// than the flush interval, to ready.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<String> = self
            .backoff
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .chain(
                self.unschedulable
                    .iter()
                    .filter(|(_, since)| now.duration_since(**since) >= UNSCHEDULABLE_FLUSH)
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        for key in due {
            self.activate(&key);
        }
    }

    /// How many keys wait in any state.
    pub fn len(&self) -> usize {
        self.ready.len() + self.backoff.len() + self.unschedulable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_ready(&mut self, key: String) {
        self.in_ready.insert(key.clone());
        self.ready.push_back(key);
    }
}

/// The delay after `attempts` failed attempts.
fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(10);
    INITIAL_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_once_in_arrival_order() {
        let mut queue = SchedulingQueue::new();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(queue.pop().as_deref(), Some("a"));
        assert_eq!(queue.pop().as_deref(), Some("b"));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_change_or_the_flush() {
        let start = Instant::now();
        let mut queue = SchedulingQueue::new();
        queue.unschedulable("a", start);
        queue.add("a");
        queue.tick(start + Duration::from_secs(5));
        assert!(!queue.has_ready(), "neither a change nor the flush yet");
        queue.tick(start + UNSCHEDULABLE_FLUSH);
        assert_eq!(queue.pop().as_deref(), Some("a"));

        queue.unschedulable("b", start);
        queue.cluster_changed(start);
        queue.tick(start + Duration::from_millis(500));
        assert!(!queue.has_ready(), "still backing off");
        queue.tick(start + Duration::from_secs(1));
        assert_eq!(queue.pop().as_deref(), Some("b"));
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), MAX_BACKOFF);
    }
}
