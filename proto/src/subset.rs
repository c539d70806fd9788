//! Which items of a transfer a receipt covers, when its recipient fetched
//! only some (`exhibit fetch --items`): ranges of item numbers in the
//! sealed details' order. A receipt for every item carries none.

use serde::{Deserialize, Serialize};

use crate::error::ProtoError;

/// Items `start..end` for each range, of `of` items in all. Canonical:
/// ranges ascending, none empty, none touching the next, and fewer items
/// than `of` (all of them is no subset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subset {
    /// How many items the transfer has.
    pub of: u64,
    /// Item numbers received, as half-open ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl Subset {
    /// The subset of `of` items made of `chosen` (ascending item numbers),
    /// or `None` when they are all of them.
    pub fn of_chosen(of: u64, chosen: impl IntoIterator<Item = u64>) -> Option<Subset> {
        let mut ranges: Vec<(u64, u64)> = vec![];
        for i in chosen {
            match ranges.last_mut() {
                Some((_, end)) if *end == i => *end += 1,
                _ => ranges.push((i, i + 1)),
            }
        }
        let s = Subset { of, ranges };
        (s.count() < of).then_some(s)
    }

    /// How many items it covers.
    pub fn count(&self) -> u64 {
        self.ranges.iter().fold(0u64, |n, (a, b)| n.saturating_add(b.saturating_sub(*a)))
    }

    /// Whether item `i` is in it.
    pub fn contains(&self, i: u64) -> bool {
        let at = self.ranges.partition_point(|(_, end)| *end <= i);
        self.ranges.get(at).is_some_and(|(start, _)| *start <= i)
    }

    /// Each item number it covers, ascending.
    pub fn items(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|(a, b)| *a..*b)
    }

    /// Check that it is canonical and covers `count` items.
    pub fn check(&self, count: u64) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::Malformed { what: "receipt item subset", reason });
        let mut after = None;
        for &(start, end) in &self.ranges {
            if start >= end || end > self.of {
                return bad(format!("range {start}..{end} of {} items", self.of));
            }
            // Ascending and apart: touching ranges would be one.
            if after.is_some_and(|a| start <= a) {
                return bad(format!("range {start}..{end} not after the one before"));
            }
            after = Some(end);
        }
        let n = self.count();
        if n == 0 || n >= self.of {
            return bad(format!("{n} of {} items is no subset", self.of));
        }
        if n != count {
            return bad(format!("the ranges hold {n} items, the receipt counts {count}"));
        }
        Ok(())
    }

    /// "3 of 120 items".
    pub fn describe(&self) -> String {
        format!("{} of {} items", self.count(), self.of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_items_become_canonical_ranges_and_all_of_them_is_none() {
        let s = Subset::of_chosen(10, [0, 1, 2, 5, 7, 8]).unwrap();
        assert_eq!(s.ranges, vec![(0, 3), (5, 6), (7, 9)]);
        assert_eq!(s.count(), 6);
        s.check(6).unwrap();
        assert!(s.check(5).is_err(), "count must agree");
        assert_eq!(s.items().collect::<Vec<_>>(), vec![0, 1, 2, 5, 7, 8]);
        for i in 0..10 {
            assert_eq!(s.contains(i), [0, 1, 2, 5, 7, 8].contains(&i), "{i}");
        }
        assert_eq!(s.describe(), "6 of 10 items");
        assert_eq!(Subset::of_chosen(3, [0, 1, 2]), None);
    }

    #[test]
    fn ranges_that_are_not_canonical_are_refused() {
        for ranges in [
            vec![],
            vec![(0, 0)],
            vec![(3, 2)],
            vec![(0, 11)],
            vec![(0, 2), (2, 4)],
            vec![(4, 6), (0, 2)],
            vec![(0, 2), (1, 4)],
            vec![(0, 10)],
        ] {
            let s = Subset { of: 10, ranges: ranges.clone() };
            assert!(s.check(s.count()).is_err(), "{ranges:?} accepted");
        }
        // Hostile ranges are counted without overflow, and refused.
        let s = Subset { of: u64::MAX, ranges: vec![(0, u64::MAX), (0, u64::MAX)] };
        assert_eq!(s.count(), u64::MAX);
        assert!(s.check(s.count()).is_err());
    }
}
