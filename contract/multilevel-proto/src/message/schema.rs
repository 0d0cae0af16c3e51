//! The schema: the messages of each direction and the types they carry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::change::{ChangeEvent, Cursor, WatchStart};
use crate::condition::Condition;
use crate::range::KeyRange;

/// The first four bytes of every handshake.
pub const MAGIC: [u8; 4] = *b"MLVL";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// A client session: chosen at random by the client, kept across its reconnects, and used by
/// the server to apply each write at most once.
pub type SessionId = u64;

/// The session a client presents when it will never replay a write (retry off): a store keeps
/// no record for it, so one-shot clients (a shell's `multilevel put`) leave nothing behind.
/// Random session ids are never this value.
pub const NO_REPLAY_SESSION: SessionId = 0;

/// First message from the client. Its layout is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Optional features the client understands, as bits
    /// ([`FEATURE_CONDITIONS`](crate::condition::FEATURE_CONDITIONS)).
    pub features: u64,
    /// The client's session, the same on every reconnect.
    pub session: SessionId,
    /// The largest frame the client accepts.
    pub max_frame: u32,
}

/// The server's answer to a valid [`ClientHello`]. Its layout is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Optional features both sides may use: those of the client's hello the server has.
    pub features: u64,
    /// The largest frame the server accepts.
    pub max_frame: u32,
    /// The largest key the store accepts.
    pub max_key_size: u32,
    /// How many requests the server works on at once per connection.
    pub max_in_flight: u32,
    /// How many iterators may be open at once per connection.
    pub max_iterators: u32,
    /// Whether the server refuses every write.
    pub readonly: bool,
}

/// Why a peer is closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GoodbyeReason {
    /// An orderly close.
    Normal,
    /// The handshake did not start with [`MAGIC`]: not a multilevel peer.
    BadMagic,
    /// The peers speak different protocol versions.
    VersionMismatch,
    /// The peer sent a malformed, unknown, oversized or out-of-order frame.
    ProtocolViolation,
    /// Nothing arrived from the peer for too long.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The server requires a token and the client gave none, or a wrong one.
    Unauthenticated,
    /// The server already holds as many connections as it allows.
    TooManyConnections,
}

/// The last message on a connection, saying why it ends. Its layout is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    /// The machine-readable reason.
    pub reason: GoodbyeReason,
    /// A message for humans.
    pub message: String,
}

/// What a failed request or iterator reports, as a code a program can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The server is read-only.
    ReadOnly,
    /// A server hook (preput, predel, prebatch) rejected the write; the message says why.
    Rejected,
    /// The database is full and could not grow.
    StorageFull,
    /// A key is longer than the server accepts.
    KeyTooLarge,
    /// A request would not fit in a frame.
    TooLarge,
    /// The connection already has as many open iterators as the server allows.
    TooManyIterators,
    /// The server ran out of snapshots (read transactions) for iterators.
    TooManySnapshots,
    /// The iterator is not known to the server (closed, or expired while idle).
    UnknownIterator,
    /// A replayed write is older than the outcomes the server remembers.
    ReplayExpired,
    /// The request was malformed.
    InvalidRequest,
    /// The server failed internally; the message has details.
    Internal,
    /// The connection's token is limited to a sublevel and the request reaches a key outside
    /// it; the message names the sublevel and the key or range. Sent only on connections
    /// whose token has a `sublevel=` scope.
    OutOfScope,
    /// An increment found a value that is not a decimal integer, or would overflow; nothing
    /// was applied.
    NotANumber,
    /// The request needs a feature the peer did not announce in its hello (e.g. conditional
    /// writes with an older server).
    Unsupported,
    /// A watch asked for changes older than the history the server keeps; the watch error
    /// names the oldest position still available.
    Compacted,
}

/// An error carried over the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct RemoteError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
}

impl RemoteError {
    /// A remote error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// One write inside an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove `key`.
    Del {
        /// The key.
        key: Bytes,
    },
}

