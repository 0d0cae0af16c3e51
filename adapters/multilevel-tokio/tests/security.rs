//! Access control: tokens, TLS with certificates made here by rcgen, and the connection cap.
//! Each failure is a clear error, and nothing affects the other clients.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use multilevel_proto::manylevel::encode_message;
use multilevel_proto::manylevel::messages::Put as ManyLevelPut;
use multilevel_proto::message::Goodbye;
use multilevel_proto::{ErrorCode, GoodbyeReason, Protocol, RequestError, ServerMessage, Tokens};
use multilevel_store::{Store, StoreOptions};
use multilevel_tokio::{Client, ClientOptions, Error, Server, Transport, tls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WRITER: &str = "0123456789abcdef-writer";
const READER: &str = "0123456789abcdef-reader";

fn server(dir: &Path, tokens: bool) -> Server {
    let store = Store::open(dir.join("db"), StoreOptions::default()).unwrap();
    let mut config = store.server_config();
    if tokens {
        let list = format!("rw {WRITER}\nro {READER}\n");
        config.tokens = Some(Arc::new(Tokens::parse(&list).unwrap()));
    }
    Server::with_config(store, config)
}

async fn serve_tcp(server: &Server) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });
    addr
}

fn remote_code(result: Result<(), Error>) -> ErrorCode {
    match result {
        Err(Error::Request(RequestError::Remote(err))) => err.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_decide_who_gets_in_and_who_may_write() {
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), true);
    let addr = serve_tcp(&server).await;
    let writer = Client::tcp(addr, ClientOptions::default().token(WRITER));
    writer.put("k", "v").await.unwrap();

    let reader = Client::tcp(addr, ClientOptions::default().token(READER).retry(true));
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(remote_code(reader.put("k", "x").await), ErrorCode::ReadOnly);

    for options in [ClientOptions::default().retry(true), ClientOptions::default().token("0123456789abcdef-guess")] {
        let stranger = Client::tcp(addr, options);
        match stranger.get("k").await {
            Err(Error::Request(RequestError::Unauthenticated(message))) => {
                assert!(message.contains("token"), "{message}");
                assert!(!message.contains("guess"), "the token is not echoed");
            }
            other => panic!("a client without a valid token got {other:?}"),
        }
    }
    writer.put("k2", "still served").await.unwrap();
}

struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA, a server certificate for `localhost` and a client certificate, all signed by it.
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, san) in [("server", "localhost"), ("client", "client")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![san.to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

async fn serve_tls(server: &Server, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tls(listener, config).await });
    addr
}

#[tokio::test]
async fn tls_with_the_right_ca_works_and_a_wrong_certificate_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), false);
    let config = tls::server_config(&pki.path("server.pem"), &pki.path("server.key"), None).unwrap();
    let addr = serve_tls(&server, config).await;

    let trusted = tls::client_config(&pki.path("ca.pem"), None).unwrap();
    let db = Client::tls(addr, "localhost", trusted.clone(), ClientOptions::default());
    db.put("over", "tls").await.unwrap();
    assert_eq!(db.get("over").await.unwrap().as_deref(), Some(&b"tls"[..]));

    // A CA that did not sign the server's certificate: the handshake fails, clearly.
    let untrusted = tls::client_config(&other.path("ca.pem"), None).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = Transport::tls(stream, untrusted, "localhost").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    // The wrong name for a good certificate.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = Transport::tls(stream, trusted, "example.com").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    db.put("after", "still served").await.unwrap();
}

