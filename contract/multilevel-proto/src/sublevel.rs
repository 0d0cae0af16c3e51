//! Sublevels: namespaces of keys, encoded as abstract-level encodes them, so a Node program's
//! `db.sublevel('users')` (through a many-level guest) and a Rust client's `db.sublevel("users")`
//! see the same entries.
//!
//! # Encoding
//!
//! A sublevel's keys are stored under the prefix `!name!` (nested: `!a!!b!`), as
//! abstract-level's default sublevels do. abstract-level only allows names of printable ASCII
//! above `"` (bytes `0x23..=0x7e`); any other name byte, and `%` itself, is written here as
//! `%XX` (two uppercase hex digits), so every name works and the names abstract-level allows
//! encode exactly as it encodes them. An encoded name never holds `!` or `"`, so:
//!
//! - the keys of two different sublevels never collide, and a sublevel's range,
//!   `[!name!, !name")`, holds exactly the keys that start with its prefix: nothing of a
//!   sibling, and nothing of the parent's own keys. (The parent sees its sublevels' entries
//!   under their prefixed keys, as in Level.)
//! - sublevels sort together, and by name.
//!
//! A [`SublevelPrefix`] rewrites requests and ranges into the parent's key space; clients
//! strip the prefix from the keys their iterators return.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};

use crate::client::Request;
use crate::condition::Condition;
use crate::message::{BatchOp, IterOptions};
use crate::range::KeyRange;

/// The separator abstract-level puts around a sublevel's name.
const SEPARATOR: u8 = b'!';
/// The byte after the separator: the end of a sublevel's range.
const UPPER: u8 = SEPARATOR + 1;
/// Escapes the bytes abstract-level does not allow in a name.
const ESCAPE: u8 = b'%';

/// The key prefix of a sublevel, nested any depth; the empty prefix is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SublevelPrefix {
    prefix: Bytes,
}

fn name_byte_is_plain(byte: u8) -> bool {
    byte > UPPER && byte < 0x7f && byte != ESCAPE
}

impl SublevelPrefix {
    /// The root: no prefix.
    pub fn root() -> Self {
        Self::default()
    }

    /// The prefix of the sublevel `name` inside this one.
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Self {
        let name = name.as_ref();
        let mut prefix = BytesMut::with_capacity(self.prefix.len() + name.len() + 2);
        prefix.put_slice(&self.prefix);
        prefix.put_u8(SEPARATOR);
        for &byte in name {
            if name_byte_is_plain(byte) {
                prefix.put_u8(byte);
            } else {
                prefix.put_slice(format!("%{byte:02X}").as_bytes());
            }
        }
        prefix.put_u8(SEPARATOR);
        Self { prefix: prefix.freeze() }
    }

