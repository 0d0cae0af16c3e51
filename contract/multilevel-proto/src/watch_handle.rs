//! An open watch of an async client, shared by the adapters' `Watch` streams.

use std::task::{Context, Poll};

use crate::change::{ChangeEvent, Cursor, WatchOptions};
use crate::client::CallError;
use crate::router::RouterHost;
use crate::sublevel::SublevelPrefix;

/// An open watch of an async client: reading its events, and ending it (on the server too)
/// on drop. After an error it yields nothing more.
pub struct WatchHandle<H: RouterHost> {
    host: H,
    id: u64,
    failed: bool,
}

impl<H: RouterHost> std::fmt::Debug for WatchHandle<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle").field("id", &self.id).field("failed", &self.failed).finish_non_exhaustive()
    }
}

impl<H: RouterHost> WatchHandle<H> {
    /// Starts a watch in a sublevel (the root for the whole database) on `host`'s client.
    pub fn open_in(host: H, sublevel: &SublevelPrefix, options: WatchOptions) -> Result<Self, CallError> {
        let id = host.router().machine().open_watch_in(sublevel, options)?;
        host.wake_writer();
        Ok(Self { host, id, failed: false })
    }

    /// The next event; `Ready(Some(Err))` once if the watch fails, then `Ready(None)`.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ChangeEvent, CallError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let mut router = self.host.router();
        let poll = router.poll_watch(self.id, cx);
        if router.machine().wants_transmit() {
            self.host.wake_writer(); // credit for what was read
        }
        drop(router);
        match poll {
            Poll::Ready(Ok(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(Err(err)) => {
                self.failed = true;
                Poll::Ready(Some(Err(CallError::from(err))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Where the watch would resume now: past every event received so far. Save it (or the
    /// last event's `position`) to start a later watch there with
    /// [`WatchStart::At`](crate::WatchStart::At). `None` until the server told where a watch
    /// from "now" starts.
    pub fn cursor(&self) -> Option<Cursor> {
        self.host.router().machine().watch_cursor(self.id)
    }
}

impl<H: RouterHost> Drop for WatchHandle<H> {
    fn drop(&mut self) {
        self.host.router().close_watch(self.id);
        self.host.wake_writer();
    }
}
