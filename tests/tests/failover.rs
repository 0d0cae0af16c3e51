//! Client failover: two servers of every adapter in front of one backend, each behind a proxy
//! that cuts connections at random bytes, one of them stopped halfway. A retrying client given
//! both addresses loses nothing and applies nothing twice, and its iterators are exact.
//! `MULTILEVEL_FAILOVER_WRITES` sets the writes per adapter.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use multilevel_proto::{ClientOptions, IterOptions, MemoryBackend, MemoryStore};
use multilevel_tests::adapters::{ALL, Adapter, BackendServer};
use multilevel_tests::knob;
use multilevel_tests::proxy::CuttingProxy;

/// A retrying client of `adapter` given several addresses.
fn client(adapter: Adapter, addrs: Vec<std::net::SocketAddr>) -> multilevel_tests::adapters::AnyClient {
    multilevel_tests::adapters::AnyClient::connect_any(adapter, addrs, ClientOptions::default().retry(true))
}

#[test]
fn a_client_fails_over_between_servers_of_one_backend() {
    let writes = knob("MULTILEVEL_FAILOVER_WRITES", 2000);
    for (seed, adapter) in ALL.into_iter().enumerate() {
        let backend = MemoryBackend::new(MemoryStore::new());
        let first = BackendServer::start(adapter, backend.clone());
        let second = BackendServer::start(adapter, backend.clone());
        // Cuts between 512 B and 64 KiB: a connection must be able to carry a whole iterator
        // frame now and then, or no client could make progress through it.
        let proxies = [first.addr, second.addr].map(|addr| CuttingProxy::start(addr, seed as u64, 9.0, 16.0));
        let db = client(adapter, proxies.iter().map(|p| p.addr).collect());
        let mut first = Some(first);
        let mut model = BTreeMap::new();
        for i in 0..writes {
            if i == writes / 2 {
                drop(first.take()); // one server goes away; its proxy now drops every connection
            }
            let key = format!("k{i:05}");
            db.put(&key, format!("v{i}")).unwrap_or_else(|e| panic!("{adapter:?}: put {key}: {e}"));
            model.insert(Bytes::from(key), Bytes::from(format!("v{i}")));
            if i % 100 == 99 {
                let scanned = db.scan(IterOptions::default(), None).unwrap();
                let got: BTreeMap<Bytes, Bytes> = scanned.into_iter().map(|e| (e.key, e.value)).collect();
                assert_eq!(got, model, "{adapter:?}: an iterator after {i} writes");
            }
        }
        let store = backend.store();
        assert_eq!(store.data(), &model, "{adapter:?}: every acknowledged write is there");
        let applied = store.applied();
        let unique: HashSet<_> = applied.iter().collect();
        assert_eq!(unique.len(), applied.len(), "{adapter:?}: a write was applied twice");
        assert_eq!(applied.len() as u64, writes, "{adapter:?}: each write applied once");
        let cuts: u64 = proxies.iter().map(CuttingProxy::cuts).sum();
        println!("{adapter:?}: {writes} writes, {cuts} cuts, one server stopped halfway");
        assert!(cuts > 0, "{adapter:?}: the proxies cut nothing; the test checked no failover");
    }
}
