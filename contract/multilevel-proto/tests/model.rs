//! Model test: random operations, iterators and disconnects against a `BTreeMap` reference.
//!
//! Each case runs a client, a server and an in-memory store in simulated time over pipes that
//! are cut at random bytes, with retry on or off. Checked:
//! - writes apply at most once and in issue order; with retry on, every write applies exactly
//!   once and the store ends equal to the model of all writes;
//! - every request is answered; acknowledged writes are in the store;
//! - every read returns a state the store passed through between the read's issue and its
//!   answer, and sees every earlier write;
//! - every iterator yields exactly the model's entries in order, across cuts and seeks
//!   (with retry off: a prefix of them, then a connection-lost error).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;
use multilevel_proto::{
    BatchOp, ClientConfig, Condition, IterOptions, IterPoll, KeyRange, Request, RequestError, Response, ServerConfig,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use multilevel_proto::sim::reference::{Model, ModelIter, apply_write, read, write_answer};
use multilevel_proto::sim::{self, Sim};

/// `Sim::new` starting now (the proto crate itself never reads the clock).
trait NewNow {
    fn new_now(client: ClientConfig, server: ServerConfig) -> Sim;
}

impl NewNow for Sim {
    fn new_now(client: ClientConfig, server: ServerConfig) -> Sim {
        Sim::new(client, server, std::time::Instant::now())
    }
}

#[derive(Debug, Clone)]
struct Setup {
    retry: bool,
    window: u64,
    batch_entries: u64,
    batch_bytes: u64,
    max_in_flight: u32,
    high_water: usize,
    pipe_capacity: usize,
}

#[derive(Debug, Clone)]
enum IterStep {
    Read(u8),
    Cut { c2s: usize, s2c: usize, reconnect: bool },
    Seek(Bytes),
}

#[derive(Debug, Clone)]
enum Transition {
    Issue(Request),
    Deliver { c2s: usize, s2c: usize },
    RunWrites(usize),
    Cut,
    Connect,
    Settle,
    Iterate { options: IterOptions, steps: Vec<IterStep> },
}

/// Keys that make ordering bugs show: the empty key, keys that extend other keys, 0x00 and 0xff.
fn key() -> impl Strategy<Value = Bytes> {
    let edge: Vec<&'static [u8]> = multilevel_proto::sim::samples::EDGE_KEYS.to_vec();
    prop_oneof![
        3 => proptest::sample::select(edge).prop_map(Bytes::from_static),
        1 => proptest::collection::vec(proptest::sample::select(multilevel_proto::sim::samples::KEY_ALPHABET.to_vec()), 0..4).prop_map(Bytes::from),
    ]
}

fn value() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn bound() -> impl Strategy<Value = Bound<Bytes>> {
    prop_oneof![
        2 => Just(Bound::Unbounded),
        1 => key().prop_map(Bound::Included),
        1 => key().prop_map(Bound::Excluded),
    ]
}

fn range() -> impl Strategy<Value = KeyRange> {
    (bound(), bound()).prop_map(|(lower, upper)| KeyRange { lower, upper })
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        (key(), value()).prop_map(|(key, value)| BatchOp::Put { key, value }),
        key().prop_map(|key| BatchOp::Del { key }),
    ]
}

/// Values that conditions and counters can meet: a few short ones and counters.
fn small_value() -> impl Strategy<Value = Bytes> {
    proptest::sample::select(vec![&b""[..], b"1", b"2", b"-1", b"x"]).prop_map(Bytes::from_static)
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        key().prop_map(|key| Condition::Absent { key }),
        (key(), small_value()).prop_map(|(key, value)| Condition::Equals { key, value }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        2 => (key(), small_value()).prop_map(|(key, value)| Request::Put { key, value }),
        2 => (proptest::collection::vec(condition(), 0..3), proptest::collection::vec(batch_op(), 0..3))
            .prop_map(|(conditions, ops)| Request::Conditional { conditions, ops }),
        2 => (key(), -3i64..4).prop_map(|(key, by)| Request::Increment { key, by }),
        5 => (key(), value()).prop_map(|(key, value)| Request::Put { key, value }),
        2 => key().prop_map(|key| Request::Del { key }),
        2 => proptest::collection::vec(batch_op(), 0..5).prop_map(|ops| Request::Batch { ops }),
        1 => (range(), any::<bool>(), proptest::option::of(0u64..4))
            .prop_map(|(range, reverse, limit)| Request::Clear { range, reverse, limit }),
        3 => key().prop_map(|key| Request::Get { key }),
        1 => proptest::collection::vec(key(), 0..4).prop_map(|keys| Request::GetMany { keys }),
        1 => Just(Request::Stats),
    ]
}

