//! Target `model`: structured operations (`arbitrary`) driving a client (retry on), a server
//! connection and a `MemoryStore` through the simulation in [`crate::sim`]: requests,
//! iterators read a little at a time and moved, bytes delivered a few at a time each way,
//! queued writes run, connections cut and brought back, time passing.
//!
//! Checked, like `contract/multilevel-proto/tests/model.rs` but coverage-guided:
//! - after every operation: the store applied writes at most once and in id order
//!   (`MemoryStore::applied()`), and only writes;
//! - at the end (reconnect and pump until quiet): nothing pending, every request answered
//!   exactly once, every write answered `Done` and applied exactly once, the store equal to a
//!   `BTreeMap` fold of all writes in issue order;
//! - every read answered with a state the store passed through between its issue and its
//!   answer, having seen every earlier write;
//! - every iterator that completed on one snapshot (it was served by a single connection, or no
//!   write was issued while it was open) yielded exactly the model's entries of its range, in
//!   order, across seeks and limits; iterators never fail;
//! - once every iterator is closed and the pipes are quiet, the connection holds no snapshot;
//! - every watch (from the start of the history or from the head when it was opened) yields
//!   exactly the store's commits in its range after its start, in order, across cuts.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use multilevel_proto::{
    BatchOp, ChangeEvent, ClientConfig, Condition, IterOptions, IterPoll, KeyRange, Request, RequestError,
    ServerConfig, WatchOptions, WatchPoll, WatchStart, WireEntry,
};

use multilevel_proto::sim::reference::{Model, ModelIter, apply_write, read, write_answer};
use multilevel_proto::sim::samples::{EDGE_KEYS as EDGE, KEY_ALPHABET as ALPHABET};
use multilevel_proto::sim::{self, Sim};

/// Counters over every run in this process, to see that the checks are not vacuous:
/// cases, cases with a cut, iterators checked against the model, iterators skipped (they read
/// more than one snapshot), reads checked, watch events checked.
pub static STATS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

fn count(i: usize, n: usize) {
    STATS[i].fetch_add(n, Ordering::Relaxed);
}

/// Most operations run per input, to keep executions fast.
pub const MAX_OPS: usize = 64;
/// Most iterators open at once.
pub const MAX_OPEN_ITERATORS: usize = 4;

/// A key: mostly one of [`EDGE`], sometimes up to three bytes of [`ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub Bytes);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let i = u.int_in_range(0..=EDGE.len() + 3)?;
        if let Some(edge) = EDGE.get(i) {
            return Ok(Key(Bytes::from_static(edge)));
        }
        let len = u.int_in_range(0..=3)?;
        let mut key = Vec::with_capacity(len);
        for _ in 0..len {
            key.push(*u.choose(&ALPHABET)?);
        }
        Ok(Key(Bytes::from(key)))
    }
}

/// A value of at most 12 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(pub Bytes);

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // Never fails for lack of data, which would throw the whole input away.
        let len = u.int_in_range(0..=12)?.min(u.len());
        Ok(Value(Bytes::copy_from_slice(u.bytes(len)?)))
    }
}

/// One end of a key range.
#[derive(Debug, Clone, Arbitrary)]
pub enum End {
    Unbounded,
    Included(Key),
    Excluded(Key),
}

impl End {
    fn bound(&self) -> Bound<Bytes> {
        match self {
            End::Unbounded => Bound::Unbounded,
            End::Included(k) => Bound::Included(k.0.clone()),
            End::Excluded(k) => Bound::Excluded(k.0.clone()),
        }
    }
}

/// A key range.
#[derive(Debug, Clone, Arbitrary)]
pub struct Range {
    pub lower: End,
    pub upper: End,
}

impl Range {
    fn key_range(&self) -> KeyRange {
        KeyRange { lower: self.lower.bound(), upper: self.upper.bound() }
    }
}

/// Limits of the client and server; each is folded into a small range.
#[derive(Debug, Clone, Arbitrary)]
pub struct Setup {
    pub window: u16,
    pub batch_entries: u8,
    pub batch_bytes: u16,
    pub max_in_flight: u8,
    pub high_water: u16,
    pub pipe_capacity: u16,
}

