//! The seed corpus: small, meaningful inputs per target. `fuzz/corpus/<target>/seed-*` are
//! written from here by `GENERATE_SEEDS=1 cargo test --test corpus` and replayed by the same test.

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{Goodbye, encode};
use multilevel_proto::{
    BatchOp, Change, ChangeEvent, ClientMessage, Condition, Cursor, ErrorCode, GoodbyeReason, IterOptions, KeyRange,
    RemoteError, ServerMessage, WatchStart, WireEntry,
};

use crate::{client_input, frame_decoder, server_input};

fn b(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

fn frames<M: multilevel_proto::message::WireMessage>(msgs: &[M]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for msg in msgs {
        encode(msg, &mut out);
    }
    out.to_vec()
}

fn with_header(header: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(stream);
    out
}

pub use multilevel_proto::sim::samples::client_messages;

/// One of every server message.
pub fn server_messages() -> Vec<ServerMessage> {
    vec![
        ServerMessage::Hello(client_input::hello(1 << 20, 1024)),
        ServerMessage::Ping { nonce: 9 },
        ServerMessage::Pong { nonce: 1 },
        ServerMessage::Value { id: 1, value: Some(b(b"v")) },
        ServerMessage::Values { id: 2, values: vec![None, Some(b(b"x"))] },
        ServerMessage::Done { id: 3 },
        ServerMessage::Error { id: 4, error: RemoteError::new(ErrorCode::KeyTooLarge, "too long") },
        ServerMessage::IterData {
            id: 7,
            epoch: 0,
            entries: vec![WireEntry { key: Some(b(b"a")), value: Some(b(b"1")) }],
            last_key: b(b"a"),
        },
        ServerMessage::IterEnd { id: 7, epoch: 0 },
        ServerMessage::IterError { id: 8, error: RemoteError::new(ErrorCode::TooManyIterators, "no") },
        ServerMessage::Stats { id: 9, stats: vec![("entries".into(), 3)] },
        ServerMessage::ConditionFailed { id: 10, index: 1, current: Some(b(b"seen")) },
        ServerMessage::Counter { id: 11, value: -5 },
        ServerMessage::WatchOpened { id: 12, cursor: Cursor { position: 4, index: 0 } },
        ServerMessage::WatchData {
            id: 12,
            events: vec![ChangeEvent {
                position: 4,
                index: 0,
                commit_end: true,
                change: Change::Put { key: b(b"a"), value: b(b"1") },
            }],
            next: Cursor { position: 5, index: 0 },
        },
        ServerMessage::WatchError { id: 13, error: RemoteError::new(ErrorCode::Compacted, "trimmed"), oldest: Some(3) },
        ServerMessage::Goodbye(Goodbye { reason: GoodbyeReason::Shutdown, message: "bye".into() }),
    ]
}

fn frame_decoder_seeds() -> Vec<(&'static str, Vec<u8>)> {
    assert_eq!(frame_decoder::HEADER_LEN, 4);
    let clients = frames(&client_messages());
    let servers = frames(&server_messages());
    let mut noncanonical = vec![0x80 | 3, 0x00]; // a 3-byte body behind a 2-byte prefix
    noncanonical.extend_from_slice(&[3, 0x81, 0x00]); // Ping, nonce 1 in a 2-byte varint
    vec![
        ("client-messages", with_header(&[8, 0, 0, 0], &clients)),
        ("server-messages", with_header(&[9, 3, 1, 7], &servers)),
        ("hello-put-split", with_header(&[9, 1, 2, 5], &clients[..40.min(clients.len())])),
        ("too-large", with_header(&[4, 0, 0, 0], &[0xac, 0x02, 1, 2, 3])),
        ("bad-prefix", with_header(&[11, 2, 0, 0], &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01])),
        ("noncanonical", with_header(&[8, 0, 0, 0], &noncanonical)),
    ]
}

