//! A full map grows; at its ceiling writes fail with StorageFull and nothing else breaks.

mod common;

use std::sync::mpsc;

use common::*;
use multilevel_store::{
    BatchRead, KeyRange, Outcome, Store, StoreError, StoreOptions, StoreRequest, WriteOp, WriteRequest,
};

const MIB: usize = 1 << 20;

#[test]
fn a_full_map_grows_and_closes_open_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().map_size(MIB)).unwrap();
    assert_eq!(store.stats().unwrap().map_size, MIB);
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "small", "v");
    read(&mut conn, StoreRequest::OpenIterator { iterator: 1 }).unwrap();

    let big = vec![0xabu8; 3 * MIB];
    w.put(&mut conn, "big", &big);
    let ops = (0..4u8).map(|i| batch_put([b'b', i], vec![i; MIB])).collect();
    assert_eq!(w.write(&mut conn, WriteOp::Batch(ops)), Ok(Outcome::Written));

    let stats = store.stats().unwrap();
    assert!(stats.map_size >= 8 * MIB, "map is {} bytes", stats.map_size);
    assert!(stats.remaps >= 1);
    assert_eq!(get(&mut conn, "big").unwrap().len(), 3 * MIB);
    assert_eq!(get(&mut conn, [b'b', 3]).unwrap(), vec![3u8; MIB]);
    assert_eq!(get(&mut conn, "small"), Some(b("v")));
    // The resize had to close the snapshot taken before it.
    let batch =
        BatchRead { iterator: 1, range: KeyRange::all(), reverse: false, max_entries: 1, max_bytes: 1, values: true };
    assert_eq!(read(&mut conn, StoreRequest::ReadBatch(batch)), Err(StoreError::UnknownIterator));
    assert_eq!(store.stats().unwrap().open_snapshots, 0);
    assert_eq!(scan(&mut conn, 2, KeyRange::all(), false).len(), 6);
}

#[test]
fn at_the_ceiling_only_the_writes_that_do_not_fit_fail() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().map_size(MIB).max_map_size(MIB);
    let store = Store::open(dir.path(), options).unwrap();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "before", "intact");

    let full = w.write(&mut conn, put("huge", vec![0u8; 2 * MIB]));
    let Err(StoreError::StorageFull(message)) = full else { panic!("expected StorageFull, got {full:?}") };
    assert!(message.contains("1048576"), "the message gives the sizes: {message}");
    assert_eq!(get(&mut conn, "huge"), None);
    assert_eq!(get(&mut conn, "before"), Some(b("intact")));

    // In one group: the small writes around a write that cannot fit still succeed.
    let (tx, rx) = mpsc::channel();
    let ops = [put("s1", "1"), put("huge", vec![0u8; 2 * MIB]), put("s2", "2")];
    for (i, op) in ops.into_iter().enumerate() {
        let tx = tx.clone();
        let request = WriteRequest { session: 2, request: i as u64 + 1, op };
        let _ = conn.execute(StoreRequest::Write(request), move |r| tx.send((i, r)).unwrap());
    }
    drop(tx);
    let mut results: Vec<_> = rx.iter().collect();
    results.sort_by_key(|(i, _)| *i);
    assert_eq!(results[0].1, Ok(Outcome::Written));
    assert!(matches!(results[1].1, Err(StoreError::StorageFull(_))), "{:?}", results[1]);
    assert_eq!(results[2].1, Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "s1"), Some(b("1")));
    assert_eq!(get(&mut conn, "s2"), Some(b("2")));

    // A replay of the failed write gets the same answer (its outcome fit in the map).
    assert!(matches!(write(&mut conn, 2, 2, put("huge", vec![0u8; 2 * MIB])), Err(StoreError::StorageFull(_))));

    // Fill the map with moderate writes until it is full, then check everything is readable.
    let mut stored = 0;
    loop {
        match w.write(&mut conn, put(format!("fill{stored}"), vec![7u8; 64 << 10])) {
            Ok(_) => stored += 1,
            Err(StoreError::StorageFull(_)) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(stored < 100, "a 1 MiB map cannot hold 100 writes of 64 KiB");
    }
    assert!(stored > 0);
    for i in 0..stored {
        assert_eq!(get(&mut conn, format!("fill{i}")).unwrap().len(), 64 << 10);
    }
    // Freeing space makes writes possible again.
    let clear = WriteOp::Clear { range: KeyRange::all().gte("fill"), reverse: false, limit: None };
    assert_eq!(w.write(&mut conn, clear), Ok(Outcome::Written));
    // LMDB reuses the pages a commit freed only from the transaction after next.
    let attempts: Vec<_> = (0..4).map(|_| w.write(&mut conn, put("after", vec![1u8; 64 << 10])).is_ok()).collect();
    assert_eq!(attempts[1..], [true, true, true], "{attempts:?}");
    assert_eq!(get(&mut conn, "before"), Some(b("intact")));
    assert_eq!(store.stats().unwrap().map_size, MIB);
}
