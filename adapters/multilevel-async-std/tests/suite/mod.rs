//! One end-to-end suite, run on smol and on async-std by `smol.rs` and `async_std.rs`.

#![allow(dead_code, unreachable_pub)]

use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use multilevel_async_std::{BatchOp, Client, ClientOptions, Error, IterOptions, KeyRange, Server, Spawn, Transport};
use multilevel_proto::{ErrorCode, IssueError, RequestError};
use multilevel_store::{Hooks, Store, StoreOptions};
use tempfile::TempDir;

/// A spawner the suite can clone.
pub trait Spawner: Spawn + Clone {}
impl<T: Spawn + Clone> Spawner for T {}

pub struct Running {
    pub server: Server,
    pub addr: SocketAddr,
    _dir: TempDir,
}

pub async fn start(options: StoreOptions, spawn: impl Spawner) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(Store::open(dir.path(), options).unwrap(), spawn.clone());
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    spawn.spawn(Box::pin(async move {
        let _ = serving.serve_tcp(listener).await;
    }));
    Running { server, addr, _dir: dir }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn keys(db: &Client, options: IterOptions) -> Vec<Bytes> {
    db.iter(options).unwrap().map(|e| e.unwrap().key).collect().await
}

pub async fn operations(spawn: impl Spawner) {
    let hooks = Hooks::new().preput(|k, _| if k == b"no" { Err("not this key".into()) } else { Ok(()) });
    let running = start(StoreOptions::default().hooks(hooks), spawn.clone()).await;
    let db = Client::tcp(running.addr, ClientOptions::default(), spawn);
    assert_eq!(db.get("a").await.unwrap(), None);
    db.put("a", "1").await.unwrap();
    db.put(b"", "empty key").await.unwrap();
    assert_eq!(db.get_many(["a", "", "zz"]).await.unwrap(), vec![Some(b("1")), Some(b("empty key")), None]);
    db.batch(vec![BatchOp::Put { key: b("b"), value: b("2") }, BatchOp::Del { key: b("a") }]).await.unwrap();
    assert_eq!(keys(&db, IterOptions::default()).await, vec![b(""), b("b")]);
    db.del("b").await.unwrap();
    db.clear(KeyRange::all()).await.unwrap();
    assert!(keys(&db, IterOptions::default()).await.is_empty());
    match db.put("no", "x").await {
        Err(Error::Request(RequestError::Remote(err))) => {
            assert_eq!((err.code, err.message.as_str()), (ErrorCode::Rejected, "not this key"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.put(vec![0u8; 511], "").await, Err(Error::Issue(IssueError::KeyTooLarge { len: 511, max: 510 })));
    let stats: std::collections::HashMap<String, u64> = db.stats().await.unwrap().into_iter().collect();
    assert_eq!(stats["connections"], 1);
}

pub async fn iterators(spawn: impl Spawner) {
    let running = start(StoreOptions::default(), spawn.clone()).await;
    let db = Client::tcp(running.addr, ClientOptions::default(), spawn);
    for i in 0u8..50 {
        db.put([i], [i]).await.unwrap();
    }
    let reverse = IterOptions { reverse: true, limit: Some(3), ..IterOptions::default() };
    assert_eq!(keys(&db, reverse).await, vec![Bytes::from(vec![49]), Bytes::from(vec![48]), Bytes::from(vec![47])]);
    let mut it = db.iter(IterOptions { keys: false, ..IterOptions::default() }).unwrap();
    assert_eq!(it.next().await.unwrap().unwrap().value, Bytes::from(vec![0]));
    it.seek([45]);
    let batch = it.next_batch(3).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.value[0]).collect::<Vec<_>>(), vec![45, 46, 47]);
    assert_eq!(it.count().await, 2);
}

pub async fn pipelining(spawn: impl Spawner) {
    let running = start(StoreOptions::default(), spawn.clone()).await;
    let db = Client::tcp(running.addr, ClientOptions::default(), spawn);
    let writers = (0..16).map(|t| {
        let db = db.clone();
        async move {
            for i in 0..50 {
                db.put(format!("{t:02}/{i:02}"), "v").await.unwrap();
            }
        }
    });
    futures_util::future::join_all(writers).await;
    assert_eq!(db.iter(IterOptions::default()).unwrap().count().await, 800);
}

/// Cuts the client's connection mid-iteration and mid-write, with retry on.
pub async fn disconnect_and_resume(spawn: impl Spawner) {
    let running = start(StoreOptions::default(), spawn.clone()).await;
    let setup = Client::tcp(running.addr, ClientOptions::default(), spawn.clone());
    let ops = (0..3000u32).map(|i| BatchOp::Put { key: format!("k{i:05}").into(), value: Bytes::from(vec![1u8; 50]) });
    setup.batch(ops.collect()).await.unwrap();

    let addr = running.addr;
    let current: Arc<Mutex<Option<async_net::TcpStream>>> = Arc::default();
    let saved = Arc::clone(&current);
    let connector = move || {
        let saved = Arc::clone(&saved);
        async move {
            let stream = async_net::TcpStream::connect(addr).await?;
            *saved.lock().unwrap() = Some(stream.clone());
            Transport::tcp(stream)
        }
    };
    let cut = || {
        if let Some(stream) = current.lock().unwrap().take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    };
    let db = Client::new(connector, ClientOptions::default().retry(true), spawn);
    let mut reverse = db.iter(IterOptions { reverse: true, values: false, ..IterOptions::default() }).unwrap();
    let mut got = Vec::new();
    let mut cuts = 0;
    while let Some(entry) = reverse.next().await {
        got.push(entry.unwrap().key);
        if got.len() % 500 == 0 {
            cut();
            cuts += 1;
            db.put(format!("w{cuts}"), "x").await.unwrap(); // replayed if the cut caught it
        }
    }
    let expected: Vec<Bytes> = (0..3000u32).rev().map(|i| format!("k{i:05}").into()).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "reverse iterator across {cuts} cuts");
    assert_eq!(cuts, 6);
    for i in 1..=cuts {
        assert_eq!(db.get(format!("w{i}")).await.unwrap(), Some(b("x")));
    }
}

