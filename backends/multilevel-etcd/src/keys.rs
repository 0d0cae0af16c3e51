//! The key layout in etcd: `ns ‖ 0x00 ‖ user key` for data, `ns ‖ 0x01 ‖ session (8 bytes,
//! big-endian)` for session records. Ranges are etcd's `[key, range_end)`.

use std::ops::Bound;

use bytes::Bytes;
use multilevel_proto::{KeyRange, SessionId};

/// The byte after the namespace that marks a data key.
const DATA: u8 = 0x00;
/// The byte after the namespace that marks a session record.
const SESSION: u8 = 0x01;

/// A namespace's key layout.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    ns: Vec<u8>,
}

impl Layout {
    pub(crate) fn new(ns: &[u8]) -> Self {
        Self { ns: ns.to_vec() }
    }

    /// Where a user key is stored.
    pub(crate) fn data_key(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ns.len() + 1 + key.len());
        out.extend_from_slice(&self.ns);
        out.push(DATA);
        out.extend_from_slice(key);
        out
    }

    /// Where a session's record is stored.
    pub(crate) fn record_key(&self, session: SessionId) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ns.len() + 9);
        out.extend_from_slice(&self.ns);
        out.push(SESSION);
        out.extend_from_slice(&session.to_be_bytes());
        out
    }

    /// The user key of a stored data key.
    pub(crate) fn user_key(&self, stored: &[u8]) -> Bytes {
        Bytes::copy_from_slice(stored.get(self.ns.len() + 1..).unwrap_or_default())
    }

    /// Every data key of the namespace: `[ns‖0x00, ns‖0x01)`.
    pub(crate) fn all_data(&self) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.ns.clone();
        start.push(DATA);
        let mut end = self.ns.clone();
        end.push(DATA + 1);
        (start, end)
    }

    /// Every session record of the namespace: `[ns‖0x01, ns‖0x02)`.
    pub(crate) fn all_records(&self) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.ns.clone();
        start.push(SESSION);
        let mut end = self.ns.clone();
        end.push(SESSION + 1);
        (start, end)
    }

    /// `range` as etcd's `[start, end)`, or `None` if it holds no key.
    pub(crate) fn range(&self, range: &KeyRange) -> Option<(Vec<u8>, Vec<u8>)> {
        if range.is_empty() {
            return None;
        }
        let (all_start, all_end) = self.all_data();
        let start = match &range.lower {
            Bound::Unbounded => all_start,
            Bound::Included(l) => self.data_key(l),
            Bound::Excluded(l) => successor(self.data_key(l)),
        };
        let end = match &range.upper {
            Bound::Unbounded => all_end,
            Bound::Excluded(u) => self.data_key(u),
            Bound::Included(u) => successor(self.data_key(u)),
        };
        (start < end).then_some((start, end))
    }
}

/// The smallest key greater than `key`: `key ‖ 0x00`.
pub(crate) fn successor(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// The smallest key above every key that starts with `prefix` (which must not be all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            break;
        }
    }
    end
}

/// Whether a namespace keeps its keys apart from every other namespace's: no 0x00 or 0x01
/// byte, so no namespace's prefix `ns ‖ 0x00` / `ns ‖ 0x01` starts another's.
pub(crate) fn valid_namespace(ns: &[u8]) -> bool {
    !ns.iter().any(|&b| b == DATA || b == SESSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_map_to_half_open_ranges() {
        let layout = Layout::new(b"db");
        let r = layout.range(&KeyRange::all().gt("a").lte("c")).unwrap();
        assert_eq!(r, (b"db\0a\0".to_vec(), b"db\0c\0".to_vec()));
        let r = layout.range(&KeyRange::all().gte("a").lt("c")).unwrap();
        assert_eq!(r, (b"db\0a".to_vec(), b"db\0c".to_vec()));
        assert_eq!(layout.range(&KeyRange::all()).unwrap(), (b"db\0".to_vec(), b"db\x01".to_vec()));
        assert_eq!(layout.range(&KeyRange::all().gt("a").lt("a")), None);
        assert_eq!(layout.range(&KeyRange::all().gt("a").lte("a")), None);
        assert_eq!(layout.user_key(b"db\0key"), Bytes::from("key"));
        assert_eq!(layout.record_key(1), b"db\x01\0\0\0\0\0\0\0\x01".to_vec());
        assert!(valid_namespace(b"db") && valid_namespace(b"") && !valid_namespace(b"a\0b"));
    }
}
