//! Hostile and broken clients against every server adapter: each bad connection gets a clear
//! goodbye and is closed, memory stays bounded, and a well-behaved client keeps being served.
//! Figures are printed for RELIABILITY.md (`cargo test -p multilevel-tests --test hostile --
//! --nocapture`); `MULTILEVEL_IDLE_CONNECTIONS` sets how many idle connections to hold.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use multilevel_proto::message::{ClientHello, MAGIC, decode, encode};
use multilevel_proto::{
    ClientMessage, ClientOptions, FrameDecoder, GoodbyeReason, IterOptions, PROTOCOL_VERSION, ServerMessage,
};
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, TestServer};
use multilevel_tests::{knob, rss_kib};

fn hello(version: u16) -> BytesMut {
    let mut out = BytesMut::new();
    let hello = ClientHello { magic: MAGIC, version, features: 0, session: rand::random(), max_frame: 1 << 20 };
    encode(&ClientMessage::Hello(hello), &mut out);
    out
}

/// Sends `bytes`, reads until the server closes, and returns the goodbye it sent last.
fn goodbye_after(addr: SocketAddr, bytes: &[u8]) -> (GoodbyeReason, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("the server closes the connection in time");
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&received);
    let mut last = None;
    while let Ok(Some(frame)) = decoder.next_frame() {
        last = Some(decode::<ServerMessage>(&frame).unwrap());
    }
    match last {
        Some(ServerMessage::Goodbye(goodbye)) => (goodbye.reason, goodbye.message),
        other => panic!("expected a goodbye, got {other:?}"),
    }
}

/// A well-behaved client's round trip, which must stay short while others misbehave.
fn probe(db: &AnyClient) -> Duration {
    let start = Instant::now();
    db.put("probe", "x").unwrap();
    assert_eq!(db.get("probe").unwrap().as_deref(), Some(&b"x"[..]));
    start.elapsed()
}

#[test]
fn bad_input_gets_a_clear_goodbye_on_every_server() {
    for adapter in ALL {
        let server = TestServer::start(adapter, StoreOptions::default());
        let db = AnyClient::connect(Adapter::Blocking, server.addr, ClientOptions::default());
        probe(&db);
        let mut garbage_bytes = 0;
        let garbage: [&[u8]; 3] = [b"GET / HTTP/1.1\r\n\r\n", &[0u8; 64], &[0xff; 300]];
        for bytes in garbage {
            garbage_bytes += bytes.len();
            assert_eq!(goodbye_after(server.addr, bytes).0, GoodbyeReason::BadMagic, "{adapter:?}: {bytes:?}");
        }
        let (reason, message) = goodbye_after(server.addr, &hello(PROTOCOL_VERSION + 1));
        assert_eq!(reason, GoodbyeReason::VersionMismatch, "{adapter:?}");
        assert!(message.contains("version"), "{message}");
        let mut huge = hello(PROTOCOL_VERSION);
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // a 4 GiB frame announced
        let (reason, message) = goodbye_after(server.addr, &huge);
        assert_eq!(reason, GoodbyeReason::ProtocolViolation, "{adapter:?}");
        assert!(message.contains("exceeds the maximum"), "{message}");
        // A truncated frame, then silence: that connection waits, everyone else is served.
        let mut truncated = hello(PROTOCOL_VERSION);
        let mut put = BytesMut::new();
        encode(&ClientMessage::Put { id: 1, key: "k".into(), value: "v".into() }, &mut put);
        truncated.extend_from_slice(&put[..put.len() / 2]);
        let mut silent = TcpStream::connect(server.addr).unwrap();
        silent.write_all(&truncated).unwrap();
        probe(&db);
        assert_eq!(db.get("k").unwrap(), None, "{adapter:?}: half a put is never applied");
        eprintln!(
            "hostile/{adapter:?}: {garbage_bytes} bytes of garbage, a wrong version, a 4 GiB prefix and a truncated frame: all refused, probe still served"
        );
    }
}

