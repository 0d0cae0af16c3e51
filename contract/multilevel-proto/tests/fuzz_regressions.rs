//! Regression tests for bugs found by the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//! Each test names the target and the input that found it.

use std::time::Instant;

use multilevel_proto::{
    Client, ClientConfig, ClientEvent, IterOptions, MemorySnapshots, MemoryStore, Request, ServerConfig,
    ServerConnection, ServerEvent, StoreRequest, WriteOp, WriteRequest,
};

/// Runs every store request of `server` in order, as an adapter does, until it is quiet.
fn run_store(server: &mut ServerConnection, store: &mut MemoryStore, snapshots: &mut MemorySnapshots, now: Instant) {
    while let Some(event) = server.poll_event() {
        match event {
            ServerEvent::Store { op, request } => {
                let result = store.execute(snapshots, request);
                server.handle_outcome(op, result, now).unwrap();
            }
            ServerEvent::CloseIterator { iterator } => snapshots.close(iterator),
            ServerEvent::CloseWatch { .. } => {}
        }
    }
    while server.poll_transmit().is_some() {}
}

/// Found by `server_input` and `model`: an iterator closed while its `IterOpen` still waits in
/// the server's queue behind a write of the same connection (reads wait for earlier writes)
/// leaks its store snapshot. `IterClose` removes the iterator and emits `CloseIterator` at once;
/// the queued `OpenIterator` is dispatched later anyway, the store takes a snapshot, and its
/// outcome is ignored because the iterator is gone, so nothing ever closes that snapshot.
///
/// An ordinary client does this by writing, then opening and closing an iterator before the
/// write is acknowledged. Repeated, the connection holds any number of snapshots (LMDB read
/// transactions, counted against the store's global `max_snapshots`) past `max_iterators`,
/// until the connection ends or the LMDB store's idle timeout reclaims them.
#[test]
fn an_iterator_closed_before_its_open_is_dispatched_leaks_no_snapshot() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::new(7), now);
    let mut server = ServerConnection::new(ServerConfig { max_iterators: 2, ..ServerConfig::default() }, now);
    let mut store = MemoryStore::new();
    let mut snapshots = MemorySnapshots::default();

    client.handle_connected(now);
    while let Some(bytes) = client.poll_transmit() {
        server.handle_input(&bytes, now).unwrap();
    }
    while let Some(bytes) = server.poll_transmit() {
        client.handle_input(&bytes, now).unwrap();
    }
    assert!(client.is_connected());

    for i in 0..5u8 {
        // The wire: Put, IterOpen, IterClose, arriving together.
        client.issue(Request::Put { key: vec![i].into(), value: "v".into() }, now).unwrap();
        let iterator = client.open_iterator(IterOptions::default()).unwrap();
        client.close_iterator(iterator);
        while let Some(bytes) = client.poll_transmit() {
            server.handle_input(&bytes, now).unwrap();
        }
        run_store(&mut server, &mut store, &mut snapshots, now);
    }
    assert_eq!(store.data().len(), 5, "the writes were applied");
    assert_eq!(
        snapshots.len(),
        0,
        "every iterator was closed, yet the connection holds {} snapshots (max_iterators is 2)",
        snapshots.len()
    );
}

/// Found by `server_input` (every frame the server sends must fit the `max_frame` of the
/// client's hello, input `fuzz/corpus/server_input/seed-regression-client-max-frame`): the
/// server never reads `ClientHello::max_frame` ("the largest frame the client accepts") and sends
/// answers of any size. The client's decoder rejects the frame, so the connection drops; with
/// retry on, the client replays the same request on every reconnect and never gets an answer
/// (a reconnect loop); with retry off, it and every other pending request fail.
///
/// A `GetMany` of large values can reach this with default limits (16 MiB both ways); here the
/// client accepts 256 bytes and asks for two values of 200.
#[test]
fn an_answer_larger_than_the_client_accepts_is_not_sent() {
    let now = Instant::now();
    let mut config = ClientConfig::new(7).with_retry(true);
    config.max_frame = 256;
    let mut client = Client::new(config, now);
    let mut store = MemoryStore::new();
    let mut snapshots = MemorySnapshots::default();
    for (request, key) in [(1, "a"), (2, "b")] {
        let op = WriteOp::Put { key: key.into(), value: vec![0u8; 200].into() };
        store.execute(&mut snapshots, StoreRequest::Write(WriteRequest { session: 99, request, op })).unwrap();
    }
    let get = client.issue(Request::GetMany { keys: vec!["a".into(), "b".into()] }, now).unwrap();

    let mut answer = None;
    let mut disconnects = 0;
    for _connection in 0..3 {
        let mut server = ServerConnection::new(ServerConfig::default(), now);
        client.handle_connected(now);
        let mut lost = false;
        loop {
            let mut progress = false;
            while let Some(bytes) = client.poll_transmit() {
                let _ = server.handle_input(&bytes, now);
                progress = true;
            }
            while let Some(event) = server.poll_event() {
                progress = true;
                match event {
                    ServerEvent::Store { op, request } => {
                        let result = store.execute(&mut snapshots, request);
                        let _ = server.handle_outcome(op, result, now);
                    }
                    ServerEvent::CloseIterator { iterator } => snapshots.close(iterator),
                    ServerEvent::CloseWatch { .. } => {}
                }
            }
            while let Some(bytes) = server.poll_transmit() {
                let _ = client.handle_input(&bytes, now);
                progress = true;
            }
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Response { id, result } if id == get => answer = Some(result),
                    ClientEvent::Disconnected(_) => lost = true,
                    _ => {}
                }
            }
            if lost || !progress {
                break;
            }
        }
        if lost {
            disconnects += 1;
        }
        if answer.is_some() {
            break;
        }
    }
    assert!(
        answer.is_some() && disconnects == 0,
        "the GetMany got {answer:?} after {disconnects} dropped connections: every connection is dropped on the \
         oversized answer and the retry asks again"
    );
}
