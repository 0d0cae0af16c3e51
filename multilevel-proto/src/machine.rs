//! What the two server state machines share, so an adapter can drive either:
//! [`ServerConnection`] (multilevel's own protocol) and [`ManyLevelServer`] (many-level's).

use std::time::Instant;

use bytes::Bytes;

use crate::manylevel::ManyLevelServer;
use crate::message::GoodbyeReason;
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
}

/// A server connection state machine; see [`ServerConnection`] for how to drive one. Each
/// method has the meaning of the inherent method of the same name.
pub trait ServerMachine: std::fmt::Debug + Send {
    /// Feeds bytes read from the transport.
    fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ServerError>;
    /// Passes the store's answer to the request emitted with `op`.
    fn handle_outcome(
        &mut self,
        op: OpId,
        result: Result<Outcome, StoreError>,
        now: Instant,
    ) -> Result<(), ServerError>;
    /// The next thing the adapter must do for the store.
    fn poll_event(&mut self) -> Option<ServerEvent>;
    /// Bytes to write to the transport, if any.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Tells the machine the time.
    fn handle_timeout(&mut self, now: Instant);
    /// Whether the adapter should read more bytes from the transport now.
    fn wants_input(&self) -> bool;
    /// Whether the connection is finished.
    fn is_closed(&self) -> bool;
    /// Starts an orderly close.
    fn close(&mut self, reason: GoodbyeReason, message: &str);
    /// Requests received and not yet answered.
    fn in_flight(&self) -> usize;
}

macro_rules! delegate {
    ($ty:ty) => {
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
        }
    };
}

delegate!(ServerConnection);
delegate!(ManyLevelServer);