/// One thing the test does.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    Put(Key, Value),
    Del(Key),
    /// `(true, k, v)` puts, `(false, k, _)` deletes.
    Batch(Vec<(bool, Key, Value)>),
    Clear {
        range: Range,
        reverse: bool,
        limit: Option<u8>,
    },
    Get(Key),
    GetMany(Vec<Key>),
    Stats,
    /// Opens an iterator; `shape` picks keys and/or values, `limit` is taken modulo 8.
    Open {
        range: Range,
        reverse: bool,
        limit: Option<u8>,
        shape: u8,
    },
    /// Reads up to `n % 8 + 1` entries of an open iterator, without pumping.
    Read {
        which: u8,
        n: u8,
    },
    Seek {
        which: u8,
        target: Key,
    },
    Close {
        which: u8,
    },
    /// Delivers up to that many bytes each way.
    Deliver {
        c2s: u16,
        s2c: u16,
    },
    /// Runs up to `n % 4 + 1` queued writes.
    RunWrites(u8),
    Cut,
    Connect,
    Settle,
    /// Lets `s % 40` seconds pass (keepalive pings; a silent connection is given up).
    Advance(u8),
    /// A conditional batch: `(true, k, v)` is "k holds v" (a small value when `v` is short, so
    /// conditions sometimes hold), `(false, k, _)` "k is absent"; then the writes as in `Batch`.
    Conditional(Vec<(bool, Key, Value)>, Vec<(bool, Key, Value)>),
    /// Adds `by` to the counter at the key.
    Increment(Key, i8),
    /// Starts a watch of the range: after the current head if `from_head`, else from the start
    /// of the history.
    Watch {
        range: Range,
        values: bool,
        from_head: bool,
    },
    /// Reads up to `n % 8 + 1` events of an open watch, without pumping.
    WatchRead {
        which: u8,
        n: u8,
    },
}

/// Most watches open at once.
pub const MAX_WATCHES: usize = 3;

struct OpenWatch {
    id: u64,
    range: KeyRange,
    values: bool,
    /// The position it starts after.
    after: u64,
    got: Vec<ChangeEvent>,
}

/// A whole test case: the setup, then operations until the data runs out (at most
/// [`MAX_OPS`]), with no continuation byte between them, so random bytes make long cases.
#[derive(Debug, Clone)]
pub struct Input {
    pub setup: Setup,
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let setup = Setup::arbitrary(u)?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Input { setup, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        (Setup::size_hint(depth).0, None)
    }
}

#[derive(Debug)]
enum Seen {
    Entry(WireEntry),
    Seek(Bytes),
}

struct OpenIter {
    id: u64,
    options: IterOptions,
    /// The model of every write issued before the iterator: what its snapshot holds.
    model: Model,
    /// The last connection that may serve it while it still reads one snapshot.
    connection: usize,
    writes_before: usize,
    log: Vec<Seen>,
}

struct Sut {
    sim: Sim,
    writes: BTreeMap<u64, Request>,
    reads: BTreeMap<u64, Request>,
    iterators: Vec<OpenIter>,
    watches: Vec<OpenWatch>,
}

impl Sut {
    fn new(setup: &Setup) -> Self {
        let mut client = ClientConfig::new(0x5eed).with_retry(true);
        client.iterator_window = u64::from(setup.window % 400) + 1;
        let server = ServerConfig {
            max_in_flight: u32::from(setup.max_in_flight % 8) + 1,
            output_high_water: 16 + usize::from(setup.high_water % 2048),
            max_batch_entries: u64::from(setup.batch_entries % 5) + 1,
            max_batch_bytes: u64::from(setup.batch_bytes % 600) + 1,
            ..ServerConfig::default()
        };
        let mut sim = Sim::new(client, server, std::time::Instant::now());
        sim.pipe_capacity = 8 + usize::from(setup.pipe_capacity % 2048);
        Self { sim, writes: BTreeMap::new(), reads: BTreeMap::new(), iterators: Vec::new(), watches: Vec::new() }
    }

