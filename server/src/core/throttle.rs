//! Failed attempts by source (a dashboard login with a wrong token): a few
//! are let through, then each further one waits twice as long as the last,
//! up to a ceiling; a success forgets the source. Bounded in memory: past
//! [`MAX_SOURCES`] sources the quietest is forgotten. Time is passed in.

use std::collections::HashMap;
use std::hash::Hash;

/// Failures allowed before waiting starts.
pub const FREE: u32 = 5;
/// The longest wait between attempts, seconds.
pub const MAX_WAIT: u64 = 15 * 60;
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last: u64,
}

/// Failed attempts per source.
#[derive(Debug)]
pub struct Throttle<K> {
    by: HashMap<K, Record>,
}

impl<K> Default for Throttle<K> {
    fn default() -> Self {
        Throttle { by: HashMap::new() }
    }
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// How long `source` must still wait before its next attempt is
    /// considered (0: go ahead).
    pub fn wait(&self, source: &K, now: u64) -> u64 {
        match self.by.get(source) {
            Some(r) if r.failures >= FREE => {
                let wait = 1u64.checked_shl(r.failures - FREE).unwrap_or(MAX_WAIT).min(MAX_WAIT);
                (r.last + wait).saturating_sub(now)
            }
            _ => 0,
        }
    }

    /// A failed attempt; returns how many in a row.
    pub fn failed(&mut self, source: K, now: u64) -> u32 {
        if self.by.len() >= MAX_SOURCES && !self.by.contains_key(&source) {
            if let Some(oldest) = self.by.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone()) {
                self.by.remove(&oldest);
            }
        }
        let r = self.by.entry(source).or_insert(Record { failures: 0, last: now });
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        r.failures
    }

    /// A success: the source starts afresh.
    pub fn succeeded(&mut self, source: &K) {
        self.by.remove(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_pass_then_waits_double_up_to_a_ceiling_and_success_forgets() {
        let mut t = Throttle::default();
        for i in 1..=FREE {
            assert_eq!(t.wait(&"a", 100), 0);
            assert_eq!(t.failed("a", 100), i);
        }
        assert_eq!(t.wait(&"a", 100), 1);
        assert_eq!(t.wait(&"b", 100), 0, "another source is not held up");
        t.failed("a", 101);
        assert_eq!(t.wait(&"a", 101), 2);
        assert_eq!(t.wait(&"a", 103), 0);
        for _ in 0..40 {
            t.failed("a", 200);
        }
        assert_eq!(t.wait(&"a", 200), MAX_WAIT);
        t.succeeded(&"a");
        assert_eq!(t.wait(&"a", 200), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Throttle::default();
        for i in 0..MAX_SOURCES as u64 + 10 {
            t.failed(i, i);
        }
        assert!(t.by.len() <= MAX_SOURCES);
        assert!(!t.by.contains_key(&0), "the quietest went first");
    }
}
