//! Keeps a connection whose token is scoped to a sublevel inside it: every key and range of
//! its requests must lie in the sublevel, or the request is refused with
//! [`ErrorCode::OutOfScope`] before it reaches the store.

use std::fmt::Write as _;
use std::ops::Bound;

use bytes::Bytes;

use super::ServerConnection;
use crate::message::{ErrorCode, RemoteError, ServerMessage};
use crate::range::KeyRange;

/// Most bytes of a key shown in an error.
const SHOWN_KEY: usize = 48;

impl ServerConnection {
    /// Answers the first key outside the token's sublevel with an error; returns whether all
    /// keys lie inside.
    pub(super) fn check_scope_keys<'a>(&mut self, id: u64, keys: impl IntoIterator<Item = &'a Bytes>) -> bool {
        if self.scope.is_root() {
            return true;
        }
        let Some(key) = keys.into_iter().find(|key| !self.scope.contains_key(key)) else { return true };
        let message = format!("{}; the key {} is outside it", self.scope_limit(), show_key(key));
        self.send(&ServerMessage::Error { id, error: RemoteError::new(ErrorCode::OutOfScope, message) });
        false
    }

    /// Answers a range that reaches outside the token's sublevel with an error; returns
    /// whether it lies inside.
    pub(super) fn check_scope_range(&mut self, id: u64, range: &KeyRange, what: &str) -> bool {
        match self.out_of_scope_range(range, what) {
            Some(error) => {
                self.send(&ServerMessage::Error { id, error });
                false
            }
            None => true,
        }
    }

    /// The error for a `what` (clear, iterator, seek) over `range`, if the range reaches
    /// outside the token's sublevel.
    pub(super) fn out_of_scope_range(&self, range: &KeyRange, what: &str) -> Option<RemoteError> {
        if self.scope.contains_range(range) {
            return None;
        }
        let message = format!("{}; this {what}'s range {} reaches outside it", self.scope_limit(), show_range(range));
        Some(RemoteError::new(ErrorCode::OutOfScope, message))
    }

    /// "this connection's token is limited to the sublevel …": the first half of every refusal.
    fn scope_limit(&self) -> String {
        format!(
            "this connection's token is limited to the sublevel {} (stored keys starting with {})",
            self.scope.path(),
            show_key(self.scope.as_bytes())
        )
    }
}

/// A key for an error message: quoted, escaped, cut after [`SHOWN_KEY`] bytes.
fn show_key(key: &[u8]) -> String {
    let mut shown = String::from("\"");
    let _ = write!(shown, "{}", key[..key.len().min(SHOWN_KEY)].escape_ascii());
    if key.len() > SHOWN_KEY {
        let _ = write!(shown, "…({} bytes)", key.len());
    }
    shown.push('"');
    shown
}

/// A range for an error message, as bounds around `..`.
fn show_range(range: &KeyRange) -> String {
    let lower = match &range.lower {
        Bound::Unbounded => "(start".to_owned(),
        Bound::Included(key) => format!("[{}", show_key(key)),
        Bound::Excluded(key) => format!("({}", show_key(key)),
    };
    let upper = match &range.upper {
        Bound::Unbounded => "end)".to_owned(),
        Bound::Included(key) => format!("{}]", show_key(key)),
        Bound::Excluded(key) => format!("{})", show_key(key)),
    };
    format!("{lower}..{upper}")
}
