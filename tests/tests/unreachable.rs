//! Every client adapter while its server cannot be reached, or is not a multilevel server:
//! deadlines fire whatever the connection is doing, a failed connect fails waiting requests
//! with its cause when retry is off, and the state says why the last attempt failed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use multilevel_proto::{ClientOptions, ConnectionError, ConnectionState, ErrorKind};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient};

/// A loopback address where nothing listens.
fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap() // the listener closes here; connects are refused
}

/// Runs `f` on a thread and fails the test if it does not return within `limit`.
fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

/// A TCP server that is not multilevel: it answers every connection with `reply`, then closes.
fn impostor(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut hello = [0u8; 16];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(reply);
        }
    });
    addr
}

#[test]
fn client_deadline_fires_while_the_server_is_unreachable() {
    for adapter in ALL {
        for retry in [true, false] {
            let options = ClientOptions::default().retry(retry).request_timeout(Duration::from_millis(300));
            let db = AnyClient::connect(adapter, dead_addr(), options);
            let started = Instant::now();
            let result = within(Duration::from_secs(10), "get", move || {
                let result = db.get("k");
                (result, db)
            });
            let (result, db) = result;
            let err = result.expect_err("nothing listens");
            // Without retry the refused connect fails the request at once; with retry it waits
            // for its deadline.
            let expected = if retry { ErrorKind::TimedOut } else { ErrorKind::Unreachable };
            assert_eq!(err.kind(), expected, "{adapter:?}, retry {retry}: {err}");
            assert!(started.elapsed() < Duration::from_secs(5), "{adapter:?}: took {:?}", started.elapsed());
            drop(db);
        }
    }
}

#[test]
fn per_request_deadline_fires_while_the_server_is_unreachable() {
    for adapter in [Adapter::Tokio, Adapter::Smol] {
        let db = AnyClient::connect(adapter, dead_addr(), ClientOptions::default().retry(true));
        let (result, db) =
            within(Duration::from_secs(10), "get_within", move || (db.get_within("k", Duration::from_millis(200)), db));
        let err = result.expect("an async client").expect_err("nothing listens");
        assert!(err.is_timeout(), "{adapter:?}: {err}");
        drop(db);
    }
}

#[test]
fn without_retry_a_refused_connect_fails_requests_with_its_cause() {
    for adapter in ALL {
        let db = AnyClient::connect(adapter, dead_addr(), ClientOptions::default());
        let (result, db) = within(Duration::from_secs(10), "put", move || (db.put("k", "v"), db));
        let err = result.expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{adapter:?}: {err}");
        assert!(err.is_connection_refused(), "{adapter:?}: {err}");
        let failure = err.connect_failure().expect("the cause");
        assert_eq!(failure.kind, std::io::ErrorKind::ConnectionRefused, "{adapter:?}");
        assert!(err.to_string().contains("cannot reach the server"), "{adapter:?}: {err}");
        drop(db);
    }
}

