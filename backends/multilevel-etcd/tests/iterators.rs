//! Iterators on a real etcd cluster: one revision each, forward and reverse, limits, keys or
//! values only, byte caps, seeks; a compacted revision fails clearly; and what reverse paging
//! costs.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::{Conn, backend, bput, keys};
use etcd_client::{GetOptions, SortOrder, SortTarget};
use multilevel_proto::store::BatchRead;
use multilevel_proto::{KeyRange, StoreError, WriteOp};

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{i:05}"))
}

/// Fills `db` with keys k00000.. (value = key repeated `value_len / 6` times).
fn fill(db: &mut Conn, session: u64, count: usize, value_len: usize) {
    let mut request = 1000;
    for chunk in (0..count).collect::<Vec<_>>().chunks(120) {
        let ops = chunk.iter().map(|&i| bput(key(i), key(i).repeat(value_len / 6 + 1))).collect();
        request += 1;
        db.write(session, request, WriteOp::Batch(ops)).unwrap();
    }
}

#[test]
fn iterators_forward_reverse_limits_projections_and_seeks() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "iter");
    let mut db = Conn::new(&backend);
    // Keys that extend others, 0x00 and 0xff edges, the empty key.
    let edge: Vec<Bytes> = [&b""[..], b"\x00", b"\x00\x00", b"a", b"a\x00", b"ab", b"a\xff", b"\xff", b"\xff\xff"]
        .iter()
        .map(|k| Bytes::copy_from_slice(k))
        .collect();
    let ops = edge.iter().map(|k| bput(k, [k.as_ref(), b"-v"].concat())).collect();
    db.write(1, 1, WriteOp::Batch(ops)).unwrap();

    let iterator = db.open();
    // Written after the iterator opened: not in its snapshot.
    db.write(1, 2, WriteOp::Batch(vec![bput("a\x01", "late")])).unwrap();
    db.write(1, 3, WriteOp::Del { key: Bytes::from_static(b"ab") }).unwrap();

    for per_batch in [1, 2, 100] {
        let (forward, _) = db.scan(iterator, KeyRange::all(), false, true, per_batch, 1 << 20, None);
        assert_eq!(keys(&forward), edge, "forward, {per_batch} per batch");
        assert!(forward.iter().all(|(k, v)| v.as_deref() == Some(&[k.as_ref(), b"-v"].concat()[..])));
        let (reverse, _) = db.scan(iterator, KeyRange::all(), true, true, per_batch, 1 << 20, None);
        let mut expected = edge.clone();
        expected.reverse();
        assert_eq!(keys(&reverse), expected, "reverse, {per_batch} per batch");
    }
    // Keys only: no values come back.
    let (keys_only, _) = db.scan(iterator, KeyRange::all(), false, false, 3, 1 << 20, None);
    assert_eq!(keys(&keys_only), edge);
    assert!(keys_only.iter().all(|(_, v)| v.is_none()));
    let (keys_only, _) = db.scan(iterator, KeyRange::all(), true, false, 4, 1 << 20, None);
    assert_eq!(keys_only.len(), edge.len());
    // Limits and ranges.
    let (limited, _) = db.scan(iterator, KeyRange::all().gt("a"), false, true, 2, 1 << 20, Some(3));
    assert_eq!(keys(&limited), edge[4..7].to_vec());
    let (limited, _) = db.scan(iterator, KeyRange::all().lte("a"), true, true, 2, 1 << 20, Some(2));
    assert_eq!(keys(&limited), vec![edge[3].clone(), edge[2].clone()]);
    // A byte cap of 1 gives one entry per batch and still every entry.
    let (capped, batches) = db.scan(iterator, KeyRange::all(), false, true, 100, 1, None);
    assert_eq!((keys(&capped), batches), (edge.clone(), edge.len()));
    let (capped, _) = db.scan(iterator, KeyRange::all(), true, true, 100, 1, None);
    assert_eq!(capped.len(), edge.len());
    // Seeks land exactly: forward at or after the target, reverse at or before.
    let (seek, _) =
        db.scan(iterator, KeyRange::all().from_key(&Bytes::from_static(b"a\x00")), false, true, 2, 1 << 20, None);
    assert_eq!(keys(&seek), edge[4..].to_vec());
    let (seek, _) =
        db.scan(iterator, KeyRange::all().to_key(&Bytes::from_static(b"a\x01")), true, false, 2, 1 << 20, None);
    assert_eq!(keys(&seek), vec![edge[4].clone(), edge[3].clone(), edge[2].clone(), edge[1].clone(), edge[0].clone()]);

    // A new iterator sees the later writes.
    let later = db.open();
    let (now, _) = db.scan(later, KeyRange::all().gte("a").lt("b"), false, true, 10, 1 << 20, None);
    assert_eq!(
        keys(&now),
        vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"a\x00"),
            Bytes::from_static(b"a\x01"),
            Bytes::from_static(b"a\xff")
        ]
    );
    // A closed iterator is unknown.
    db.conn_close(iterator);
    let read =
        BatchRead { iterator, range: KeyRange::all(), reverse: false, max_entries: 1, max_bytes: 1, values: true };
    assert_eq!(db.batch(read), Err(StoreError::UnknownIterator));
}