fn server_input_seeds() -> Vec<(&'static str, Vec<u8>)> {
    assert_eq!(server_input::HEADER_LEN, 10);
    let id = |n: u64| n;
    let requests = frames(&[
        ClientMessage::Ping { nonce: 5 },
        ClientMessage::Put { id: id(1), key: b(b"k"), value: b(b"new") },
        ClientMessage::Get { id: 2, key: b(b"k") },
        ClientMessage::GetMany { id: 3, keys: vec![b(b"a"), b(b"nope"), b(&[1])] },
        ClientMessage::Del { id: 4, key: b(b"b") },
        ClientMessage::Batch {
            id: 5,
            ops: vec![BatchOp::Put { key: b(b"x"), value: b(b"1") }, BatchOp::Del { key: b(&[0]) }],
        },
        ClientMessage::Clear { id: 6, range: KeyRange::all().gte([1]).lt(b"b"), reverse: false, limit: Some(2) },
        ClientMessage::Stats { id: 7 },
        ClientMessage::Pong { nonce: 1 },
    ]);
    let iterators = frames(&[
        ClientMessage::IterOpen { id: 1, options: IterOptions::default(), credit: 40 },
        ClientMessage::IterCredit { id: 1, bytes: 100 },
        ClientMessage::IterOpen {
            id: 2,
            options: IterOptions { reverse: true, limit: Some(2), values: false, ..IterOptions::default() },
            credit: 1000,
        },
        ClientMessage::IterSeek { id: 1, epoch: 1, range: KeyRange::all().gte(b"b"), limit: Some(3), credit: 500 },
        ClientMessage::Get { id: 3, key: b(b"a") },
        ClientMessage::IterClose { id: 2 },
        ClientMessage::IterCredit { id: 1, bytes: 1000 },
    ]);
    let limits = frames(&[
        ClientMessage::Put { id: 1, key: b(b"much too long a key"), value: b(b"v") },
        ClientMessage::IterOpen { id: 2, options: IterOptions::default(), credit: 10 },
        ClientMessage::IterOpen { id: 3, options: IterOptions::default(), credit: 10 },
        ClientMessage::Put { id: 4, key: b(b"k"), value: b(&[9; 50]) },
        ClientMessage::Get { id: 5, key: b(b"a") },
        ClientMessage::IterCredit { id: 2, bytes: 10 },
    ]);
    let errors = frames(&[ClientMessage::Get { id: 5, key: b(b"k") }, ClientMessage::Get { id: 5, key: b(b"k") }]);
    let goodbye = frames(&[
        ClientMessage::IterOpen { id: 1, options: IterOptions::default(), credit: 10 },
        ClientMessage::Put { id: 2, key: b(b"k"), value: b(b"v") },
        ClientMessage::Goodbye(Goodbye { reason: GoodbyeReason::Normal, message: "bye".into() }),
    ]);
    // contract/multilevel-proto/tests/fuzz_regressions.rs: the iterator's open waits behind the write,
    // its close comes first, and the snapshot taken later is never released.
    let snapshot_leak = frames(&[
        ClientMessage::Put { id: 1, key: b(b"k"), value: b(b"v") },
        ClientMessage::IterOpen { id: 2, options: IterOptions::default(), credit: 100 },
        ClientMessage::IterClose { id: 2 },
    ]);
    // A token scoped to the sublevel `a`: requests inside it, at its edges and outside.
    let scoped = frames(&[
        ClientMessage::Get { id: 1, key: b(b"!a!") },
        ClientMessage::Put { id: 2, key: b(b"!a!k"), value: b(b"v") },
        ClientMessage::Put { id: 3, key: b(b"!a"), value: b(b"v") },
        ClientMessage::GetMany { id: 4, keys: vec![b(b"!a!k"), b(b"!a\"")] },
        ClientMessage::Batch {
            id: 5,
            ops: vec![BatchOp::Put { key: b(b"!a!x"), value: b(b"1") }, BatchOp::Del { key: b(b"x") }],
        },
        ClientMessage::Clear { id: 6, range: KeyRange::all().gte(b"!a!"), reverse: false, limit: Some(2) },
        ClientMessage::Clear { id: 7, range: KeyRange::all().gt(b"!a!").lt(b"!a\""), reverse: true, limit: None },
        ClientMessage::IterOpen { id: 1, options: IterOptions::default(), credit: 100 },
        ClientMessage::IterOpen {
            id: 2,
            options: IterOptions { range: KeyRange::all().gte(b"!a!").lte(b"!a!~"), ..IterOptions::default() },
            credit: 1000,
        },
        ClientMessage::IterSeek { id: 2, epoch: 1, range: KeyRange::all().gte(b"!a!!"), limit: None, credit: 500 },
        ClientMessage::IterOpen {
            id: 3,
            options: IterOptions { range: KeyRange::all().gte(b"!a!").lt(b"!a\""), ..IterOptions::default() },
            credit: 1000,
        },
        ClientMessage::IterSeek { id: 3, epoch: 1, range: KeyRange::all().gte(b"!a!!"), limit: Some(1), credit: 500 },
        ClientMessage::Stats { id: 8 },
    ]);
    let conditions = frames(&[
        ClientMessage::Conditional {
            id: 1,
            conditions: vec![Condition::absent(b"k"), Condition::equals([1], b"one")],
            ops: vec![BatchOp::Put { key: b(b"k"), value: b(b"1") }],
        },
        ClientMessage::Conditional { id: 2, conditions: vec![Condition::absent(b"k")], ops: vec![] },
        ClientMessage::Increment { id: 3, key: b(b"k"), by: 41 },
        ClientMessage::Increment { id: 4, key: b(&[1]), by: 1 },
        ClientMessage::Get { id: 5, key: b(b"k") },
        ClientMessage::Conditional {
            id: 6,
            conditions: vec![Condition::absent(b"much too long a key")],
            ops: vec![BatchOp::Del { key: b(b"k") }],
        },
    ]);
    // Watches from now, from the start of the history and from a cursor within a commit, over
    // writes of every kind; a close, a credit, a watch outside the scope of a scoped token.
    let watches = frames(&[
        ClientMessage::Watch { id: 1, range: KeyRange::all(), start: WatchStart::Now, values: true, credit: 64 },
        ClientMessage::Watch {
            id: 2,
            range: KeyRange::all().gte(b"!a!").lt(b"!a\""),
            start: WatchStart::after(0),
            values: false,
            credit: 1000,
        },
        ClientMessage::Put { id: 3, key: b(b"!a!k"), value: b(b"new") },
        ClientMessage::Batch {
            id: 4,
            ops: vec![BatchOp::Put { key: b(b"!a!x"), value: b(b"1") }, BatchOp::Del { key: b(b"!a!k") }],
        },
        ClientMessage::WatchCredit { id: 1, bytes: 100 },
        ClientMessage::Watch {
            id: 5,
            range: KeyRange::all(),
            start: WatchStart::At(Cursor { position: 13, index: 1 }),
            values: true,
            credit: 17,
        },
        ClientMessage::Clear { id: 6, range: KeyRange::all().gte(b"!a!").lt(b"!a\""), reverse: false, limit: None },
        ClientMessage::Increment { id: 7, key: b(b"!a!n"), by: 2 },
        ClientMessage::WatchClose { id: 2 },
        ClientMessage::Del { id: 8, key: b(b"!a!x") },
        ClientMessage::WatchCredit { id: 5, bytes: 1000 },
    ]);
    let mut second_hello = frames(&[ClientMessage::Ping { nonce: 1 }]);
    second_hello.extend(frames(&client_messages()[..1]));
    vec![
        // batch, max_frame, max_key, in_flight, iterators, high_water, policy, chunk sizes
        ("requests", with_header(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &requests)),
        ("requests-deferred", with_header(&[0, 0, 0, 1, 0, 0, 0x17, 3, 11, 0], &requests)),
        ("iterators", with_header(&[0x05, 0, 0, 0, 0, 0, 0x00, 0, 0, 0], &iterators)),
        ("iterators-lifo", with_header(&[0x06, 0, 0, 2, 4, 3, 0x1b, 7, 2, 0], &iterators)),
        ("small-limits", with_header(&[0x05, 3, 3, 1, 2, 1, 0x05, 0, 0, 0], &limits)),
        ("readonly", with_header(&[0x70, 0, 0, 0, 0, 0, 0x40, 0, 0, 0], &requests)),
        ("token-rw", with_header(&[0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0], &requests)),
        ("token-ro", with_header(&[0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0], &requests)),
        ("token-wrong", with_header(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0], &requests)),
        ("token-missing", with_header(&[0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0], &requests)),
        ("token-scoped", with_header(&[0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0], &scoped)),
        ("token-scoped-deferred", with_header(&[0x25, 0, 0, 1, 0, 0, 0x1b, 3, 2, 0], &scoped)),
        ("id-not-increasing", with_header(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &errors)),
        ("client-goodbye", with_header(&[0, 0, 0, 0, 0, 0, 0x81, 0, 0, 0], &goodbye)),
        ("second-hello", with_header(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0], &second_hello)),
        ("too-large", with_header(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0], &[0x80, 0x08, 0])),
        ("regression-snapshot-leak", with_header(&[0; 10], &snapshot_leak)),
        ("conditions", with_header(&[0; 10], &conditions)),
        ("watches", with_header(&[0; 10], &watches)),
        ("watches-deferred-lifo", with_header(&[0x05, 0, 0, 1, 0, 3, 0x1b, 3, 2, 0], &watches)),
        ("watches-scoped", with_header(&[0x20, 0, 0, 0, 0, 0, 0x05, 0, 0, 0], &watches)),
        ("watches-small-frames", with_header(&[0x80, 2, 0, 0, 2, 2, 0x01, 5, 1, 0], &watches)),
        ("conditions-small-limits", with_header(&[0x05, 3, 3, 1, 2, 1, 0x05, 0, 0, 0], &conditions)),
        ("conditions-readonly", with_header(&[0x70, 0, 0, 0, 0, 0, 0x40, 0, 0, 0], &conditions)),
        // The client's hello accepts frames of 200 bytes; the answer holds two 100-byte values.
        (
            "regression-client-max-frame",
            with_header(
                &[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                &frames(&[ClientMessage::GetMany { id: 1, keys: vec![b(b"a"), b(b"a")] }]),
            ),
        ),
    ]
}

