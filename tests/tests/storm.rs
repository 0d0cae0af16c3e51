//! A disconnect storm: a proxy cuts every connection at random byte offsets while clients of
//! every adapter write and iterate with retry on. Every iterator finishes exact (forward and
//! reverse, keys-only and values-only, with limits and seeks), and every write applies once.
//!
//! Runs 10 s by default; `MULTILEVEL_STORM_SECS=60` for the minute-long variant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::{BatchOp, ClientOptions, Entry, IterOptions, KeyRange};
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, TestServer};
use multilevel_tests::knob;
use multilevel_tests::proxy::CuttingProxy;

const ENTRIES: u32 = 20_000;

fn key(i: u32) -> Bytes {
    Bytes::from(format!("data/{i:06}"))
}

fn value(i: u32) -> Bytes {
    Bytes::from(format!("value of {i} {}", "x".repeat((i % 50) as usize)))
}

/// What an iterator over the data range must yield: keys or values in order, from a seek on.
fn expected(options: &IterOptions, seek: Option<(usize, u32)>) -> Vec<Entry> {
    let mut order: Vec<u32> = (0..ENTRIES).collect();
    if options.reverse {
        order.reverse();
    }
    let limit = options.limit.map_or(usize::MAX, |l| l as usize);
    let mut out: Vec<u32> = Vec::new();
    match seek {
        None => out.extend(order.iter().take(limit)),
        Some((at, target)) => {
            out.extend(order.iter().take(at.min(limit)));
            let rest = order.iter().filter(|i| if options.reverse { **i <= target } else { **i >= target });
            out.extend(rest.take(limit.saturating_sub(out.len())));
        }
    }
    out.into_iter()
        .map(|i| Entry {
            key: if options.keys { key(i) } else { Bytes::new() },
            value: if options.values { value(i) } else { Bytes::new() },
        })
        .collect()
}

#[test]
fn storm_of_cuts_loses_and_doubles_nothing() {
    let seconds = knob("MULTILEVEL_STORM_SECS", 10);
    let server = TestServer::start(Adapter::Tokio, StoreOptions::default().no_sync(true));
    let setup = AnyClient::connect(Adapter::Blocking, server.addr, ClientOptions::default());
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(2000) {
        setup.batch(chunk.iter().map(|i| BatchOp::Put { key: key(*i), value: value(*i) }).collect()).unwrap();
    }
    // Log-uniform cuts from 1 KiB to 256 KiB: several per iteration of the data range.
    let proxy = CuttingProxy::start(server.addr, 0xc0ffee, 10.0, 18.0);
    let stop = Arc::new(AtomicBool::new(false));
    let iterations = Arc::new(AtomicU64::new(0));
    let entries_checked = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();

    for (n, adapter) in ALL.into_iter().enumerate() {
        // A writer: one-key clears of its own tokens (not idempotent) and unique puts.
        let (writer_stop, addr) = (Arc::clone(&stop), proxy.addr);
        let tokens =
            (0..2000u64).map(|t| BatchOp::Put { key: format!("token/{n}/{t:06}").into(), value: Bytes::new() });
        setup.batch(tokens.collect()).unwrap();
        workers.push(thread::spawn(move || {
            let db = AnyClient::connect(adapter, addr, ClientOptions::default().retry(true));
            let mut writes = 0u64;
            while !writer_stop.load(Ordering::Relaxed) && writes < 2000 {
                let range = KeyRange::all().gte(format!("token/{n}/")).lt(format!("token/{n}0"));
                db.clear_with(range, false, Some(1)).unwrap();
                db.put(format!("written/{n}/{writes:06}"), "x").unwrap();
                writes += 1;
            }
            (n, writes)
        }));
        // An iterator: every shape in turn, until time is up.
        let (reader_stop, addr) = (Arc::clone(&stop), proxy.addr);
        let (iterations, entries_checked) = (Arc::clone(&iterations), Arc::clone(&entries_checked));
        workers.push(thread::spawn(move || {
            let db = AnyClient::connect(adapter, addr, ClientOptions::default().retry(true));
            let shapes = [
                (false, true, true, None, None),
                (true, true, true, None, None),
                (false, true, false, None, None),
                (true, false, true, Some(12_345), None),
                (false, true, true, Some(15_000), Some((5_000, 17_000))),
                (true, true, false, None, Some((100, 3_000))),
            ];
            let mut round = 0usize;
            while !reader_stop.load(Ordering::Relaxed) || round == 0 {
                let (reverse, keys, values, limit, seek) = shapes[round % shapes.len()];
                let range = KeyRange::all().gte("data/").lt("data0");
                let options = IterOptions { range, reverse, keys, values, limit };
                let got = db.scan(options.clone(), seek.map(|(at, target)| (at, key(target)))).unwrap();
                let want = expected(&options, seek);
                assert_eq!(got.len(), want.len(), "{adapter:?}: {options:?} seek {seek:?}");
                assert!(got == want, "{adapter:?}: {options:?} seek {seek:?} yielded other entries");
                iterations.fetch_add(1, Ordering::Relaxed);
                entries_checked.fetch_add(got.len() as u64, Ordering::Relaxed);
                round += 1;
            }
            (usize::MAX, 0)
        }));
    }

    let started = Instant::now();
    thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let watchdog = Instant::now();
    let mut writes_total = 0;
    for worker in workers {
        let (n, writes) = worker.join().expect("a worker failed");
        if n != usize::MAX {
            let direct = AnyClient::connect(Adapter::Blocking, server.addr, ClientOptions::default());
            let tokens = KeyRange::all().gte(format!("token/{n}/")).lt(format!("token/{n}0"));
            let left = direct.scan(IterOptions { range: tokens, ..IterOptions::default() }, None).unwrap().len() as u64;
            assert_eq!(left, 2000 - writes, "writer {n}: every one-key clear applied exactly once");
            let written = KeyRange::all().gte(format!("written/{n}/")).lt(format!("written/{n}0"));
            let puts =
                direct.scan(IterOptions { range: written, ..IterOptions::default() }, None).unwrap().len() as u64;
            assert_eq!(puts, writes, "writer {n}: acknowledged puts present");
            writes_total += writes;
        }
    }
    assert!(watchdog.elapsed() < Duration::from_secs(60), "clients took {:?} to finish", watchdog.elapsed());
    eprintln!(
        "storm: {:.0?} of load; {} connections cut at random bytes ({} MB relayed); {} iterations, {} entries \
         checked exact; {} writes acknowledged and checked once-only",
        started.elapsed(),
        proxy.cuts(),
        proxy.bytes.load(Ordering::Relaxed) / 1_000_000,
        iterations.load(Ordering::Relaxed),
        entries_checked.load(Ordering::Relaxed),
        writes_total,
    );
    assert!(proxy.cuts() >= 50, "only {} cuts", proxy.cuts());
}
