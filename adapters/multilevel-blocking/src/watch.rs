//! A blocking client's watch: an [`Iterator`] of change events.

use multilevel_proto::{CallError as Error, ChangeEvent, Cursor};

use crate::client::Client;

/// An open watch, an [`Iterator`] of change events in commit order that blocks for the next
/// one (see [`Client::watch`]). It ends only after an error (the client closed, the server
/// refused the watch, or the history it asked for was trimmed), which it yields once. Ended on
/// the server when dropped.
#[derive(Debug)]
pub struct Watch {
    pub(crate) client: Client,
    pub(crate) id: u64,
    pub(crate) failed: bool,
}

impl Watch {
    /// Where the watch would resume now, past every event received so far; `None` until the
    /// server told where a watch from "now" starts. Save it to start a later watch there.
    pub fn cursor(&self) -> Option<Cursor> {
        self.client.shared().lock().machine().watch_cursor(self.id)
    }
}

impl Iterator for Watch {
    type Item = Result<ChangeEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let shared = self.client.shared();
        let item = shared.block_on(|router, cx| router.poll_watch(self.id, cx));
        if shared.lock().machine().wants_transmit() {
            shared.flush(); // credit, when due
        }
        self.failed = item.is_err();
        Some(item.map_err(Error::from))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.client.shared().lock().close_watch(self.id);
        self.client.shared().flush();
    }
}
