//! Iterator batches against `multilevel_proto::memory::read_batch`, snapshot isolation, the
//! snapshot cap and the idle timeout.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::thread::sleep;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use multilevel_proto::memory;
use multilevel_store::{BatchRead, KeyRange, Outcome, Store, StoreError, StoreOptions, StoreRequest, WriteOp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Keys from a tiny alphabet with the edge bytes, so the empty key, 0x00 and 0xff bytes and
/// keys extending other keys all occur often.
fn random_key(rng: &mut StdRng) -> Bytes {
    const ALPHABET: [u8; 5] = [0x00, 0x01, 0x7f, 0xfe, 0xff];
    let len = rng.random_range(0..5usize);
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect::<Vec<u8>>().into()
}

fn random_bound(rng: &mut StdRng) -> Bound<Bytes> {
    match rng.random_range(0..3u8) {
        0 => Bound::Unbounded,
        1 => Bound::Included(random_key(rng)),
        _ => Bound::Excluded(random_key(rng)),
    }
}

fn random_read(rng: &mut StdRng, iterator: u64) -> BatchRead {
    BatchRead {
        iterator,
        range: KeyRange { lower: random_bound(rng), upper: random_bound(rng) },
        reverse: rng.random(),
        max_entries: rng.random_range(1..12),
        max_bytes: rng.random_range(1..80),
        values: rng.random(),
    }
}

#[test]
fn batches_match_the_memory_reference_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    let mut writer = Writer::new(1);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for round in 0..4u64 {
        // Grow a random data set, mirrored in a BTreeMap.
        let mut model = BTreeMap::new();
        let mut ops = Vec::new();
        for _ in 0..(40 + round * 60) {
            let key = random_key(&mut rng);
            let value: Bytes =
                (0..rng.random_range(0..12usize)).map(|_| rng.random::<u8>()).collect::<Vec<u8>>().into();
            model.insert(key.clone(), value.clone());
            ops.push(multilevel_store::BatchOp::Put { key, value });
        }
        writer.write(&mut conn, WriteOp::Clear { range: KeyRange::all(), reverse: false, limit: None }).unwrap();
        assert_eq!(writer.write(&mut conn, WriteOp::Batch(ops)), Ok(Outcome::Written));
        let iterator = round;
        assert_eq!(read(&mut conn, StoreRequest::OpenIterator { iterator }), Ok(Outcome::IteratorOpened));

        for _ in 0..400 {
            let request = random_read(&mut rng, iterator);
            let expected = memory::read_batch(&model, &request);
            let got = read(&mut conn, StoreRequest::ReadBatch(request.clone()));
            assert_eq!(got, Ok(expected), "{request:?}");
        }

        // Whole scans in small batches, resumed past the last key like the server does, yield
        // every entry of the range exactly once.
        for _ in 0..100 {
            let request = random_read(&mut rng, iterator);
            let got = drain(
                &mut conn,
                iterator,
                request.range.clone(),
                request.reverse,
                request.max_entries,
                request.max_bytes,
            );
            let mut expected: Vec<(Bytes, Option<Bytes>)> = model
                .iter()
                .filter(|(k, _)| request.range.contains(k))
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            if request.reverse {
                expected.reverse();
            }
            assert_eq!(got, expected, "{request:?}");
        }
        conn.close_iterator(iterator);
    }
    assert_eq!(conn.open_snapshots(), 0);
    assert_eq!(store.stats().unwrap().open_snapshots, 0);
}

#[test]
fn keys_only_and_values_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "a", "12345");
    w.put(&mut conn, "b", "6");
    read(&mut conn, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    let request =
        BatchRead { iterator: 1, range: KeyRange::all(), reverse: false, max_entries: 10, max_bytes: 2, values: false };
    // Keys only: values are not returned and do not count towards max_bytes.
    assert_eq!(
        read(&mut conn, StoreRequest::ReadBatch(request.clone())),
        Ok(Outcome::Batch { entries: vec![(b("a"), None), (b("b"), None)], exhausted: true })
    );
    // With values, the first entry alone reaches max_bytes.
    let with_values = BatchRead { values: true, ..request };
    assert_eq!(
        read(&mut conn, StoreRequest::ReadBatch(with_values)),
        Ok(Outcome::Batch { entries: vec![(b("a"), Some(b("12345")))], exhausted: false })
    );
}

#[test]
fn an_iterator_reads_the_snapshot_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    let mut other = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "a", "old");
    w.put(&mut conn, "b", "old");
    read(&mut conn, StoreRequest::OpenIterator { iterator: 7 }).unwrap();
    w.put(&mut other, "a", "new");
    w.del(&mut other, "b");
    w.put(&mut other, "c", "new");
    assert_eq!(get(&mut conn, "a"), Some(b("new")));
    let seen = drain(&mut conn, 7, KeyRange::all(), false, 1, 100);
    assert_eq!(seen, vec![(b("a"), Some(b("old"))), (b("b"), Some(b("old")))]);
    // A new iterator sees the new data.
    assert_eq!(scan(&mut conn, 8, KeyRange::all(), false), vec![(b("a"), b("new")), (b("c"), b("new"))]);
}

