//! The client's iterators: opening them (in a sublevel or not), reading, seeking, closing.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Client;
use super::Phase;
use super::error::{IssueError, RequestError};
use super::event::ClientEvent;
use super::iter::{ClientIterator, IterPoll};
use crate::message::{ClientMessage, ErrorCode, IterOptions, RemoteError, encoded_len};
use crate::sublevel::SublevelPrefix;

impl Client {
    /// Opens an iterator. Read it with [`iterator_next`](Self::iterator_next); close it with
    /// [`close_iterator`](Self::close_iterator) when done, which releases its server snapshot.
    pub fn open_iterator(&mut self, options: IterOptions) -> Result<u64, IssueError> {
        self.open_iterator_in(&SublevelPrefix::root(), options)
    }

    /// Opens an iterator over `options` in the sublevel `sublevel`: its range is kept inside
    /// the sublevel, its keys come without the prefix, and seeks are within the sublevel.
    pub fn open_iterator_in(&mut self, sublevel: &SublevelPrefix, options: IterOptions) -> Result<u64, IssueError> {
        if self.phase == Phase::Closed {
            return Err(IssueError::Closed);
        }
        let id = self.next_id;
        let prefix = Bytes::copy_from_slice(sublevel.as_bytes());
        let mut iter = ClientIterator::new(sublevel.iter_options(options), prefix);
        let msg = iter.open_message(id, self.config.iterator_window);
        self.check_limits(std::iter::empty(), &msg)?;
        self.next_id += 1;
        if self.phase == Phase::Connected {
            self.send(&msg);
        } else {
            iter.on_server = false;
        }
        self.iterators.insert(id, iter);
        Ok(id)
    }

    /// Takes the next entry of an iterator. Unknown (closed) iterators read as ended.
    pub fn iterator_next(&mut self, id: u64) -> IterPoll {
        let Some(iter) = self.iterators.get_mut(&id) else { return IterPoll::End };
        let (poll, credit) = iter.next(self.config.iterator_window);
        if let Some(bytes) = credit
            && self.phase == Phase::Connected
        {
            self.send(&ClientMessage::IterCredit { id, bytes });
        }
        poll
    }

    /// Moves up to `max_entries` entries of an iterator that have arrived to `out`, stopping
    /// once they cost `max_bytes` (see [`entry_cost`](crate::message::entry_cost)); returns how
    /// many. The same as that many [`iterator_next`](Self::iterator_next) calls, in one: when
    /// it returns 0, `iterator_next` tells whether the iterator ended, failed or waits.
    pub fn iterator_take(
        &mut self,
        id: u64,
        max_entries: usize,
        max_bytes: u64,
        out: &mut VecDeque<crate::message::WireEntry>,
    ) -> usize {
        let Some(iter) = self.iterators.get_mut(&id) else { return 0 };
        let (count, credit) = iter.take(self.config.iterator_window, max_entries, max_bytes, out);
        if let Some(bytes) = credit
            && self.phase == Phase::Connected
        {
            self.send(&ClientMessage::IterCredit { id, bytes });
        }
        count
    }

    /// Moves an iterator to the first key at or after `target` (at or before, in reverse),
    /// within its range. Entries buffered from before the seek are dropped.
    pub fn seek(&mut self, id: u64, target: Bytes) {
        let window = self.config.iterator_window;
        let Some(iter) = self.iterators.get_mut(&id) else { return };
        let msg = iter.seek(id, target, window);
        if self.phase != Phase::Connected {
            return; // reopened where it stands on the next connection
        }
        let msg = match msg {
            Some(msg) => msg,
            None if iter.needs_server() => iter.open_message(id, window),
            None => return,
        };
        self.send_iterator_frame(id, &msg);
    }

    /// Sends an iterator's open or seek, or fails the iterator if the frame would exceed the
    /// server's maximum (a seek to a huge key): sending it would only cost the connection, and
    /// with retry, every connection after it.
    pub(super) fn send_iterator_frame(&mut self, id: u64, msg: &ClientMessage) {
        let too_large = self.server.as_ref().map(|server| (encoded_len(msg), server.max_frame as usize));
        let Some((len, max)) = too_large.filter(|(len, max)| len > max) else {
            self.send(msg);
            return;
        };
        if !self.iterators.contains_key(&id) {
            return;
        }
        if matches!(msg, ClientMessage::IterSeek { .. }) {
            self.send(&ClientMessage::IterClose { id });
        }
        let Some(iter) = self.iterators.get_mut(&id) else { return };
        iter.on_server = false;
        let message = format!("iterator request of {len} bytes exceeds the server's maximum frame of {max} bytes");
        iter.fail(RequestError::Remote(RemoteError::new(ErrorCode::TooLarge, message)));
        self.events.push_back(ClientEvent::IteratorReadable { id });
    }

    /// Closes an iterator and releases its snapshot on the server.
    pub fn close_iterator(&mut self, id: u64) {
        if let Some(iter) = self.iterators.remove(&id)
            && iter.on_server
            && self.phase == Phase::Connected
        {
            self.send(&ClientMessage::IterClose { id });
        }
    }
}
