//! Driving a client and a server by hand over an in-memory transport, the way an adapter for
//! an unusual transport (WebSocket, QUIC stream, shared memory) would.
//!
//! The transport here is a pair of byte queues. Halfway through, the connection is cut with
//! bytes in flight; the client, with retry on, replays its writes on a new connection and the
//! iterator resumes where it stopped, with nothing lost and nothing applied twice.
//!
//! Run it with `cargo run -p multilevel-proto --example custom_transport`.

use std::collections::VecDeque;
use std::time::Instant;

use multilevel_proto::{
    Client, ClientConfig, ClientEvent, IterOptions, IterPoll, MemorySnapshots, MemoryStore, Request, ServerConfig,
    ServerConnection, ServerEvent,
};

/// One connection: a server state machine and the bytes in flight each way.
struct Connection {
    server: ServerConnection,
    snapshots: MemorySnapshots,
    to_server: VecDeque<u8>,
    to_client: VecDeque<u8>,
}

impl Connection {
    fn new(now: Instant) -> Self {
        Self {
            server: ServerConnection::new(ServerConfig::default(), now),
            snapshots: MemorySnapshots::default(),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
        }
    }
}

/// Moves bytes and runs store requests until neither side has anything left to do.
fn drive(client: &mut Client, conn: &mut Connection, store: &mut MemoryStore, now: Instant) {
    loop {
        let mut progress = false;
        // 1. Whatever the client wants to send goes on the wire.
        while let Some(bytes) = client.poll_transmit() {
            conn.to_server.extend(bytes.iter());
            progress = true;
        }
        // 2. The server reads what arrived, as long as it wants input.
        if conn.server.wants_input() && !conn.to_server.is_empty() {
            let bytes: Vec<u8> = conn.to_server.drain(..).collect();
            conn.server.handle_input(&bytes, now).expect("a well-behaved client");
            progress = true;
        }
        // 3. The server's store requests run against the store; outcomes go back in.
        while let Some(event) = conn.server.poll_event() {
            match event {
                ServerEvent::Store { op, request } => {
                    let result = store.execute(&mut conn.snapshots, request);
                    conn.server.handle_outcome(op, result, now).expect("a well-behaved client");
                }
                ServerEvent::CloseIterator { iterator } => conn.snapshots.close(iterator),
                ServerEvent::CloseWatch { .. } => {}
            }
            progress = true;
        }
        // 4. The server's answers go on the wire and reach the client.
        while let Some(bytes) = conn.server.poll_transmit() {
            conn.to_client.extend(bytes.iter());
            progress = true;
        }
        if !conn.to_client.is_empty() {
            let bytes: Vec<u8> = conn.to_client.drain(..).collect();
            client.handle_input(&bytes, now).expect("a well-behaved server");
            progress = true;
        }
        // 5. Events tell callers what finished.
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Response { id, result } = event {
                println!("request {id}: {result:?}");
            }
        }
        if !progress {
            return;
        }
    }
}

fn main() {
    let now = Instant::now();
    let mut store = MemoryStore::new();
    // In a real program the session id is random; it must be unique among the server's clients.
    let mut client = Client::new(ClientConfig::new(0x1234_5678).with_retry(true), now);

    let mut conn = Connection::new(now);
    client.handle_connected(now);
    for i in 0..5u8 {
        client.issue(Request::Put { key: vec![b'k', i].into(), value: vec![i].into() }, now).unwrap();
    }
    drive(&mut client, &mut conn, &mut store, now);

    let iter = client.open_iterator(IterOptions::default()).unwrap();
    drive(&mut client, &mut conn, &mut store, now);
    let first = client.iterator_next(iter);
    println!("first entry: {first:?}");

    // A write goes out, and the connection dies before its answer comes back.
    client.issue(Request::Put { key: "late".into(), value: "write".into() }, now).unwrap();
    while let Some(bytes) = client.poll_transmit() {
        conn.to_server.extend(bytes.iter());
    }
    drop(conn);
    client.handle_disconnected(now);
    println!("connection cut; {} request(s) pending", client.pending());

    // A new connection: the client replays the write and reopens the iterator after the last
    // key it received.
    let mut conn = Connection::new(now);
    client.handle_connected(now);
    drive(&mut client, &mut conn, &mut store, now);
    loop {
        match client.iterator_next(iter) {
            IterPoll::Entry(entry) => println!("entry: {entry:?}"),
            IterPoll::Pending => drive(&mut client, &mut conn, &mut store, now),
            IterPoll::End => break,
            IterPoll::Error(err) => panic!("{err}"),
        }
    }
    println!("store holds {} keys; writes applied: {}", store.data().len(), store.applied().len());
    assert_eq!(store.applied().len(), 6, "each write applied once");
}
