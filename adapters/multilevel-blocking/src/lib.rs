//! multilevel on plain threads: serve an LMDB database over any byte stream, and use it from
//! a blocking client that pipelines requests from many threads, retries and resumes iterators.
//!
//! With only `multilevel-blocking` as a dependency:
//!
//! ```no_run
//! use multilevel_blocking::{Client, ClientOptions, Server, Store, StoreOptions};
//!
//! // Server: one LMDB environment, any number of connections.
//! let store = Store::open("./data", StoreOptions::default())?;
//! let server = Server::new(store);
//! let listener = std::net::TcpListener::bind("127.0.0.1:7481")?;
//! std::thread::spawn(move || server.serve_tcp(listener));
//!
//! // Client, in this or any other process.
//! let db = Client::tcp("127.0.0.1:7481", ClientOptions::default().retry(true));
//! db.put("hello", "world")?;
//! assert_eq!(db.get("hello")?.as_deref(), Some(&b"world"[..]));
//! for entry in db.iter(Default::default())? {
//!     let entry = entry?;
//!     println!("{:?} = {:?}", entry.key, entry.value);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Errors are [`Error`]s: [`Error::kind`] says what happened without matching on the nested
//! types ([`Error::is_timeout`], [`Error::is_connection_refused`], [`Error::remote`] for the
//! server's code), and every type they hold is re-exported here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod driver;
mod in_process;
mod server;
mod table;
mod transport;
#[cfg(unix)]
mod unix;
mod views;
mod watch;

pub use client::{Client, Entry, Error};
#[cfg(feature = "json")]
pub use multilevel_proto::table::Json;
pub use multilevel_proto::table::{Postcard, TableError, TableIter};
pub use multilevel_proto::{
    BatchOp, Change, ChangeEvent, ClientOptions, Condition, ConditionFailed, ConnectFailure, ConnectionError,
    ConnectionState, Cursor, ErrorCode, ErrorKind, IssueError, IterOptions, KeyRange, RemoteError, RequestError,
    WatchOptions, WatchStart,
};
pub use multilevel_store::{Store, StoreOptions};
pub use server::{Server, ShutdownHandle};
pub use table::Table;
pub use transport::{Closer, Transport};
#[cfg(unix)]
pub use unix::{UnixBindError, bind_unix_replacing_stale};
pub use views::{Batch, Iter, Sublevel};
pub use watch::Watch;
