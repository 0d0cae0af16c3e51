//! multilevel on tokio: serve an LMDB database over TCP, Unix sockets or any async stream, and
//! use it from an async client that pipelines requests from many tasks, retries and resumes
//! iterators. (The `multilevel` program is the `multilevel` crate.)
//!
//! With `multilevel-tokio`, `tokio` (features `rt-multi-thread`, `macros`, `net`) and
//! `futures-util` as dependencies:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use multilevel_tokio::{Client, ClientOptions, IterOptions, Server, Store, StoreOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Store::open("./data", StoreOptions::default())?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7481").await?;
//! tokio::spawn(async move { server.serve_tcp(listener).await });
//!
//! let db = Client::tcp("127.0.0.1:7481", ClientOptions::default().retry(true));
//! db.put("hello", "world").await?;
//! assert_eq!(db.get("hello").await?.as_deref(), Some(&b"world"[..]));
//! let mut entries = db.iter(IterOptions::default())?;
//! while let Some(entry) = entries.next().await {
//!     println!("{:?}", entry?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`Error`]s: [`Error::kind`] says what happened without matching on the nested
//! types ([`Error::is_timeout`], [`Error::is_connection_refused`], [`Error::remote`] for the
//! server's code), and every type they hold is re-exported here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod in_process;
mod server;
mod sublevel;
mod table;
mod timer;
pub mod tls;
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
pub use sublevel::Sublevel;
pub use table::Table;
pub use transport::Transport;
