//! Rules for connections without a user's certificate (strangers, who may
//! only enrol): how many one address may hold at once, and what wrong
//! enrolment codes cost the address that sends them. No IO; time is an
//! argument (unix seconds, from the injected clock).
//!
//! An address is an IPv4 address, or an IPv6 /64 (one machine is usually
//! given a whole /64). A source may try [`Limits::free_failures`] wrong
//! codes; each one after that makes it wait, `backoff` doubling per wrong
//! code up to `max_backoff`, and every attempt while it waits is refused
//! unheard. A source is forgotten `max_backoff` after its last wrong code,
//! and a right code forgives it. Refusals of every source together raise
//! an alert once `alert_after` fall within `alert_window`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use exhibit_proto::duration::format_secs;
use exhibit_proto::frame::AlertKind;

use crate::core::alerts::{general, NewAlert};

/// Sources remembered at most; past it the stalest are forgotten first
/// (those whose wait is over).
const MAX_SOURCES: usize = 65_536;

/// The configured limits (`[enrolment]` in the server's config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wrong codes a source may send before it must wait.
    pub free_failures: u32,
    /// The first wait, seconds.
    pub backoff: u64,
    /// The longest wait, seconds; also how long a source's wrong codes are
    /// remembered.
    pub max_backoff: u64,
    /// Refused attempts (all sources) within `alert_window` that raise an
    /// alert.
    pub alert_after: u32,
    /// Seconds.
    pub alert_window: u64,
}

/// The address enrolment limits count by: IPv4 as it is, IPv6 by its /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Source {
    /// Wrong codes remembered.
    failures: u32,
    /// When the last one came.
    last: u64,
    /// Refused unheard until then.
    until: u64,
}

/// Why an enrolment attempt was refused, as the audit log and the caller
/// are told.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// Wrong codes this source has sent (remembered).
    pub failures: u32,
    /// How long the source must now wait, seconds (0: it may try again).
    pub wait: u64,
    /// An alert to raise now, if this refusal crossed the threshold.
    pub alert: Option<NewAlert>,
}

/// Wrong enrolment codes by source, and every recent refusal.
#[derive(Debug, Default)]
pub struct Guard {
    sources: HashMap<IpAddr, Source>,
    /// Times of the latest refusals, all sources, at most `alert_after`.
    recent: VecDeque<u64>,
}

impl Guard {
    /// How long `source` must still wait before a code from it is
    /// checked, if it must. An attempt refused so counts toward the alert
    /// (see [`Guard::refused_unheard`]).
    pub fn wait(&self, source: IpAddr, now: u64) -> Option<u64> {
        self.sources.get(&source_of(source)).filter(|s| s.until > now).map(|s| s.until - now)
    }

    /// An attempt refused because its source is waiting: counts toward the
    /// alert only.
    pub fn refused_unheard(&mut self, source: IpAddr, now: u64, limits: &Limits) -> Option<NewAlert> {
        self.note_refusal(source_of(source), now, limits)
    }

