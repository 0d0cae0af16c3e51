//! Sample data shared by the codec's tests, the model tests and the fuzz targets: one of every
//! client message, and the keys that make ordering bugs show.

use bytes::Bytes;

use crate::message::{ClientHello, Goodbye, MAGIC};
use crate::{BatchOp, ClientMessage, Condition, GoodbyeReason, IterOptions, KeyRange, PROTOCOL_VERSION};

/// Keys that make ordering bugs show: the empty key, keys that extend other keys, 0x00 and 0xff.
pub const EDGE_KEYS: [&[u8]; 13] = [
    b"",
    &[0],
    &[0, 0],
    &[0, 0xff],
    &[1],
    &[1, 0],
    &[1, 4],
    &[1, 4, 9],
    &[1, 4, 0xff],
    &[1, 5],
    &[0xff],
    &[0xff, 0],
    &[0xff, 0xff],
];

/// The bytes random keys are made of around [`EDGE_KEYS`]: the lowest and the highest.
pub const KEY_ALPHABET: [u8; 5] = [0, 1, 2, 0xfe, 0xff];

/// One of every client message, the hello first (the fuzz seeds rely on it).
pub fn client_messages() -> Vec<ClientMessage> {
    let b = Bytes::copy_from_slice;
    vec![
        ClientMessage::Hello(ClientHello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            features: crate::FEATURE_CONDITIONS | crate::FEATURE_WATCH,
            session: 42,
            max_frame: 1 << 20,
        }),
        ClientMessage::Ping { nonce: 1 },
        ClientMessage::Pong { nonce: 1 },
        ClientMessage::Get { id: 1, key: b(b"") },
        ClientMessage::GetMany { id: 2, keys: vec![b(b"a"), b(&[0xff])] },
        ClientMessage::Put { id: 3, key: b(b"k"), value: b(b"v") },
        ClientMessage::Del { id: 4, key: b(&[0]) },
        ClientMessage::Batch {
            id: 5,
            ops: vec![BatchOp::Put { key: b(b"a"), value: b(b"") }, BatchOp::Del { key: b(b"b") }],
        },
        ClientMessage::Clear { id: 6, range: KeyRange::all().gt([1]).lte([9]), reverse: true, limit: Some(3) },
        ClientMessage::IterOpen { id: 7, options: IterOptions::default(), credit: 65536 },
        ClientMessage::IterCredit { id: 7, bytes: 100 },
        ClientMessage::IterSeek { id: 7, epoch: 1, range: KeyRange::all().gte(b"m"), limit: None, credit: 10 },
        ClientMessage::IterClose { id: 7 },
        ClientMessage::Stats { id: 8 },
        ClientMessage::Auth { token: "0123456789abcdef".into() },
        ClientMessage::Conditional {
            id: 9,
            conditions: vec![Condition::absent(b"a"), Condition::equals([0xff], b"old")],
            ops: vec![BatchOp::Put { key: b(b"a"), value: b(b"1") }, BatchOp::Del { key: b(&[0xff]) }],
        },
        ClientMessage::Increment { id: 10, key: b(b"counter"), by: -2 },
        ClientMessage::Watch {
            id: 11,
            range: KeyRange::all().gte(b"a"),
            start: crate::WatchStart::At(crate::Cursor { position: 3, index: 1 }),
            values: true,
            credit: 4096,
        },
        ClientMessage::WatchCredit { id: 11, bytes: 100 },
        ClientMessage::WatchClose { id: 11 },
        ClientMessage::Goodbye(Goodbye { reason: GoodbyeReason::Normal, message: "bye".into() }),
    ]
}
