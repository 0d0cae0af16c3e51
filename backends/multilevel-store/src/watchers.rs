//! Watch reads waiting for a commit, of every connection, shared with the writer thread.
//!
//! A `ReadChanges` that finds no commit at or after its cursor registers here and is answered
//! later: by the writer, once a transaction that appended a commit is committed, or by
//! [`ConnectionStore::close_watch`](crate::ConnectionStore::close_watch). Either way the answer
//! is a wake-up (no events, the read's own cursor) and the server machine reads again inline.
//!
//! The registry keeps the newest committed position (`head`) under its mutex: the writer sets it
//! after each commit that appended, before waking, and a read registers only if `head` is still
//! before its cursor under that same lock. So a commit between the read's transaction and its
//! registration is never missed: the read either sees the new head and is answered at once, or
//! is registered before the writer takes the waiting reads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, PoisonError};

use multilevel_proto::Outcome;
use multilevel_proto::change::Cursor;

use crate::writer::Done;

/// One waiting `ReadChanges`.
struct WaitingRead {
    connection: u64,
    watch: u64,
    from: Cursor,
    done: Done,
}

impl WaitingRead {
    /// Answers the read with no events: the machine reads again, and finds what is new.
    fn wake(self) {
        let WaitingRead { from, done, .. } = self;
        if catch_unwind(AssertUnwindSafe(move || done(Ok(Outcome::Changes { events: Vec::new(), next: from }))))
            .is_err()
        {
            tracing::error!("a watch completion callback panicked");
        }
    }
}

#[derive(Default)]
struct State {
    /// The newest position committed by this process's writer (or found at open).
    head: u64,
    next_connection: u64,
    reads: Vec<WaitingRead>,
}

/// What [`Watchers::wait`] did.
pub(crate) enum Wait {
    /// The read is registered; `done` will be called once.
    Queued,
    /// A commit at or after the cursor happened meanwhile: read again now. `done` was dropped.
    Ready,
}

/// The waiting reads of every connection.
#[derive(Default)]
pub(crate) struct Watchers {
    state: Mutex<State>,
}

impl Watchers {
    /// A registry whose committed head starts at `head` (the log's head at open).
    pub(crate) fn new(head: u64) -> Self {
        Self { state: Mutex::new(State { head, ..State::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An identity for a new connection's reads.
    pub(crate) fn connection_id(&self) -> u64 {
        let mut state = self.lock();
        state.next_connection += 1;
        state.next_connection
    }

    /// Registers a read of `watch` from `from` on `connection` unless a commit at or after
    /// `from` is already known.
    pub(crate) fn wait(&self, connection: u64, watch: u64, from: Cursor, done: Done) -> Wait {
        let mut state = self.lock();
        if state.head >= from.position {
            return Wait::Ready;
        }
        state.reads.push(WaitingRead { connection, watch, from, done });
        Wait::Queued
    }

    /// Records that the commits up to `head` are durable and wakes every waiting read. The
    /// writer calls it after each commit that appended to the log.
    pub(crate) fn committed(&self, head: u64) {
        let woken = {
            let mut state = self.lock();
            state.head = state.head.max(head);
            std::mem::take(&mut state.reads)
        };
        woken.into_iter().for_each(WaitingRead::wake);
    }

    /// Answers the waiting read of `watch` on `connection`, if any, with no events.
    pub(crate) fn close(&self, connection: u64, watch: u64) {
        self.take(|read| read.connection == connection && read.watch == watch).into_iter().for_each(WaitingRead::wake);
    }

    /// Drops the waiting reads of `connection` unanswered (it is gone).
    pub(crate) fn forget(&self, connection: u64) {
        drop(self.take(|read| read.connection == connection));
    }

    /// Reads waiting now, across connections.
    pub(crate) fn len(&self) -> usize {
        self.lock().reads.len()
    }

    fn take(&self, matches: impl Fn(&WaitingRead) -> bool) -> Vec<WaitingRead> {
        let mut state = self.lock();
        let (taken, kept) = std::mem::take(&mut state.reads).into_iter().partition(|read| matches(read));
        state.reads = kept;
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn done(tx: &mpsc::Sender<Cursor>) -> Done {
        let tx = tx.clone();
        Box::new(move |result| {
            if let Ok(Outcome::Changes { events, next }) = result {
                assert!(events.is_empty());
                tx.send(next).unwrap();
            }
        })
    }

    #[test]
    fn a_read_registers_only_while_the_head_is_before_it() {
        let watchers = Watchers::new(5);
        let (tx, rx) = mpsc::channel();
        assert!(matches!(watchers.wait(1, 1, Cursor::at(5), done(&tx)), Wait::Ready));
        assert!(matches!(watchers.wait(1, 1, Cursor::at(6), done(&tx)), Wait::Queued));
        assert!(matches!(watchers.wait(2, 1, Cursor::at(6), done(&tx)), Wait::Queued));
        assert_eq!(watchers.len(), 2);
        watchers.close(1, 1);
        assert_eq!(rx.try_recv(), Ok(Cursor::at(6)));
        watchers.committed(6);
        assert_eq!(rx.try_recv(), Ok(Cursor::at(6)));
        assert!(rx.try_recv().is_err());
        // Committed while the read was between its transaction and its registration.
        assert!(matches!(watchers.wait(3, 1, Cursor::at(6), done(&tx)), Wait::Ready));
        assert_eq!(watchers.len(), 0);
    }
}