#[test]
fn unknown_and_closed_iterators_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    let batch = |iterator| {
        StoreRequest::ReadBatch(BatchRead {
            iterator,
            range: KeyRange::all(),
            reverse: false,
            max_entries: 1,
            max_bytes: 1,
            values: true,
        })
    };
    assert_eq!(read(&mut conn, batch(1)), Err(StoreError::UnknownIterator));
    read(&mut conn, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    assert_eq!(read(&mut conn, batch(1)), Ok(Outcome::Batch { entries: vec![], exhausted: true }));
    conn.close_iterator(1);
    conn.close_iterator(1);
    conn.close_iterator(12345);
    assert_eq!(read(&mut conn, batch(1)), Err(StoreError::UnknownIterator));
    // Iterators belong to their connection.
    read(&mut conn, StoreRequest::OpenIterator { iterator: 2 }).unwrap();
    let mut other = store.connection();
    assert_eq!(read(&mut other, batch(2)), Err(StoreError::UnknownIterator));
}

#[test]
fn snapshots_are_capped_across_connections_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().max_snapshots(3)).unwrap();
    let mut a = store.connection();
    let mut b = store.connection();
    read(&mut a, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    read(&mut a, StoreRequest::OpenIterator { iterator: 2 }).unwrap();
    read(&mut b, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    assert_eq!(store.stats().unwrap().open_snapshots, 3);
    assert_eq!(read(&mut b, StoreRequest::OpenIterator { iterator: 2 }), Err(StoreError::TooManySnapshots(3)));
    a.close_iterator(1);
    read(&mut b, StoreRequest::OpenIterator { iterator: 2 }).unwrap();
    assert_eq!(read(&mut a, StoreRequest::OpenIterator { iterator: 3 }), Err(StoreError::TooManySnapshots(3)));
    drop(b);
    assert_eq!(store.stats().unwrap().open_snapshots, 1);
    read(&mut a, StoreRequest::OpenIterator { iterator: 3 }).unwrap();
    read(&mut a, StoreRequest::OpenIterator { iterator: 4 }).unwrap();
    // Reopening an id replaces its snapshot instead of leaking it.
    read(&mut a, StoreRequest::OpenIterator { iterator: 4 }).unwrap();
    assert_eq!(store.stats().unwrap().open_snapshots, 3);
    drop(a);
    assert_eq!(store.stats().unwrap().open_snapshots, 0);
}

#[test]
fn idle_snapshots_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().max_snapshots(2).snapshot_idle_timeout(Duration::from_millis(500));
    let store = Store::open(dir.path(), options).unwrap();
    let mut a = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut a, "k", "v");
    let batch = |iterator| {
        StoreRequest::ReadBatch(BatchRead {
            iterator,
            range: KeyRange::all(),
            reverse: false,
            max_entries: 10,
            max_bytes: 100,
            values: true,
        })
    };
    read(&mut a, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    read(&mut a, StoreRequest::OpenIterator { iterator: 2 }).unwrap();
    // Reading keeps a snapshot alive.
    for _ in 0..6 {
        sleep(Duration::from_millis(100));
        assert!(read(&mut a, batch(2)).is_ok());
    }
    // Iterator 1 idled past the timeout: closed on this connection's next request.
    assert_eq!(read(&mut a, batch(1)), Err(StoreError::UnknownIterator));
    assert_eq!(store.stats().unwrap().open_snapshots, 1);

    // At the global cap, another connection's idle snapshots are closed to make room.
    let mut b = store.connection();
    read(&mut b, StoreRequest::OpenIterator { iterator: 1 }).unwrap();
    assert_eq!(read(&mut b, StoreRequest::OpenIterator { iterator: 2 }), Err(StoreError::TooManySnapshots(2)));
    for _ in 0..6 {
        sleep(Duration::from_millis(100));
        assert!(read(&mut b, batch(1)).is_ok());
    }
    // a's iterator 2 is idle now, b's iterator 1 is not.
    read(&mut b, StoreRequest::OpenIterator { iterator: 2 }).unwrap();
    assert_eq!(store.stats().unwrap().open_snapshots, 2);
    assert_eq!(read(&mut a, batch(2)), Err(StoreError::UnknownIterator));
    assert!(read(&mut b, batch(1)).is_ok());
    assert!(read(&mut b, batch(2)).is_ok());
    assert_eq!(a.open_snapshots(), 0);
}
