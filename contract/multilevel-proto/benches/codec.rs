//! Micro-benchmarks of the codec and the state machines, so regressions show in review:
//! `cargo bench -p multilevel-proto`.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multilevel_proto::message::{decode, encode};
use multilevel_proto::{
    BatchOp, Client, ClientConfig, ClientEvent, ClientMessage, FrameDecoder, IterOptions, IterPoll, KeyRange,
    MemorySnapshots, MemoryStore, Request, ServerConfig, ServerConnection, ServerEvent, ServerMessage, WireEntry,
};

fn codec(c: &mut Criterion) {
    let put = ClientMessage::Put { id: 42, key: Bytes::from(vec![b'k'; 16]), value: Bytes::from(vec![b'v'; 100]) };
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode put 16/100", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            encode(black_box(&put), &mut out);
        })
    });
    let mut framed = BytesMut::new();
    encode(&put, &mut framed);
    group.bench_function("frame + decode put 16/100", |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::new(1 << 20);
            decoder.push(black_box(&framed));
            let frame = decoder.next_frame().unwrap().unwrap();
            black_box(decode::<ClientMessage>(&frame).unwrap())
        })
    });
    let entries: Vec<WireEntry> = (0..256u32)
        .map(|i| WireEntry { key: Some(Bytes::from(format!("k{i:015}"))), value: Some(Bytes::from(vec![1u8; 100])) })
        .collect();
    let data = ServerMessage::IterData { id: 1, epoch: 0, entries, last_key: Bytes::from("k000000000000255") };
    let mut encoded = BytesMut::new();
    encode(&data, &mut encoded);
    group.throughput(Throughput::Elements(256));
    group.bench_function("decode iterator batch of 256 entries", |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::new(1 << 20);
            decoder.push(black_box(&encoded));
            let frame = decoder.next_frame().unwrap().unwrap();
            black_box(decode::<ServerMessage>(&frame).unwrap())
        })
    });
    group.finish();
}

/// One request through client, server and memory store and back, all in memory.
fn round_trip(c: &mut Criterion) {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::new(1), now);
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    let mut store = MemoryStore::new();
    let mut snapshots = MemorySnapshots::default();
    client.handle_connected(now);
    let mut pump = |client: &mut Client, server: &mut ServerConnection| {
        while let Some(bytes) = client.poll_transmit() {
            server.handle_input(&bytes, now).unwrap();
        }
        while let Some(event) = server.poll_event() {
            if let ServerEvent::Store { op, request } = event {
                let result = store.execute(&mut snapshots, request);
                server.handle_outcome(op, result, now).unwrap();
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            client.handle_input(&bytes, now).unwrap();
        }
    };
    pump(&mut client, &mut server);
    client.issue(Request::put(b"key", vec![0u8; 100]), now).unwrap();
    pump(&mut client, &mut server);
    while client.poll_event().is_some() {}

    let mut group = c.benchmark_group("state machines");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get round trip (client + server + memory store)", |b| {
        b.iter(|| {
            client.issue(Request::get(b"key"), now).unwrap();
            pump(&mut client, &mut server);
            let Some(ClientEvent::Response { result, .. }) = client.poll_event() else { panic!("no answer") };
            black_box(result.unwrap())
        })
    });
    group.bench_function("open, read and close an iterator of 1 entry", |b| {
        b.iter(|| {
            let id = client.open_iterator(IterOptions::default()).unwrap();
            pump(&mut client, &mut server);
            let IterPoll::Entry(entry) = client.iterator_next(id) else { panic!("no entry") };
            client.close_iterator(id);
            pump(&mut client, &mut server);
            while client.poll_event().is_some() {}
            black_box(entry)
        })
    });
    // A scan: the server encodes each batch straight from the store's entries.
    let batch = (0..256u32).map(|i| BatchOp::Put { key: format!("s{i:015}").into(), value: vec![1u8; 100].into() });
    client.issue(Request::Batch { ops: batch.collect() }, now).unwrap();
    pump(&mut client, &mut server);
    while client.poll_event().is_some() {}
    group.throughput(Throughput::Elements(256));
    group.bench_function("scan 256 entries of 16/100 (client + server + memory store)", |b| {
        b.iter(|| {
            let range = KeyRange::all().gte("s").lt("t");
            let id = client.open_iterator(IterOptions { range, ..IterOptions::default() }).unwrap();
            let mut read = 0;
            loop {
                match client.iterator_next(id) {
                    IterPoll::Entry(entry) => {
                        read += 1;
                        black_box(entry);
                    }
                    IterPoll::Pending => pump(&mut client, &mut server),
                    IterPoll::End => break,
                    IterPoll::Error(err) => panic!("scan failed: {err}"),
                }
            }
            assert_eq!(read, 256);
            client.close_iterator(id);
            pump(&mut client, &mut server);
            while client.poll_event().is_some() {}
        })
    });
    group.finish();
}

criterion_group!(benches, codec, round_trip);
criterion_main!(benches);
