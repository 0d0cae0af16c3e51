//! Conditional writes and server-side counters (issue 16).
//!
//! A conditional batch ([`WriteOp::Conditional`](crate::WriteOp::Conditional)) carries
//! [`Condition`]s that the store checks in the same transaction as the batch's writes: if any
//! fails, nothing is applied and the caller learns which one and the key's value at that
//! moment ([`ConditionFailed`]). An increment ([`WriteOp::Increment`](crate::WriteOp::Increment))
//! reads, adds and writes a counter in one transaction on the server.
//!
//! # Counters
//!
//! A counter is stored as its value in decimal ASCII text (`-12`, `0`, `42`): readable from
//! the command line and from Node. An absent key counts as 0. An existing value that is not
//! such a number (optional `-`, then 1 to 19 digits, nothing else), or an increment that would
//! overflow an `i64`, fails with [`StoreError::NotANumber`] and applies nothing.
//!
//! # Replays
//!
//! The outcome of a conditional write or an increment ([`WriteAnswer`]) is kept in the
//! session's [`SessionRecord`](crate::store::SessionRecord) like a failure is, so a replay
//! after a reconnect gets the original answer (the same counter value, or the same failed
//! condition with the value seen then); it is never evaluated again.
//!
//! # Negotiation
//!
//! Clients announce [`FEATURE_CONDITIONS`] in their hello and servers answer with the features
//! both sides have. A client does not send a conditional write to a server that did not
//! announce it (the call fails with [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported)), and a server answers a
//! conditional write from a client that did not announce it with the same error.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The hello feature bit for conditional writes and increments.
pub const FEATURE_CONDITIONS: u64 = 1 << 0;

/// Every optional feature this crate speaks.
pub const SUPPORTED_FEATURES: u64 = FEATURE_CONDITIONS | crate::change::FEATURE_WATCH;

/// A condition on one key, checked atomically with a batch's writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Condition {
    /// The key is absent.
    Absent {
        /// The key.
        key: Bytes,
    },
    /// The key is present with exactly this value.
    Equals {
        /// The key.
        key: Bytes,
        /// The value it must have.
        value: Bytes,
    },
}

impl Condition {
    /// `key` is absent.
    pub fn absent(key: impl AsRef<[u8]>) -> Self {
        Condition::Absent { key: Bytes::copy_from_slice(key.as_ref()) }
    }

    /// `key` holds `value`.
    pub fn equals(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        Condition::Equals { key: Bytes::copy_from_slice(key.as_ref()), value: Bytes::copy_from_slice(value.as_ref()) }
    }

    /// `key` holds `value`, or is absent for `None`.
    pub fn is(key: impl AsRef<[u8]>, value: Option<impl AsRef<[u8]>>) -> Self {
        match value {
            Some(value) => Self::equals(key, value),
            None => Self::absent(key),
        }
    }

    /// The key the condition is about.
    pub fn key(&self) -> &Bytes {
        match self {
            Condition::Absent { key } | Condition::Equals { key, .. } => key,
        }
    }

    /// The same condition on another key (a sublevel's prefixing).
    pub fn with_key(self, key: Bytes) -> Self {
        match self {
            Condition::Absent { .. } => Condition::Absent { key },
            Condition::Equals { value, .. } => Condition::Equals { key, value },
        }
    }

    /// Whether the condition holds when the key's value is `current`.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match self {
            Condition::Absent { .. } => current.is_none(),
            Condition::Equals { value, .. } => current == Some(&value[..]),
        }
    }
}

/// Which condition of a conditional write failed, and the value its key had then. Nothing of
/// the write was applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("condition {index} failed")]
pub struct ConditionFailed {
    /// The position of the failed condition in the write's list (the first that failed).
    pub index: u32,
    /// The key's value when the condition was checked, `None` if it was absent.
    pub current: Option<Bytes>,
}

/// What a write answers on success, as a store records it for replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteAnswer {
    /// Applied.
    Done,
    /// An increment was applied; the counter's new value.
    Counter(i64),
    /// A condition failed; nothing was applied.
    Failed(ConditionFailed),
}

/// The first condition of `conditions` that does not hold, reading keys with `get` (which must
/// read inside the transaction that will apply the write).
pub fn first_failure<E>(
    conditions: &[Condition],
    mut get: impl FnMut(&Bytes) -> Result<Option<Bytes>, E>,
) -> Result<Option<ConditionFailed>, E> {
    for (index, condition) in conditions.iter().enumerate() {
        let current = get(condition.key())?;
        if !condition.holds(current.as_deref()) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            return Ok(Some(ConditionFailed { index, current }));
        }
    }
    Ok(None)
}

/// The stored form of a counter: its decimal ASCII text.
pub fn encode_counter(value: i64) -> Bytes {
    Bytes::from(value.to_string())
}

/// The counter stored as `stored`, if it is one (optional `-`, then 1 to 19 ASCII digits).
pub fn parse_counter(stored: &[u8]) -> Option<i64> {
    let digits = stored.strip_prefix(b"-").unwrap_or(stored);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(stored).ok()?.parse().ok()
}

/// The counter's new value after adding `by` to `current` (absent counts as 0), or the
/// error that applies nothing.
pub fn increment(key: &[u8], current: Option<&[u8]>, by: i64) -> Result<i64, StoreError> {
    let old = match current {
        None => 0,
        Some(stored) => parse_counter(stored).ok_or_else(|| {
            StoreError::NotANumber(format!(
                "the value of key {} is not a decimal integer: {}",
                show(key),
                show(&stored[..stored.len().min(64)])
            ))
        })?,
    };
    old.checked_add(by)
        .ok_or_else(|| StoreError::NotANumber(format!("adding {by} to {old} at key {} overflows an i64", show(key))))
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_strictly_and_round_trip() {
        for n in [0, 1, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(parse_counter(&encode_counter(n)), Some(n));
        }
        for bad in [&b""[..], b"-", b"+1", b" 1", b"1 ", b"1.0", b"0x1", b"abc", b"99999999999999999999"] {
            assert_eq!(parse_counter(bad), None, "{bad:?}");
        }
        assert_eq!(parse_counter(b"007"), Some(7));
    }

    #[test]
    fn increments_count_from_zero_and_refuse_what_is_not_a_number() {
        assert_eq!(increment(b"k", None, 5), Ok(5));
        assert_eq!(increment(b"k", Some(b"-3"), 5), Ok(2));
        assert!(matches!(increment(b"k", Some(b"x"), 1), Err(StoreError::NotANumber(_))));
        assert!(matches!(increment(b"k", Some(b"9223372036854775807"), 1), Err(StoreError::NotANumber(_))));
    }

    #[test]
    fn the_first_failed_condition_is_reported_with_the_value_seen() {
        let data = |k: &Bytes| Ok::<_, ()>((k.as_ref() == b"a").then(|| Bytes::from_static(b"1")));
        let ok = [Condition::equals("a", "1"), Condition::absent("b")];
        assert_eq!(first_failure(&ok, data), Ok(None));
        let bad = [Condition::absent("b"), Condition::absent("a"), Condition::equals("b", "")];
        assert_eq!(
            first_failure(&bad, data),
            Ok(Some(ConditionFailed { index: 1, current: Some(Bytes::from_static(b"1")) }))
        );
    }
}
