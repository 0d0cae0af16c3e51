//! Each connection's log lines carry a `connection` span with the peer's address and, once the
//! handshake gives it, the client's session.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multilevel_store::{Store, StoreOptions};
use multilevel_tokio::{Client, ClientOptions, Server};
use tracing_subscriber::fmt::format::FmtSpan;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_connection_span_names_the_peer_and_the_session() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Span closes are logged with the span's fields: the end of a connection shows them.
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(Store::open(dir.path(), StoreOptions::default().no_sync(true)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });

    let db = Client::tcp(addr, ClientOptions::default().retry(true));
    db.put("k", "v").await.unwrap();
    db.close();
    drop(db);
    let logged = async {
        loop {
            let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
            if let Some(line) = text.lines().find(|line| line.contains("connection{peer=127.0.0.1:")) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let line = tokio::time::timeout(Duration::from_secs(20), logged).await.expect("the connection span closes");
    assert!(line.contains(" session="), "the session is recorded in the span: {line}");
    server.shutdown();
}
