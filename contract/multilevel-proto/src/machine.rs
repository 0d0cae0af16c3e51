//! What the two server state machines share, so an adapter can drive either:
//! [`ServerConnection`] (multilevel's own protocol) and [`ManyLevelServer`] (many-level's).

use std::time::Instant;

use bytes::Bytes;

use crate::manylevel::ManyLevelServer;
use crate::message::{GoodbyeReason, SessionId};
use crate::server::{OpId, ServerConfig, ServerConnection, ServerError, ServerEvent};
use crate::store::{Outcome, StoreError};

/// The wire protocol a server speaks on a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// multilevel's own protocol: handshake, sessions, at-most-once writes.
    #[default]
    Multilevel,
    /// many-level 2.0, for Node guests (`many-level`, `rave-level`).
    ManyLevel,
}

impl Protocol {
    /// The state machine for a new connection speaking this protocol.
    pub fn machine(self, config: ServerConfig, now: Instant) -> Box<dyn ServerMachine> {
        match self {
            Protocol::Multilevel => Box::new(ServerConnection::new(config, now)),
            Protocol::ManyLevel => Box::new(ManyLevelServer::new(config, now)),
        }
    }

    /// The bytes that turn a connection away before it is served (e.g. past a server's
    /// connection cap): the goodbye with `reason` and `message` that this protocol's machine
    /// sends when closed, encoded by that machine. Empty for [`Protocol::ManyLevel`], which has
    /// no goodbye: closing the transport is the refusal.
    pub fn goodbye(self, reason: GoodbyeReason, message: &str) -> Vec<u8> {
        let mut machine = self.machine(ServerConfig::default(), Instant::now());
        machine.close(reason, message);
        let mut out = Vec::new();
        while let Some(bytes) = machine.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        out
    }
}

/// A server connection state machine: [`ServerConnection`] or [`ManyLevelServer`], driven
/// the same way.
///
/// # Driving it
///
/// ```text
/// bytes arrived from the client   -> handle_input(bytes, now), only while wants_input()
/// a store request finished        -> handle_outcome(op, result, now)
/// the time from poll_timeout came -> handle_timeout(now)
/// shutting down                   -> close(reason, message)
/// after any of the above          -> run every poll_event() against the store, write every
///                                    poll_transmit() to the transport, re-arm the timer with
///                                    poll_timeout()
/// is_closed() and output written  -> close the transport
/// ```
///
/// The machine never blocks and owns no I/O: reading stops when `wants_input` is false (too
/// much output waiting, too many requests in flight), which is how a client that does not read
/// is made to push back.
pub trait ServerMachine: std::fmt::Debug + Send {
    /// Feeds bytes read from the transport; call it only while [`wants_input`](Self::wants_input).
    /// An error means the connection is closing: a goodbye saying why waits in the output.
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ServerError>;
    /// Passes the store's answer to the request emitted as [`ServerEvent::Store`] with `op`;
    /// call it once per such event, when the store has answered (at once or later).
    fn handle_outcome(
        &mut self,
        op: OpId,
        result: Result<Outcome, StoreError>,
        now: Instant,
    ) -> Result<(), ServerError>;
    /// The next thing the adapter must do for the store; drain it after every `handle_*` call.
    #[must_use]
    fn poll_event(&mut self) -> Option<ServerEvent>;
    /// Bytes to write to the transport, if any; drain it after every `handle_*` call and
    /// write them in order.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// When [`handle_timeout`](Self::handle_timeout) must next be called (idle timeout,
    /// keepalive); `None` when no timer is needed. Re-arm after every `handle_*` call.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
    /// Tells the machine the time; call it when the instant from
    /// [`poll_timeout`](Self::poll_timeout) has passed (calling it early is harmless).
    fn handle_timeout(&mut self, now: Instant);
    /// Whether the adapter should read more bytes from the transport now.
    fn wants_input(&self) -> bool;
    /// Whether the connection is finished: once true and the output is written, close the
    /// transport.
    fn is_closed(&self) -> bool;
    /// Starts an orderly close, e.g. on server shutdown: a goodbye with `reason` and `message`
    /// goes out and iterators are released (as [`ServerEvent::CloseIterator`]s). Outcomes of
    /// requests already handed to the store are still accepted but not sent: to let them
    /// finish, wait until [`in_flight`](Self::in_flight) is zero first.
    fn close(&mut self, reason: GoodbyeReason, message: &str);
    /// Requests received and not yet answered.
    fn in_flight(&self) -> usize;
    /// The client's session once the handshake gave it; `None` before, and for protocols
    /// without sessions.
    fn session(&self) -> Option<SessionId> {
        None
    }
}

macro_rules! delegate {
    ($ty:ty $(, $extra:item)*) => {
        impl ServerMachine for $ty {
            fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ServerError> {
                <$ty>::handle_input(self, bytes, now)
            }
            fn handle_outcome(
                &mut self,
                op: OpId,
                result: Result<Outcome, StoreError>,
                now: Instant,
            ) -> Result<(), ServerError> {
                <$ty>::handle_outcome(self, op, result, now)
            }
            fn poll_event(&mut self) -> Option<ServerEvent> {
                <$ty>::poll_event(self)
            }
            fn poll_transmit(&mut self) -> Option<Bytes> {
                <$ty>::poll_transmit(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$ty>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$ty>::handle_timeout(self, now)
            }
            fn wants_input(&self) -> bool {
                <$ty>::wants_input(self)
            }
            fn is_closed(&self) -> bool {
                <$ty>::is_closed(self)
            }
            fn close(&mut self, reason: GoodbyeReason, message: &str) {
                <$ty>::close(self, reason, message)
            }
            fn in_flight(&self) -> usize {
                <$ty>::in_flight(self)
            }
            $($extra)*
        }
    };
}

delegate!(
    ServerConnection,
    fn session(&self) -> Option<SessionId> {
        ServerConnection::session(self)
    }
);
delegate!(ManyLevelServer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ServerMessage, decode};

    #[test]
    fn a_refusal_is_the_machines_own_goodbye_or_nothing() {
        let bytes = Protocol::Multilevel.goodbye(GoodbyeReason::TooManyConnections, "full");
        let mut decoder = crate::FrameDecoder::new(1 << 20);
        decoder.push(&bytes);
        let frame = decoder.next_frame().unwrap().expect("one frame");
        let ServerMessage::Goodbye(goodbye) = decode(&frame).unwrap() else { panic!("not a goodbye") };
        assert_eq!((goodbye.reason, goodbye.message.as_str()), (GoodbyeReason::TooManyConnections, "full"));
        assert!(decoder.next_frame().unwrap().is_none());
        assert!(Protocol::ManyLevel.goodbye(GoodbyeReason::TooManyConnections, "full").is_empty());
    }
}
