//! Members dying under the backend: a killed leader costs an election, not an error; a lost
//! quorum fails requests with a clear error after the retry time, and they succeed again once
//! a member returns. Writes stay at most once throughout.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, backend_with, put};
use multilevel_etcd::EtcdOptions;
use multilevel_proto::StoreError;

#[test]
fn a_killed_leader_then_a_lost_quorum() {
    let Some(mut cluster) = common::cluster() else { return };
    let options = EtcdOptions {
        namespace: b"faults".to_vec(),
        retry_for: Duration::from_secs(4),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        ..EtcdOptions::default()
    };
    let backend = backend_with(&cluster, options);
    let mut db = Conn::new(&backend);
    let mut request = 0;
    for _ in 0..20 {
        request += 1;
        db.write(1, request, put(format!("k{request:03}"), "v")).unwrap();
    }

    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    let started = Instant::now();
    request += 1;
    db.write(1, request, put(format!("k{request:03}"), "v")).expect("a write after the leader died");
    let stalled = started.elapsed();
    assert_eq!(db.get("k001").as_deref(), Some(&b"v"[..]));
    eprintln!("leader SIGKILLed: the next write took {stalled:?}");

    // Two of three down: no quorum.
    let second = (0..3).find(|&i| i != leader).unwrap();
    cluster.kill(second);
    let started = Instant::now();
    request += 1;
    let lost = db.write(1, request, put(format!("k{request:03}"), "v"));
    let waited = started.elapsed();
    let Err(StoreError::Internal(message)) = &lost else { panic!("{lost:?}") };
    assert!(message.contains("answered within"), "{message}");
    eprintln!("quorum lost: the write failed after {waited:?}: {message}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    let read = db.run(multilevel_proto::StoreRequest::Get { key: "k001".into() });
    assert!(read.is_err(), "a linearizable read needs a quorum: {read:?}");

    // A member returns: the same write, replayed, is applied once.
    cluster.restart(leader);
    let started = Instant::now();
    loop {
        match db.write(1, request, put(format!("k{request:03}"), "v")) {
            Ok(()) => break,
            Err(e) if started.elapsed() < Duration::from_secs(30) => eprintln!("still waiting: {e}"),
            Err(e) => panic!("no recovery: {e}"),
        }
    }
    eprintln!("quorum back: the replayed write went through {:?} after the restart", started.elapsed());
    request += 1;
    db.write(1, request, put(format!("k{request:03}"), "v")).unwrap();
    assert_eq!(db.entries(), request);
}

/// No cluster at the endpoints: `connect` fails after the retry time, naming the endpoints;
/// bad options fail at once.
#[test]
fn connecting_to_nothing_fails_clearly() {
    use multilevel_etcd::{EtcdBackend, EtcdError};

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let options = EtcdOptions { retry_for: Duration::from_millis(500), ..EtcdOptions::default() };
    let started = Instant::now();
    let error = EtcdBackend::connect(&[endpoint.as_str()], options).unwrap_err();
    assert!(matches!(error, EtcdError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(&endpoint), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let options = EtcdOptions { namespace: b"a\0b".to_vec(), ..EtcdOptions::default() };
    let error = EtcdBackend::connect(&[endpoint.as_str()], options).unwrap_err();
    assert_eq!(error, EtcdError::InvalidNamespace(b"a\0b".to_vec()));
    let none: [&str; 0] = [];
    assert_eq!(EtcdBackend::connect(&none, EtcdOptions::default()).unwrap_err(), EtcdError::NoEndpoints);
}

/// A cluster out of space: writes fail with `StorageFull` saying what to do; reads still work.
#[test]
fn a_full_quota_is_storage_full() {
    use multilevel_proto::StoreRequest;

    let Some(cluster) = multilevel_etcd::testing::EtcdCluster::start_with(&["--quota-backend-bytes=8388608"]) else {
        return;
    };
    let backend = backend_with(&cluster, EtcdOptions { namespace: b"full".to_vec(), ..EtcdOptions::default() });
    let mut db = Conn::new(&backend);
    let value = vec![1u8; 1 << 20];
    let mut full = None;
    for request in 1..=64 {
        match db.write(1, request, put(format!("k{request}"), &value)) {
            Ok(()) => {}
            Err(error) => {
                full = Some((request, error));
                break;
            }
        }
    }
    let (request, error) = full.expect("an 8 MiB quota fills up");
    let StoreError::StorageFull(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("quota") && message.contains("alarm"), "{message}");
    eprintln!("quota full after {} writes of 1 MiB: {message}", request - 1);
    assert!(db.run(StoreRequest::Get { key: "k1".into() }).is_ok(), "reads still work");
}
