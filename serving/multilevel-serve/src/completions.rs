//! The queue through which a backend hands queued results back to a connection.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;

use multilevel_proto::backend::Completions;
use multilevel_proto::{OpId, Outcome, StoreError};

/// A result a backend finished later.
pub(crate) type Completion = (OpId, Result<Outcome, StoreError>);

/// Results waiting for the connection, and who to wake when one arrives.
#[derive(Default)]
pub(crate) struct CompletionQueue {
    queue: Mutex<(VecDeque<Completion>, Option<Waker>)>,
}

impl CompletionQueue {
    /// Takes everything queued; when nothing is, registers `waker` and returns nothing.
    pub(crate) fn take_or_register(&self, waker: &Waker) -> Vec<Completion> {
        let mut guard = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if guard.0.is_empty() {
            guard.1 = Some(waker.clone());
            return Vec::new();
        }
        guard.0.drain(..).collect()
    }
}

impl Completions for CompletionQueue {
    fn complete(&self, op: OpId, result: Result<Outcome, StoreError>) {
        let waker = {
            let mut guard = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.push_back((op, result));
            guard.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