#[test]
fn reverse_iteration_over_many_keys_pages_by_checkpoints() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "many");
    let mut db = Conn::new(&backend);
    let count = 5000;
    fill(&mut db, 1, count, 100);
    let iterator = db.open();
    let all: Vec<Bytes> = (0..count).map(key).collect();
    let mut reversed = all.clone();
    reversed.reverse();
    for (values, per_batch, max_bytes) in [(true, 100, 64 << 10), (false, 1000, 1 << 20), (true, 4096, 64 << 10)] {
        let started = Instant::now();
        let (entries, batches) = db.scan(iterator, KeyRange::all(), true, values, per_batch, max_bytes, None);
        assert_eq!(keys(&entries), reversed, "values {values}, {per_batch} per batch");
        eprintln!(
            "reverse over {count} keys, values {values}, {per_batch} per batch: {batches} batches in {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let (entries, batches) = db.scan(iterator, KeyRange::all(), false, values, per_batch, max_bytes, None);
        assert_eq!(keys(&entries), all);
        eprintln!("forward, same: {batches} batches in {:?}", started.elapsed());
    }
    // A seek into the middle and a range inside.
    let (mid, _) = db.scan(iterator, KeyRange::all().gt(key(1000)).lte(key(3500)), true, true, 333, 1 << 20, None);
    assert_eq!(keys(&mid), reversed[count - 1 - 3500..count - 1 - 1000].to_vec());
}

/// What paging backwards costs: checkpointed forward windows against etcd `DESCEND` ranges
/// narrowed from the last key, over the same keys. Printed, not asserted.
#[test]
fn reverse_paging_cost_against_descend_ranges() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "cost");
    let mut db = Conn::new(&backend);
    // MULTILEVEL_ETCD_COST_KEYS=100000 for a longer measurement.
    let count = std::env::var("MULTILEVEL_ETCD_COST_KEYS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let started = Instant::now();
    fill(&mut db, 1, count, 100);
    eprintln!("filled {count} keys in {:?}", started.elapsed());
    let iterator = db.open();
    let per_batch = 500;
    let started = Instant::now();
    let (entries, batches) = db.scan(iterator, KeyRange::all(), true, true, per_batch, 1 << 20, None);
    let ours = started.elapsed();
    assert_eq!(entries.len(), count);
    let started = Instant::now();
    let fresh = db.open();
    let (first, _) = db.scan(fresh, KeyRange::all(), true, true, 1, 1 << 20, Some(1));
    let first_batch = started.elapsed();
    assert_eq!(first[0].0, key(count - 1));

    // The naive way: DESCEND with a limit, narrowed below the last key each time.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoints = cluster.endpoints();
    let (naive, naive_batches) = runtime.block_on(async move {
        let mut client = etcd_client::Client::connect(&endpoints, None).await.unwrap();
        let start = b"cost\x00".to_vec();
        let mut end = b"cost\x01".to_vec();
        let started = Instant::now();
        let mut seen = 0;
        let mut batches = 0;
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(per_batch as i64)
                .with_sort(SortTarget::Key, SortOrder::Descend);
            let response = client.get(start.clone(), Some(options)).await.unwrap();
            batches += 1;
            seen += response.kvs().len();
            match response.kvs().last() {
                Some(last) if response.more() => end = last.key().to_vec(),
                _ => break,
            }
        }
        assert_eq!(seen, count);
        (started.elapsed(), batches)
    });
    eprintln!(
        "reverse over {count} keys (100 B values), {per_batch} per batch: checkpoints {ours:?} ({batches} batches, \
         first batch of a new iterator {first_batch:?}); DESCEND narrowed from the last key {naive:?} \
         ({naive_batches} batches)"
    );
}