    fn issue(&mut self, request: Request) {
        let is_write = request.is_write();
        let Some(id) = sim::try_issue(&mut self.sim, request.clone()) else {
            panic!("the client refused {request:?}");
        };
        if is_write {
            self.writes.insert(id, request);
        } else {
            self.reads.insert(id, request);
        }
    }

    fn applied(&self) -> Vec<u64> {
        self.sim.store.applied().iter().map(|(_, id)| *id).collect()
    }

    fn check_applied_order(&self) {
        let applied = self.applied();
        assert!(applied.windows(2).all(|w| w[0] < w[1]), "writes applied out of order or twice: {applied:?}");
        for id in &applied {
            assert!(self.writes.contains_key(id), "the store applied {id}, which is not a write");
        }
    }

    fn model_of_all_writes(&self) -> Model {
        let mut model = Model::new();
        for request in self.writes.values() {
            apply_write(&mut model, request);
        }
        model
    }

    fn open(&mut self, options: IterOptions) {
        if self.iterators.len() >= MAX_OPEN_ITERATORS {
            return;
        }
        let connection = if self.sim.is_up() { self.sim.connects } else { self.sim.connects + 1 };
        let id = self.sim.client.open_iterator(options.clone()).expect("iterators open");
        self.sim.collect();
        self.iterators.push(OpenIter {
            id,
            model: self.model_of_all_writes(),
            options,
            connection,
            writes_before: self.writes.len(),
            log: Vec::new(),
        });
    }

    /// One `iterator_next`; returns whether the iterator can give more.
    fn read_one(&mut self, index: usize, pump: bool) -> bool {
        let id = self.iterators[index].id;
        let poll = if pump { self.sim.iterator_next(id) } else { self.sim.client.iterator_next(id) };
        self.sim.collect();
        match poll {
            IterPoll::Entry(entry) => {
                self.iterators[index].log.push(Seen::Entry(entry));
                true
            }
            IterPoll::Pending => false,
            IterPoll::End => {
                let iter = self.iterators.remove(index);
                self.finish(iter);
                self.sim.client.close_iterator(id);
                self.sim.collect();
                false
            }
            IterPoll::Error(err) => {
                panic!("iterator {id} {:?} failed with retry on: {err}", self.iterators[index].options)
            }
        }
    }

