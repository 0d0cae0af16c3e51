//! Every server adapter on the etcd backend (a real 3-member cluster started by the test):
//! the adapter suite, and through a proxy that cuts connections with retry on, iterations
//! exact and one-key clears applied exactly once. Skips with a notice when `etcd` is missing,
//! unless `CI` is set.

use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdOptions};
use multilevel_proto::ClientOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer};

fn suite(cluster: &EtcdCluster, adapter: Adapter) {
    let options = EtcdOptions { namespace: format!("{adapter:?}").into_bytes(), ..EtcdOptions::default() };
    let backend = EtcdBackend::connect(&cluster.endpoints(), options).expect("connect to the test cluster");
    let running = BackendServer::start(adapter, backend);
    let db = AnyClient::connect(adapter, running.addr, ClientOptions::default());
    let what = format!("{adapter:?} server and client on etcd");

    multilevel_tests::suite::run(&db, adapter, running.addr, &what);
    let stats = db.stats().unwrap();
    let connections = stats.iter().find(|(name, _)| name == "connections").map(|(_, n)| *n);
    assert!(connections >= Some(1), "{what}: stats {stats:?}");
}

#[test]
fn every_server_adapter_serves_etcd() {
    let Some(cluster) = EtcdCluster::start() else { return };
    for adapter in ALL {
        suite(&cluster, adapter);
    }
}