#[test]
fn a_compacted_revision_fails_the_iterator_clearly() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "compact");
    let mut db = Conn::new(&backend);
    fill(&mut db, 1, 10, 10);
    let iterator = db.open();
    let read = |range| BatchRead { iterator, range, reverse: false, max_entries: 2, max_bytes: 1 << 20, values: true };
    let (first, _) = db.batch(read(KeyRange::all())).unwrap();
    assert_eq!(first.len(), 2);
    fill(&mut db, 2, 10, 20); // new revisions
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoints = cluster.endpoints();
    runtime.block_on(async move {
        let mut client = etcd_client::Client::connect(&endpoints, None).await.unwrap();
        let revision = client.get("x", None).await.unwrap().header().unwrap().revision();
        client.compact(revision, None).await.unwrap();
    });
    let error = db.batch(read(KeyRange::all().after(&first[1].0))).unwrap_err();
    let StoreError::Internal(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("compacted"), "{message}");
    // A new iterator works.
    let fresh = db.open();
    let (entries, _) = db.scan(fresh, KeyRange::all(), false, true, 4, 1 << 20, None);
    assert_eq!(entries.len(), 10);
}

/// With compaction on, the cluster is compacted up to the oldest revision an iterator in use
/// reads, never past it; an iterator idle for longer than the idle timeout is let go.
#[test]
fn compaction_spares_iterators_in_use() {
    use std::time::Duration;

    use multilevel_etcd::{Compaction, EtcdOptions};

    let Some(cluster) = common::cluster() else { return };
    let compaction = Compaction { interval: Duration::from_millis(200), idle_timeout: Duration::from_secs(2) };
    let options =
        EtcdOptions { namespace: b"compacting".to_vec(), compaction: Some(compaction), ..EtcdOptions::default() };
    let backend = common::backend_with(&cluster, options);
    let mut db = Conn::new(&backend);
    fill(&mut db, 1, 20, 10);
    let iterator = db.open();
    let read = |range| BatchRead { iterator, range, reverse: false, max_entries: 2, max_bytes: 1 << 20, values: true };
    let (first, _) = db.batch(read(KeyRange::all())).unwrap();
    for session in 2..6 {
        fill(&mut db, session, 20, 20); // newer revisions
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoints = cluster.endpoints();
    let oldest_readable = move || {
        let endpoints = endpoints.clone();
        runtime.block_on(async move {
            let mut client = etcd_client::Client::connect(&endpoints, None).await.unwrap();
            let mut revision = 1;
            while client.get("x", Some(GetOptions::new().with_revision(revision))).await.is_err() {
                revision += 1;
            }
            revision
        })
    };
    // Used every 300 ms for 1.5 s: compaction reaches the iterator's revision, not past it.
    let mut last = first[1].0.clone();
    let mut range = KeyRange::all().after(&last);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let (entries, _) = db.batch(read(range.clone())).expect("an iterator in use is spared");
        last = entries.last().unwrap().0.clone();
        range = range.after(&last);
    }
    let spared = oldest_readable();
    assert!(spared > 1, "compaction ran: oldest readable revision {spared}");
    // Idle past the timeout: compaction passes it, and its next batch says so.
    std::thread::sleep(Duration::from_millis(2600));
    assert!(oldest_readable() > spared, "compaction moved on");
    let error = db.batch(read(range)).unwrap_err();
    assert!(error.to_string().contains("compacted"), "{error}");
}