    /// Checks a finished iterator against the model, if it read a single snapshot.
    fn finish(&mut self, iter: OpenIter) {
        let single_snapshot = self.sim.connects <= iter.connection || self.writes.len() == iter.writes_before;
        if !single_snapshot {
            count(3, 1);
            return;
        }
        count(2, 1);
        let mut expected = ModelIter::new(&iter.model, &iter.options);
        for (i, seen) in iter.log.iter().enumerate() {
            match seen {
                Seen::Seek(target) => expected.seek(target.clone()),
                Seen::Entry(entry) => {
                    let want = expected.next();
                    assert_eq!(
                        Some(entry),
                        want.as_ref(),
                        "iterator {} {:?} over {:?}: step {i} of {:?}",
                        iter.id,
                        iter.options,
                        iter.model,
                        iter.log
                    );
                }
            }
        }
        let more = expected.next();
        assert_eq!(
            more, None,
            "iterator {} {:?} over {:?} ended early: {:?}",
            iter.id, iter.options, iter.model, iter.log
        );
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Put(k, v) => self.issue(Request::Put { key: k.0, value: v.0 }),
            Op::Del(k) => self.issue(Request::Del { key: k.0 }),
            Op::Batch(ops) => {
                let ops = ops
                    .into_iter()
                    .take(5)
                    .map(
                        |(put, k, v)| {
                            if put { BatchOp::Put { key: k.0, value: v.0 } } else { BatchOp::Del { key: k.0 } }
                        },
                    )
                    .collect();
                self.issue(Request::Batch { ops });
            }
            Op::Clear { range, reverse, limit } => {
                let limit = limit.map(|l| u64::from(l % 4));
                self.issue(Request::Clear { range: range.key_range(), reverse, limit });
            }
            Op::Get(k) => self.issue(Request::Get { key: k.0 }),
            Op::GetMany(keys) => self.issue(Request::GetMany { keys: keys.into_iter().take(4).map(|k| k.0).collect() }),
            Op::Stats => self.issue(Request::Stats),
            Op::Open { range, reverse, limit, shape } => {
                let (keys, values) = [(true, false), (false, true), (true, true), (true, true)][usize::from(shape % 4)];
                let limit = limit.map(|l| u64::from(l % 8));
                self.open(IterOptions { range: range.key_range(), reverse, limit, keys, values });
            }
            Op::Read { which, n } => {
                if self.iterators.is_empty() {
                    return;
                }
                let index = usize::from(which) % self.iterators.len();
                for _ in 0..=(n % 8) {
                    if !self.read_one(index, false) {
                        break;
                    }
                }
            }
            Op::Seek { which, target } => {
                if self.iterators.is_empty() {
                    return;
                }
                let index = usize::from(which) % self.iterators.len();
                let id = self.iterators[index].id;
                self.sim.client.seek(id, target.0.clone());
                self.sim.collect();
                self.iterators[index].log.push(Seen::Seek(target.0));
            }
            Op::Close { which } => {
                if self.iterators.is_empty() {
                    return;
                }
                let index = usize::from(which) % self.iterators.len();
                let iter = self.iterators.remove(index);
                self.sim.client.close_iterator(iter.id);
                self.sim.collect();
            }
            Op::Deliver { c2s, s2c } => {
                self.sim.deliver_c2s(usize::from(c2s));
                self.sim.deliver_s2c(usize::from(s2c));
            }
            Op::RunWrites(n) => {
                self.sim.run_writes(usize::from(n % 4) + 1);
            }
            Op::Cut => self.sim.cut(),
            Op::Connect => self.sim.connect(),
            Op::Settle => self.sim.settle(),
            Op::Advance(s) => self.sim.advance(Duration::from_secs(u64::from(s % 40))),
            Op::Conditional(conditions, ops) => {
                let conditions = conditions
                    .into_iter()
                    .take(3)
                    .map(|(equals, k, v)| {
                        // Short values become counters and empty ones, which puts and increments make.
                        let value = if v.0.len() <= 1 { Bytes::from(v.0.len().to_string()) } else { v.0 };
                        if equals { Condition::Equals { key: k.0, value } } else { Condition::Absent { key: k.0 } }
                    })
                    .collect();
                let ops = ops
                    .into_iter()
                    .take(3)
                    .map(
                        |(put, k, v)| {
                            if put { BatchOp::Put { key: k.0, value: v.0 } } else { BatchOp::Del { key: k.0 } }
                        },
                    )
                    .collect();
                self.issue(Request::Conditional { conditions, ops });
            }
            Op::Increment(k, by) => self.issue(Request::Increment { key: k.0, by: i64::from(by) }),
            Op::Watch { range, values, from_head } => {
                if self.watches.len() >= MAX_WATCHES {
                    return;
                }
                let after = if from_head { self.sim.store.change_log().head() } else { 0 };
                let options = WatchOptions { range: range.key_range(), start: WatchStart::after(after), values };
                let id = self.sim.client.open_watch(options).expect("watches open");
                self.sim.collect();
                self.watches.push(OpenWatch { id, range: range.key_range(), values, after, got: Vec::new() });
            }
            Op::WatchRead { which, n } => {
                if self.watches.is_empty() {
                    return;
                }
                let index = usize::from(which) % self.watches.len();
                for _ in 0..=(n % 8) {
                    match self.sim.client.watch_next(self.watches[index].id) {
                        WatchPoll::Event(event) => self.watches[index].got.push(event),
                        WatchPoll::Pending => break,
                        WatchPoll::Error(err) => panic!("watch {} failed with retry on: {err}", self.watches[index].id),
                    }
                }
                self.sim.collect();
            }
        }
    }

    /// Reads every watch to its end and checks it against the store's commits.
    fn check_watches(&mut self) {
        for mut watch in std::mem::take(&mut self.watches) {
            let rest = self.sim.watch_events(watch.id, usize::MAX).expect("a watch never fails with retry on");
            watch.got.extend(rest);
            let mut want: Vec<ChangeEvent> = Vec::new();
            for (position, changes) in self.sim.store.change_log().commits().filter(|(p, _)| *p > watch.after) {
                let start = want.len();
                for (index, change) in changes.iter().enumerate() {
                    if watch.range.contains(change.key()) {
                        let change = if watch.values { change.clone() } else { change.clone().without_value() };
                        want.push(ChangeEvent { position, index: index as u32, commit_end: false, change });
                    }
                }
                if let Some(last) = want[start..].last_mut() {
                    last.commit_end = true;
                }
            }
            assert_eq!(watch.got, want, "watch {} of {:?} after {}", watch.id, watch.range, watch.after);
            count(5, want.len());
            self.sim.client.close_watch(watch.id);
            self.sim.collect();
        }
    }

    fn teardown(mut self) {
        for _ in 0..10 {
            self.sim.settle();
            if self.sim.client.pending() == 0 {
                break;
            }
        }
        while let Some(first) = self.iterators.first() {
            let id = first.id;
            let mut reads = 0;
            while self.iterators.first().is_some_and(|it| it.id == id) {
                self.read_one(0, true);
                reads += 1;
                assert!(reads < 100_000, "iterator {id} never ended");
            }
        }
        self.sim.settle();
        self.check_applied_order();
        self.check_watches();

        assert_eq!(self.sim.client.pending(), 0, "requests left unanswered");
        assert_eq!(self.sim.answers.len(), self.writes.len() + self.reads.len(), "every request gets one answer");
        let handled: Vec<u64> = self.sim.store.handled().iter().map(|(_, id)| *id).collect();
        let ids: Vec<u64> = self.writes.keys().copied().collect();
        assert_eq!(handled, ids, "with retry on, every write is evaluated exactly once, in id order");
        // Each answers what the model answers at its place: a replay got the original outcome.
        let mut model = Model::new();
        for id in &ids {
            let want = write_answer(&mut model, &self.writes[id]);
            match &self.sim.answers[id].result {
                Ok(response) => assert_eq!(Ok(response.clone()), want, "write {id} {:?}", self.writes[id]),
                Err(RequestError::Remote(error)) => assert_eq!(Err(error.code), want, "write {id}"),
                other => panic!("write {id} {:?} answered {other:?}", self.writes[id]),
            }
        }
        let all = self.model_of_all_writes();
        assert_eq!(&all, self.sim.store.data(), "the store differs from the model of all writes");

        // states[k]: the model after the first k applied writes (failed conditions change nothing).
        let applied = self.applied();
        let mut states = vec![Model::new()];
        for id in &applied {
            let mut next = states.last().expect("non-empty").clone();
            apply_write(&mut next, &self.writes[id]);
            states.push(next);
        }
        for (id, request) in &self.reads {
            let answer = &self.sim.answers[id];
            let got = match &answer.result {
                Ok(response) => response,
                Err(err) => panic!("read {id} {request:?} failed with retry on: {err}"),
            };
            let earliest = applied.iter().take_while(|w| *w < id).count();
            let latest = answer.applied_at_answer;
            assert!(earliest <= latest, "read {id} answered before {earliest} earlier writes applied");
            assert!(
                (earliest..=latest).any(|k| &read(&states[k], request) == got),
                "read {id} {request:?} answered {got:?}, not a state between its issue and its answer"
            );
        }
        count(0, 1);
        count(1, usize::from(self.sim.disconnect_events > 0));
        count(4, self.reads.len());
        assert_eq!(self.sim.snapshots(), 0, "every iterator is closed but the connection holds snapshots");
    }
}

/// Runs one input.
pub fn run(input: Input) {
    let mut sut = Sut::new(&input.setup);
    for op in input.ops.into_iter().take(MAX_OPS) {
        sut.apply(op);
        sut.check_applied_order();
    }
    sut.teardown();
}
