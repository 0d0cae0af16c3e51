//! The many-level protocol: the captured byte vectors of the reference, byte for byte, and a
//! host driven against `MemoryStore` (operations, iterator flow control, limit, bookmarks,
//! seek, errors and malformed input).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use multilevel_proto::manylevel::messages::{
    Batch, Callback, Clear, ClearOptions, Delete, Get, GetMany, GetManyCallback, IteratorAck, IteratorClose,
    IteratorData, IteratorEnd, IteratorOpen, IteratorSeek, Operation, Options, Put, Value,
};
use multilevel_proto::manylevel::{GuestMessage, HostMessage, ManyLevelServer};
use multilevel_proto::{
    FrameDecoder, MemorySnapshots, MemoryStore, Outcome, ServerConfig, ServerError, ServerEvent, StoreError,
    StoreRequest,
};

fn hex(text: &str) -> Vec<u8> {
    // Quoted runs are ASCII; everything else is hex bytes separated by spaces.
    let mut out = Vec::new();
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(part.as_bytes());
        } else {
            out.extend(part.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()));
        }
    }
    out
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn guest(msg: &GuestMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.to_vec()
}

fn host(msg: &HostMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.to_vec()
}

fn opts(gte: Option<&str>, limit: i32, reverse: bool) -> Options {
    Options {
        keys: Some(true),
        values: Some(true),
        gte: gte.map(b),
        limit: Some(limit),
        reverse: Some(reverse),
        ..Options::default()
    }
}

/// The guest→host vectors of reference §1.5, as the messages they encode.
fn guest_vectors() -> Vec<(&'static str, GuestMessage)> {
    let op = |t: &str, k: &str, v: Option<&str>| Operation { r#type: t.into(), key: b(k), value: v.map(b) };
    vec![
        ("09 01 08 01 12 01 61 1a 01 31", GuestMessage::Put(Put { id: 1, key: b("a"), value: Some(b("1")) })),
        ("06 00 08 02 12 01 61", GuestMessage::Get(Get { id: 2, key: b("a") })),
        ("07 00 08 03 12 02 7a 7a", GuestMessage::Get(Get { id: 3, key: b("zz") })),
        ("0a 06 08 04 12 01 61 12 02 7a 7a", GuestMessage::GetMany(GetMany { id: 4, keys: vec![b("a"), b("zz")] })),
        ("06 02 08 05 12 01 61", GuestMessage::Delete(Delete { id: 5, key: b("a") })),
        (
            r#"27 03 08 06 12 0b 0a 03 "put" 12 01 62 1a 01 32 12 08 0a 03 "del" 12 01 63 12 0b 0a 03 "put" 12 01 63 1a 01 33"#,
            GuestMessage::Batch(Batch {
                id: 6,
                ops: vec![op("put", "b", Some("2")), op("del", "c", None), op("put", "c", Some("3"))],
            }),
        ),
        (
            "14 04 08 01 10 00 1a 0b 08 01 10 01 22 01 62 38 0a 40 00 20 00",
            GuestMessage::Iterator(IteratorOpen {
                id: 1,
                seq: 0,
                options: Some(opts(Some("b"), 5, false)),
                consumed: 0,
                bookmark: None,
                seek: None,
            }),
        ),
        ("07 08 08 01 10 00 18 01", GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 0, consumed: 1 })),
        ("03 07 08 01", GuestMessage::IteratorClose(IteratorClose { id: 1 })),
        ("08 09 08 04 10 01 1a 01 61", GuestMessage::IteratorSeek(IteratorSeek { id: 4, seq: 1, target: b("a") })),
        (
            "0c 05 08 07 12 07 1a 01 62 38 01 40 00",
            GuestMessage::Clear(Clear {
                id: 7,
                options: Some(ClearOptions {
                    gt: Some(b("b")),
                    limit: Some(-1),
                    reverse: Some(false),
                    ..Default::default()
                }),
            }),
        ),
    ]
}