impl BatchOp {
    /// The key this operation writes.
    pub fn key(&self) -> &Bytes {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Del { key } => key,
        }
    }
}

/// How an iterator walks its range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterOptions {
    /// The keys to visit.
    pub range: KeyRange,
    /// Walk from the highest key down.
    pub reverse: bool,
    /// Stop after this many entries.
    pub limit: Option<u64>,
    /// Deliver keys.
    pub keys: bool,
    /// Deliver values.
    pub values: bool,
}

impl Default for IterOptions {
    fn default() -> Self {
        Self { range: KeyRange::all(), reverse: false, limit: None, keys: true, values: true }
    }
}

/// One entry of an iterator batch: the key and value, each present if it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The key, when the iterator delivers keys.
    pub key: Option<Bytes>,
    /// The value, when the iterator delivers values.
    pub value: Option<Bytes>,
}

/// Messages from client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The handshake; must be the first frame.
    Hello(ClientHello),
    /// The client is closing the connection.
    Goodbye(Goodbye),
    /// A keepalive probe; the server answers with `Pong`.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to a server `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Read one key.
    Get {
        /// Request id.
        id: u64,
        /// The key.
        key: Bytes,
    },
    /// Read several keys at once.
    GetMany {
        /// Request id.
        id: u64,
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Write one key.
    Put {
        /// Request id.
        id: u64,
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove one key.
    Del {
        /// Request id.
        id: u64,
        /// The key.
        key: Bytes,
    },
    /// Apply several writes atomically.
    Batch {
        /// Request id.
        id: u64,
        /// The writes, in order.
        ops: Vec<BatchOp>,
    },
    /// Remove the keys of a range (at most `limit` of them, from the top if `reverse`).
    Clear {
        /// Request id.
        id: u64,
        /// The keys to remove.
        range: KeyRange,
        /// Remove from the highest key down.
        reverse: bool,
        /// Remove at most this many keys.
        limit: Option<u64>,
    },
    /// Open an iterator, or reopen one after a reconnect with its range already narrowed.
    IterOpen {
        /// Iterator id (from the request id space).
        id: u64,
        /// What to visit.
        options: IterOptions,
        /// Bytes of entry data the server may send before it waits for credit.
        credit: u64,
    },
    /// Allow the server to send this many more bytes of the iterator's entries.
    IterCredit {
        /// Iterator id.
        id: u64,
        /// Extra bytes allowed.
        bytes: u64,
    },
    /// Move an open iterator; data of earlier epochs is discarded by the client.
    IterSeek {
        /// Iterator id.
        id: u64,
        /// The new epoch; later data carries it.
        epoch: u32,
        /// What is left to visit from the seek target on: the client clips its original range
        /// at the target, so the server needs no memory of earlier positions.
        range: KeyRange,
        /// Entries still allowed from here on, replacing what was left of the limit.
        limit: Option<u64>,
        /// The credit, replacing what was left.
        credit: u64,
    },
    /// Close an iterator early.
    IterClose {
        /// Iterator id.
        id: u64,
    },
    /// Ask for the server's counters (entries, map size, connections...).
    Stats {
        /// Request id.
        id: u64,
    },
    /// Present a token; sent right after the hello to a server that requires one.
    Auth {
        /// The token.
        token: String,
    },
    /// Apply writes atomically if every condition holds, checked in the same transaction;
    /// answered with `Done` or `ConditionFailed`. Needs
    /// [`FEATURE_CONDITIONS`](crate::condition::FEATURE_CONDITIONS).
    Conditional {
        /// Request id.
        id: u64,
        /// The conditions, all of which must hold.
        conditions: Vec<Condition>,
        /// The writes, in order.
        ops: Vec<BatchOp>,
    },
    /// Add `by` to the counter at `key` on the server; answered with `Counter`. Needs
    /// [`FEATURE_CONDITIONS`](crate::condition::FEATURE_CONDITIONS).
    Increment {
        /// Request id.
        id: u64,
        /// The counter's key.
        key: Bytes,
        /// What to add (may be negative).
        by: i64,
    },
    /// Start a watch, or resume one after a reconnect at the cursor it reached. Needs
    /// [`FEATURE_WATCH`](crate::change::FEATURE_WATCH). Watches share the id space and the
    /// per-connection limit of iterators.
    Watch {
        /// Watch id (from the request id space).
        id: u64,
        /// The keys whose changes to deliver.
        range: KeyRange,
        /// Where to start.
        start: WatchStart,
        /// Deliver values.
        values: bool,
        /// Bytes of events (by [`ChangeEvent::cost`]) the server may send before it waits for
        /// credit.
        credit: u64,
    },
    /// Allow the server to send this many more bytes of a watch's events.
    WatchCredit {
        /// Watch id.
        id: u64,
        /// Extra bytes allowed.
        bytes: u64,
    },
    /// Stop a watch.
    WatchClose {
        /// Watch id.
        id: u64,
    },
}

/// Messages from server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The handshake answer; the first frame from the server.
    Hello(ServerHello),
    /// The server is closing the connection.
    Goodbye(Goodbye),
    /// A keepalive probe; the client answers with `Pong`.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to a client `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Answer to `Get`.
    Value {
        /// Request id.
        id: u64,
        /// The value, or `None` if the key is absent.
        value: Option<Bytes>,
    },
    /// Answer to `GetMany`, in the order of the keys asked.
    Values {
        /// Request id.
        id: u64,
        /// One slot per key.
        values: Vec<Option<Bytes>>,
    },
    /// A write succeeded.
    Done {
        /// Request id.
        id: u64,
    },
    /// A request failed.
    Error {
        /// Request id.
        id: u64,
        /// Why.
        error: RemoteError,
    },
    /// Entries of an iterator.
    IterData {
        /// Iterator id.
        id: u64,
        /// The seek epoch the entries belong to.
        epoch: u32,
        /// The entries, in iteration order.
        entries: Vec<WireEntry>,
        /// The key of the last entry, which is where a resumed iterator continues.
        last_key: Bytes,
    },
    /// The iterator has delivered everything.
    IterEnd {
        /// Iterator id.
        id: u64,
        /// The epoch that ended.
        epoch: u32,
    },
    /// The iterator failed; it is closed.
    IterError {
        /// Iterator id.
        id: u64,
        /// Why.
        error: RemoteError,
    },
    /// Answer to `Stats`: named counters, so servers can add some without a new version.
    Stats {
        /// Request id.
        id: u64,
        /// `(name, value)` pairs.
        stats: Vec<(String, u64)>,
    },
    /// Answer to `Conditional`: a condition failed and nothing was applied.
    ConditionFailed {
        /// Request id.
        id: u64,
        /// The position of the failed condition.
        index: u32,
        /// Its key's value when it was checked.
        current: Option<Bytes>,
    },
    /// Answer to `Increment`: the counter's new value.
    Counter {
        /// Request id.
        id: u64,
        /// The value after the increment.
        value: i64,
    },
    /// The watch started; its first change will be the one at `cursor`.
    WatchOpened {
        /// Watch id.
        id: u64,
        /// Where the feed starts (resolved from "now" if that was asked).
        cursor: Cursor,
    },
    /// Events of a watch, or only its progress when `events` is empty.
    WatchData {
        /// Watch id.
        id: u64,
        /// The events, in commit order.
        events: Vec<ChangeEvent>,
        /// Where the feed continues: a resumed watch starts here.
        next: Cursor,
    },
    /// The watch failed; it is closed.
    WatchError {
        /// Watch id.
        id: u64,
        /// Why.
        error: RemoteError,
        /// For [`ErrorCode::Compacted`]: the oldest position still available.
        oldest: Option<u64>,
    },
}
