//! [`Entry`]: what the clients' iterators yield.

use bytes::Bytes;

use crate::WireEntry;

/// One entry of an iterator: a key and its value, to destructure as `Entry { key, value }` or
/// [`into_pair`](Self::into_pair). An iterator that asked for keys only
/// ([`IterOptions::values`](crate::IterOptions::values) off) gives empty values, and one that
/// asked for values only gives empty keys: the options say which half is meaningful, so the
/// entry does not make every caller unwrap two options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    /// The key (empty for a values-only iterator).
    pub key: Bytes,
    /// The value (empty for a keys-only iterator).
    pub value: Bytes,
}

impl Entry {
    /// The key and the value.
    pub fn into_pair(self) -> (Bytes, Bytes) {
        (self.key, self.value)
    }
}

impl From<WireEntry> for Entry {
    fn from(entry: WireEntry) -> Self {
        Self { key: entry.key.unwrap_or_default(), value: entry.value.unwrap_or_default() }
    }
}

impl From<(Bytes, Bytes)> for Entry {
    fn from((key, value): (Bytes, Bytes)) -> Self {
        Self { key, value }
    }
}
