//! A real server on loopback over a real LMDB file in a temp dir.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::thread;

use multilevel_blocking::{Client, ClientOptions, Server, ShutdownHandle};
use multilevel_store::{Store, StoreOptions};
use tempfile::TempDir;

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    pub store: Store,
    shutdown: ShutdownHandle,
    _dir: TempDir,
}

impl TestServer {
    pub fn start(options: StoreOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if options.readonly {
            // A read-only store opens an existing database only: create an empty one first.
            assert!(Store::open(dir.path().join("db"), StoreOptions::default()).unwrap().close());
        }
        let store = Store::open(dir.path().join("db"), options).unwrap();
        let server = Server::new(store.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let serving = server.clone();
        thread::spawn(move || serving.serve_tcp(listener));
        Self { addr, server, store, shutdown, _dir: dir }
    }

    pub fn client(&self) -> Client {
        Client::tcp(self.addr, ClientOptions::default())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
