//! The Sans-IO core of multilevel: share one ordered key-value store among many processes over
//! any reliable byte stream.
//!
//! This crate holds the wire format and the two state machines: no sockets, threads or
//! storage. Bytes and [`Instant`](std::time::Instant)s go in; bytes to send, store requests and
//! events come out. The adapters (`multilevel-tokio`, `multilevel-async-std`,
//! `multilevel-blocking`) are small loops around it, and a program with an unusual transport can
//! drive it by hand the same way. The one part that runs (reads the clock, awaits I/O) is the
//! async clients' driver, [`ClientDriver`]: still runtime-free, it reaches sockets and timers
//! only through the adapter's [`Runtime`].
//!
//! - [`Client`]: issue requests and open iterators; it retries and resumes across reconnects.
//! - [`ClientDriver`]: a [`Client`] with its callers, connection, timers and reconnects, for an
//!   async adapter to run on its [`Runtime`].
//! - [`ServerConnection`]: one per connection; it turns frames into [`StoreRequest`]s for the
//!   adapter to run against a store, and the store's answers back into frames.
//! - [`ManyLevelServer`]: the same for Node `many-level` guests ([`manylevel`]); both machines
//!   implement [`ServerMachine`], so an adapter can drive either ([`Protocol`]).
//! - [`store`]: the contract a store keeps, including at-most-once writes.
//! - [`change`]: the change feed a watch delivers, and where a watch resumes.
//! - [`MemoryStore`]: an in-memory store keeping that contract.
//!
//! # The rule for every caller
//!
//! After calling any `handle_*` method or issuing work, drain `poll_transmit` (write the bytes
//! out) and `poll_event` (act on each) until both return `None`, then sleep until new input,
//! the time from `poll_timeout`, or new work.
//!
//! # Example: a client and a server joined by hand
//!
//! ```
//! use std::time::Instant;
//! use multilevel_proto::{Client, ClientConfig, ClientEvent, MemorySnapshots, MemoryStore, Request,
//!     Response, ServerConfig, ServerConnection, ServerEvent};
//!
//! let now = Instant::now();
//! let mut client = Client::new(ClientConfig::new(7), now);
//! let mut server = ServerConnection::new(ServerConfig::default(), now);
//! let mut store = MemoryStore::new();
//! let mut snapshots = MemorySnapshots::default();
//!
//! client.handle_connected(now);
//! let put = client.issue(Request::Put { key: "k".into(), value: "v".into() }, now).unwrap();
//! let get = client.issue(Request::Get { key: "k".into() }, now).unwrap();
//!
//! // Pump bytes both ways and run store requests until everything is quiet.
//! let mut answers = Vec::new();
//! loop {
//!     let mut progress = false;
//!     while let Some(bytes) = client.poll_transmit() {
//!         server.handle_input(&bytes, now).unwrap();
//!         progress = true;
//!     }
//!     while let Some(event) = server.poll_event() {
//!         if let ServerEvent::Store { op, request } = event {
//!             let result = store.execute(&mut snapshots, request);
//!             server.handle_outcome(op, result, now).unwrap();
//!         }
//!         progress = true;
//!     }
//!     while let Some(bytes) = server.poll_transmit() {
//!         client.handle_input(&bytes, now).unwrap();
//!         progress = true;
//!     }
//!     while let Some(event) = client.poll_event() {
//!         if let ClientEvent::Response { id, result } = event {
//!             answers.push((id, result.unwrap()));
//!         }
//!     }
//!     if !progress {
//!         break;
//!     }
//! }
//! assert_eq!(answers, vec![(put, Response::Done), (get, Response::Value(Some("v".into())))]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod backend;
pub mod backoff;
pub mod change;
pub mod change_log;
pub mod client;
pub mod client_api;
pub mod condition;
pub mod driver;
pub mod endpoints;
mod entry;
pub mod frame;
pub mod hooks;
mod ids;
mod iter_cost;
pub mod machine;
pub mod manylevel;
pub mod memory;
pub mod message;
pub mod range;
pub mod reconnect;
pub mod router;
pub mod server;
// Test support (the deterministic simulation), public for the model tests and fuzz targets
// only: not part of the API.
#[doc(hidden)]
pub mod sim;
pub mod store;
pub mod sublevel;
pub mod table;
pub mod watch_handle;

#[doc(hidden)]
pub use bytes as __bytes;
#[doc(hidden)]
pub use serde as __serde;

pub use auth::{Grant, Role, Tokens, TokensError};
pub use backoff::Backoff;
pub use change::{Change, ChangeEvent, ChangeRead, Cursor, FEATURE_WATCH, LogSpan, WatchOptions, WatchStart};
pub use client::{
    CallError, Client, ClientConfig, ClientEvent, ClientOptions, ConnectFailure, ConnectionError, ConnectionState,
    ErrorKind, IssueError, IterPoll, Request, RequestError, Response, WatchPoll,
};
pub use condition::{Condition, ConditionFailed, FEATURE_CONDITIONS, WriteAnswer};
pub use driver::{ClientDriver, Connector, DriverTask, Runtime};
pub use endpoints::Endpoints;
pub use entry::Entry;
pub use frame::{FrameDecoder, FrameError};
pub use ids::{IdHasher, IdMap};
pub use machine::{Protocol, ServerMachine};
pub use manylevel::ManyLevelServer;
pub use memory::{MemoryBackend, MemoryConnection, MemorySnapshots, MemoryStore};
pub use message::{
    BatchOp, ClientMessage, DecodeError, ErrorCode, GoodbyeReason, IterOptions, NO_REPLAY_SESSION, PROTOCOL_VERSION,
    RemoteError, ServerHello, ServerMessage, SessionId, WireEntry,
};
pub use range::KeyRange;
pub use reconnect::Reconnect;
pub use router::{ConnectionChange, IterHandle, Router, RouterHost};
pub use server::{OpId, ServerConfig, ServerConnection, ServerError, ServerEvent};
pub use store::{BatchRead, Outcome, StoreError, StoreRequest, WriteOp, WriteRequest};
pub use sublevel::{SublevelPathError, SublevelPrefix};
pub use watch_handle::WatchHandle;