#[test]
fn a_client_that_never_reads_cannot_grow_the_server() {
    let server = TestServer::start(Adapter::Tokio, StoreOptions::default().no_sync(true));
    let db = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
    let ops = (0..5000u32)
        .map(|i| multilevel_proto::BatchOp::Put { key: format!("big/{i:05}").into(), value: vec![7u8; 1000].into() });
    db.batch(ops.collect()).unwrap();
    probe(&db);
    let rss_before = rss_kib();

    // Requests for 5 MB of iterator data and many gets, never reading a byte of the answers.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut flood = hello(PROTOCOL_VERSION);
    for id in 1..=20u64 {
        encode(&ClientMessage::IterOpen { id, options: IterOptions::default(), credit: u64::MAX }, &mut flood);
    }
    stream.write_all(&flood).unwrap();
    let mut sent = flood.len();
    let mut id = 100u64;
    let started = Instant::now();
    let mut frame = BytesMut::new();
    while started.elapsed() < Duration::from_secs(5) {
        frame.clear();
        for _ in 0..100 {
            id += 1;
            encode(&ClientMessage::Get { id, key: "big/00001".into() }, &mut frame);
        }
        match stream.write_all(&frame) {
            Ok(()) => sent += frame.len(),
            Err(_) => break, // the server stopped reading: pushed back, as it should
        }
    }
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        worst = worst.max(probe(&db));
    }
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "hostile/never-reads: sent {sent} bytes of requests before the server pushed back; RSS grew {grown} KiB; \
         slowest of 50 probes {worst:?}"
    );
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    assert!(worst < Duration::from_secs(1), "a well-behaved client waited {worst:?}");
}

#[test]
fn thousands_of_idle_connections_cost_little() {
    let count = knob("MULTILEVEL_IDLE_CONNECTIONS", 2000) as usize;
    let server = TestServer::start(Adapter::Tokio, StoreOptions::default());
    let db = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
    probe(&db);
    let rss_before = rss_kib();
    let mut idle = Vec::with_capacity(count);
    let greeting = hello(PROTOCOL_VERSION);
    for _ in 0..count {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(&greeting).unwrap();
        idle.push(stream);
    }
    // Every one got its handshake answer.
    for stream in &mut idle {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
    }
    let worst = (0..20).map(|_| probe(&db)).max().unwrap();
    let stats: std::collections::HashMap<String, u64> = match &db {
        AnyClient::Tokio(c) => multilevel_tests::adapters::runtime().block_on(c.stats()).unwrap().into_iter().collect(),
        _ => unreachable!(),
    };
    let grown = rss_kib().saturating_sub(rss_before);
    let per_connection = grown * 1024 / count as u64;
    eprintln!(
        "hostile/idle: {count} idle connections held (server reports {}); RSS grew {grown} KiB, {per_connection} bytes \
         per connection (both ends in this process); slowest probe {worst:?}",
        stats["connections"]
    );
    assert!(stats["connections"] as usize > count, "all connections are open");
    assert!(worst < Duration::from_secs(1));
}

#[test]
fn iterators_opened_and_never_read_hold_bounded_resources() {
    let server = TestServer::start(Adapter::Tokio, StoreOptions::default().no_sync(true));
    let db = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
    let ops = (0..2000u32)
        .map(|i| multilevel_proto::BatchOp::Put { key: format!("k{i:05}").into(), value: vec![1u8; 500].into() });
    db.batch(ops.collect()).unwrap();
    let rss_before = rss_kib();
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let mut out = hello(PROTOCOL_VERSION);
        for id in 1..=100u64 {
            encode(&ClientMessage::IterOpen { id, options: IterOptions::default(), credit: 1 << 20 }, &mut out);
        }
        stream.write_all(&out).unwrap();
        conns.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let snapshots = server.store.stats().unwrap().open_snapshots;
    let worst = (0..20).map(|_| probe(&db)).max().unwrap();
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "hostile/unread-iterators: 20 connections x 100 iterator opens, never read: {snapshots} snapshots open \
         (cap 64 per connection), RSS grew {grown} KiB, slowest probe {worst:?}"
    );
    assert!(snapshots <= 20 * 64, "{snapshots} snapshots");
    assert!(grown < 128 * 1024, "RSS grew by {grown} KiB");
    drop(conns);
}
