//! The client's timers: request deadlines and keepalive.

use std::time::Instant;

use super::error::{ConnectionError, RequestError};
use super::{Client, Phase};
use crate::message::ClientMessage;

impl Client {
    /// Tells the machine the time; call it when [`poll_timeout`](Self::poll_timeout) passes.
    /// Fails requests past their deadline, sends keepalive pings and gives up a silent server.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired: Vec<u64> = match self.with_deadline {
            0 => Vec::new(),
            _ => {
                self.requests.iter().filter(|(_, p)| p.deadline.is_some_and(|d| d <= now)).map(|(id, _)| *id).collect()
            }
        };
        expired.sort_unstable();
        for id in expired {
            self.finish(id, Err(RequestError::TimedOut));
        }
        if !matches!(self.phase, Phase::Handshaking | Phase::Connected) {
            return;
        }
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.config.keepalive_timeout {
            self.lose(ConnectionError::KeepaliveTimeout(self.config.keepalive_timeout));
        } else if self.phase == Phase::Connected && silent >= self.config.keepalive_interval && !self.ping_outstanding {
            self.ping_outstanding = true;
            self.next_nonce += 1;
            self.send(&ClientMessage::Ping { nonce: self.next_nonce });
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A scan of every pending request, only when one of them has a deadline.
        let deadline = match self.with_deadline {
            0 => None,
            _ => self.requests.values().filter_map(|p| p.deadline).min(),
        };
        let keepalive = match self.phase {
            Phase::Connected if !self.ping_outstanding => Some(self.last_heard + self.config.keepalive_interval),
            Phase::Connected | Phase::Handshaking => Some(self.last_heard + self.config.keepalive_timeout),
            Phase::Disconnected | Phase::Closed => None,
        };
        [deadline, keepalive].into_iter().flatten().min()
    }
}
