//! Watches on etcd through multilevel servers: two servers on one real 3-member cluster, a
//! watcher of each client adapter given both addresses (retry on), and a writer. While the
//! writer puts keys, the etcd leader is SIGKILLed, then the first multilevel server stops.
//! Every watcher receives every acknowledged put exactly once, in order, and nothing else.
//! Skips with a notice when `etcd` is missing, unless `CI` is set.

use std::time::Duration;

use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdOptions};
use multilevel_proto::{ClientOptions, KeyRange, WatchOptions};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer};
use multilevel_tests::knob;

#[test]
fn watchers_get_every_put_once_across_a_leader_kill_and_a_server_stop() {
    let Some(mut cluster) = EtcdCluster::start() else { return };
    let per_phase = knob("MULTILEVEL_ETCD_WATCH_PUTS", 100);
    let backend = || EtcdBackend::connect(&cluster.endpoints(), EtcdOptions::default()).expect("the cluster");
    let first = BackendServer::start(Adapter::Tokio, backend());
    let second = BackendServer::start(Adapter::Tokio, backend());
    let addrs = vec![first.addr, second.addr];
    let mut first = Some(first);
    let options = ClientOptions::default().retry(true).request_timeout(Duration::from_secs(60));
    let writer = AnyClient::connect_any(Adapter::Tokio, addrs.clone(), options.clone());
    writer.put("start", "").unwrap();
    let watchers: Vec<_> = ALL
        .iter()
        .map(|&adapter| {
            let client = AnyClient::connect_any(adapter, addrs.clone(), options.clone());
            let watch = client.watch(WatchOptions::new().range(KeyRange::prefix(b"k/"))).unwrap();
            client.get("sync").unwrap(); // the watch is open once a later request is answered
            (adapter, client, watch)
        })
        .collect();
    let mut written = 0u64;
    let mut put = |n: u64| {
        for _ in 0..n {
            writer.put(format!("k/{written:05}"), format!("{written}")).unwrap();
            written += 1;
        }
    };
    put(per_phase);
    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    put(per_phase);
    drop(first.take()); // the first multilevel server stops: its clients move to the second
    put(per_phase);
    cluster.restart(leader);
    put(per_phase);
    for (adapter, _client, watch) in &watchers {
        let events = watch.take(written as usize, Duration::from_secs(60));
        let keys: Vec<String> = events.iter().map(|e| String::from_utf8_lossy(e.change.key()).into_owned()).collect();
        let want: Vec<String> = (0..written).map(|i| format!("k/{i:05}")).collect();
        assert_eq!(keys, want, "{adapter:?} watcher");
        assert!(events.windows(2).all(|w| w[0].position < w[1].position), "{adapter:?}: revisions increase");
        assert!(watch.next_within(Duration::from_millis(300)).is_none(), "{adapter:?}: nothing repeated");
    }
    eprintln!(
        "etcd_watch: {written} puts, each seen once by {} watchers across a leader kill and a server stop",
        ALL.len()
    );
}