fn client_input_seeds() -> Vec<(&'static str, Vec<u8>)> {
    assert_eq!(client_input::HEADER_LEN, 9);
    // Mask 0x7f issues requests 1..=7 (Get, GetMany, Put, Del, Batch, Clear, Stats); the
    // iterator is 8, a second one 9.
    let entry = |k: &[u8], v: &[u8]| WireEntry { key: Some(b(k)), value: Some(b(v)) };
    let answers = frames(&[
        ServerMessage::Value { id: 1, value: Some(b(b"v")) },
        ServerMessage::Values { id: 2, values: vec![None, Some(b(b"x")), None] },
        ServerMessage::Done { id: 3 },
        ServerMessage::Ping { nonce: 1 },
        ServerMessage::Error { id: 4, error: RemoteError::new(ErrorCode::ReadOnly, "read-only") },
        ServerMessage::IterData {
            id: 8,
            epoch: 0,
            entries: vec![entry(b"a", b"1"), entry(b"b", b"2")],
            last_key: b(b"b"),
        },
        ServerMessage::Done { id: 5 },
        ServerMessage::Done { id: 6 },
        ServerMessage::Stats { id: 7, stats: vec![("entries".into(), 2)] },
        ServerMessage::IterData { id: 8, epoch: 0, entries: vec![entry(b"c", b"3")], last_key: b(b"c") },
        ServerMessage::IterEnd { id: 8, epoch: 0 },
    ]);
    // Mask 0x05: Get 1, Put 2; iterators 3 (limit 3, keys only) and 4 (reverse, in (a, z]).
    let key = |k: &[u8]| WireEntry { key: Some(b(k)), value: None };
    let iterators = frames(&[
        ServerMessage::IterData { id: 3, epoch: 0, entries: vec![key(b"a")], last_key: b(b"a") },
        ServerMessage::IterData { id: 4, epoch: 0, entries: vec![key(b"y"), key(b"x")], last_key: b(b"x") },
        ServerMessage::Value { id: 1, value: None },
        ServerMessage::IterData { id: 3, epoch: 1, entries: vec![key(b"m"), key(b"n")], last_key: b(b"n") },
        ServerMessage::IterEnd { id: 4, epoch: 0 },
        ServerMessage::Done { id: 2 },
        ServerMessage::IterError { id: 3, error: RemoteError::new(ErrorCode::UnknownIterator, "gone") },
        ServerMessage::Goodbye(Goodbye { reason: GoodbyeReason::Shutdown, message: "bye".into() }),
    ]);
    // Mask 0xff: requests 1..=7, the conditional write 8, the increment 9; the iterator is 10.
    let conditions = frames(&[
        ServerMessage::ConditionFailed { id: 8, index: 0, current: Some(b(b"taken")) },
        ServerMessage::Counter { id: 9, value: 42 },
        ServerMessage::Done { id: 3 },
        ServerMessage::IterEnd { id: 10, epoch: 0 },
    ]);
    let hostile = frames(&[
        ServerMessage::Done { id: 99 },
        ServerMessage::IterData { id: 8, epoch: 0, entries: vec![entry(b"a", b"1")], last_key: b(b"zz") },
        ServerMessage::Hello(client_input::hello(1 << 20, 1024)),
    ]);
    vec![
        // max_frame, max_key, mask, shape, window, between, chunk sizes
        ("answers", with_header(&[0, 0, 0x7f, 0, 0, 0x02, 0, 0, 0], &answers)),
        ("answers-split", with_header(&[0, 0, 0x7f, 0x01, 2, 0x13, 5, 1, 17], &answers)),
        ("iterators", with_header(&[0, 0, 0x05, 0x6e, 1, 0x31, 0, 0, 0], &iterators)),
        ("iterators-split", with_header(&[0, 0, 0x05, 0x6e, 3, 0x21, 9, 30, 3], &iterators)),
        (
            "small-hello",
            with_header(&[1, 2, 0x7f, 0x20, 0, 0x01, 0, 0, 0], &frames(&[ServerMessage::Pong { nonce: 0 }])),
        ),
        ("hostile", with_header(&[0, 0, 0x7f, 0x80, 0, 0x01, 0, 0, 0], &hostile)),
        ("conditions", with_header(&[0, 0, 0xff, 0, 0, 0x02, 0, 0, 0], &conditions)),
        ("conditions-unsupported", with_header(&[0, 0, 0xff, 0, 0, 0x82, 0, 0, 0], &conditions)),
    ]
}