#[test]
fn with_retry_the_state_says_why_the_last_attempt_failed() {
    for adapter in ALL {
        let db = AnyClient::connect(adapter, dead_addr(), ClientOptions::default().retry(true));
        let deadline = Instant::now() + Duration::from_secs(5);
        let state = loop {
            let state = db.state();
            if matches!(state, ConnectionState::Disconnected(_)) || Instant::now() > deadline {
                break state;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match state {
            ConnectionState::Disconnected(ConnectionError::Connect(failure)) => {
                assert!(failure.is_refused(), "{adapter:?}: {failure:?}");
            }
            other => panic!("{adapter:?}: state {other:?}, wanted a connect failure"),
        }
    }
}

#[test]
fn a_peer_that_is_not_a_multilevel_server_is_named_as_such() {
    let replies: [&'static [u8]; 2] = [
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"-ERR unknown command\r\n", // what a Redis server says
    ];
    for reply in replies {
        for adapter in ALL {
            for retry in [false, true] {
                let options = ClientOptions::default().retry(retry);
                let db = AnyClient::connect(adapter, impostor(reply), options);
                let (result, db) = within(Duration::from_secs(10), "get", move || (db.get("k"), db));
                let err = result.expect_err("not a multilevel server");
                // Retrying cannot help, so even with retry the request fails.
                assert_eq!(err.kind(), ErrorKind::NotMultilevel, "{adapter:?}, retry {retry}: {err}");
                assert!(err.to_string().contains("not a multilevel server"), "{err}");
                assert!(
                    matches!(db.state(), ConnectionState::Disconnected(ConnectionError::NotMultilevel(_))),
                    "{adapter:?}: {:?}",
                    db.state()
                );
            }
        }
    }
}

#[test]
fn a_refused_token_fails_requests_and_shows_in_the_state() {
    use multilevel_proto::{MemoryBackend, MemoryStore, Tokens};
    use multilevel_serve::Backend;
    use multilevel_tests::adapters::BackendServer;

    let tokens = Tokens::parse("rw writer-token-0123456789\nro reader-token-0123456789").unwrap();
    for adapter in ALL {
        let backend = MemoryBackend::new(MemoryStore::new());
        let mut config = backend.server_config();
        config.tokens = Some(std::sync::Arc::new(tokens.clone()));
        let server = BackendServer::with_config(adapter, backend, config);
        for retry in [false, true] {
            let options = ClientOptions::default().retry(retry).token("not-a-token-of-this-server");
            let db = AnyClient::connect(adapter, server.addr, options);
            let (result, db) = within(Duration::from_secs(10), "get", move || (db.get("k"), db));
            let err = result.expect_err("a wrong token");
            // Retrying with the same token cannot help, so even with retry the request fails.
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{adapter:?}, retry {retry}: {err}");
            assert!(
                matches!(db.state(), ConnectionState::Disconnected(ConnectionError::Unauthenticated(_))),
                "{adapter:?}: {:?}",
                db.state()
            );
        }
        // A read-only token on a writable database: the refusal names the token.
        let reader =
            AnyClient::connect(adapter, server.addr, ClientOptions::default().token("reader-token-0123456789"));
        let err = reader.put("k", "v").expect_err("a read-only token");
        assert_eq!(err.kind(), ErrorKind::ReadOnly, "{adapter:?}: {err}");
        assert!(err.to_string().contains("token is read-only"), "{adapter:?}: {err}");
        assert_eq!(reader.get("k").unwrap(), None, "{adapter:?}: it may read");
    }
}

#[test]
fn a_server_that_accepts_but_never_answers_is_not_hammered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use multilevel_proto::{MemoryBackend, MemoryStore};
    use multilevel_tests::adapters::BackendServer;

    for adapter in ALL {
        let real = BackendServer::start(adapter, MemoryBackend::new(MemoryStore::new()));
        // The first connection is relayed to a real server (so the client completes one
        // handshake); it is cut after 300 ms, and every later one is accepted and closed at once.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let upstream = real.addr;
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(client) = stream else { return };
                counter.fetch_add(1, Ordering::Relaxed);
                if i > 0 {
                    continue; // dropped: closed at once
                }
                let server = std::net::TcpStream::connect(upstream).unwrap();
                let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut server_in, mut client_out) = (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
                std::thread::spawn(move || std::io::copy(&mut server_in, &mut client_out));
                std::thread::sleep(Duration::from_millis(300));
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            }
        });
        let db = AnyClient::connect(adapter, addr, ClientOptions::default().retry(true));
        db.put("k", "v").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let attempts = accepted.load(Ordering::Relaxed);
        // With backoff from 50 ms doubling, about five attempts fit in the window; a client
        // reconnecting at once would make thousands.
        assert!(attempts < 20, "{adapter:?}: {attempts} connections in 1.5 s");
        drop(db);
    }
}
