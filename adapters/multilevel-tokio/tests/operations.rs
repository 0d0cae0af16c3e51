//! Every operation end to end on tokio, and each client against the other adapter's server.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{ErrorCode, IssueError, RequestError};
use multilevel_store::{Hooks, Store, StoreOptions};
use multilevel_tokio::{BatchOp, Client, ClientOptions, ConnectionState, Error, IterOptions, KeyRange, Server};
use tempfile::TempDir;

async fn start(options: StoreOptions) -> (Server, SocketAddr, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    if options.readonly {
        // A read-only store opens an existing database only: create an empty one first.
        assert!(Store::open(dir.path(), StoreOptions::default()).unwrap().close());
    }
    let server = Server::new(Store::open(dir.path(), options).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });
    (server, addr, dir)
}

async fn keys(db: &Client, options: IterOptions) -> Vec<Bytes> {
    db.iter(options).unwrap().map(|e| e.unwrap().key).collect().await
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn operations() {
    let (_server, addr, _dir) = start(StoreOptions::default()).await;
    let db = Client::tcp(addr, ClientOptions::default());
    assert_eq!(db.get("a").await.unwrap(), None);
    db.put("a", "1").await.unwrap();
    db.put(b"", "empty key").await.unwrap();
    assert_eq!(db.get(b"").await.unwrap(), Some(b("empty key")));
    assert_eq!(db.get_many(["a", "zz"]).await.unwrap(), vec![Some(b("1")), None]);
    db.batch(vec![
        BatchOp::Put { key: b("b"), value: b("2") },
        BatchOp::Put { key: b("c"), value: b("3") },
        BatchOp::Del { key: b("a") },
    ])
    .await
    .unwrap();
    assert_eq!(keys(&db, IterOptions::default()).await, vec![b(""), b("b"), b("c")]);
    let reverse = IterOptions { reverse: true, limit: Some(2), ..IterOptions::default() };
    assert_eq!(keys(&db, reverse).await, vec![b("c"), b("b")]);
    db.del("b").await.unwrap();
    db.clear(KeyRange::all().gte("c")).await.unwrap();
    assert_eq!(keys(&db, IterOptions::default()).await, vec![b("")]);
    let stats: std::collections::HashMap<String, u64> = db.stats().await.unwrap().into_iter().collect();
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["connections"], 1);
    assert!(stats["map_size"] > 0);
    let too_long = vec![0u8; 511];
    assert_eq!(db.put(&too_long, "").await, Err(Error::Issue(IssueError::KeyTooLarge { len: 511, max: 510 })));
}

#[tokio::test]
async fn iterator_seek_batches_and_shapes() {
    let (_server, addr, _dir) = start(StoreOptions::default()).await;
    let db = Client::tcp(addr, ClientOptions::default());
    for i in 0u8..50 {
        db.put([i], [i]).await.unwrap();
    }
    let mut it = db.iter(IterOptions { keys: false, ..IterOptions::default() }).unwrap();
    let first = it.next().await.unwrap().unwrap();
    assert_eq!(first.into_pair(), (Bytes::new(), Bytes::from(vec![0])));
    it.seek([40]);
    let batch = it.next_batch(5).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.value[0]).collect::<Vec<_>>(), vec![40, 41, 42, 43, 44]);
    let rest: Vec<_> = it.collect().await;
    assert_eq!(rest.len(), 5);
}

