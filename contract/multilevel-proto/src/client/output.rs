//! What the client sends: requests held back to go out in few writes, and everything else.

use bytes::Bytes;

use super::Client;
use crate::message::{ClientMessage, encode};

impl Client {
    /// Whether [`poll_transmit`](Self::poll_transmit) has bytes, e.g. iterator credit granted
    /// by [`iterator_next`](Self::iterator_next). Lets an adapter wake its writer only when
    /// needed.
    pub fn wants_transmit(&self) -> bool {
        !self.out.is_empty() || self.release_due()
    }

    /// Bytes to write to the transport, if any.
    ///
    /// Requests issued while others are on their way are held back until as many are waiting
    /// as are on their way, or until none is on its way any more (an answer arrived), so that
    /// many callers pipelining on one connection send them in a few large writes rather than
    /// one each, and the server reads and answers them in as few. A request issued when none
    /// is on its way goes out at once; anything else sent (an iterator frame, a ping) takes the
    /// held requests with it, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.release_due() {
            self.release_held();
        }
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Whether the held requests should go out now.
    pub(super) fn release_due(&self) -> bool {
        self.held_count > 0 && self.held_count >= self.sent_pending
    }

    /// Moves the held requests to the output, behind what is there.
    pub(super) fn release_held(&mut self) {
        if self.held_count == 0 {
            return;
        }
        if self.out.is_empty() {
            std::mem::swap(&mut self.out, &mut self.held);
        } else {
            self.out.extend_from_slice(&self.held);
            self.held.clear();
        }
        self.held_count = 0;
        // Every pending request has now been sent on this connection.
        self.sent_pending = self.requests.len();
        self.last_sent_id = self.next_id - 1;
    }

    pub(super) fn clear_held(&mut self) {
        self.held.clear();
        self.held_count = 0;
        self.sent_pending = 0;
        self.last_sent_id = 0;
    }

    /// Queues a frame other than a new request, behind the held requests.
    pub(super) fn send(&mut self, msg: &ClientMessage) {
        self.release_held();
        encode(msg, &mut self.out);
    }
}