/// A deterministic xorshift stream, for the `model` target's blobs.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn model_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("zeros", vec![0; 64]),
        ("ascending", (0..=255).collect()),
        ("blob-1", blob(1, 200)),
        ("blob-2", blob(2, 400)),
        ("blob-3", blob(3, 800)),
        ("blob-4", blob(0x5eed, 1500)),
    ]
}

/// `(target, name, bytes)` of every seed.
pub fn all() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (target, seeds) in [
        ("frame_decoder", frame_decoder_seeds()),
        ("server_input", server_input_seeds()),
        ("client_input", client_input_seeds()),
        ("model", model_seeds()),
    ] {
        for (name, bytes) in seeds {
            out.push((target, name, bytes));
        }
    }
    out
}

/// Runs one input through a target by name.
pub fn run_target(target: &str, data: &[u8]) {
    match target {
        "frame_decoder" => frame_decoder::run(data),
        "server_input" => server_input::run(data),
        "client_input" => client_input::run(data),
        "model" => {
            // As `fuzz_target!` turns bytes into a typed input.
            let u = arbitrary::Unstructured::new(data);
            if let Ok(input) = <crate::model::Input as arbitrary::Arbitrary>::arbitrary_take_rest(u) {
                crate::model::run(input);
            }
        }
        other => panic!("no target {other}"),
    }
}