pub async fn graceful_shutdown(spawn: impl Spawner) {
    let running = start(StoreOptions::default(), spawn.clone()).await;
    let db = Client::tcp(running.addr, ClientOptions::default(), spawn);
    db.put("k", "v").await.unwrap();
    assert_eq!(running.server.connections(), 1);
    running.server.shutdown();
    let closed = futures_lite::future::or(
        async {
            running.server.closed().await;
            true
        },
        async {
            async_io::Timer::after(Duration::from_secs(10)).await;
            false
        },
    );
    assert!(closed.await, "connections close after a shutdown");
}

/// This crate's client against the blocking server, and the blocking client against this
/// crate's server.
pub async fn cross_adapters(spawn: impl Spawner) {
    let dir = tempfile::tempdir().unwrap();
    let blocking = multilevel_blocking::Server::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blocking_addr = listener.local_addr().unwrap();
    let stop = blocking.shutdown_handle();
    std::thread::spawn(move || blocking.serve_tcp(listener));
    let db = Client::tcp(blocking_addr, ClientOptions::default(), spawn.clone());
    for i in 0..100u32 {
        db.put(i.to_be_bytes(), "x").await.unwrap();
    }
    assert_eq!(db.iter(IterOptions::default()).unwrap().count().await, 100);
    stop.shutdown();

    let running = start(StoreOptions::default(), spawn).await;
    let addr = running.addr;
    let count = blocking::unblock(move || {
        let db = multilevel_blocking::Client::tcp(addr, ClientOptions::default());
        for i in 0..100u32 {
            db.put(i.to_be_bytes(), "x").unwrap();
        }
        db.iter(IterOptions::default()).unwrap().count()
    })
    .await;
    assert_eq!(count, 100);
}
