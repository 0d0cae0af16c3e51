//! The flow-control cost of iterator entries, which both sides of an iterator count.

use bytes::Bytes;

use crate::message::WireEntry;

/// Fixed cost charged per iterator entry in flow control, so that entries without keys and
/// values still use up credit.
pub const ENTRY_OVERHEAD: u64 = 16;

/// The flow-control cost of one iterator entry: what it carries plus [`ENTRY_OVERHEAD`].
pub fn entry_cost(entry: &WireEntry) -> u64 {
    let key = entry.key.as_ref().map_or(0, Bytes::len);
    let value = entry.value.as_ref().map_or(0, Bytes::len);
    (key + value) as u64 + ENTRY_OVERHEAD
}
