//! The async client under load through a loopback proxy that cuts every connection at a
//! random byte, with retry on: nothing lost, nothing applied twice, iterators exact.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::BatchOp;
use multilevel_store::{Store, StoreOptions};
use multilevel_tests::proxy::CuttingProxy;
use multilevel_tokio::{Client, ClientOptions, IterOptions, KeyRange, Server};
use tokio::net::TcpListener;

fn static_key(i: u32) -> Bytes {
    Bytes::from(format!("static/{i:05}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_at_random_bytes_lose_nothing_and_double_nothing() {
    const WRITERS: u64 = 4;
    const BATCHES: u64 = 1500;
    const TOKENS: u64 = 600;
    const STATIC: u32 = 5_000;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(Store::open(dir.path(), StoreOptions::default().no_sync(true)).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });

    let setup = Client::tcp(direct, ClientOptions::default());
    for chunk in (0..STATIC).collect::<Vec<_>>().chunks(1000) {
        let ops =
            chunk.iter().map(|i| BatchOp::Put { key: static_key(*i), value: Bytes::from(vec![7u8; 20]) }).collect();
        setup.batch(ops).await.unwrap();
    }
    for t in 0..WRITERS {
        let ops = (0..TOKENS).map(|i| BatchOp::Put { key: format!("token/{t}/{i:04}").into(), value: Bytes::new() });
        setup.batch(ops.collect()).await.unwrap();
    }

    // Log-uniform cuts, 64 B to 128 KiB: small connections are cut often, and some live long
    // enough to carry a 64 KiB iterator frame or more.
    let cutting = CuttingProxy::spawn(direct, 0x5eed, 6.0, 17.0).await;
    let proxy = cutting.addr;
    let options = || ClientOptions::default().retry(true);
    let work = async {
        let mut tasks = Vec::new();
        for t in 0..WRITERS {
            let db = Client::tcp(proxy, options());
            tasks.push(tokio::spawn(async move {
                let mut clears = 0;
                for i in 0..BATCHES {
                    let ops = vec![
                        BatchOp::Put { key: format!("w/{t}/{i:04}").into(), value: "x".into() },
                        BatchOp::Put { key: format!("cursor/{t}").into(), value: i.to_string().into() },
                    ];
                    db.batch(ops).await.unwrap();
                    if i % 3 == 0 {
                        let range = KeyRange::all().gte(format!("token/{t}/")).lt(format!("token/{t}0"));
                        db.clear_with(range, false, Some(1)).await.unwrap();
                        clears += 1;
                    }
                }
                clears
            }));
        }
        let shapes = [
            (false, true, true, None),
            (true, true, true, None),
            (false, false, true, None),
            (true, true, false, Some(3_000)),
            (false, true, true, Some(4_321)),
        ];
        let mut iterators = Vec::new();
        for (reverse, keys, values, limit) in shapes {
            let db = Client::tcp(proxy, options());
            iterators.push(tokio::spawn(async move {
                let range = KeyRange::all().gte("static/").lt("static0");
                let options = IterOptions { range, reverse, keys, values, limit };
                let mut expected: Vec<u32> = (0..STATIC).collect();
                if reverse {
                    expected.reverse();
                }
                expected.truncate(limit.map_or(usize::MAX, |l| l as usize));
                let mut it = db.iter(options).unwrap();
                let mut count = 0usize;
                while let Some(entry) = it.next().await {
                    let entry = entry.unwrap();
                    let i = expected[count];
                    assert_eq!(!entry.key.is_empty(), keys);
                    if keys {
                        assert_eq!(entry.key, static_key(i), "entry {count} of {reverse:?}/{limit:?}");
                    }
                    assert_eq!(entry.value.len(), if values { 20 } else { 0 });
                    count += 1;
                }
                assert_eq!(count, expected.len(), "iterator {reverse:?}/{keys}/{values}/{limit:?} lost entries");
                count
            }));
        }
        // A seek half-way through, under cuts.
        let db = Client::tcp(proxy, options());
        iterators.push(tokio::spawn(async move {
            let mut it = db
                .iter(IterOptions { range: KeyRange::all().gte("static/").lt("static0"), ..IterOptions::default() })
                .unwrap();
            let mut got = Vec::new();
            for _ in 0..100 {
                got.push(it.next().await.unwrap().unwrap().key);
            }
            it.seek(static_key(4_000));
            while let Some(entry) = it.next().await {
                got.push(entry.unwrap().key);
            }
            let expected: Vec<Bytes> = (0..100).chain(4_000..STATIC).map(static_key).collect();
            assert!(got == expected, "seek under cuts");
            got.len()
        }));
        let mut clears = Vec::new();
        for task in tasks {
            clears.push(task.await.unwrap());
        }
        for it in iterators {
            it.await.unwrap();
        }
        clears
    };
    let clears = tokio::time::timeout(Duration::from_secs(120), work).await.expect("no client hangs");

    let check = Client::tcp(direct, ClientOptions::default());
    for t in 0..WRITERS {
        let written = check
            .iter(IterOptions {
                range: KeyRange::all().gte(format!("w/{t}/")).lt(format!("w/{t}0")),
                ..IterOptions::default()
            })
            .unwrap()
            .count()
            .await as u64;
        assert_eq!(written, BATCHES, "writer {t} lost batches");
        assert_eq!(check.get(format!("cursor/{t}")).await.unwrap(), Some((BATCHES - 1).to_string().into()));
        let tokens = check
            .iter(IterOptions {
                range: KeyRange::all().gte(format!("token/{t}/")).lt(format!("token/{t}0")),
                ..IterOptions::default()
            })
            .unwrap()
            .count()
            .await as u64;
        assert_eq!(tokens, TOKENS - clears[t as usize], "writer {t}: a clear was lost or applied twice");
    }
    let cuts = cutting.cuts();
    eprintln!("disconnects: {cuts} connections cut at random bytes; all writes and iterators exact");
    assert!(cuts >= 50, "the proxy cut only {cuts} connections");
}
