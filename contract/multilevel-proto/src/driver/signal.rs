//! A wake-up for one waiting task, runtime-free: a notification is kept until it is taken, so
//! none is lost between a check and a wait (as tokio's `Notify::notify_one`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

/// Tells one task (the driver, or the writer loop) to look again.
#[derive(Debug, Default)]
pub(super) struct Signal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Wakes the waiting task, or the next one to wait.
    pub(super) fn notify(&self) {
        self.set.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `Ready` once notified since the last `Ready`; else registers `cx`.
    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::SeqCst) {
            return Poll::Ready(());
        }
        {
            let mut waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match &*waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        if self.set.swap(false, Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}
