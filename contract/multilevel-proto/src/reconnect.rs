//! The clients' reconnect policy, written once for every adapter.
//!
//! An adapter's connection driver is a loop: open a transport through the user's connector,
//! run it until it ends, wait, and open the next. [`Reconnect`] decides everything in that loop
//! that is not I/O: what to tell the state machine at each step and how long to wait before
//! the next attempt. The adapter only connects, reads, writes and sleeps (running the
//! machine's timers meanwhile, so request deadlines fire whatever the connection is doing).
//!
//! ```text
//! loop {
//!     match connector() {
//!         Err(e)  => sleep(reconnect.connect_failed(&mut router, &e, now, random)),
//!         Ok(t)   => {
//!             reconnect.connected(&mut router, now);
//!             ... read and write t until it ends or the machine gives it up ...
//!             if let Some(delay) = reconnect.disconnected(&mut router, now, random) { sleep(delay) }
//!         }
//!     }
//! }
//! ```
//!
//! Each step feeds the machine; the adapter then calls [`Router::dispatch`] as after any
//! other call that feeds it.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::client::ConnectFailure;
use crate::router::Router;

/// The reconnect policy of one client: backoff between failed attempts, reset by a connection
/// that completed its handshake.
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
    /// Handshakes completed when the current transport came up.
    handshakes_at_connect: u64,
}

impl Reconnect {
    /// A policy waiting between failed attempts as `backoff` says.
    pub fn new(backoff: Backoff) -> Self {
        Self { backoff, handshakes_at_connect: 0 }
    }

    /// Call when the connector failed: tells the machine (which fails the waiting requests
    /// with the cause when retry is off), and returns how long to wait before the next
    /// attempt. `random` is any uniformly random number, for the jitter.
    pub fn connect_failed(
        &mut self,
        router: &mut Router,
        error: &std::io::Error,
        now: Instant,
        random: u64,
    ) -> Duration {
        router.machine().handle_connect_failed(ConnectFailure::from(error), now);
        self.backoff.next_delay(random)
    }

    /// Call when a transport came up, before reading from it: the machine sends its handshake.
    pub fn connected(&mut self, router: &mut Router, now: Instant) {
        self.handshakes_at_connect = router.machine().handshakes();
        router.machine().handle_connected(now);
    }

    /// Call when the transport ended (or the machine gave it up and the adapter closed it):
    /// tells the machine, and returns how long to wait before connecting again: `None` (at
    /// once) after a connection that completed its handshake, else the next backoff delay,
    /// so a server that accepts connections but never completes a handshake (at its
    /// connection cap, or not a server at all) is not hammered.
    pub fn disconnected(&mut self, router: &mut Router, now: Instant, random: u64) -> Option<Duration> {
        router.machine().handle_disconnected(now);
        if router.machine().handshakes() > self.handshakes_at_connect {
            self.backoff.reset();
            None
        } else {
            Some(self.backoff.next_delay(random))
        }
    }
}
