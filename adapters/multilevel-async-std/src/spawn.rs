//! How this crate starts tasks without a runtime of its own: the caller passes a spawner.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// A task to run to completion on the caller's executor.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts tasks on an executor. Any `Fn(Task)` closure is one:
/// `|task| smol::spawn(task).detach()` for smol, `|task| { async_std::task::spawn(task); }`
/// for async-std.
pub trait Spawn: Send + Sync + 'static {
    /// Runs `task` in the background.
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync + 'static> Spawn for F {
    fn spawn(&self, task: Task) {
        self(task);
    }
}

/// A flag that can be awaited: set once, seen by every waiter.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    event: Event,
}

impl Signal {
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Wakes every current waiter without setting the flag (e.g. "something changed").
    pub(crate) fn pulse(&self) {
        self.event.notify(usize::MAX);
    }

    /// Waits until the flag is set.
    pub(crate) async fn wait(&self) {
        loop {
            if self.is_set() {
                return;
            }
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }

    /// Waits for the next pulse or set.
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.event.listen()
    }
}