#[tokio::test]
async fn hooks_and_readonly_reach_the_client_typed() {
    let hooks = Hooks::new().preput(|k, _| if k == b"no" { Err("not this key".into()) } else { Ok(()) });
    let (_server, addr, _dir) = start(StoreOptions::default().hooks(hooks)).await;
    let db = Client::tcp(addr, ClientOptions::default());
    match db.put("no", "x").await {
        Err(Error::Request(RequestError::Remote(err))) => {
            assert_eq!((err.code, err.message.as_str()), (ErrorCode::Rejected, "not this key"));
        }
        other => panic!("{other:?}"),
    }
    let (_ro, ro_addr, _ro_dir) = start(StoreOptions::default().readonly(true)).await;
    let ro = Client::tcp(ro_addr, ClientOptions::default());
    match ro.put("k", "v").await {
        Err(Error::Request(RequestError::Remote(err))) => assert_eq!(err.code, ErrorCode::ReadOnly),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_pipeline_on_one_client() {
    let (_server, addr, _dir) = start(StoreOptions::default()).await;
    let db = Client::tcp(addr, ClientOptions::default());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    db.put(format!("{t:02}/{i:02}"), "v").await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(db.iter(IterOptions::default()).unwrap().count().await, 800);
}

#[tokio::test]
async fn with_retry_requests_wait_for_the_first_connection_and_state_is_watchable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens yet
    // Without retry the refused connect would fail the put (tests/tests/unreachable.rs).
    let db = Client::tcp(addr, ClientOptions::default().retry(true));
    let pending = tokio::spawn({
        let db = db.clone();
        async move { db.put("early", "1").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    assert_ne!(*db.watch_state().borrow(), ConnectionState::Connected);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move { server.serve_tcp(listener).await });
    pending.await.unwrap().unwrap();
    assert!(db.connected().await);
    assert_eq!(db.get("early").await.unwrap(), Some(b("1")));
}

/// A "server" that accepts connections and never answers.
async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test]
async fn per_request_timeouts() {
    let addr = silent_server().await;
    let db = Client::tcp(addr, ClientOptions::default());
    let result = db.request(multilevel_proto::Request::Get { key: b("k") }, Some(Duration::from_millis(100))).await;
    assert_eq!(result, Err(Error::Request(RequestError::TimedOut)));
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_work() {
    let (server, addr, _dir) = start(StoreOptions::default()).await;
    let db = Client::tcp(addr, ClientOptions::default());
    db.put("before", "1").await.unwrap();
    let writes: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.put(format!("k{i}"), "v").await })
        })
        .collect();
    tokio::task::yield_now().await;
    server.shutdown();
    tokio::time::timeout(Duration::from_secs(10), server.closed()).await.expect("connections close");
    let mut store = server.store().connection();
    let mut acknowledged = 0;
    for (i, w) in writes.into_iter().enumerate() {
        match w.await.unwrap() {
            Ok(()) => {
                acknowledged += 1;
                let get = multilevel_proto::StoreRequest::Get { key: format!("k{i}").into() };
                let multilevel_store::Execution::Ready(found) = store.execute(get, |_| {}) else {
                    panic!("reads are inline")
                };
                assert_eq!(found, Ok(multilevel_proto::Outcome::Value(Some(b("v")))), "acknowledged k{i} is stored");
            }
            // Requests the server had not read when it stopped get no answer but the goodbye.
            Err(Error::Request(RequestError::ConnectionLost)) => {}
            Err(other) => panic!("k{i}: {other}"),
        }
    }
    eprintln!("graceful shutdown: {acknowledged} of 20 in-flight writes finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_client_against_the_blocking_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let server = multilevel_blocking::Server::new(store);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    std::thread::spawn(move || server.serve_tcp(listener));
    let db = Client::tcp(addr, ClientOptions::default());
    for i in 0..100u32 {
        db.put(i.to_be_bytes(), "x").await.unwrap();
    }
    assert_eq!(db.iter(IterOptions { reverse: true, ..IterOptions::default() }).unwrap().count().await, 100);
    shutdown.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_against_the_tokio_server() {
    let (_server, addr, _dir) = start(StoreOptions::default()).await;
    let count = tokio::task::spawn_blocking(move || {
        let db = multilevel_blocking::Client::tcp(addr, ClientOptions::default());
        for i in 0..100u32 {
            db.put(i.to_be_bytes(), "x").unwrap();
        }
        db.iter(IterOptions::default()).unwrap().count()
    })
    .await
    .unwrap();
    assert_eq!(count, 100);
}

#[tokio::test]
async fn an_earlier_request_deadline_rearms_the_timer() {
    let addr = silent_server().await;
    let db = Client::tcp(addr, ClientOptions::default());
    // The first request arms the driver's timer for 20 s; the second one, issued while it
    // waits, has a sooner deadline and must re-arm it.
    let slow = db.request(multilevel_proto::Request::Get { key: b("a") }, Some(Duration::from_secs(20)));
    tokio::pin!(slow);
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut slow).await.is_err());
    let fast = db.request(multilevel_proto::Request::Get { key: b("b") }, Some(Duration::from_millis(100)));
    let started = std::time::Instant::now();
    tokio::select! {
        result = fast => assert_eq!(result, Err(Error::Request(RequestError::TimedOut))),
        _ = &mut slow => panic!("the 20 s request ended first"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "timed out after {:?}", started.elapsed());
}

#[tokio::test]
async fn the_server_closes_idle_connections_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let config = multilevel_proto::ServerConfig { idle_timeout: Duration::from_millis(300), ..store.server_config() };
    let server = Server::with_config(store, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });

    let db = Client::tcp(addr, ClientOptions::default());
    assert!(db.connected().await);
    let mut state = db.watch_state();
    // Busy for three idle timeouts: each request moves the deadline, and the connection stays.
    for i in 0..12 {
        db.put(format!("k{i}"), "v").await.unwrap();
        tokio::time::sleep(Duration::from_millis(75)).await;
    }
    assert_eq!(*state.borrow_and_update(), ConnectionState::Connected, "a busy connection was closed");
    // Then silent (the client pings only every 10 s): the server closes it.
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| matches!(s, ConnectionState::Disconnected(_))),
    )
    .await;
    assert!(closed.is_ok(), "an idle connection stayed open");
}
