//! multilevel on the runtime-neutral `futures-io` traits and `async-io` timers: one adapter
//! for [smol](https://docs.rs/smol) and for async-std.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052) and names smol as its successor.
//! This crate has no runtime of its own: it runs its tasks on a spawner you pass, so it works
//! on either. New code should use smol.
//!
//! With `multilevel-async-std`, `smol`, `async-net` and `futures-lite` as dependencies:
//!
//! ```no_run
//! use futures_lite::StreamExt;
//! use multilevel_async_std::{Client, ClientOptions, IterOptions, Server, Store, StoreOptions};
//!
//! smol::block_on(async {
//!     let spawn = |task| smol::spawn(task).detach();
//!     let server = Server::new(Store::open("./data", StoreOptions::default())?, spawn);
//!     let listener = async_net::TcpListener::bind("127.0.0.1:7481").await?;
//!     let addr = listener.local_addr()?;
//!     smol::spawn(async move { server.serve_tcp(listener).await }).detach();
//!
//!     let db = Client::tcp(addr, ClientOptions::default().retry(true), spawn);
//!     db.put("hello", "world").await?;
//!     let mut entries = db.iter(IterOptions::default())?;
//!     while let Some(entry) = entries.next().await {
//!         println!("{:?}", entry?);
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On async-std, pass `|task| { async_std::task::spawn(task); }` as the spawner.
//!
//! Errors are [`Error`]s: [`Error::kind`] says what happened without matching on the nested
//! types ([`Error::is_timeout`], [`Error::is_connection_refused`], [`Error::remote`] for the
//! server's code), and every type they hold is re-exported here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod in_process;
mod server;
mod spawn;
mod sublevel;
mod table;
mod transport;

pub use client::{Client, Entry, Iter, Watch};
#[cfg(feature = "json")]
pub use multilevel_proto::table::Json;
pub use multilevel_proto::table::{Postcard, TableError, TableIter};
pub use multilevel_proto::{
    BatchOp, CallError as Error, Change, ChangeEvent, ClientOptions, Condition, ConditionFailed, ConnectFailure,
    ConnectionError, ConnectionState, Cursor, ErrorCode, ErrorKind, IssueError, IterOptions, KeyRange, RemoteError,
    RequestError, WatchOptions, WatchStart,
};
pub use multilevel_store::{Store, StoreOptions};
pub use server::Server;
pub use spawn::{Spawn, Task};
pub use sublevel::Sublevel;
pub use table::Table;
pub use transport::Transport;