    /// The prefix bytes (empty for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.prefix.is_empty()
    }

    /// The stored key of `key` in this sublevel.
    pub fn key(&self, key: impl AsRef<[u8]>) -> Bytes {
        let key = key.as_ref();
        if self.is_root() {
            return Bytes::copy_from_slice(key);
        }
        let mut out = BytesMut::with_capacity(self.prefix.len() + key.len());
        out.put_slice(&self.prefix);
        out.put_slice(key);
        out.freeze()
    }

    /// The key of this sublevel that `stored` is, if it lies in it.
    pub fn strip(&self, stored: &Bytes) -> Option<Bytes> {
        stored.starts_with(&self.prefix).then(|| stored.slice(self.prefix.len()..))
    }

    /// The stored range of `range` in this sublevel: never wider than the sublevel.
    pub fn range(&self, range: &KeyRange) -> KeyRange {
        if self.is_root() {
            return range.clone();
        }
        let map = |bound: &Bound<Bytes>| match bound {
            Bound::Included(key) => Bound::Included(self.key(key)),
            Bound::Excluded(key) => Bound::Excluded(self.key(key)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let lower = match map(&range.lower) {
            Bound::Unbounded => Bound::Included(self.prefix.clone()),
            bound => bound,
        };
        let upper = match map(&range.upper) {
            Bound::Unbounded => Bound::Excluded(self.upper()),
            bound => bound,
        };
        KeyRange { lower, upper }
    }

    /// The first stored key after every key of this sublevel: the prefix with its closing
    /// separator raised by one.
    fn upper(&self) -> Bytes {
        let mut upper = self.prefix.to_vec();
        if let Some(last) = upper.last_mut() {
            *last = UPPER;
        }
        upper.into()
    }

    /// `options` with its range in the stored key space.
    pub fn iter_options(&self, options: IterOptions) -> IterOptions {
        IterOptions { range: self.range(&options.range), ..options }
    }

    /// `op` with its key in the stored key space.
    pub fn batch_op(&self, op: BatchOp) -> BatchOp {
        match op {
            BatchOp::Put { key, value } => BatchOp::Put { key: self.key(&key), value },
            BatchOp::Del { key } => BatchOp::Del { key: self.key(&key) },
        }
    }

    /// `condition` with its key in the stored key space.
    pub fn condition(&self, condition: Condition) -> Condition {
        let key = self.key(condition.key());
        condition.with_key(key)
    }

    /// `request` with its keys and ranges in the stored key space. `Stats` is the server's
    /// and stays as it is.
    pub fn request(&self, request: Request) -> Request {
        if self.is_root() {
            return request;
        }
        match request {
            Request::Get { key } => Request::Get { key: self.key(&key) },
            Request::GetMany { keys } => Request::GetMany { keys: keys.iter().map(|k| self.key(k)).collect() },
            Request::Put { key, value } => Request::Put { key: self.key(&key), value },
            Request::Del { key } => Request::Del { key: self.key(&key) },
            Request::Batch { ops } => Request::Batch { ops: ops.into_iter().map(|op| self.batch_op(op)).collect() },
            Request::Clear { range, reverse, limit } => Request::Clear { range: self.range(&range), reverse, limit },
            Request::Stats => Request::Stats,
            Request::Conditional { conditions, ops } => Request::Conditional {
                conditions: conditions.into_iter().map(|c| self.condition(c)).collect(),
                ops: ops.into_iter().map(|op| self.batch_op(op)).collect(),
            },
            Request::Increment { key, by } => Request::Increment { key: self.key(&key), by },
        }
    }
}

impl KeyRange {
    /// The keys that start with `prefix`. A prefix of only `0xff` bytes (or the empty one)
    /// has no upper bound.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let prefix = prefix.as_ref();
        let upper = match prefix.iter().rposition(|&b| b != 0xff) {
            Some(i) => {
                let mut upper = prefix[..=i].to_vec();
                upper[i] += 1;
                Bound::Excluded(Bytes::from(upper))
            }
            None => Bound::Unbounded,
        };
        Self { lower: Bound::Included(Bytes::copy_from_slice(prefix)), upper }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn path(names: &[Vec<u8>]) -> SublevelPrefix {
        names.iter().fold(SublevelPrefix::root(), |p, n| p.sublevel(n))
    }

    #[test]
    fn names_abstract_level_allows_encode_as_it_does() {
        let users = SublevelPrefix::root().sublevel("users");
        assert_eq!(users.as_bytes(), b"!users!");
        assert_eq!(users.sublevel("a").as_bytes(), b"!users!!a!");
        assert_eq!(users.key("k"), Bytes::from("!users!k"));
        let range = users.range(&KeyRange::all());
        assert_eq!(range, KeyRange::all().gte("!users!").lt("!users\""));
        assert_eq!(SublevelPrefix::root().sublevel("a b!%\u{e9}").as_bytes(), b"!a%20b%21%25%C3%A9!");
    }

    #[test]
    fn prefix_ranges_handle_0xff_edges() {
        assert_eq!(KeyRange::prefix(b"ab"), KeyRange::all().gte("ab").lt("ac"));
        assert_eq!(KeyRange::prefix([1, 0xff, 0xff]), KeyRange::all().gte([1, 0xff, 0xff]).lt([2]));
        assert_eq!(KeyRange::prefix([0xff]).upper, Bound::Unbounded);
        assert_eq!(KeyRange::prefix([]), KeyRange { lower: Bound::Included(Bytes::new()), upper: Bound::Unbounded });
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(prop_oneof![Just(b'!'), Just(b'"'), Just(b'%'), Just(b'a')], 0..4),
        ]
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(b'!'), Just(b'"'), Just(0xff), any::<u8>()], 0..5)
    }

    proptest! {
        #[test]
        fn keys_of_different_places_never_collide(
            a in proptest::collection::vec(name(), 1..3), ka in key(),
            b in proptest::collection::vec(name(), 1..3), kb in key(),
        ) {
            prop_assume!((&a, &ka) != (&b, &kb));
            // A sublevel's own keys may spell the stored keys of the sublevels nested in it (the
            // parent sees its children, as in Level); any two other places never collide.
            let nested = |x: &[Vec<u8>], y: &[Vec<u8>]| x != y && y.starts_with(x);
            prop_assume!(!nested(&a, &b) && !nested(&b, &a));
            prop_assert_ne!(path(&a).key(&ka), path(&b).key(&kb));
        }

        #[test]
        fn a_sublevel_range_holds_exactly_its_own_keys(
            names in proptest::collection::vec(name(), 1..3),
            other in proptest::collection::vec(name(), 0..3),
            k in key(), lo in key(), hi in key(),
        ) {
            let sub = path(&names);
            let whole = sub.range(&KeyRange::all());
            let mine = sub.key(&k);
            prop_assert!(whole.contains(&mine));
            prop_assert_eq!(sub.strip(&mine), Some(Bytes::from(k.clone())));
            // Any other place's key lies outside unless it is inside this sublevel.
            let theirs = path(&other).key(&k);
            prop_assert_eq!(whole.contains(&theirs), theirs.starts_with(sub.as_bytes()));
            // A user range maps to the same keys, never beyond the sublevel.
            let user = KeyRange::all().gte(&lo).lt(&hi);
            let stored = sub.range(&user);
            prop_assert_eq!(stored.contains(&mine), user.contains(&k));
            prop_assert!(!stored.contains(&theirs) || theirs.starts_with(sub.as_bytes()));
        }
    }
}
