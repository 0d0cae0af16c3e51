//! Broken and hostile peers get a clear goodbye and a closed connection; everyone else is
//! served as before.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::{TestServer, rss_kib};
use multilevel_proto::message::{ClientHello, MAGIC, decode, encode};
use multilevel_proto::{ClientMessage, FrameDecoder, GoodbyeReason, PROTOCOL_VERSION, ServerMessage};
use multilevel_store::StoreOptions;

/// Sends `bytes`, then reads until the server closes; returns the frames it sent.
fn send_and_read_to_close(server: &TestServer, bytes: &[u8]) -> Vec<ServerMessage> {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("the server closes the connection");
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&received);
    let mut messages = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        messages.push(decode::<ServerMessage>(&frame).unwrap());
    }
    messages
}

fn hello(version: u16) -> BytesMut {
    let mut out = BytesMut::new();
    let hello = ClientHello { magic: MAGIC, version, features: 0, session: 1, max_frame: 1 << 20 };
    encode(&ClientMessage::Hello(hello), &mut out);
    out
}

fn goodbye_reason(messages: &[ServerMessage]) -> (GoodbyeReason, String) {
    match messages.last() {
        Some(ServerMessage::Goodbye(goodbye)) => (goodbye.reason, goodbye.message.clone()),
        other => panic!("expected a goodbye last, got {other:?}"),
    }
}

#[test]
fn garbage_gets_a_goodbye_and_a_close() {
    let server = TestServer::start(StoreOptions::default());
    let (reason, message) = goodbye_reason(&send_and_read_to_close(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(reason, GoodbyeReason::BadMagic);
    assert!(message.contains("handshake"), "{message}");
}

#[test]
fn a_wrong_version_is_told_so() {
    let server = TestServer::start(StoreOptions::default());
    let messages = send_and_read_to_close(&server, &hello(PROTOCOL_VERSION + 7));
    let (reason, message) = goodbye_reason(&messages);
    assert_eq!(reason, GoodbyeReason::VersionMismatch);
    assert!(message.contains(&format!("{}", PROTOCOL_VERSION + 7)), "{message}");
}

#[test]
fn a_length_prefix_of_several_gib_costs_no_memory_and_others_keep_working() {
    let server = TestServer::start(StoreOptions::default());
    let other = server.client();
    other.put("before", "1").unwrap();
    let rss_before = rss_kib();
    for _ in 0..20 {
        let mut bytes = hello(PROTOCOL_VERSION);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // a 4 GiB frame follows...
        bytes.extend_from_slice(&[0u8; 1024]); // ...or so it says
        let messages = send_and_read_to_close(&server, &bytes);
        assert!(matches!(messages[0], ServerMessage::Hello(_)));
        let (reason, message) = goodbye_reason(&messages);
        assert_eq!(reason, GoodbyeReason::ProtocolViolation);
        assert!(message.contains("exceeds the maximum"), "{message}");
    }
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    other.put("after", "2").unwrap();
    assert_eq!(other.get("before").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_truncated_frame_then_close_leaves_the_server_serving() {
    let server = TestServer::start(StoreOptions::default());
    let mut bytes = hello(PROTOCOL_VERSION);
    let mut put = BytesMut::new();
    encode(&ClientMessage::Put { id: 1, key: "k".into(), value: "v".into() }, &mut put);
    bytes.extend_from_slice(&put[..put.len() - 2]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(&bytes).unwrap();
    drop(stream);
    let db = server.client();
    assert_eq!(db.get("k").unwrap(), None, "the truncated put was never applied");
    db.put("k", "whole").unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"whole"[..]));
}