#[tokio::test]
async fn client_certificates_can_be_required() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), false);
    let config =
        tls::server_config(&pki.path("server.pem"), &pki.path("server.key"), Some(&pki.path("ca.pem"))).unwrap();
    let addr = serve_tls(&server, config).await;

    let identity = (pki.path("client.pem"), pki.path("client.key"));
    let with_cert = tls::client_config(&pki.path("ca.pem"), Some((&identity.0, &identity.1))).unwrap();
    let db = Client::tls(addr, "localhost", with_cert, ClientOptions::default());
    db.put("k", "v").await.unwrap();

    // Without one: the server refuses; the client sees the connection fail, not an answer.
    let without = tls::client_config(&pki.path("ca.pem"), None).unwrap();
    let anonymous =
        Client::tls(addr, "localhost", without, ClientOptions::default().request_timeout(Duration::from_millis(500)));
    let result = anonymous.get("k").await;
    assert!(matches!(result, Err(Error::Request(RequestError::TimedOut | RequestError::ConnectionLost))), "{result:?}");
    db.put("k2", "v").await.unwrap();
}

/// What a connection that never says hello receives before the server closes it: the
/// goodbye, if any.
async fn received_before_close(mut stream: impl tokio::io::AsyncRead + Unpin) -> Option<Goodbye> {
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut received))
        .await
        .expect("the refused connection is closed")
        .unwrap();
    let mut decoder = multilevel_proto::FrameDecoder::new(1 << 20);
    decoder.push(&received);
    let frame = decoder.next_frame().unwrap()?;
    let ServerMessage::Goodbye(goodbye) = multilevel_proto::message::decode(&frame).unwrap() else {
        panic!("not a goodbye")
    };
    Some(goodbye)
}

fn assert_too_many(goodbye: Option<Goodbye>) {
    let goodbye = goodbye.expect("a goodbye");
    assert_eq!(goodbye.reason, GoodbyeReason::TooManyConnections);
    assert!(goodbye.message.contains("maximum of 2"), "{}", goodbye.message);
}

#[tokio::test]
async fn the_connection_cap_refuses_with_a_goodbye() {
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), false).with_max_connections(2);
    let addr = serve_tcp(&server).await;
    let first = Client::tcp(addr, ClientOptions::default());
    let second = Client::tcp(addr, ClientOptions::default());
    first.put("a", "1").await.unwrap();
    second.put("b", "2").await.unwrap();

    assert_too_many(received_before_close(tokio::net::TcpStream::connect(addr).await.unwrap()).await);
    first.put("c", "3").await.unwrap();
    assert_eq!(second.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));
}

#[tokio::test]
async fn the_connection_cap_holds_over_tls_and_refuses_with_a_goodbye_over_tls() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), false).with_max_connections(2);
    let config = tls::server_config(&pki.path("server.pem"), &pki.path("server.key"), None).unwrap();
    let addr = serve_tls(&server, config).await;
    let trusted = tls::client_config(&pki.path("ca.pem"), None).unwrap();
    let first = Client::tls(addr, "localhost", trusted.clone(), ClientOptions::default());
    let second = Client::tls(addr, "localhost", trusted.clone(), ClientOptions::default());
    first.put("a", "1").await.unwrap();
    second.put("b", "2").await.unwrap();

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = tls::server_name("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(trusted).connect(name, stream).await.unwrap();
    assert_too_many(received_before_close(stream).await);
    first.put("c", "3").await.unwrap();
    assert_eq!(second.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn the_connection_cap_closes_a_many_level_guest_past_it_without_a_word() {
    let dir = TempDir::new().unwrap();
    let server = server(dir.path(), false).with_protocol(Protocol::ManyLevel).with_max_connections(1);
    let addr = serve_tcp(&server).await;
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A many-level put (tag 1), answered with a callback: the first guest is served.
    let mut put = bytes::BytesMut::new();
    encode_message(1, &ManyLevelPut { id: 1, key: "k".into(), value: Some("v".into()) }, &mut put);
    first.write_all(&put).await.unwrap();
    let mut answer = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut answer)).await.unwrap().unwrap();
    assert!(n > 0, "the guest's put is answered");

    // many-level has no goodbye: past the cap the connection is closed with nothing sent.
    assert!(received_before_close(tokio::net::TcpStream::connect(addr).await.unwrap()).await.is_none());
    assert_eq!(server.connections(), 1);
}
