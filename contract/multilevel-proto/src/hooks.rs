//! Checks every backend runs before applying a write: the key limit and the server's write
//! hooks (the `preput`, `predel` and `prebatch` options of a multileveldown server), written
//! once so every backend refuses the same writes with the same errors.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::message::BatchOp;
use crate::store::{StoreError, WriteOp};

/// A hook on single puts: gets the key and the value; `Err(message)` rejects the write.
pub type PutHook = Arc<dyn Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync>;
/// A hook on single deletes: gets the key; `Err(message)` rejects the write.
pub type DelHook = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;
/// A hook on batches: gets the operations; `Err(message)` rejects the whole batch.
pub type BatchHook = Arc<dyn Fn(&[BatchOp]) -> Result<(), String> + Send + Sync>;

/// Checks a backend runs before a write is applied.
///
/// A hook that returns `Err(message)` rejects the write: the client gets
/// [`StoreError::Rejected`] with the message verbatim, nothing is written, and a replay of the
/// same write gets the same rejection without running the hook again. A hook that panics
/// rejects the write with a message saying so. `Clear` runs no hook, and no hook runs on a
/// read-only store. A conditional batch runs `prebatch` on its writes (before its conditions
/// are checked); an increment runs `preput` with its key and its delta in decimal text (the
/// new value is only known inside the transaction).
///
/// Hooks run where the backend applies writes (the LMDB store: on its writer thread, inside
/// the group's write transaction), so they should be quick and should not call back into the
/// store: a write they wait for could only run after them.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs before every `Put`.
    pub preput: Option<PutHook>,
    /// Runs before every `Del`.
    pub predel: Option<DelHook>,
    /// Runs before every `Batch`.
    pub prebatch: Option<BatchHook>,
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hook run before every `Put`.
    pub fn preput(mut self, hook: impl Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.preput = Some(Arc::new(hook));
        self
    }

    /// Sets the hook run before every `Del`.
    pub fn predel(mut self, hook: impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.predel = Some(Arc::new(hook));
        self
    }

    /// Sets the hook run before every `Batch`.
    pub fn prebatch(mut self, hook: impl Fn(&[BatchOp]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.prebatch = Some(Arc::new(hook));
        self
    }

    /// Runs the hook for `op`, if any; a panicking hook rejects the write.
    pub fn check(&self, op: &WriteOp) -> Result<(), StoreError> {
        let verdict = match op {
            WriteOp::Put { key, value } => {
                self.preput.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(key, value))))
            }
            WriteOp::Del { key } => self.predel.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(key)))),
            WriteOp::Batch(ops) | WriteOp::Conditional { ops, .. } => {
                self.prebatch.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(ops))))
            }
            // The new value is only known inside the transaction: the hook sees the delta.
            WriteOp::Increment { key, by } => {
                let by = by.to_string();
                self.preput.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(key, by.as_bytes()))))
            }
            WriteOp::Clear { .. } => None,
        };
        match verdict {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(message))) => Err(StoreError::Rejected(message)),
            Some(Err(_panic)) => Err(StoreError::Rejected("the server's write hook panicked".into())),
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("preput", &self.preput.is_some())
            .field("predel", &self.predel.is_some())
            .field("prebatch", &self.prebatch.is_some())
            .finish()
    }
}

fn check_key(key: &[u8], max: usize) -> Result<(), StoreError> {
    if key.len() > max { Err(StoreError::KeyTooLarge { len: key.len(), max }) } else { Ok(()) }
}

/// Fails if any key the write sets or removes is longer than `max`. A `Clear` range may have
/// bounds of any length.
pub fn check_keys(op: &WriteOp, max: usize) -> Result<(), StoreError> {
    match op {
        WriteOp::Put { key, .. } | WriteOp::Del { key } | WriteOp::Increment { key, .. } => check_key(key, max),
        WriteOp::Batch(ops) => ops.iter().try_for_each(|op| check_key(op.key(), max)),
        WriteOp::Conditional { conditions, ops } => conditions
            .iter()
            .map(crate::condition::Condition::key)
            .chain(ops.iter().map(BatchOp::key))
            .try_for_each(|key| check_key(key, max)),
        WriteOp::Clear { .. } => Ok(()),
    }
}

/// The checks of a write, in the order every backend runs them: keys, then the hook.
pub fn verdict(op: &WriteOp, max_key_size: usize, hooks: &Hooks) -> Result<(), StoreError> {
    check_keys(op, max_key_size).and_then(|()| hooks.check(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_before_hooks_and_a_panicking_hook_rejects() {
        let hooks = Hooks::new().preput(|_, _| panic!("boom")).predel(|key| Err(format!("no {key:?}")));
        let long = WriteOp::Put { key: vec![0; 11].into(), value: "v".into() };
        assert_eq!(verdict(&long, 10, &hooks), Err(StoreError::KeyTooLarge { len: 11, max: 10 }));
        let put = WriteOp::Put { key: "k".into(), value: "v".into() };
        assert_eq!(verdict(&put, 10, &hooks), Err(StoreError::Rejected("the server's write hook panicked".into())));
        let del = WriteOp::Del { key: "k".into() };
        assert_eq!(verdict(&del, 10, &hooks), Err(StoreError::Rejected("no [107]".into())));
        let clear = WriteOp::Clear { range: crate::KeyRange::all(), reverse: false, limit: None };
        assert_eq!(verdict(&clear, 10, &hooks), Ok(()));
    }

    #[test]
    fn conditional_writes_run_prebatch_and_increments_preput_with_their_delta() {
        let hooks = Hooks::new()
            .preput(|key, value| if value == b"-3" { Err(format!("{key:?} may not go down")) } else { Ok(()) })
            .prebatch(|ops| if ops.is_empty() { Err("empty".into()) } else { Ok(()) });
        let conditional = |ops| WriteOp::Conditional { conditions: vec![crate::Condition::absent("c")], ops };
        assert_eq!(verdict(&conditional(vec![]), 10, &hooks), Err(StoreError::Rejected("empty".into())));
        assert_eq!(verdict(&conditional(vec![BatchOp::Del { key: "k".into() }]), 10, &hooks), Ok(()));
        let down = WriteOp::Increment { key: "n".into(), by: -3 };
        assert_eq!(verdict(&down, 10, &hooks), Err(StoreError::Rejected("[110] may not go down".into())));
        assert_eq!(verdict(&WriteOp::Increment { key: "n".into(), by: 3 }, 10, &hooks), Ok(()));
        // Condition keys count against the key limit too.
        let long = WriteOp::Conditional { conditions: vec![crate::Condition::absent([0; 11])], ops: vec![] };
        assert_eq!(verdict(&long, 10, &hooks), Err(StoreError::KeyTooLarge { len: 11, max: 10 }));
    }
}
