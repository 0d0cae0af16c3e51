//! The wire messages, one enum per direction, and their postcard encoding.
//!
//! Compatibility rule: variants and error codes are only ever appended, never reordered or
//! removed, and the handshake structs ([`ClientHello`], [`ServerHello`]) and [`Goodbye`] keep
//! their layout forever, so peers of different versions can still tell each other so.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::frame::put_prefix;
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

/// Hashes the `u64` ids that key the state machines' maps (request, iterator and store
/// operation ids): one multiplication instead of SipHash. Ids are chosen by this process or
/// increase by one, so there is no hash flooding to defend against.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fx-style: mixes sequential ids into the high bits hashbrown uses for its tags.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A map keyed by ids, hashed with [`IdHasher`].
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// First message from the client. Its layout is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Optional features the client understands (none are defined yet).
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
    /// Optional features both sides may use (none are defined yet).
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
}

/// Why a frame body could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame names a message variant this version does not know.
    #[error("unknown message variant {0}")]
    UnknownVariant(u32),
    /// The frame has bytes left over after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The frame is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Number of variants in [`ClientMessage`]; a tag at or above it is unknown.
const CLIENT_VARIANTS: u32 = 16;
/// Number of variants in [`ServerMessage`]; a tag at or above it is unknown.
const SERVER_VARIANTS: u32 = 12;

/// A message type that travels in frames.
pub trait WireMessage: Serialize + for<'de> Deserialize<'de> + Sized {
    /// How many variants this version knows.
    const VARIANTS: u32;
}

impl WireMessage for ClientMessage {
    const VARIANTS: u32 = CLIENT_VARIANTS;
}

impl WireMessage for ServerMessage {
    const VARIANTS: u32 = SERVER_VARIANTS;
}

