//! The client's watches: starting them (in a sublevel or not), reading, closing.

use bytes::Bytes;

use super::error::{IssueError, RequestError};
use super::event::ClientEvent;
use super::watch::{ClientWatch, WatchPoll};
use super::{Client, Phase};
use crate::change::{Cursor, FEATURE_WATCH, WatchOptions};
use crate::message::{ClientMessage, ErrorCode, RemoteError};
use crate::sublevel::SublevelPrefix;

pub(super) const UNSUPPORTED_WATCH: &str = "the server does not offer watches (it did not announce them in its hello)";

impl Client {
    /// Starts a watch: the changes to the keys of `options.range` from its start on, in commit
    /// order (see [`change`](crate::change)). Read it with [`watch_next`](Self::watch_next);
    /// end it with [`close_watch`](Self::close_watch). With retry on, it resumes after a
    /// reconnect exactly after the last event received.
    pub fn open_watch(&mut self, options: WatchOptions) -> Result<u64, IssueError> {
        self.open_watch_in(&SublevelPrefix::root(), options)
    }

    /// Starts a watch of `options.range` within the sublevel `sublevel`: its keys come
    /// without the prefix.
    pub fn open_watch_in(&mut self, sublevel: &SublevelPrefix, mut options: WatchOptions) -> Result<u64, IssueError> {
        if self.phase == Phase::Closed {
            return Err(IssueError::Closed);
        }
        if self.phase == Phase::Connected && !self.server_has(FEATURE_WATCH) {
            return Err(IssueError::Unsupported(UNSUPPORTED_WATCH));
        }
        let id = self.next_id;
        options.range = sublevel.range(&options.range);
        let prefix = Bytes::copy_from_slice(sublevel.as_bytes());
        let mut watch = ClientWatch::new(options, prefix);
        let msg = watch.open_message(id, self.config.iterator_window);
        self.check_limits(std::iter::empty(), &msg)?;
        self.next_id += 1;
        if self.phase == Phase::Connected {
            self.send(&msg);
        } else {
            watch.on_server = false;
        }
        self.watches.insert(id, watch);
        Ok(id)
    }

    /// Takes the next event of a watch. Unknown (closed) watches read as closed.
    pub fn watch_next(&mut self, id: u64) -> WatchPoll {
        let Some(watch) = self.watches.get_mut(&id) else { return WatchPoll::Error(RequestError::Closed) };
        let (poll, credit) = watch.next(self.config.iterator_window);
        if let Some(bytes) = credit
            && self.phase == Phase::Connected
        {
            self.send(&ClientMessage::WatchCredit { id, bytes });
        }
        poll
    }

    /// Where a watch would resume now: past every event received so far (not only those
    /// read). `None` until the server resolved a watch from "now".
    pub fn watch_cursor(&self, id: u64) -> Option<Cursor> {
        self.watches.get(&id)?.cursor()
    }

    /// Ends a watch.
    pub fn close_watch(&mut self, id: u64) {
        if let Some(watch) = self.watches.remove(&id)
            && watch.on_server
            && self.phase == Phase::Connected
        {
            self.send(&ClientMessage::WatchClose { id });
        }
    }

    /// Starts watch `id` on a new connection where it stands, or fails it if the server does
    /// not offer watches.
    pub(super) fn reopen_watch(&mut self, id: u64) {
        let window = self.config.iterator_window;
        if !self.server_has(FEATURE_WATCH) {
            self.fail_watch(id, RequestError::Remote(RemoteError::new(ErrorCode::Unsupported, UNSUPPORTED_WATCH)));
            return;
        }
        if let Some(watch) = self.watches.get_mut(&id) {
            let msg = watch.open_message(id, window);
            self.send(&msg);
        }
    }

    pub(super) fn fail_watch(&mut self, id: u64, error: RequestError) {
        if let Some(watch) = self.watches.get_mut(&id) {
            watch.on_server = false;
            watch.fail(error);
            self.events.push_back(ClientEvent::IteratorReadable { id });
        }
    }

    /// Handles a watch's frame from the server.
    pub(super) fn handle_watch_message(&mut self, msg: WatchMessage) -> Result<(), super::error::PeerMisbehaved> {
        match msg {
            WatchMessage::Opened { id, cursor } => {
                if let Some(watch) = self.watches.get_mut(&id) {
                    watch.handle_opened(cursor)?;
                }
            }
            WatchMessage::Data { id, events, next } => {
                if let Some(watch) = self.watches.get_mut(&id) {
                    let readable = !events.is_empty();
                    watch.handle_data(events, next)?;
                    if readable {
                        self.events.push_back(ClientEvent::IteratorReadable { id });
                    }
                }
            }
            WatchMessage::Error { id, error, oldest } => {
                let error = match (error.code, oldest) {
                    (ErrorCode::Compacted, Some(oldest)) => RequestError::Compacted { oldest },
                    _ => RequestError::Remote(error),
                };
                self.fail_watch(id, error);
            }
        }
        Ok(())
    }
}

/// The server messages of a watch, taken apart.
pub(super) enum WatchMessage {
    Opened { id: u64, cursor: Cursor },
    Data { id: u64, events: Vec<crate::change::ChangeEvent>, next: Cursor },
    Error { id: u64, error: RemoteError, oldest: Option<u64> },
}
