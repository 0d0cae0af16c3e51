//! Key ranges with exclusive and inclusive bounds, and the narrowing that iterator resume needs.
//!
//! Resuming never does byte arithmetic on keys (the JavaScript originals decrement the last byte
//! and lose keys that extend it): a resumed range is the original range intersected with an
//! exclusive bound at the last key received.

use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A range of binary keys in byte-wise lexicographic order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// Lowest key, inclusive or exclusive.
    pub lower: Bound<Bytes>,
    /// Highest key, inclusive or exclusive.
    pub upper: Bound<Bytes>,
}

impl Default for KeyRange {
    fn default() -> Self {
        Self::all()
    }
}

fn bytes(key: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(key.as_ref())
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self { lower: Bound::Unbounded, upper: Bound::Unbounded }
    }

    /// Keys greater than `key` (Level's `gt`).
    pub fn gt(mut self, key: impl AsRef<[u8]>) -> Self {
        self.lower = Bound::Excluded(bytes(key));
        self
    }

    /// Keys greater than or equal to `key` (Level's `gte`).
    pub fn gte(mut self, key: impl AsRef<[u8]>) -> Self {
        self.lower = Bound::Included(bytes(key));
        self
    }

    /// Keys less than `key` (Level's `lt`).
    pub fn lt(mut self, key: impl AsRef<[u8]>) -> Self {
        self.upper = Bound::Excluded(bytes(key));
        self
    }

    /// Keys less than or equal to `key` (Level's `lte`).
    pub fn lte(mut self, key: impl AsRef<[u8]>) -> Self {
        self.upper = Bound::Included(bytes(key));
        self
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(l) => key >= &l[..],
            Bound::Excluded(l) => key > &l[..],
        };
        let below = match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(u) => key <= &u[..],
            Bound::Excluded(u) => key < &u[..],
        };
        above && below
    }

    /// Whether no key at all can lie in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l), Bound::Excluded(u))
            | (Bound::Excluded(l), Bound::Included(u))
            | (Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
        }
    }

    /// This range with keys at or below `key` removed: where a forward scan resumes after it.
    pub fn after(&self, key: &Bytes) -> Self {
        Self { lower: tighter_lower(&self.lower, Bound::Excluded(key.clone())), upper: self.upper.clone() }
    }

    /// This range with keys at or above `key` removed: where a reverse scan resumes after it.
    pub fn before(&self, key: &Bytes) -> Self {
        Self { lower: self.lower.clone(), upper: tighter_upper(&self.upper, Bound::Excluded(key.clone())) }
    }

    /// This range with keys below `key` removed: where a forward scan lands after a seek.
    pub fn from_key(&self, key: &Bytes) -> Self {
        Self { lower: tighter_lower(&self.lower, Bound::Included(key.clone())), upper: self.upper.clone() }
    }

    /// This range with keys above `key` removed: where a reverse scan lands after a seek.
    pub fn to_key(&self, key: &Bytes) -> Self {
        Self { lower: self.lower.clone(), upper: tighter_upper(&self.upper, Bound::Included(key.clone())) }
    }

    /// Bytes of key material the range carries, for size checks.
    pub fn key_bytes(&self) -> usize {
        bound_len(&self.lower) + bound_len(&self.upper)
    }
}

fn bound_len(bound: &Bound<Bytes>) -> usize {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) => k.len(),
        Bound::Unbounded => 0,
    }
}

/// The more restrictive of two lower bounds.
fn tighter_lower(a: &Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    match (a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => match x.cmp(y) {
            Ordering::Greater => a.clone(),
            Ordering::Less => b,
            Ordering::Equal if matches!(a, Bound::Excluded(_)) => a.clone(),
            Ordering::Equal => b,
        },
    }
}

/// The more restrictive of two upper bounds.
fn tighter_upper(a: &Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    match (a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => match x.cmp(y) {
            Ordering::Less => a.clone(),
            Ordering::Greater => b,
            Ordering::Equal if matches!(a, Bound::Excluded(_)) => a.clone(),
            Ordering::Equal => b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(k: &[u8]) -> Bytes {
        Bytes::copy_from_slice(k)
    }

    #[test]
    fn reverse_resume_keeps_keys_that_extend_a_smaller_key() {
        // many-level loses [01 04 09] when resuming below [01 05]; an exclusive bound does not.
        let r = KeyRange::all().before(&b(&[1, 5]));
        assert!(r.contains(&[1, 4, 9]));
        assert!(r.contains(&[1, 4, 0xff, 0xff]));
        assert!(!r.contains(&[1, 5]));
        assert!(!r.contains(&[1, 5, 0]));
    }

    #[test]
    fn forward_resume_is_exclusive_and_keeps_extensions() {
        let r = KeyRange::all().after(&b(&[1]));
        assert!(!r.contains(&[1]));
        assert!(r.contains(&[1, 0]));
        let empty_key = KeyRange::all().after(&b(&[]));
        assert!(!empty_key.contains(&[]));
        assert!(empty_key.contains(&[0]));
    }

    #[test]
    fn narrowing_never_widens() {
        let r = KeyRange::all().gt([5]).lte([9]);
        assert_eq!(r.after(&b(&[3])), r);
        assert_eq!(r.from_key(&b(&[5])).lower, Bound::Excluded(b(&[5])));
        assert_eq!(r.to_key(&b(&[10])), r);
        assert!(!r.before(&b(&[5, 0])).after(&b(&[5])).contains(&[5, 0, 0]));
    }

    #[test]
    fn emptiness() {
        assert!(!KeyRange::all().is_empty());
        assert!(KeyRange::all().gte([2]).lt([2]).is_empty());
        assert!(!KeyRange::all().gte([2]).lte([2]).is_empty());
        assert!(KeyRange::all().gt([3]).lte([2]).is_empty());
    }
}