fn iter_options() -> impl Strategy<Value = IterOptions> {
    (range(), any::<bool>(), proptest::option::of(0u64..8), 0u8..4).prop_map(|(range, reverse, limit, shape)| {
        let (keys, values) = match shape {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        IterOptions { range, reverse, limit, keys, values }
    })
}

fn iter_step() -> impl Strategy<Value = IterStep> {
    prop_oneof![
        4 => (1u8..6).prop_map(IterStep::Read),
        2 => (0usize..200, 0usize..200, any::<bool>())
            .prop_map(|(c2s, s2c, reconnect)| IterStep::Cut { c2s, s2c, reconnect }),
        1 => key().prop_map(IterStep::Seek),
    ]
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Setup;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Setup> {
        (any::<bool>(), 1u64..400, 1u64..6, 1u64..600, 1u32..8, 16usize..2048, 8usize..2048)
            .prop_map(|(retry, window, batch_entries, batch_bytes, max_in_flight, high_water, pipe_capacity)| Setup {
                retry,
                window,
                batch_entries,
                batch_bytes,
                max_in_flight,
                high_water,
                pipe_capacity,
            })
            .boxed()
    }

    fn transitions(_: &Setup) -> BoxedStrategy<Transition> {
        prop_oneof![
            10 => request().prop_map(Transition::Issue),
            4 => (0usize..120, 0usize..120).prop_map(|(c2s, s2c)| Transition::Deliver { c2s, s2c }),
            2 => (1usize..4).prop_map(Transition::RunWrites),
            2 => Just(Transition::Cut),
            2 => Just(Transition::Connect),
            1 => Just(Transition::Settle),
            3 => (iter_options(), proptest::collection::vec(iter_step(), 0..6))
                .prop_map(|(options, steps)| Transition::Iterate { options, steps }),
        ]
        .boxed()
    }

    fn apply(state: Setup, _: &Transition) -> Setup {
        state
    }
}

struct Sut {
    sim: Sim,
    retry: bool,
    /// Every write issued, by request id.
    writes: BTreeMap<u64, Request>,
    /// Every read issued, by request id.
    reads: BTreeMap<u64, Request>,
}

impl Sut {
    /// Request ids of the writes the store applied, in order.
    fn applied(&self) -> Vec<u64> {
        self.sim.store.applied().iter().map(|(_, id)| *id).collect()
    }

    /// The model after each prefix of the applied writes: `states[k]` has the first `k` applied.
    fn states(&self) -> Vec<Model> {
        let mut states = vec![Model::new()];
        for id in self.applied() {
            let mut next = states.last().expect("starts non-empty").clone();
            apply_write(&mut next, &self.writes[&id]);
            states.push(next);
        }
        states
    }

    fn check_applied_order(&self) {
        let applied = self.applied();
        assert!(applied.windows(2).all(|w| w[0] < w[1]), "writes applied out of order or twice: {applied:?}");
        for id in &applied {
            assert!(self.writes.contains_key(id), "store applied {id}, which is not a write");
        }
    }

    fn run_iterator(&mut self, options: IterOptions, steps: Vec<IterStep>) {
        self.sim.settle();
        let model = self.states().pop().expect("starts non-empty");
        assert_eq!(&model, self.sim.store.data(), "store diverged from the model of its applied writes");
        let mut expected = ModelIter::new(&model, &options);
        let id = self.sim.client.open_iterator(options.clone()).expect("iterator opens");
        self.sim.collect();
        let mut finished = false;
        let steps = steps.into_iter().chain(std::iter::once(IterStep::Read(u8::MAX)));
        for step in steps {
            match step {
                IterStep::Cut { c2s, s2c, reconnect } => {
                    self.sim.deliver_c2s(c2s);
                    self.sim.deliver_s2c(s2c);
                    self.sim.cut();
                    if reconnect {
                        // Reconnect before the caller drains what it had buffered.
                        self.sim.connect();
                        self.sim.pump();
                    }
                }
                IterStep::Seek(target) => {
                    self.sim.client.seek(id, target.clone());
                    self.sim.collect();
                    expected.seek(target);
                }
                IterStep::Read(n) => {
                    for _ in 0..n {
                        match self.sim.iterator_next(id) {
                            IterPoll::Entry(entry) => {
                                let want = expected.next();
                                assert_eq!(Some(entry), want, "iterator {options:?} yielded the wrong entry");
                            }
                            IterPoll::End => {
                                assert_eq!(expected.next(), None, "iterator {options:?} ended early");
                                break;
                            }
                            IterPoll::Error(RequestError::ConnectionLost) if !self.retry => {
                                finished = true;
                                break;
                            }
                            IterPoll::Error(err) => panic!("iterator failed: {err}"),
                            IterPoll::Pending => unreachable!("sim.iterator_next waits"),
                        }
                    }
                }
            }
            if finished {
                break;
            }
        }
        self.sim.client.close_iterator(id);
        self.sim.collect();
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Self;
    type Reference = Reference;

    fn init_test(setup: &Setup) -> Self {
        let mut client = ClientConfig::new(0x5eed).with_retry(setup.retry);
        client.iterator_window = setup.window;
        let server = ServerConfig {
            max_in_flight: setup.max_in_flight,
            output_high_water: setup.high_water,
            max_batch_entries: setup.batch_entries,
            max_batch_bytes: setup.batch_bytes,
            ..ServerConfig::default()
        };
        let mut sim = Sim::new_now(client, server);
        sim.pipe_capacity = setup.pipe_capacity;
        Self { sim, retry: setup.retry, writes: BTreeMap::new(), reads: BTreeMap::new() }
    }

    fn apply(mut sut: Self, _: &Setup, transition: Transition) -> Self {
        match transition {
            Transition::Issue(request) => {
                let is_write = request.is_write();
                let id = sim::issue(&mut sut.sim, request.clone());
                if is_write {
                    sut.writes.insert(id, request);
                } else {
                    sut.reads.insert(id, request);
                }
            }
            Transition::Deliver { c2s, s2c } => {
                sut.sim.deliver_c2s(c2s);
                sut.sim.deliver_s2c(s2c);
            }
            Transition::RunWrites(n) => {
                sut.sim.run_writes(n);
            }
            Transition::Cut => sut.sim.cut(),
            Transition::Connect => sut.sim.connect(),
            Transition::Settle => sut.sim.settle(),
            Transition::Iterate { options, steps } => sut.run_iterator(options, steps),
        }
        sut.check_applied_order();
        sut
    }

    fn teardown(mut sut: Self, _: Setup) {
        sut.sim.settle();
        CASES.fetch_add(1, Ordering::Relaxed);
        if sut.sim.disconnect_events > 0 {
            CASES_WITH_CUTS.fetch_add(1, Ordering::Relaxed);
        }
        sut.check_applied_order();
        assert_eq!(sut.sim.client.pending(), 0, "requests left unanswered");
        let issued = sut.writes.len() + sut.reads.len();
        assert_eq!(sut.sim.answers.len(), issued, "every request gets exactly one answer");

        // Every write the store evaluated, replayed on the model in the store's order, answers
        // what the store answered: a replay got the original outcome (the same counter, the
        // same failed condition), never one evaluated again against a newer state.
        let handled: Vec<u64> = sut.sim.store.handled().iter().map(|(_, id)| *id).collect();
        let mut model = Model::new();
        for id in &handled {
            let want = write_answer(&mut model, &sut.writes[id]);
            match &sut.sim.answers[id].result {
                Ok(response) => assert_eq!(Ok(response.clone()), want, "write {id} {:?}", sut.writes[id]),
                Err(RequestError::Remote(error)) => assert_eq!(Err(error.code), want, "write {id}"),
                Err(RequestError::ConnectionLost) if !sut.retry => {}
                other => panic!("write {id} answered {other:?}"),
            }
        }
        let handled: BTreeSet<u64> = handled.into_iter().collect();
        for id in sut.writes.keys().filter(|id| !handled.contains(id)) {
            match &sut.sim.answers[id].result {
                Err(RequestError::ConnectionLost) if !sut.retry => {}
                other => panic!("write {id} was never evaluated, yet answered {other:?}"),
            }
        }
        let states = sut.states();
        let last = states.last().expect("starts non-empty");
        assert_eq!(last, sut.sim.store.data(), "store differs from the model of its applied writes");
        if sut.retry {
            let mut all = Model::new();
            for request in sut.writes.values() {
                apply_write(&mut all, request);
            }
            assert_eq!(&all, sut.sim.store.data(), "with retry, every write applies exactly once, in order");
        }

        let applied: Vec<u64> = sut.applied();
        for (id, request) in &sut.reads {
            let answer = &sut.sim.answers[id];
            let got = match &answer.result {
                Ok(response) => response,
                Err(RequestError::ConnectionLost) if !sut.retry => continue,
                Err(err) => panic!("read {id} failed: {err}"),
            };
            // The read sees every earlier acknowledged write. (With retry off, a write that failed
            // with connection-lost may still be applied later, from a dead connection's queue.)
            let earliest = applied
                .iter()
                .rposition(|w| w < id && matches!(sut.sim.answers[w].result, Ok(Response::Done | Response::Counter(_))))
                .map_or(0, |i| i + 1);
            let latest = answer.applied_at_answer;
            assert!(
                (earliest..=latest).any(|k| &read(&states[k], request) == got),
                "read {id} {request:?} answered {got:?}, not a state between its issue and its answer"
            );
        }
    }
}

/// Cases run, and of those, cases whose connection was cut at least once.
static CASES: AtomicUsize = AtomicUsize::new(0);
static CASES_WITH_CUTS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn client_server_store_match_the_model() {
    // Like `prop_state_machine!`, but also counts how many cases saw a disconnect.
    let config = Config { cases: 1024, max_shrink_iters: 4096, source_file: Some(file!()), ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(&Reference::sequential_strategy(1..40), |(initial, transitions, seen)| {
        Sut::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let cases = CASES.load(Ordering::Relaxed);
    let with_cuts = CASES_WITH_CUTS.load(Ordering::Relaxed);
    eprintln!("{cases} cases, {with_cuts} with disconnects");
    assert!(cases >= 256, "ran {cases} cases");
    assert!(with_cuts * 2 > cases, "only {with_cuts} of {cases} cases had a disconnect");
}
