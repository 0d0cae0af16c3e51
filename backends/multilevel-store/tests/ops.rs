//! Every operation against a real LMDB store, including the empty key and the key size limit.

mod common;

use common::*;
use multilevel_store::{BatchOp, KeyRange, Outcome, Store, StoreError, StoreOptions, StoreRequest, WriteOp};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

fn keys_of(entries: &[(bytes::Bytes, bytes::Bytes)]) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| &k[..]).collect()
}

#[test]
fn handles_are_send_and_sync_as_documented() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Store>();
    sync::<Store>();
    send::<multilevel_store::ConnectionStore>();
}

#[test]
fn put_get_del_and_get_many() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    assert_eq!(get(&mut conn, "a"), None);
    w.put(&mut conn, "a", "1");
    w.put(&mut conn, "b", "2");
    assert_eq!(get(&mut conn, "a"), Some(b("1")));
    w.put(&mut conn, "a", "3");
    assert_eq!(get(&mut conn, "a"), Some(b("3")));
    let many = read(&mut conn, StoreRequest::GetMany { keys: vec![b("b"), b("missing"), b("a"), b(""), b("b")] });
    assert_eq!(many, Ok(Outcome::Values(vec![Some(b("2")), None, Some(b("3")), None, Some(b("2"))])));
    assert_eq!(read(&mut conn, StoreRequest::GetMany { keys: vec![] }), Ok(Outcome::Values(vec![])));
    w.del(&mut conn, "a");
    assert_eq!(get(&mut conn, "a"), None);
    // Deleting a missing key succeeds.
    w.del(&mut conn, "never");
    assert_eq!(store.stats().unwrap().entries, 1);
}

#[test]
fn batches_apply_in_order() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "gone", "x");
    let ops = vec![
        batch_put("k", "1"),
        batch_put("k", "2"),
        BatchOp::Del { key: b("gone") },
        batch_put("n", "3"),
        BatchOp::Del { key: b("n") },
    ];
    assert_eq!(w.write(&mut conn, WriteOp::Batch(ops)), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("2")));
    assert_eq!(get(&mut conn, "gone"), None);
    assert_eq!(get(&mut conn, "n"), None);
    assert_eq!(w.write(&mut conn, WriteOp::Batch(vec![])), Ok(Outcome::Written));
}

#[test]
fn the_empty_key_works_everywhere() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "", "empty");
    w.put(&mut conn, "\0", "nul");
    w.put(&mut conn, "a", "a");
    assert_eq!(get(&mut conn, ""), Some(b("empty")));
    let all = scan(&mut conn, 1, KeyRange::all(), false);
    assert_eq!(keys_of(&all), vec![&b""[..], b"\0", b"a"]);
    let rev = scan(&mut conn, 2, KeyRange::all(), true);
    assert_eq!(keys_of(&rev), vec![&b"a"[..], b"\0", b""]);
    // Bounds at the empty key.
    assert_eq!(keys_of(&scan(&mut conn, 3, KeyRange::all().gt(""), false)), vec![&b"\0"[..], b"a"]);
    assert_eq!(keys_of(&scan(&mut conn, 4, KeyRange::all().lte(""), true)), vec![&b""[..]]);
    assert!(scan(&mut conn, 5, KeyRange::all().lt(""), false).is_empty());
    w.del(&mut conn, "");
    assert_eq!(get(&mut conn, ""), None);
    assert_eq!(keys_of(&scan(&mut conn, 6, KeyRange::all(), false)), vec![&b"\0"[..], b"a"]);
}

#[test]
fn keys_up_to_510_bytes_work_and_longer_ones_are_refused() {
    let (_dir, store) = open();
    assert_eq!(Store::MAX_KEY_SIZE, 510);
    assert_eq!(store.server_config().max_key_size, 510);
    assert!(!store.server_config().readonly);
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    let max = vec![0xffu8; 510];
    let over = vec![0xffu8; 511];
    w.put(&mut conn, &max, "max");
    assert_eq!(get(&mut conn, &max), Some(b("max")));
    assert_eq!(scan(&mut conn, 1, KeyRange::all().gte(&max), false).len(), 1);
    let too_large = Err(StoreError::KeyTooLarge { len: 511, max: 510 });
    assert_eq!(w.write(&mut conn, put(&over, "x")), too_large);
    assert_eq!(w.write(&mut conn, WriteOp::Del { key: b(&over) }), too_large);
    // A batch with one bad key writes nothing.
    let batch = vec![batch_put("first", "1"), batch_put(&over, "2"), batch_put("last", "3")];
    assert_eq!(w.write(&mut conn, WriteOp::Batch(batch)), too_large);
    assert_eq!(get(&mut conn, "first"), None);
    assert_eq!(get(&mut conn, "last"), None);
    // Reading a key too long to be stored finds nothing; range bounds may be any length.
    assert_eq!(get(&mut conn, &over), None);
    assert_eq!(keys_of(&scan(&mut conn, 2, KeyRange::all().lt(&over), false)), vec![&max[..]]);
    assert!(scan(&mut conn, 3, KeyRange::all().gte(&over), false).is_empty());
    let mut longer_than_max = max.clone();
    longer_than_max.push(0);
    assert!(scan(&mut conn, 4, KeyRange::all().gt(&longer_than_max), false).is_empty());
    assert_eq!(keys_of(&scan(&mut conn, 5, KeyRange::all().lte(&longer_than_max), true)), vec![&max[..]]);
}

