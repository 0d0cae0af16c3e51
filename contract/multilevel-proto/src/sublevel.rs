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
//! strip the prefix from the keys their iterators return. A server checks with
//! [`contains_key`](SublevelPrefix::contains_key) and
//! [`contains_range`](SublevelPrefix::contains_range) that a connection whose token is scoped
//! to a sublevel stays inside it.
//!
//! # Paths
//!
//! Where a sublevel is named in text (a token list's `sublevel=` option), it is written as a
//! path: the names from the outermost in, separated by `/`, each byte `%XX` (two hex digits,
//! any case) or a character standing for its UTF-8 bytes. `/` and `%` in a name must be
//! escaped (`%2F`, `%25`), and so must whitespace; a name may not be empty. So `users/admins`
//! is the sublevel `admins` inside `users`, and `a%2Fb` the single sublevel `a/b`.

use std::fmt::Write as _;
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

/// Why a sublevel path (see [Paths](self#paths)) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SublevelPathError {
    /// A name is empty: the path is empty, starts or ends with `/`, or holds `//`.
    #[error("a sublevel name is empty (the path is empty, or has `//` or a `/` at either end)")]
    EmptyName,
    /// A `%` is not followed by two hex digits.
    #[error("`%` at byte {at} must be followed by two hex digits (write `%25` for `%` itself)")]
    BadEscape {
        /// The 0-based byte offset of the `%` in the path.
        at: usize,
    },
}

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

    /// The sublevel a [path](self#paths) names, nested inside the root: `users/admins` is
    /// `root().sublevel("users").sublevel("admins")`.
    pub fn from_path(path: &str) -> Result<Self, SublevelPathError> {
        let mut prefix = Self::root();
        let mut offset = 0;
        for part in path.split('/') {
            if part.is_empty() {
                return Err(SublevelPathError::EmptyName);
            }
            let mut name = Vec::with_capacity(part.len());
            let bytes = part.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let byte = escaped_byte(&bytes[i + 1..]).ok_or(SublevelPathError::BadEscape { at: offset + i })?;
                    name.push(byte);
                    i += 3;
                } else {
                    name.push(bytes[i]);
                    i += 1;
                }
            }
            prefix = prefix.sublevel(name);
            offset += part.len() + 1;
        }
        Ok(prefix)
    }

    /// The names from the outermost in (none for the root).
    pub fn names(&self) -> Vec<Vec<u8>> {
        // `!a!!b!`: every encoded name is framed by separators and never holds one.
        self.prefix
            .split(|&b| b == SEPARATOR)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|pair| pair.get(1))
            .map(|encoded| unescape_name(encoded))
            .collect()
    }

    /// This sublevel as a [path](self#paths) that [`from_path`](Self::from_path) reads back:
    /// printable ASCII as it is, every other byte, `/` and `%` as `%XX`. Empty for the root.
    pub fn path(&self) -> String {
        let mut path = String::new();
        for (i, name) in self.names().iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            for &byte in name {
                if byte.is_ascii_graphic() && byte != b'/' && byte != b'%' {
                    path.push(char::from(byte));
                } else {
                    let _ = write!(path, "%{byte:02X}");
                }
            }
        }
        path
    }

    /// Whether the stored key `key` lies in this sublevel (or one nested in it): it starts
    /// with the prefix. Every key lies in the root.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Whether every stored key `range` holds lies in this sublevel, so that reading or
    /// clearing it cannot touch a key outside. A range with no key at all lies in every
    /// sublevel; every range lies in the root.
    pub fn contains_range(&self, range: &KeyRange) -> bool {
        if self.is_root() {
            return true;
        }
        // The range's least key: what its lower bound lets in first.
        let least: Vec<u8> = match &range.lower {
            Bound::Unbounded => Vec::new(),
            Bound::Included(key) => key.to_vec(),
            Bound::Excluded(key) => [&key[..], &[0]].concat(),
        };
        let empty = match &range.upper {
            Bound::Unbounded => false,
            Bound::Included(high) => least.as_slice() > &high[..],
            Bound::Excluded(high) => least.as_slice() >= &high[..],
        };
        if empty {
            return true;
        }
        // Keys from the prefix (included) to `upper` (excluded) are exactly the sublevel's.
        let upper = self.upper();
        let below_upper = match &range.upper {
            Bound::Unbounded => false,
            Bound::Included(high) => high < &upper,
            Bound::Excluded(high) => high <= &upper,
        };
        least.as_slice() >= &self.prefix[..] && below_upper
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

/// The byte that the two hex digits (any case) at the start of `hex` spell, if they do.
fn escaped_byte(hex: &[u8]) -> Option<u8> {
    let digit = |i: usize| hex.get(i).and_then(|&b| char::from(b).to_digit(16));
    let (high, low) = (digit(0)?, digit(1)?);
    u8::try_from(high * 16 + low).ok()
}

/// A name as [`SublevelPrefix::sublevel`] was given it, from its encoding.
fn unescape_name(encoded: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let escaped = if encoded[i] == ESCAPE { escaped_byte(&encoded[i + 1..]) } else { None };
        match escaped {
            Some(byte) => {
                name.push(byte);
                i += 3;
            }
            None => {
                name.push(encoded[i]);
                i += 1;
            }
        }
    }
    name
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

    #[test]
    fn paths_name_nested_sublevels() {
        let root = SublevelPrefix::root();
        let admins = SublevelPrefix::from_path("users/admins").unwrap();
        assert_eq!(admins, root.sublevel("users").sublevel("admins"));
        assert_eq!(admins.path(), "users/admins");
        assert_eq!(SublevelPrefix::from_path("a%2Fb").unwrap(), root.sublevel("a/b"));
        assert_eq!(SublevelPrefix::from_path("%00%ff%C3%a9").unwrap(), root.sublevel([0, 0xff, 0xc3, 0xa9]));
        assert_eq!(SublevelPrefix::from_path("caf\u{e9}").unwrap(), root.sublevel("caf\u{e9}"));
        assert_eq!(root.sublevel("a b/%\u{e9}").path(), "a%20b%2F%25%C3%A9");
        assert_eq!(root.path(), "");
        for bad in ["", "a//b", "/a", "a/"] {
            assert_eq!(SublevelPrefix::from_path(bad), Err(SublevelPathError::EmptyName), "{bad}");
        }
        assert_eq!(SublevelPrefix::from_path("ab/c%2"), Err(SublevelPathError::BadEscape { at: 4 }));
        assert_eq!(SublevelPrefix::from_path("%zz"), Err(SublevelPathError::BadEscape { at: 0 }));
        assert_eq!(SublevelPrefix::from_path("%+1"), Err(SublevelPathError::BadEscape { at: 0 }));
    }

    #[test]
    fn scope_checks_at_the_edges() {
        let users = SublevelPrefix::root().sublevel("users");
        assert!(users.contains_key(b"!users!"));
        assert!(users.contains_key(b"!users!!admins!x"));
        assert!(!users.contains_key(b"!users"));
        assert!(!users.contains_key(b"!usersx!"));
        assert!(users.contains_range(&users.range(&KeyRange::all())));
        assert!(!users.contains_range(&KeyRange::all()));
        assert!(!users.contains_range(&KeyRange::all().gte("!users!")));
        assert!(!users.contains_range(&KeyRange::all().lt("!users\"")));
        assert!(users.contains_range(&KeyRange::all().gte("!users!").lt("!users\"")));
        assert!(!users.contains_range(&KeyRange::all().gte("!users!").lte("!users\"")));
        assert!(!users.contains_range(&KeyRange::all().gt("!users").lt("!users\"")));
        assert!(users.contains_range(&KeyRange::all().gt("!users!").lt("!users!!")));
        assert!(!users.contains_range(&KeyRange::all().gt("!users\0").lt("!users!!")));
        assert!(!users.contains_range(&KeyRange::all().gte("!users!").lt([b'!', b'u', b's', b'e', b'r', b's', 0xff])));
        // Ranges with no key leak nothing, wherever their bounds are.
        assert!(users.contains_range(&KeyRange::all().gte("z").lt("a")));
        assert!(users.contains_range(&KeyRange::all().lt("")));
        assert!(SublevelPrefix::root().contains_range(&KeyRange::all()));
    }

    proptest! {
        #[test]
        fn paths_round_trip(names in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..5), 0..3)) {
            let sub = path(&names);
            prop_assert_eq!(sub.names(), names.clone());
            if !names.is_empty() {
                prop_assert_eq!(SublevelPrefix::from_path(&sub.path()), Ok(sub));
            }
        }

        #[test]
        fn a_range_is_accepted_iff_it_lies_inside_the_scope(
            names in proptest::collection::vec(name(), 0..3),
            lower in (0u8..4, 0u8..4, key()), upper in (0u8..4, 0u8..4, key()),
            samples in proptest::collection::vec((0u8..4, key()), 0..8),
        ) {
            let scope = path(&names);
            let end = scope.upper();
            // Keys near the scope's edges: as drawn, under the prefix, under its end, or under
            // the prefix cut short by a byte.
            let near = |(at, k): &(u8, Vec<u8>)| -> Vec<u8> {
                let base: &[u8] = match at {
                    0 => &[],
                    1 => scope.as_bytes(),
                    2 => &end,
                    _ => &scope.as_bytes()[..scope.as_bytes().len().saturating_sub(1)],
                };
                [base, k].concat()
            };
            let bound = |(kind, at, k): &(u8, u8, Vec<u8>)| -> Bound<Bytes> {
                let key = Bytes::from(near(&(*at, k.clone())));
                match kind {
                    0 => Bound::Unbounded,
                    1 => Bound::Included(key),
                    _ => Bound::Excluded(key),
                }
            };
            let range = KeyRange { lower: bound(&lower), upper: bound(&upper) };
            let accepted = scope.contains_range(&range);
            let fine = |k: &[u8]| !range.contains(k) || scope.contains_key(k);
            // Sound: an accepted range holds no key outside the scope.
            if accepted {
                for sample in &samples {
                    prop_assert!(fine(&near(sample)), "{range:?} accepted in {scope:?}");
                }
                prop_assert!(fine(&end) && fine(b"") && fine(&[0xff; 8]));
            } else {
                // Complete: a refused range holds a key outside: its least key or the scope's end.
                let least = match &range.lower {
                    Bound::Unbounded => Vec::new(),
                    Bound::Included(k) => k.to_vec(),
                    Bound::Excluded(k) => [&k[..], &[0]].concat(),
                };
                prop_assert!(!fine(&least) || !fine(&end), "{range:?} refused in {scope:?}");
            }
            // What a client of the scope's sublevels sends is always accepted.
            let user = KeyRange { lower: bound(&(lower.0, 0, lower.2.clone())), upper: bound(&(upper.0, 0, upper.2.clone())) };
            prop_assert!(scope.contains_range(&scope.range(&user)));
            prop_assert!(scope.contains_range(&scope.sublevel("x").range(&user)));
        }

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
