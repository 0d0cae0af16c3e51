//! The suite every client adapter runs against every server adapter and backend, including
//! connections cut at random bytes by a proxy while iterating with retry on.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use multilevel_proto::message::{Goodbye, decode};
use multilevel_proto::{
    BatchOp, ClientOptions, FrameDecoder, GoodbyeReason, IterOptions, KeyRange, MemoryBackend, MemoryStore,
    ServerMessage,
};
use multilevel_serve::Serving;

use crate::adapters::{Adapter, AnyClient, BackendServer};
use crate::proxy::CuttingProxy;

fn key(i: u32) -> Bytes {
    Bytes::from(format!("k{i:05}"))
}

/// Runs the suite with `db`, a client of `adapter` connected to the empty database served at
/// `server`; `what` names the pair in failures. It opens a second, retrying client of
/// `adapter` through a cutting proxy in front of `server`.
pub fn run(db: &AnyClient, adapter: Adapter, server: SocketAddr, what: &str) {
    db.put(b"", "empty key").unwrap();
    db.put("a", "1").unwrap();
    assert_eq!(db.get("a").unwrap(), Some(Bytes::from("1")), "{what}");
    assert_eq!(db.get_many(&["a", "zz", ""]).unwrap(), vec![Some("1".into()), None, Some("empty key".into())]);
    db.del("a").unwrap();
    db.del(b"").unwrap();
    assert_eq!(db.get("a").unwrap(), None);

    // In batches of 100: etcd holds at most 128 operations per transaction.
    for chunk in (0..2000u32).collect::<Vec<_>>().chunks(100) {
        let ops = chunk.iter().map(|&i| BatchOp::Put { key: key(i), value: Bytes::from(vec![i as u8; 40]) });
        db.batch(ops.collect()).unwrap();
    }
    let all: Vec<Bytes> = (0..2000).map(key).collect();
    let keys = |entries: Vec<multilevel_proto::Entry>| -> Vec<Bytes> { entries.into_iter().map(|e| e.key).collect() };
    assert_eq!(keys(db.scan(IterOptions::default(), None).unwrap()), all, "{what}");
    let reverse = IterOptions { reverse: true, limit: Some(700), ..IterOptions::default() };
    let expected: Vec<Bytes> = all.iter().rev().take(700).cloned().collect();
    assert_eq!(keys(db.scan(reverse, None).unwrap()), expected, "{what}");
    let values_only = db.scan(IterOptions { keys: false, ..IterOptions::default() }, None).unwrap();
    assert!(values_only.iter().all(|e| e.key.is_empty() && e.value.len() == 40));
    let seeked = keys(db.scan(IterOptions::default(), Some((10, key(1990)))).unwrap());
    assert_eq!(seeked.len(), 20, "{what}: 10 entries, then 1990..2000");
    db.clear_with(KeyRange::all().gte(key(1000)), false, None).unwrap();
    assert_eq!(db.scan(IterOptions::default(), None).unwrap().len(), 1000, "{what}");

    // Through a proxy that cuts connections, with retry on: exact, and writes applied once.
    let tokens = (0..40u32).map(|i| BatchOp::Put { key: format!("token/{i:02}").into(), value: Bytes::new() });
    db.batch(tokens.collect()).unwrap();
    let proxy = CuttingProxy::start(server, 7, 12.0, 17.0);
    let cut = AnyClient::connect(adapter, proxy.addr, ClientOptions::default().retry(true));
    for round in 0..20 {
        let got = keys(cut.scan(IterOptions { reverse: round % 2 == 1, ..IterOptions::default() }, None).unwrap());
        let range = KeyRange::all().lt("l");
        let got: Vec<Bytes> = got.into_iter().filter(|k| range.contains(k)).collect();
        let mut want: Vec<Bytes> = (0..1000).map(key).collect();
        if round % 2 == 1 {
            want.reverse();
        }
        assert!(got == want, "{what}: iteration {round} through the cutting proxy");
        cut.clear_with(KeyRange::all().gte("token/").lt("token0"), false, Some(1)).unwrap();
    }
    let left =
        db.scan(IterOptions { range: KeyRange::all().gte("token/").lt("token0"), ..IterOptions::default() }, None);
    assert_eq!(left.unwrap().len(), 20, "{what}: each of 20 one-key clears applied exactly once");
    assert!(proxy.cuts() > 0, "{what}: the proxy never cut");
}

/// Checks the connection cap of `adapter`'s server: with two connections served, a third gets
/// a `TooManyConnections` goodbye and is closed, the two keep working, and once one leaves a
/// new connection is served.
pub fn connection_cap(adapter: Adapter) {
    let serving = Serving::new(MemoryBackend::new(MemoryStore::new())).with_max_connections(2);
    let server = BackendServer::from_serving(adapter, serving);
    let first = AnyClient::connect(adapter, server.addr, ClientOptions::default());
    let second = AnyClient::connect(adapter, server.addr, ClientOptions::default());
    first.put("a", "1").unwrap();
    second.put("b", "2").unwrap();

    let goodbye = refusal(server.addr);
    assert_eq!(goodbye.reason, GoodbyeReason::TooManyConnections, "{adapter:?}: {goodbye:?}");
    assert!(goodbye.message.contains("maximum of 2"), "{adapter:?}: {}", goodbye.message);
    first.put("c", "3").unwrap();
    assert_eq!(second.get("c").unwrap(), Some(Bytes::from("3")), "{adapter:?}");

    // The place a connection held is freed when it closes.
    drop(first);
    let third = AnyClient::connect(adapter, server.addr, ClientOptions::default().retry(true));
    assert_eq!(third.get("a").unwrap(), Some(Bytes::from("1")), "{adapter:?}");
}

/// Connects to `addr` without a handshake and returns the goodbye the server sends before it
/// closes the connection.
pub fn refusal(addr: SocketAddr) -> Goodbye {
    let mut raw = TcpStream::connect(addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    let mut received = Vec::new();
    raw.read_to_end(&mut received).expect("the refused connection is closed");
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&received);
    let frame = decoder.next_frame().expect("a frame").expect("a goodbye frame");
    let ServerMessage::Goodbye(goodbye) = decode(&frame).expect("a server message") else { panic!("not a goodbye") };
    goodbye
}