    /// `source` sent a wrong (unknown, used or expired) code.
    pub fn wrong_code(&mut self, source: IpAddr, now: u64, limits: &Limits) -> Refusal {
        let key = source_of(source);
        self.forget_stale(now, limits);
        let s = self.sources.entry(key).or_default();
        if now.saturating_sub(s.last) >= limits.max_backoff && s.until <= now {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        let over = s.failures.saturating_sub(limits.free_failures);
        let wait = if over == 0 {
            0
        } else {
            limits.backoff.saturating_mul(1u64 << (over - 1).min(32)).min(limits.max_backoff)
        };
        s.until = now + wait;
        let failures = s.failures;
        let alert = self.note_refusal(key, now, limits);
        Refusal { failures, wait, alert }
    }

    /// `source` enrolled: its wrong codes are forgiven.
    pub fn right_code(&mut self, source: IpAddr) {
        self.sources.remove(&source_of(source));
    }

    fn note_refusal(&mut self, source: IpAddr, now: u64, limits: &Limits) -> Option<NewAlert> {
        let n = limits.alert_after.max(1) as usize;
        self.recent.push_back(now);
        while self.recent.len() > n {
            self.recent.pop_front();
        }
        let first = *self.recent.front()?;
        if self.recent.len() < n || now.saturating_sub(first) >= limits.alert_window {
            return None;
        }
        // One alert per window: the key is the window's index.
        let window = limits.alert_window.max(1);
        let key = [b"enrol-refused:".as_slice(), &(now / window).to_be_bytes()].concat();
        let msg = format!(
            "ENROLMENT REFUSALS: {n} enrolment attempts with wrong codes refused within {} (the latest from {source}): \
             someone may be guessing codes",
            format_secs(now - first + 1)
        );
        let kind = AlertKind::EnrolmentRefused { source: source.to_string(), refused: n as u32 };
        Some(general(kind, key, msg, now))
    }

    fn forget_stale(&mut self, now: u64, limits: &Limits) {
        if self.sources.len() < MAX_SOURCES {
            return;
        }
        self.sources.retain(|_, s| s.until > now && now.saturating_sub(s.last) < limits.max_backoff);
        if self.sources.len() >= MAX_SOURCES {
            // All still waiting: forget the ones whose wait ends first.
            let mut ends: Vec<u64> = self.sources.values().map(|s| s.until).collect();
            ends.sort_unstable();
            let cut = ends[ends.len() / 2];
            self.sources.retain(|_, s| s.until > cut);
        }
    }
}

/// How many connections without a certificate each source holds.
#[derive(Debug, Default)]
pub struct Held {
    by_source: HashMap<IpAddr, usize>,
}

impl Held {
    /// Take a place for `source` if it holds fewer than `max`.
    pub fn enter(&mut self, source: IpAddr, max: usize) -> bool {
        let n = self.by_source.entry(source_of(source)).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Give a place back.
    pub fn leave(&mut self, source: IpAddr) {
        let key = source_of(source);
        if let Some(n) = self.by_source.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { free_failures: 3, backoff: 10, max_backoff: 100, alert_after: 5, alert_window: 60 }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wrong_codes_past_the_free_ones_wait_longer_each_time_up_to_the_cap() {
        let (mut g, l) = (Guard::default(), limits());
        let a = ip("10.0.0.1");
        let waits: Vec<u64> = (0..8).map(|_| g.wrong_code(a, 1000, &l).wait).collect();
        assert_eq!(waits, [0, 0, 0, 10, 20, 40, 80, 100]);
        assert_eq!(g.wait(a, 1000), Some(100));
        assert_eq!(g.wait(a, 1100), None, "the wait ends");
        assert_eq!(g.wait(ip("10.0.0.2"), 1000), None, "another source is not held back");
        // Long after, the source starts afresh; a right code forgives at once.
        assert_eq!(g.wrong_code(a, 1300, &l).failures, 1);
        g.right_code(a);
        assert_eq!(g.wrong_code(a, 1301, &l).failures, 1);
    }

    #[test]
    fn refusals_alert_once_enough_fall_in_the_window() {
        let (mut g, l) = (Guard::default(), limits());
        let a = ip("10.0.0.1");
        for t in 0..4 {
            assert!(g.wrong_code(a, t * 20, &l).alert.is_none(), "spread over more than the window");
        }
        let mut g = Guard::default();
        for _ in 0..4 {
            assert!(g.wrong_code(a, 500, &l).alert.is_none());
        }
        let alert = g.refused_unheard(a, 501, &l).expect("the fifth refusal in the window alerts");
        assert!(matches!(alert.info.kind, AlertKind::EnrolmentRefused { refused: 5, .. }));
        assert!(alert.info.message.contains("10.0.0.1"), "{}", alert.info.message);
    }

    #[test]
    fn places_are_counted_per_source_and_ipv6_by_its_64() {
        let mut h = Held::default();
        assert!(h.enter(ip("10.0.0.1"), 2) && h.enter(ip("10.0.0.1"), 2));
        assert!(!h.enter(ip("10.0.0.1"), 2));
        assert!(h.enter(ip("10.0.0.2"), 2));
        h.leave(ip("10.0.0.1"));
        assert!(h.enter(ip("10.0.0.1"), 2));
        assert!(h.enter(ip("2001:db8::1"), 1));
        assert!(!h.enter(ip("2001:db8::ffff"), 1), "same /64");
        assert!(h.enter(ip("2001:db8:0:1::1"), 1));
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }
}