/// The host→guest vectors of reference §1.5.
fn host_vectors() -> Vec<(&'static str, HostMessage)> {
    vec![
        ("03 00 08 01", HostMessage::Callback(Callback { id: 1, error: None, value: None })),
        ("06 00 08 02 1a 01 31", HostMessage::Callback(Callback { id: 2, error: None, value: Some(b("1")) })),
        (
            r#"14 00 08 03 12 0f "LEVEL_NOT_FOUND""#,
            HostMessage::Callback(Callback { id: 3, error: Some("LEVEL_NOT_FOUND".into()), value: None }),
        ),
        (
            "0a 02 08 04 1a 03 0a 01 31 1a 00",
            HostMessage::GetManyCallback(GetManyCallback {
                id: 4,
                error: None,
                values: vec![Value { value: Some(b("1")) }, Value { value: None }],
            }),
        ),
        (
            "0b 01 08 01 10 00 1a 01 62 1a 01 32",
            HostMessage::IteratorData(IteratorData { id: 1, seq: 0, data: vec![b("b"), b("2")] }),
        ),
        ("05 04 08 01 10 00", HostMessage::IteratorEnd(IteratorEnd { id: 1, seq: 0 })),
    ]
}

#[test]
fn captured_vectors_encode_and_decode_byte_for_byte() {
    for (text, msg) in guest_vectors() {
        let bytes = hex(text);
        assert_eq!(guest(&msg), bytes, "encoding {msg:?}");
        assert_eq!(GuestMessage::decode(&bytes[1..]).unwrap(), msg, "decoding {text}");
        assert_eq!(usize::from(bytes[0]), bytes.len() - 1, "length prefix of {text}");
    }
    for (text, msg) in host_vectors() {
        let bytes = hex(text);
        assert_eq!(host(&msg), bytes, "encoding {msg:?}");
        assert_eq!(msg.encoded_len(), bytes.len());
        assert_eq!(HostMessage::decode(&bytes[1..]).unwrap(), msg, "decoding {text}");
    }
    // Keys-only reverse options: keys, values=false, limit -1, reverse.
    let keys_only =
        Options { keys: Some(true), values: Some(false), limit: Some(-1), reverse: Some(true), ..Default::default() };
    assert_eq!(prost::Message::encode_to_vec(&keys_only), hex("08 01 10 00 38 01 40 01"));
}

/// A host on a memory store, with the guest's side of the pipe.
struct Harness {
    now: Instant,
    server: ManyLevelServer,
    store: MemoryStore,
    snapshots: MemorySnapshots,
    decoder: FrameDecoder,
    /// Every byte the host sent.
    raw: Vec<u8>,
    /// Make every GetMany fail, as a broken database would.
    fail_get_many: bool,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            server: ManyLevelServer::with_session(config, 42, now),
            store: MemoryStore::new(),
            snapshots: MemorySnapshots::default(),
            decoder: FrameDecoder::new(u32::MAX),
            raw: Vec::new(),
            fail_get_many: false,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<Vec<HostMessage>, ServerError> {
        let result = self.server.handle_input(bytes, self.now);
        let replies = self.pump();
        result.map(|()| replies)
    }

    fn send(&mut self, msg: GuestMessage) -> Vec<HostMessage> {
        self.send_raw(&guest(&msg)).unwrap()
    }

    /// Runs store requests and collects replies until nothing moves.
    fn pump(&mut self) -> Vec<HostMessage> {
        let mut replies = Vec::new();
        loop {
            let mut progress = false;
            while let Some(event) = self.server.poll_event() {
                progress = true;
                match event {
                    ServerEvent::Store { op, request } => {
                        let result = match request {
                            StoreRequest::GetMany { .. } if self.fail_get_many => {
                                Err(StoreError::Internal("disk on fire".into()))
                            }
                            request => self.store.execute(&mut self.snapshots, request),
                        };
                        let _ = self.server.handle_outcome(op, result, self.now);
                    }
                    ServerEvent::CloseIterator { iterator } => self.snapshots.close(iterator),
                    ServerEvent::CloseWatch { .. } => {}
                }
            }
            while let Some(bytes) = self.server.poll_transmit() {
                progress = true;
                self.raw.extend_from_slice(&bytes);
                self.decoder.push(&bytes);
                while let Some(frame) = self.decoder.next_frame().unwrap() {
                    replies.push(HostMessage::decode(&frame).unwrap());
                }
            }
            if !progress {
                return replies;
            }
        }
    }

