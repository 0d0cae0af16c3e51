//! End to end: the blocking server on an etcd backend, a blocking client over loopback TCP;
//! two servers on one cluster see the same data.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_blocking::{Client, ClientOptions, Server};
use multilevel_etcd::EtcdBackend;
use multilevel_proto::{IterOptions, KeyRange};

/// Serves `backend` on a loopback port from a background thread; returns the address and
/// the handle that stops it.
fn serve(backend: EtcdBackend) -> (std::net::SocketAddr, multilevel_blocking::ShutdownHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(backend);
    let handle = server.shutdown_handle();
    std::thread::spawn(move || server.serve_tcp(listener));
    (addr, handle)
}

fn keys(entries: &[multilevel_blocking::Entry]) -> Vec<Bytes> {
    entries.iter().map(|e| e.key.clone()).collect()
}

#[test]
fn the_blocking_server_serves_etcd_end_to_end() {
    let Some(cluster) = common::cluster() else { return };
    let (addr, stop) = serve(common::backend(&cluster, "e2e"));
    let db = Client::tcp(addr, ClientOptions::default().retry(true));

    db.put("b", "2").unwrap();
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    // Latency of a put and a get, one in flight.
    let rounds = 200;
    let started = Instant::now();
    for i in 0..rounds {
        db.put(format!("lat{i:03}"), "v".repeat(100)).unwrap();
    }
    let put = started.elapsed() / rounds;
    let started = Instant::now();
    for i in 0..rounds {
        assert!(db.get(format!("lat{i:03}")).unwrap().is_some());
    }
    let get = started.elapsed() / rounds;
    eprintln!("through the blocking server on 3-member etcd: put {put:?}, get {get:?} (mean, 1 in flight)");
    db.clear(KeyRange::all().gte("lat").lt("lau")).unwrap();

    db.batch().put("a", "1").put("c", "3").del("b").write().unwrap();
    assert_eq!(db.get("b").unwrap(), None);
    assert_eq!(db.get_many(["a", "c", "zz"]).unwrap(), vec![Some(Bytes::from("1")), Some(Bytes::from("3")), None]);
    for i in 0..50 {
        db.put(format!("m{i:02}"), format!("{i}")).unwrap();
    }
    let all: Vec<_> = db.iter(IterOptions::default()).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(all.len(), 52);
    let mut reverse = db.iter(IterOptions { reverse: true, limit: Some(5), ..IterOptions::default() }).unwrap();
    let top = reverse.next_batch(100).unwrap();
    assert_eq!(keys(&top), ["m49", "m48", "m47", "m46", "m45"].map(Bytes::from).to_vec());
    let mut seek = db.iter(IterOptions { range: KeyRange::all().gte("m"), ..IterOptions::default() }).unwrap();
    seek.seek("m40");
    let tail: Vec<_> = seek.by_ref().map(|e| e.unwrap()).collect();
    assert_eq!(keys(&tail), (40..50).map(|i| Bytes::from(format!("m{i:02}"))).collect::<Vec<_>>());
    db.clear_with(KeyRange::all().gte("m"), true, Some(10)).unwrap();
    assert_eq!(db.get("m49").unwrap(), None);
    assert_eq!(db.get("m39").unwrap().as_deref(), Some(&b"39"[..]));
    db.clear(KeyRange::all()).unwrap();
    let stats = db.stats().unwrap();
    let entries = stats.iter().find(|(name, _)| name == "entries").map(|(_, n)| *n);
    assert_eq!(entries, Some(0), "{stats:?}");

    // A second server on the same cluster and namespace sees the first one's writes.
    db.put("shared", "yes").unwrap();
    let (addr2, stop2) = serve(common::backend(&cluster, "e2e"));
    let other = Client::tcp(addr2, ClientOptions::default());
    assert!(other.wait_connected(Duration::from_secs(10)));
    assert_eq!(other.get("shared").unwrap().as_deref(), Some(&b"yes"[..]));
    db.close();
    other.close();
    stop.shutdown();
    stop2.shutdown();
}