/// Reads the postcard varint tag at the front of a frame.
fn peek_tag(body: &[u8]) -> Option<u32> {
    let mut value: u32 = 0;
    for (i, byte) in body.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Decodes one frame body, strictly: unknown variants and trailing bytes are errors.
pub fn decode<M: WireMessage>(body: &[u8]) -> Result<M, DecodeError> {
    let (msg, rest) = decode_prefix::<M>(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Decodes the message at the front of a frame body and returns the bytes after it.
///
/// Only the handshake uses this leniency, so that a newer peer whose hello grew can still be
/// told which version this side speaks.
pub fn decode_prefix<M: WireMessage>(body: &[u8]) -> Result<(M, &[u8]), DecodeError> {
    match peek_tag(body) {
        Some(tag) if tag >= M::VARIANTS => return Err(DecodeError::UnknownVariant(tag)),
        Some(_) => {}
        None => return Err(DecodeError::Malformed("missing or invalid message tag".into())),
    }
    postcard::take_from_bytes::<M>(body).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Decodes a frame body from the server exactly as [`decode`] does (same messages, same
/// errors), except that the keys and values of [`ServerMessage::IterData`] and
/// [`ServerMessage::Value`] are slices of `body` (a reference count each) rather than copies
/// (an allocation and a `memcpy` each). They keep `body`'s buffer alive while they live.
pub fn decode_server(body: &Bytes) -> Result<ServerMessage, DecodeError> {
    match shared::server_message(body) {
        Some(msg) => Ok(msg),
        // Anything else, including every malformed body, goes through the strict decoder.
        None => decode(body),
    }
}

/// Decodes a frame body from a client exactly as [`decode`] does (same messages, same errors),
/// except that the keys and values of [`ClientMessage::Get`], [`ClientMessage::Put`] and
/// [`ClientMessage::Del`] are slices of `body` (a reference count each) rather than copies.
/// They keep `body`'s buffer alive while they live.
pub fn decode_client(body: &Bytes) -> Result<ClientMessage, DecodeError> {
    match shared::client_message(body) {
        Some(msg) => Ok(msg),
        // Anything else, including every malformed body, goes through the strict decoder.
        None => decode(body),
    }
}

/// The zero-copy decoding of the server messages that carry bulk data, mirroring postcard's
/// format rule for rule; `None` means "not one of these, or not valid: use [`decode`]".
mod shared {
    use bytes::Bytes;

    use super::{ClientMessage, ServerMessage, WireEntry};

    /// Variant index of [`ClientMessage::Get`].
    const GET: u64 = 4;
    /// Variant index of [`ClientMessage::Put`].
    const PUT: u64 = 6;
    /// Variant index of [`ClientMessage::Del`].
    const DEL: u64 = 7;

    /// Variant index of [`ServerMessage::Value`].
    const VALUE: u64 = 4;
    /// Variant index of [`ServerMessage::IterData`].
    const ITER_DATA: u64 = 8;

    struct Reader<'a> {
        body: &'a Bytes,
        pos: usize,
    }

    impl Reader<'_> {
        fn byte(&mut self) -> Option<u8> {
            let byte = *self.body.get(self.pos)?;
            self.pos += 1;
            Some(byte)
        }

        /// A postcard varint of at most `max_len` bytes whose last byte is at most `last_max`.
        fn varint(&mut self, max_len: usize, last_max: u8) -> Option<u64> {
            let mut out = 0u64;
            for i in 0..max_len {
                let byte = self.byte()?;
                out |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return (i < max_len - 1 || byte <= last_max).then_some(out);
                }
            }
            None
        }

        fn u32(&mut self) -> Option<u32> {
            self.varint(5, 0x0f).and_then(|n| u32::try_from(n).ok())
        }

        fn u64(&mut self) -> Option<u64> {
            self.varint(10, 0x01)
        }

        fn bytes(&mut self) -> Option<Bytes> {
            let len = usize::try_from(self.u64()?).ok()?;
            let end = self.pos.checked_add(len).filter(|end| *end <= self.body.len())?;
            let bytes = self.body.slice(self.pos..end);
            self.pos = end;
            Some(bytes)
        }

        fn option_bytes(&mut self) -> Option<Option<Bytes>> {
            match self.byte()? {
                0 => Some(None),
                1 => self.bytes().map(Some),
                _ => None,
            }
        }
    }

    pub(super) fn client_message(body: &Bytes) -> Option<ClientMessage> {
        let mut r = Reader { body, pos: 0 };
        let msg = match u64::from(r.u32()?) {
            GET => ClientMessage::Get { id: r.u64()?, key: r.bytes()? },
            PUT => ClientMessage::Put { id: r.u64()?, key: r.bytes()?, value: r.bytes()? },
            DEL => ClientMessage::Del { id: r.u64()?, key: r.bytes()? },
            _ => return None,
        };
        (r.pos == body.len()).then_some(msg)
    }

    pub(super) fn server_message(body: &Bytes) -> Option<ServerMessage> {
        let mut r = Reader { body, pos: 0 };
        let msg = match u64::from(r.u32()?) {
            VALUE => ServerMessage::Value { id: r.u64()?, value: r.option_bytes()? },
            ITER_DATA => {
                let id = r.u64()?;
                let epoch = r.u32()?;
                let len = usize::try_from(r.u64()?).ok()?;
                // Each entry takes at least two bytes: never trust `len` for the allocation.
                let mut entries = Vec::with_capacity(len.min((body.len() - r.pos) / 2));
                for _ in 0..len {
                    entries.push(WireEntry { key: r.option_bytes()?, value: r.option_bytes()? });
                }
                ServerMessage::IterData { id, epoch, entries, last_key: r.bytes()? }
            }
            _ => return None,
        };
        (r.pos == body.len()).then_some(msg)
    }
}

/// Appends `msg` as one frame (length prefix and body) to `out`.
pub fn encode<M: WireMessage>(msg: &M, out: &mut BytesMut) {
    let len = postcard::experimental::serialized_size(msg).expect("wire messages always serialize");
    put_prefix(out, u32::try_from(len).expect("wire messages are far below 4 GiB"));
    out.reserve(len);
    postcard::serialize_with_flavor::<M, _, ()>(msg, AppendBytes(out)).expect("wire messages always serialize");
}

/// Appends `msg` as one frame to `out` if its body is at most `max` bytes; otherwise appends
/// nothing and returns the body's size.
pub fn encode_within<M: WireMessage>(msg: &M, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    let len = postcard::experimental::serialized_size(msg).expect("wire messages always serialize");
    if len > max {
        return Err(len);
    }
    put_prefix(out, u32::try_from(len).expect("wire messages are far below 4 GiB"));
    out.reserve(len);
    postcard::serialize_with_flavor::<M, _, ()>(msg, AppendBytes(out)).expect("wire messages always serialize");
    Ok(())
}

/// Lets postcard append straight into a `BytesMut` we only borrow, a slice at a time (keys and
/// values are copied with one `memcpy` each, not byte by byte).
struct AppendBytes<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for AppendBytes<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend_from_slice(&[data]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The size of `msg`'s frame body, for budget checks before encoding.
pub fn encoded_len<M: WireMessage>(msg: &M) -> usize {
    postcard::experimental::serialized_size(msg).expect("wire messages always serialize")
}

/// A `Bytes` holding a copy of `data`.
pub fn copy(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

/// Fixed cost charged per iterator entry in flow control, so that entries without keys and
/// values still use up credit.
pub const ENTRY_OVERHEAD: u64 = 16;

/// The flow-control cost of one iterator entry: what it carries plus [`ENTRY_OVERHEAD`].
pub fn entry_cost(entry: &WireEntry) -> u64 {
    let key = entry.key.as_ref().map_or(0, Bytes::len);
    let value = entry.value.as_ref().map_or(0, Bytes::len);
    (key + value) as u64 + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;

    fn samples() -> Vec<ClientMessage> {
        vec![
            ClientMessage::Hello(ClientHello {
                magic: MAGIC,
                version: PROTOCOL_VERSION,
                features: 0,
                session: 42,
                max_frame: 1 << 20,
            }),
            ClientMessage::Goodbye(Goodbye { reason: GoodbyeReason::Normal, message: "bye".into() }),
            ClientMessage::Ping { nonce: 1 },
            ClientMessage::Pong { nonce: 1 },
            ClientMessage::Get { id: 1, key: copy(b"") },
            ClientMessage::GetMany { id: 2, keys: vec![copy(b"a"), copy(&[0xff])] },
            ClientMessage::Put { id: 3, key: copy(b"k"), value: copy(b"v") },
            ClientMessage::Del { id: 4, key: copy(&[0]) },
            ClientMessage::Batch {
                id: 5,
                ops: vec![BatchOp::Put { key: copy(b"a"), value: copy(b"") }, BatchOp::Del { key: copy(b"b") }],
            },
            ClientMessage::Clear { id: 6, range: KeyRange::all().gt([1]).lte([9]), reverse: true, limit: Some(3) },
            ClientMessage::IterOpen { id: 7, options: IterOptions::default(), credit: 65536 },
            ClientMessage::IterCredit { id: 7, bytes: 100 },
            ClientMessage::IterSeek { id: 7, epoch: 1, range: KeyRange::all().gte(b"m"), limit: None, credit: 10 },
            ClientMessage::IterClose { id: 7 },
            ClientMessage::Stats { id: 8 },
            ClientMessage::Auth { token: "0123456789abcdef".into() },
        ]
    }

    #[test]
    fn every_client_variant_round_trips_and_the_count_is_right() {
        let samples = samples();
        assert_eq!(samples.len() as u32, CLIENT_VARIANTS);
        for msg in samples {
            let mut out = BytesMut::new();
            encode(&msg, &mut out);
            let mut dec = FrameDecoder::new(1 << 20);
            dec.push(&out);
            let body = dec.next_frame().unwrap().unwrap();
            assert_eq!(decode::<ClientMessage>(&body).unwrap(), msg);
        }
    }

    fn server_samples() -> Vec<ServerMessage> {
        let entry = |k: &[u8], v: Option<&[u8]>| WireEntry { key: Some(copy(k)), value: v.map(copy) };
        vec![
            ServerMessage::Value { id: 1, value: None },
            ServerMessage::Value { id: u64::MAX, value: Some(copy(&[0xff; 200])) },
            ServerMessage::Value { id: 300, value: Some(copy(b"")) },
            ServerMessage::IterData { id: 7, epoch: 0, entries: vec![], last_key: copy(b"") },
            ServerMessage::IterData {
                id: 7,
                epoch: u32::MAX,
                entries: vec![
                    entry(b"a", Some(b"1")),
                    entry(b"", None),
                    WireEntry { key: None, value: Some(copy(&[0x80; 130])) },
                    WireEntry { key: None, value: None },
                ],
                last_key: copy(b"zz"),
            },
            ServerMessage::Done { id: 3 },
            ServerMessage::IterEnd { id: 9, epoch: 2 },
        ]
    }

    #[test]
    fn decode_server_agrees_with_decode_on_valid_and_damaged_bodies() {
        for msg in server_samples() {
            let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
            assert_eq!(decode_server(&body), Ok(msg.clone()));
            // Every truncation, every extension and every single-byte change.
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|cut| body[..cut].to_vec()).collect();
            for extra in [0u8, 1, 0x80, 0xff] {
                variants.push([&body[..], &[extra]].concat());
            }
            for i in 0..body.len() {
                for byte in [0u8, 1, 2, 0x0f, 0x10, 0x7f, 0x80, 0xff, body[i] ^ 1] {
                    let mut damaged = body.to_vec();
                    damaged[i] = byte;
                    variants.push(damaged);
                }
            }
            for variant in variants {
                let variant = Bytes::from(variant);
                assert_eq!(decode_server(&variant), decode::<ServerMessage>(&variant), "{variant:02x?}");
            }
        }
    }

    #[test]
    fn decode_client_agrees_with_decode_on_valid_and_damaged_bodies() {
        let mut samples = samples();
        samples.push(ClientMessage::Get { id: u64::MAX, key: copy(&[0x80; 200]) });
        samples.push(ClientMessage::Put { id: 300, key: copy(&[0xff; 130]), value: copy(&[7; 300]) });
        for msg in samples {
            let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
            assert_eq!(decode_client(&body), Ok(msg.clone()));
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|cut| body[..cut].to_vec()).collect();
            for extra in [0u8, 1, 0x80, 0xff] {
                variants.push([&body[..], &[extra]].concat());
            }
            for i in 0..body.len() {
                for byte in [0u8, 1, 2, 4, 6, 7, 0x0f, 0x10, 0x7f, 0x80, 0xff, body[i] ^ 1] {
                    let mut damaged = body.to_vec();
                    damaged[i] = byte;
                    variants.push(damaged);
                }
            }
            for variant in variants {
                let variant = Bytes::from(variant);
                assert_eq!(decode_client(&variant), decode::<ClientMessage>(&variant), "{variant:02x?}");
            }
        }
    }

    #[test]
    fn decode_client_shares_the_frame() {
        let msg = ClientMessage::Put { id: 1, key: copy(b"key"), value: copy(b"value") };
        let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
        let Ok(ClientMessage::Put { value, .. }) = decode_client(&body) else { panic!() };
        assert_eq!(value.as_ptr(), body[body.len() - 5..].as_ptr(), "the value is a slice of the body");
    }

    #[test]
    fn decode_server_shares_the_frame() {
        let msg = ServerMessage::Value { id: 1, value: Some(copy(b"value")) };
        let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
        let Ok(ServerMessage::Value { value: Some(value), .. }) = decode_server(&body) else { panic!() };
        assert_eq!(value.as_ptr(), body[body.len() - 5..].as_ptr(), "the value is a slice of the body");
    }

    #[test]
    fn huge_varints_are_rejected_like_postcard_does() {
        // Tag Value, id of ten bytes with a last byte above 1, and a u32 epoch of five bytes
        // with a last byte above 0x0f.
        let id = [0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00];
        let epoch = [0x08, 0x01, 0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 0x00];
        for body in [&id[..], &epoch[..]] {
            let body = Bytes::copy_from_slice(body);
            assert!(decode_server(&body).is_err());
            assert_eq!(decode_server(&body), decode::<ServerMessage>(&body));
        }
    }

    #[test]
    fn server_variant_count_matches() {
        // The variant after the last known one must be unknown, the last one known.
        let last = ServerMessage::Stats { id: 1, stats: vec![("entries".into(), 3)] };
        let body = postcard::to_stdvec(&last).unwrap();
        assert_eq!(peek_tag(&body), Some(SERVER_VARIANTS - 1));
        assert_eq!(decode::<ServerMessage>(&body).unwrap(), last);
    }

    #[test]
    fn unknown_variant_is_typed() {
        assert_eq!(
            decode::<ClientMessage>(&[CLIENT_VARIANTS as u8]),
            Err(DecodeError::UnknownVariant(CLIENT_VARIANTS))
        );
        assert_eq!(decode::<ServerMessage>(&[0x80, 0x01]), Err(DecodeError::UnknownVariant(128)));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = postcard::to_stdvec(&ClientMessage::Ping { nonce: 5 }).unwrap();
        body.extend_from_slice(&[0, 0]);
        assert_eq!(decode::<ClientMessage>(&body), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn truncated_and_empty_bodies_are_malformed() {
        let body =
            postcard::to_stdvec(&ClientMessage::Put { id: 1, key: copy(b"key"), value: copy(b"value") }).unwrap();
        for cut in 0..body.len() {
            assert!(matches!(decode::<ClientMessage>(&body[..cut]), Err(DecodeError::Malformed(_))), "cut {cut}");
        }
    }
}