    fn fill(&mut self, keys: impl IntoIterator<Item = Vec<u8>>) {
        let ops = keys
            .into_iter()
            .map(|k| Operation { r#type: "put".into(), value: Some(Bytes::from(k.clone())), key: Bytes::from(k) })
            .collect();
        let replies = self.send(GuestMessage::Batch(Batch { id: 999, ops }));
        assert_eq!(replies, vec![HostMessage::Callback(Callback { id: 999, error: None, value: None })]);
    }
}

fn data_of(replies: &[HostMessage]) -> Vec<(u32, Vec<Bytes>)> {
    replies
        .iter()
        .filter_map(|m| match m {
            HostMessage::IteratorData(d) => Some((d.seq, d.data.clone())),
            _ => None,
        })
        .collect()
}

fn ended(replies: &[HostMessage]) -> bool {
    replies.iter().any(|m| matches!(m, HostMessage::IteratorEnd(_)))
}

#[test]
fn captured_session_gets_the_captured_replies() {
    let mut h = Harness::new(ServerConfig::default());
    let vectors = guest_vectors();
    // put, get, get missing, getMany, del, batch: each answered exactly as captured.
    for (text, _) in &vectors[..6] {
        h.send_raw(&hex(text)).unwrap();
    }
    let want = [
        "03 00 08 01",
        "06 00 08 02 1a 01 31",
        r#"14 00 08 03 12 0f "LEVEL_NOT_FOUND""#,
        "0a 02 08 04 1a 03 0a 01 31 1a 00",
        "03 00 08 05",
        "03 00 08 06",
    ];
    assert_eq!(h.raw, want.iter().flat_map(|t| hex(t)).collect::<Vec<u8>>());
    assert_eq!(h.store.data().keys().cloned().collect::<Vec<_>>(), vec![b("b"), b("c")]);
    // Writes carry the connection's session and increasing request ids.
    assert_eq!(h.store.applied(), &[(42, 1), (42, 2), (42, 3)]);

    // iterator {gte: b, limit: 5}: the first batch is the captured one-entry frame.
    h.raw.clear();
    let replies = h.send_raw(&hex(vectors[6].0)).unwrap();
    assert_eq!(h.raw, hex("0b 01 08 01 10 00 1a 01 62 1a 01 32"));
    assert_eq!(replies.len(), 1, "nothing is read ahead before the first ack");
    let replies = h.send_raw(&hex(vectors[7].0)).unwrap();
    assert_eq!(data_of(&replies), vec![(0, vec![b("c"), b("3")])]);
    assert!(ended(&replies));
    assert!(h.send_raw(&hex(vectors[8].0)).unwrap().is_empty());
    assert!(h.snapshots.is_empty(), "close released the snapshot");

    // clear {gt: b}
    h.raw.clear();
    h.send_raw(&hex(vectors[10].0)).unwrap();
    assert_eq!(h.raw, hex("03 00 08 07"));
    assert_eq!(h.store.data().keys().cloned().collect::<Vec<_>>(), vec![b("b")]);
}

fn open(id: u32, options: Options) -> GuestMessage {
    GuestMessage::Iterator(IteratorOpen { id, seq: 0, options: Some(options), consumed: 0, bookmark: None, seek: None })
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

#[test]
fn flow_control_first_one_entry_then_at_most_two_unacked_batches() {
    let config = ServerConfig { max_batch_entries: 10, ..ServerConfig::default() };
    let mut h = Harness::new(config);
    h.fill((0..100).map(key));
    let replies = h.send(open(1, opts(None, -1, false)));
    assert_eq!(data_of(&replies), vec![(0, vec![Bytes::from(key(0)), Bytes::from(key(0))])]);
    let mut consumed = 1;
    let replies = h.send(GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 0, consumed }));
    let batches = data_of(&replies);
    assert_eq!(batches.len(), 2, "two batches after the first ack");
    assert!(batches.iter().all(|(_, d)| d.len() == 20));
    // A stale ack (wrong seq) releases nothing.
    assert!(h.send(GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 7, consumed })).is_empty());
    let mut seen = 21;
    let mut got_end = false;
    while !got_end {
        consumed += 10;
        let replies = h.send(GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 0, consumed }));
        let batches = data_of(&replies);
        assert!(batches.len() <= 1, "each ack releases at most one batch");
        seen += batches.iter().map(|(_, d)| d.len() / 2).sum::<usize>();
        got_end = ended(&replies);
        assert!(!replies.is_empty(), "acks until the end always release something");
    }
    assert_eq!(seen, 100);
}

