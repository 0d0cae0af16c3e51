//! Every client adapter against every server adapter, with the same suite, including a
//! connection cut at random bytes by a proxy while iterating with retry on.

use bytes::Bytes;
use multilevel_proto::{BatchOp, ClientOptions, IterOptions, KeyRange};
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, TestServer};
use multilevel_tests::proxy::CuttingProxy;

fn key(i: u32) -> Bytes {
    Bytes::from(format!("k{i:05}"))
}

fn suite(server: Adapter, client: Adapter) {
    let running = TestServer::start(server, StoreOptions::default().no_sync(true));
    let db = AnyClient::connect(client, running.addr, ClientOptions::default());
    let pair = format!("{client:?} client / {server:?} server");

    db.put(b"", "empty key").unwrap();
    db.put("a", "1").unwrap();
    assert_eq!(db.get("a").unwrap(), Some(Bytes::from("1")), "{pair}");
    assert_eq!(db.get_many(&["a", "zz", ""]).unwrap(), vec![Some("1".into()), None, Some("empty key".into())]);
    db.del("a").unwrap();
    db.del(b"").unwrap();
    assert_eq!(db.get("a").unwrap(), None);

    let ops = (0..2000u32).map(|i| BatchOp::Put { key: key(i), value: Bytes::from(vec![i as u8; 40]) }).collect();
    db.batch(ops).unwrap();
    let all: Vec<Bytes> = (0..2000).map(key).collect();
    let keys = |entries: Vec<multilevel_proto::WireEntry>| -> Vec<Bytes> {
        entries.into_iter().map(|e| e.key.unwrap()).collect()
    };
    assert_eq!(keys(db.scan(IterOptions::default(), None).unwrap()), all, "{pair}");
    let reverse = IterOptions { reverse: true, limit: Some(700), ..IterOptions::default() };
    let expected: Vec<Bytes> = all.iter().rev().take(700).cloned().collect();
    assert_eq!(keys(db.scan(reverse, None).unwrap()), expected, "{pair}");
    let values_only = db.scan(IterOptions { keys: false, ..IterOptions::default() }, None).unwrap();
    assert!(values_only.iter().all(|e| e.key.is_none() && e.value.as_ref().unwrap().len() == 40));
    let seeked = keys(db.scan(IterOptions::default(), Some((10, key(1990)))).unwrap());
    assert_eq!(seeked.len(), 20, "{pair}: 10 entries, then 1990..2000");
    db.clear_with(KeyRange::all().gte(key(1000)), false, None).unwrap();
    assert_eq!(db.scan(IterOptions::default(), None).unwrap().len(), 1000, "{pair}");

    // Through a proxy that cuts connections, with retry on: exact, and writes applied once.
    let tokens = (0..40u32).map(|i| BatchOp::Put { key: format!("token/{i:02}").into(), value: Bytes::new() });
    db.batch(tokens.collect()).unwrap();
    let proxy = CuttingProxy::start(running.addr, 7, 12.0, 17.0);
    let cut = AnyClient::connect(client, proxy.addr, ClientOptions::default().retry(true));
    for round in 0..20 {
        let got = keys(cut.scan(IterOptions { reverse: round % 2 == 1, ..IterOptions::default() }, None).unwrap());
        let range = KeyRange::all().lt("l");
        let got: Vec<Bytes> = got.into_iter().filter(|k| range.contains(k)).collect();
        let mut want: Vec<Bytes> = (0..1000).map(key).collect();
        if round % 2 == 1 {
            want.reverse();
        }
        assert!(got == want, "{pair}: iteration {round} through the cutting proxy");
        cut.clear_with(KeyRange::all().gte("token/").lt("token0"), false, Some(1)).unwrap();
    }
    let left =
        db.scan(IterOptions { range: KeyRange::all().gte("token/").lt("token0"), ..IterOptions::default() }, None);
    assert_eq!(left.unwrap().len(), 20, "{pair}: each of 20 one-key clears applied exactly once");
    assert!(proxy.cuts() > 0, "{pair}: the proxy never cut");
}

#[test]
fn every_client_against_every_server() {
    for server in ALL {
        for client in ALL {
            suite(server, client);
        }
    }
}
