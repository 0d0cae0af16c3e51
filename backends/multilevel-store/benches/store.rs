//! Micro-benchmarks of the store's hot paths, so regressions show in review:
//! `cargo bench -p multilevel-store`.
//!
//! - a point read (the stored key built on the stack, the value copied out of the map);
//! - 1000 puts handed to the writer at once, committed in as few groups as it takes them
//!   (no-sync), each one also appended to the change log: the writer's work per put.

use std::hint::black_box;
use std::sync::mpsc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use multilevel_proto::NO_REPLAY_SESSION;
use multilevel_store::{BatchOp, Execution, Outcome, Store, StoreOptions, StoreRequest, WriteOp, WriteRequest};

const KEYS: u32 = 100_000;

fn key(i: u32) -> Bytes {
    Bytes::from(format!("k{i:015}"))
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().no_sync(true).map_size(1 << 30)).unwrap();
    let mut conn = store.connection();
    let value = Bytes::from(vec![b'v'; 100]);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk.iter().map(|&i| BatchOp::Put { key: key(i), value: value.clone() }).collect();
        let (tx, rx) = mpsc::channel();
        let write = WriteRequest { session: NO_REPLAY_SESSION, request: 0, op: WriteOp::Batch(ops) };
        let _ = conn.execute(StoreRequest::Write(write), move |result| tx.send(result).unwrap());
        assert_eq!(rx.recv().unwrap(), Ok(Outcome::Written));
    }

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    group.bench_function("get 16/100 of 100,000 keys, in its own read transaction", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS; // a prime stride: keys far apart, as pipelined clients ask
            match conn.execute(StoreRequest::Get { key: key(i) }, |_| unreachable!("reads run inline")) {
                Execution::Ready(result) => black_box(result.unwrap()),
                Execution::Queued => panic!("a get was queued"),
            }
        })
    });

    group.throughput(Throughput::Elements(1000));
    // The puts go round a second set of 100,000 keys, so the database (and the cost of a put)
    // stays the same however many iterations criterion runs.
    let mut next = 0;
    group.bench_function("1000 puts of 16/100 handed to the writer at once (no-sync, change log on)", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..1000 {
                next = (next + 1) % KEYS;
                let op = WriteOp::Put { key: key(KEYS + next), value: value.clone() };
                let write = WriteRequest { session: NO_REPLAY_SESSION, request: 0, op };
                let tx = tx.clone();
                let _ = conn.execute(StoreRequest::Write(write), move |result| tx.send(result).unwrap());
            }
            drop(tx);
            assert_eq!(rx.iter().filter(|result| *result == Ok(Outcome::Written)).count(), 1000);
        })
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