#[test]
fn limit_is_never_exceeded() {
    for limit in [1, 5, 100] {
        let mut h = Harness::new(ServerConfig::default());
        h.fill((0..1000).map(key));
        let mut replies = h.send(open(1, opts(None, limit, false)));
        let mut consumed = 0;
        for _ in 0..5 {
            consumed += data_of(&replies).iter().map(|(_, d)| d.len() as u64 / 2).sum::<u64>();
            replies = h.send(GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 0, consumed }));
        }
        consumed += data_of(&replies).iter().map(|(_, d)| d.len() as u64 / 2).sum::<u64>();
        assert_eq!(consumed, limit as u64, "sent exactly the limit (original host: 1 + 4 + 4 for limit 5)");
    }
}

#[test]
fn reverse_resume_from_a_bookmark_keeps_keys_extending_the_decremented_key() {
    let mut h = Harness::new(ServerConfig::default());
    h.fill([vec![1, 4], vec![1, 4, 9], vec![1, 5], vec![1, 6]]);
    // A reconnecting guest consumed [01 06] and [01 05] of a reverse keys-only iterator.
    let options =
        Options { keys: Some(true), values: Some(false), limit: Some(-1), reverse: Some(true), ..Default::default() };
    let reopen = IteratorOpen {
        id: 3,
        seq: 0,
        options: Some(options),
        consumed: 2,
        bookmark: Some(Bytes::from_static(&[1, 5])),
        seek: None,
    };
    let mut replies = h.send(GuestMessage::Iterator(reopen));
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.extend(data_of(&replies).into_iter().flat_map(|(_, d)| d));
        if ended(&replies) {
            break;
        }
        replies = h.send(GuestMessage::IteratorAck(IteratorAck { id: 3, seq: 0, consumed: 2 + keys.len() as u64 }));
    }
    assert_eq!(keys, vec![Bytes::from_static(&[1, 4, 9]), Bytes::from_static(&[1, 4])]);
    // Forward resume is exclusive too and keeps extensions of the bookmark.
    let options = Options { keys: Some(true), values: Some(false), limit: Some(-1), ..Default::default() };
    let reopen = IteratorOpen {
        id: 4,
        seq: 0,
        options: Some(options),
        consumed: 1,
        bookmark: Some(Bytes::from_static(&[1, 4])),
        seek: None,
    };
    let replies = h.send(GuestMessage::Iterator(reopen));
    assert_eq!(data_of(&replies), vec![(0, vec![Bytes::from_static(&[1, 4, 9])])]);
}

#[test]
fn seek_bumps_seq_and_restarts_with_one_entry() {
    let mut h = Harness::new(ServerConfig::default());
    h.fill(["a", "b", "c", "d"].map(|k| k.as_bytes().to_vec()));
    let replies = h.send(open(4, opts(Some("b"), -1, false)));
    assert_eq!(data_of(&replies), vec![(0, vec![b("b"), b("b")])]);
    // The captured seek to 'a' with seq 1: 'a' is outside gte 'b', so the iterator ends there
    // (abstract-level: a target outside the range reaches the natural end).
    let replies = h.send_raw(&hex("08 09 08 04 10 01 1a 01 61")).unwrap();
    assert_eq!(data_of(&replies), vec![]);
    assert!(ended(&replies), "a seek before the range ends the iterator");
    let replies = h.send(GuestMessage::IteratorSeek(IteratorSeek { id: 4, seq: 2, target: b("c") }));
    assert_eq!(data_of(&replies), vec![(2, vec![b("c"), b("c")])], "a seek back into the range restarts it");
    let replies = h.send(GuestMessage::IteratorSeek(IteratorSeek { id: 4, seq: 3, target: b("d") }));
    assert_eq!(data_of(&replies), vec![(3, vec![b("d"), b("d")])]);
    assert!(ended(&replies), "nothing after d");
    // Values-only iterator sends only values.
    let values_only = Options { keys: Some(false), values: Some(true), limit: Some(-1), ..Default::default() };
    let replies = h.send(open(5, values_only));
    assert_eq!(data_of(&replies), vec![(0, vec![b("a")])]);
}

