//! Random operations on the etcd backend and on the in-memory reference store side by side:
//! the same answers, the same contents, the same batches from iterators opened at the same
//! points (forward and reverse, any batch size and byte cap, subranges, keys only).

mod common;

use std::ops::Bound;

use bytes::Bytes;
use common::{Conn, backend};
use multilevel_proto::memory::MemorySnapshots;
use multilevel_proto::store::BatchRead;
use multilevel_proto::{BatchOp, KeyRange, MemoryStore, Outcome, StoreRequest, WriteOp, WriteRequest};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Short keys over edge bytes: the empty key, keys that extend others, 0x00 and 0xff.
    fn key(&mut self) -> Bytes {
        const ALPHABET: [u8; 4] = [0x00, 0x01, b'a', 0xff];
        let len = self.below(4) as usize;
        (0..len).map(|_| ALPHABET[self.below(4) as usize]).collect::<Vec<u8>>().into()
    }

    fn bound(&mut self) -> Bound<Bytes> {
        match self.below(3) {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.key()),
            _ => Bound::Excluded(self.key()),
        }
    }

    fn range(&mut self) -> KeyRange {
        KeyRange { lower: self.bound(), upper: self.bound() }
    }
}

#[test]
fn the_etcd_backend_answers_as_the_reference_store() {
    let Some(cluster) = common::cluster() else { return };
    for seed in [0x9E37_79B9_7F4A_7C15, 0xD1B5_4A32_D192_ED03, 0x8CB9_2BA7_2F3D_8DD7] {
        run(&cluster, seed);
    }
}

fn run(cluster: &multilevel_etcd::testing::EtcdCluster, seed: u64) {
    let backend = backend(cluster, &format!("model{seed:x}"));
    let mut etcd = Conn::new(&backend);
    let mut memory = MemoryStore::new();
    let mut snapshots = MemorySnapshots::default();
    let mut rng = Rng(seed);
    let mut iterator = 0;
    for request in 1..=300u64 {
        let op = match rng.below(12) {
            0..=5 => WriteOp::Put { key: rng.key(), value: Bytes::from(vec![b'v'; rng.below(40) as usize]) },
            6 => WriteOp::Del { key: rng.key() },
            7..=9 => WriteOp::Batch(
                (0..rng.below(6))
                    .map(|_| {
                        if rng.below(3) == 0 {
                            BatchOp::Del { key: rng.key() }
                        } else {
                            BatchOp::Put { key: rng.key(), value: Bytes::from(format!("b{request}")) }
                        }
                    })
                    .collect(),
            ),
            _ => WriteOp::Clear {
                range: rng.range(),
                reverse: rng.below(2) == 0,
                limit: if rng.below(4) == 0 { None } else { Some(rng.below(6)) },
            },
        };
        let write = StoreRequest::Write(WriteRequest { session: 5, request, op });
        let want = memory.execute(&mut snapshots, write.clone());
        assert_eq!(etcd.run(write), want, "write {request}");

        if request % 10 == 0 {
            let keys: Vec<Bytes> = (0..4).map(|_| rng.key()).collect();
            let get = StoreRequest::GetMany { keys };
            assert_eq!(etcd.run(get.clone()), memory.execute(&mut snapshots, get));
        }
        if request % 25 == 0 {
            iterator += 1;
            let open = StoreRequest::OpenIterator { iterator };
            assert_eq!(etcd.run(open.clone()), memory.execute(&mut snapshots, open));
            // Reads at this iterator's snapshot, checked after later writes too.
            for _ in 0..6 {
                check_scan(&mut etcd, &mut memory, &mut snapshots, &mut rng, iterator);
            }
        }
        if request % 50 == 0 && iterator > 1 {
            // An older iterator still reads its own snapshot.
            let older = 1 + rng.below(iterator - 1);
            check_scan(&mut etcd, &mut memory, &mut snapshots, &mut rng, older);
        }
    }
    let entries = memory.data().len() as u64;
    assert_eq!(etcd.entries(), entries);
    eprintln!("seed {seed:x}: 300 random writes agree with the reference store; {entries} keys left");
}

/// A whole scan of a random range through random batch sizes, narrowing as a server does.
fn check_scan(
    etcd: &mut Conn,
    memory: &mut MemoryStore,
    snapshots: &mut MemorySnapshots,
    rng: &mut Rng,
    iterator: u64,
) {
    let mut range = rng.range();
    let reverse = rng.below(2) == 0;
    let values = rng.below(3) != 0;
    let max_entries = 1 + rng.below(5);
    let max_bytes = [1, 20, 1 << 20][rng.below(3) as usize];
    for _ in 0..100 {
        let read = StoreRequest::ReadBatch(BatchRead {
            iterator,
            range: range.clone(),
            reverse,
            max_entries,
            max_bytes,
            values,
        });
        let want = memory.execute(snapshots, read.clone());
        let got = etcd.run(read);
        assert_eq!(got, want, "iterator {iterator}, range {range:?}, reverse {reverse}, values {values}");
        match want {
            Ok(Outcome::Batch { entries, exhausted }) => {
                if exhausted {
                    return;
                }
                let last = &entries.last().expect("a batch that is not the last has entries").0;
                range = if reverse { range.before(last) } else { range.after(last) };
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("the scan did not end");
}
