//! How user keys are laid out in LMDB.
//!
//! LMDB refuses zero-length keys and keys over 511 bytes, but the empty key is a valid Level
//! key. So every user key `k` is stored as `[0x00] ++ k` in the "data" database: the prefix is
//! the same for every key, so the order of stored keys is the order of user keys, the empty
//! key becomes `[0x00]`, and the longest user key is 510 bytes.
//!
//! Range bounds go through the same prefix. A bound longer than any storable key is cut to
//! [`MAX_KEY_SIZE`] bytes `t`, which selects exactly the same stored keys: for a key `x` of at
//! most 510 bytes and a longer bound `k` extending `t`, `x > k` iff `x > t`, and `x < k` iff
//! `x <= t`. So a long lower bound becomes `Excluded(t)` and a long upper bound `Included(t)`.

use std::ops::Bound;

use multilevel_proto::KeyRange;

/// The longest user key: LMDB's 511 bytes minus the prefix byte.
pub(crate) const MAX_KEY_SIZE: usize = 510;

/// The byte every stored user key starts with.
const PREFIX: u8 = 0x00;

/// The stored form of a user key of at most [`MAX_KEY_SIZE`] bytes.
pub(crate) fn encode(key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(key.len() + 1);
    stored.push(PREFIX);
    stored.extend_from_slice(key);
    stored
}

/// The stored form of a user key, written into `buf` (which must hold it); the returned
/// slice is the part of `buf` it takes.
fn encode_into<'a>(key: &[u8], buf: &'a mut [u8]) -> &'a [u8] {
    let len = key.len();
    buf[0] = PREFIX;
    buf[1..=len].copy_from_slice(key);
    &buf[..=len]
}

/// Keys up to this long get a small stack buffer: zeroing the 511-byte one took a measurable
/// share of a get.
const SHORT_KEY: usize = 63;

/// Runs `f` on the stored form of `key`, built on the stack when it fits (every storable key
/// does), so a read or write needs no allocation for it.
pub(crate) fn with_stored<R>(key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if key.len() <= SHORT_KEY {
        let mut buf = [0u8; SHORT_KEY + 1];
        f(encode_into(key, &mut buf))
    } else if key.len() <= MAX_KEY_SIZE {
        let mut buf = [0u8; MAX_KEY_SIZE + 1];
        f(encode_into(key, &mut buf))
    } else {
        // LMDB refuses it with its own error, as before.
        f(&encode(key))
    }
}

/// The user key of a stored key.
pub(crate) fn decode(stored: &[u8]) -> &[u8] {
    stored.get(1..).unwrap_or_default()
}

/// Stored-key bounds, owned.
pub(crate) type StoredRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The stored-key bounds selecting exactly the user keys of `range`, or `None` if it selects
/// none (so no LMDB range is ever built from inverted bounds).
pub(crate) fn stored_range(range: &KeyRange) -> Option<StoredRange> {
    if range.is_empty() {
        return None;
    }
    let lower = match &range.lower {
        Bound::Unbounded => Bound::Included(vec![PREFIX]),
        Bound::Included(k) | Bound::Excluded(k) if k.len() > MAX_KEY_SIZE => {
            Bound::Excluded(encode(&k[..MAX_KEY_SIZE]))
        }
        Bound::Included(k) => Bound::Included(encode(k)),
        Bound::Excluded(k) => Bound::Excluded(encode(k)),
    };
    let upper = match &range.upper {
        Bound::Unbounded => Bound::Excluded(vec![PREFIX + 1]),
        Bound::Included(k) | Bound::Excluded(k) if k.len() > MAX_KEY_SIZE => {
            Bound::Included(encode(&k[..MAX_KEY_SIZE]))
        }
        Bound::Included(k) => Bound::Included(encode(k)),
        Bound::Excluded(k) => Bound::Excluded(encode(k)),
    };
    let empty = match (&lower, &upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => l >= u,
        _ => false,
    };
    (!empty).then_some((lower, upper))
}

/// Borrowed bounds, the form heed's `range` and `rev_range` take.
pub(crate) fn as_slices(range: &StoredRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (borrow(&range.0), borrow(&range.1))
}

fn borrow(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_and_order() {
        assert_eq!(encode(b""), vec![0]);
        assert!(encode(b"") < encode(b"\0"));
        assert!(encode(b"a") < encode(b"a\0"));
        assert_eq!(decode(&encode(b"xyz")), b"xyz");
        assert_eq!(decode(&[]), b"");
    }

    #[test]
    fn the_stack_form_is_the_stored_form_at_every_length() {
        for len in [0, 1, SHORT_KEY - 1, SHORT_KEY, SHORT_KEY + 1, MAX_KEY_SIZE - 1, MAX_KEY_SIZE, MAX_KEY_SIZE + 1] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            with_stored(&key, |stored| assert_eq!(stored, encode(&key).as_slice(), "{len}"));
        }
    }

    #[test]
    fn long_bounds_are_cut_to_an_equivalent_bound() {
        let long = vec![7u8; 600];
        let r = stored_range(&KeyRange::all().gte(&long)).unwrap();
        assert_eq!(r.0, Bound::Excluded(encode(&long[..MAX_KEY_SIZE])));
        let r = stored_range(&KeyRange::all().lt(&long)).unwrap();
        assert_eq!(r.1, Bound::Included(encode(&long[..MAX_KEY_SIZE])));
        // Both bounds cut to the same key: nothing lies between.
        assert!(stored_range(&KeyRange::all().gt(&long).lte(vec![7u8; 601])).is_none());
    }

    #[test]
    fn empty_ranges_map_to_none() {
        assert!(stored_range(&KeyRange::all().gte(b"b").lt(b"b")).is_none());
        assert!(stored_range(&KeyRange::all().gt(b"c").lte(b"b")).is_none());
        assert!(stored_range(&KeyRange::all().gte(b"b").lte(b"b")).is_some());
        assert!(stored_range(&KeyRange::all()).is_some());
    }
}