#[test]
fn get_many_error_is_an_error_reply_and_readonly_refuses_writes() {
    let mut h = Harness::new(ServerConfig::default());
    h.fail_get_many = true;
    let replies = h.send(GuestMessage::GetMany(GetMany { id: 9, keys: vec![b("a")] }));
    let want = GetManyCallback { id: 9, error: Some("LEVEL_REMOTE_ERROR".into()), values: vec![] };
    assert_eq!(replies, vec![HostMessage::GetManyCallback(want)]);
    assert!(!h.server.is_closed());

    let mut h = Harness::new(ServerConfig { readonly: true, ..ServerConfig::default() });
    let replies = h.send(GuestMessage::Put(Put { id: 1, key: b("a"), value: Some(b("1")) }));
    let want = Callback { id: 1, error: Some("LEVEL_READONLY".into()), value: None };
    assert_eq!(replies, vec![HostMessage::Callback(want)]);
    let replies = h.send(GuestMessage::Get(Get { id: 2, key: b("a") }));
    assert_eq!(
        replies,
        vec![HostMessage::Callback(Callback { id: 2, error: Some("LEVEL_NOT_FOUND".into()), value: None })]
    );
    assert!(h.store.data().is_empty());
}

#[test]
fn malformed_input_gets_an_error_reply_and_closes() {
    // A batch whose op type is not UTF-8: the id is still readable, so it is answered.
    let mut h = Harness::new(ServerConfig::default());
    let err = h.send_raw(&hex("0a 03 08 07 12 05 0a 01 ff 12 00")).unwrap_err();
    assert!(matches!(err, ServerError::Decode(_)), "{err}");
    assert_eq!(h.raw, hex(r#"17 00 08 07 12 12 "LEVEL_REMOTE_ERROR""#));
    assert!(h.server.is_closed());

    // An unknown tag: no id to answer, the connection closes.
    let mut h = Harness::new(ServerConfig::default());
    assert!(h.send_raw(&hex("03 0a 08 01")).is_err());
    assert!(h.server.is_closed() && h.raw.is_empty());

    // An iterator without its required options: an iterator error, then close.
    let mut h = Harness::new(ServerConfig::default());
    assert!(h.send_raw(&hex("07 04 08 05 10 00 20 00")).is_err());
    assert_eq!(h.raw, hex(r#"19 03 08 05 10 00 1a 12 "LEVEL_REMOTE_ERROR""#));

    // A frame longer than the maximum is refused from its prefix alone.
    let mut h = Harness::new(ServerConfig { max_frame: 1024, ..ServerConfig::default() });
    assert!(matches!(h.send_raw(&hex("ff ff ff 07")), Err(ServerError::Frame(_))));

    // An empty frame is swallowed, as by the original.
    let mut h = Harness::new(ServerConfig::default());
    assert!(h.send_raw(&hex("00 06 00 08 02 12 01 61")).unwrap().len() == 1);
}

#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut h = Harness::new(ServerConfig { max_frame: 4096, ..ServerConfig::default() });
        h.fill([b"a".to_vec(), b"b".to_vec()]);
        let len = (next() % 40) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(tag) = body.first_mut() {
            *tag %= 11;
        }
        let mut frame = vec![body.len() as u8];
        frame.extend_from_slice(&body);
        let _ = h.send_raw(&frame);
        let _ = h.send_raw(&body);
    }
}

#[test]
fn store_outcomes_after_close_are_ignored() {
    let mut h = Harness::new(ServerConfig::default());
    h.server.handle_input(&guest(&GuestMessage::Get(Get { id: 1, key: b("a") })), h.now).unwrap();
    let Some(ServerEvent::Store { op, .. }) = h.server.poll_event() else { panic!("a get") };
    h.server.close(multilevel_proto::GoodbyeReason::Shutdown, "bye");
    h.server.handle_outcome(op, Ok(Outcome::Value(None)), h.now).unwrap();
    assert!(h.server.poll_transmit().is_none());
}

#[test]
fn snapshots_are_released_on_close_error_and_connection_close() {
    let config = ServerConfig { max_iterators: 2, ..ServerConfig::default() };
    let mut h = Harness::new(config);
    h.fill((0..50).map(key));
    h.send(open(1, opts(None, -1, false)));
    h.send(open(2, opts(None, -1, true)));
    assert_eq!(h.snapshots.len(), 2);
    // A third iterator is over the cap: an error for it, nothing opened.
    let replies = h.send(open(3, opts(None, -1, false)));
    let want =
        multilevel_proto::manylevel::messages::IteratorError { id: 3, seq: 0, error: "LEVEL_REMOTE_ERROR".into() };
    assert_eq!(replies, vec![HostMessage::IteratorError(want)]);
    assert_eq!(h.snapshots.len(), 2);
    // A second open of a live id is ignored, as by the original host.
    assert!(h.send(open(1, opts(None, -1, false))).is_empty());
    assert!(h.send(GuestMessage::IteratorClose(IteratorClose { id: 1 })).is_empty());
    assert_eq!(h.snapshots.len(), 1);
    // Closing an unknown id is ignored.
    assert!(h.send(GuestMessage::IteratorClose(IteratorClose { id: 77 })).is_empty());
    h.server.close(multilevel_proto::GoodbyeReason::Shutdown, "bye");
    h.pump();
    assert!(h.snapshots.is_empty());
}

#[test]
fn both_machines_run_behind_the_shared_trait() {
    use multilevel_proto::{Protocol, ServerMachine};
    let now = Instant::now();
    let mut machine: Box<dyn ServerMachine> = Protocol::ManyLevel.machine(ServerConfig::default(), now);
    machine.handle_input(&hex("09 01 08 01 12 01 61 1a 01 31"), now).unwrap();
    let Some(ServerEvent::Store { op, request }) = machine.poll_event() else { panic!("a write") };
    assert!(request.is_write());
    machine.handle_outcome(op, Ok(Outcome::Written), now).unwrap();
    assert_eq!(machine.poll_transmit().unwrap().to_vec(), hex("03 00 08 01"));
    assert_eq!(machine.in_flight(), 0);
    assert!(machine.wants_input() && !machine.is_closed() && machine.poll_timeout().is_none());
    // The multilevel machine is the default and waits for its handshake.
    let mut ours: Box<dyn ServerMachine> = Protocol::default().machine(ServerConfig::default(), now);
    assert!(ours.handle_input(&hex("09 01 08 01 12 01 61 1a 01 31"), now).is_err());
}

#[test]
fn gte_and_lte_take_precedence_over_gt_and_lt_in_iterators_and_clear() {
    let mut h = Harness::new(ServerConfig::default());
    h.fill(["3", "4", "5", "6", "7", "8"].map(|k| k.as_bytes().to_vec()));
    // abstract-level: gte wins over gt and lte over lt, whichever is tighter.
    let both = Options {
        keys: Some(true),
        values: Some(false),
        gt: Some(b("5")),
        gte: Some(b("4")),
        lt: Some(b("6")),
        lte: Some(b("7")),
        limit: Some(-1),
        ..Options::default()
    };
    let mut replies = h.send(open(1, both));
    let mut keys = Vec::new();
    for _ in 0..8 {
        keys.extend(data_of(&replies).into_iter().flat_map(|(_, d)| d));
        if ended(&replies) {
            break;
        }
        replies = h.send(GuestMessage::IteratorAck(IteratorAck { id: 1, seq: 0, consumed: keys.len() as u64 }));
    }
    assert_eq!(keys, ["4", "5", "6", "7"].map(b));

    let clear = ClearOptions {
        gt: Some(b("3")),
        gte: Some(b("5")),
        lt: Some(b("9")),
        lte: Some(b("6")),
        limit: Some(-1),
        ..ClearOptions::default()
    };
    h.send(GuestMessage::Clear(Clear { id: 2, options: Some(clear) }));
    let left: Vec<_> = h.store.data().keys().map(|k| k.to_vec()).collect();
    assert_eq!(left, ["3", "4", "7", "8"].map(|k| k.as_bytes().to_vec()));
}

#[test]
fn a_server_with_tokens_scoped_or_not_serves_no_many_level_guest() {
    // many-level has no tokens: a guest could never show it is limited to a sublevel, so a
    // server configured with tokens closes every many-level connection at once.
    let tokens = multilevel_proto::Tokens::parse("rw 0123456789abcdef-users sublevel=users\n").unwrap();
    let config = ServerConfig { tokens: Some(std::sync::Arc::new(tokens)), ..ServerConfig::default() };
    let mut h = Harness::new(config);
    assert!(h.server.is_closed());
    assert!(matches!(h.server.error(), Some(ServerError::Unauthenticated(_))));
    let put = GuestMessage::Put(Put { id: 1, key: b("a"), value: Some(b("outside")) });
    assert_eq!(h.send_raw(&guest(&put)), Ok(vec![]), "nothing is answered");
    assert!(h.store.data().is_empty(), "nothing is written");
}
