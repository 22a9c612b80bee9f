//! Exponential back-off of container restarts and image pulls, as the
//! upstream kubelet does it.
//!
//! The first retry after a failure is immediate; each later one waits twice
//! as long as the one before (10 s, 20 s, 40 s ... up to 5 min), measured
//! from when the failure happened. An entry that has not been used for twice
//! the maximum (10 min: a container that ran that long) is forgotten, so the
//! next failure starts over.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Back-off state per key (a container, an image).
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Per key: the current delay and when it last grew.
    entries: HashMap<String, (Duration, DateTime<Utc>)>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Duration::from_secs(10), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// How much longer to wait before retrying `key`, whose last failure
    /// happened at `failed_at`; `None` when a retry may happen now.
    pub fn remaining(
        &mut self,
        key: &str,
        failed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let &(delay, updated) = self.entries.get(key)?;
        if (now - updated).to_std().unwrap_or_default() > self.max * 2 {
            self.entries.remove(key);
            return None;
        }
        let elapsed = (now - failed_at).to_std().unwrap_or_default();
        (elapsed < delay).then(|| delay - elapsed)
    }

    /// Notes a retry of `key` at `now`: the next one waits longer.
    pub fn next(&mut self, key: &str, now: DateTime<Utc>) {
        let delay = match self.entries.get(key) {
            Some(&(delay, updated))
                if (now - updated).to_std().unwrap_or_default() <= self.max * 2 =>
            {
                (delay * 2).min(self.max)
            }
            _ => self.initial,
        };
        self.entries.insert(key.to_owned(), (delay, now));
    }

    /// The delay the next retry of `key` would wait.
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map(|e| e.0).unwrap_or_default()
    }

    /// Forgets `key` (the thing succeeded).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_first_retry_is_immediate_and_later_ones_double_up_to_five_minutes() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.remaining("c", at(0), at(0)), None);
        backoff.next("c", at(0));

        // Second failure at t=1: wait 10 s from then.
        assert_eq!(
            backoff.remaining("c", at(1), at(2)),
            Some(Duration::from_secs(9))
        );
        assert_eq!(backoff.remaining("c", at(1), at(11)), None);
        backoff.next("c", at(11));
        assert_eq!(backoff.delay("c"), Duration::from_secs(20));

        let mut t = 11;
        for _ in 0..10 {
            t += 1;
            backoff.next("c", at(t));
        }
        assert_eq!(backoff.delay("c"), Duration::from_secs(300));
    }

    #[test]
    fn ten_minutes_without_failure_starts_over() {
        let mut backoff = Backoff::default();
        backoff.next("c", at(0));
        backoff.next("c", at(1));
        assert_eq!(backoff.delay("c"), Duration::from_secs(20));
        // Running for 11 minutes, then failing: retry at once.
        assert_eq!(backoff.remaining("c", at(661), at(661)), None);
        backoff.next("c", at(661));
        assert_eq!(backoff.delay("c"), Duration::from_secs(10));
    }
}