fn clear(
    conn: &mut multilevel_store::ConnectionStore,
    w: &mut Writer,
    range: KeyRange,
    reverse: bool,
    limit: Option<u64>,
) {
    assert_eq!(w.write(conn, WriteOp::Clear { range, reverse, limit }), Ok(Outcome::Written));
}

fn fill(conn: &mut multilevel_store::ConnectionStore, w: &mut Writer) {
    let ops = (0u8..10).map(|i| batch_put([b'a' + i], [i])).collect();
    assert_eq!(w.write(conn, WriteOp::Batch(ops)), Ok(Outcome::Written));
}

fn remaining(conn: &mut multilevel_store::ConnectionStore) -> String {
    scan(conn, 99, KeyRange::all(), false).into_iter().map(|(k, _)| k[0] as char).collect()
}

#[test]
fn clear_honours_range_limit_and_direction() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    fill(&mut conn, &mut w);
    clear(&mut conn, &mut w, KeyRange::all().gte("c").lt("f"), false, None);
    assert_eq!(remaining(&mut conn), "abfghij");
    clear(&mut conn, &mut w, KeyRange::all(), false, Some(2));
    assert_eq!(remaining(&mut conn), "fghij");
    clear(&mut conn, &mut w, KeyRange::all(), true, Some(2));
    assert_eq!(remaining(&mut conn), "fgh");
    clear(&mut conn, &mut w, KeyRange::all().gt("f"), true, Some(1));
    assert_eq!(remaining(&mut conn), "fg");
    clear(&mut conn, &mut w, KeyRange::all(), false, Some(0));
    assert_eq!(remaining(&mut conn), "fg");
    // An empty (inverted) range removes nothing and does not fail.
    clear(&mut conn, &mut w, KeyRange::all().gt("z").lt("a"), false, None);
    clear(&mut conn, &mut w, KeyRange::all().gt("z").lt("a"), true, Some(5));
    assert_eq!(remaining(&mut conn), "fg");
    clear(&mut conn, &mut w, KeyRange::all(), false, None);
    assert_eq!(remaining(&mut conn), "");
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[test]
fn limited_clear_crosses_its_internal_chunks() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    let ops = (0u32..3000).map(|i| batch_put(i.to_be_bytes(), "")).collect();
    assert_eq!(w.write(&mut conn, WriteOp::Batch(ops)), Ok(Outcome::Written));
    clear(&mut conn, &mut w, KeyRange::all(), true, Some(2500));
    assert_eq!(store.stats().unwrap().entries, 500);
    assert_eq!(get(&mut conn, 499u32.to_be_bytes()), Some(b("")));
    assert_eq!(get(&mut conn, 500u32.to_be_bytes()), None);
    clear(&mut conn, &mut w, KeyRange::all().gte(10u32.to_be_bytes()), false, Some(5000));
    assert_eq!(store.stats().unwrap().entries, 10);
}

#[test]
fn stats_and_sync() {
    let (_dir, store) = open();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "k", "v");
    store.sync().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.sessions, 1);
    assert_eq!(stats.map_size, 64 << 30);
    assert_eq!(stats.max_map_size, 1 << 40);
    assert!(stats.disk_size > 0 && stats.disk_size < 1 << 20, "sparse file: {}", stats.disk_size);
    assert_eq!(stats.open_snapshots, 0);
    assert!(stats.commits >= 1);
    assert_eq!(stats.writes, 1);
    assert!(stats.last_txn_id >= 2);
    assert_eq!(stats.max_readers, 512 + 126);
}
