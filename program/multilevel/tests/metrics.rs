//! `multilevel serve --metrics`: a real server child on a temp database, a client's puts, gets
//! and an iterator, then the Prometheus text read over HTTP from `/metrics`.
//!
//! Every child is killed on drop, so a failing test leaves no process behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use multilevel_blocking::{Client, ClientOptions, IterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_multilevel");

/// A `multilevel serve --metrics` child; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Serves a fresh database on free ports; reads the two banner lines.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg(dir.path().join("db"))
            .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env_remove("MULTILEVEL_METRICS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let next = || rx.recv_timeout(Duration::from_secs(30)).expect("a banner line within 30 s");
        let serving = next();
        let addr = serving.rsplit(' ').next().unwrap().to_owned();
        assert!(serving.starts_with("multilevel: serving "), "{serving:?}");
        let metrics = next();
        let metrics = metrics
            .strip_prefix("multilevel: metrics on http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected metrics banner {metrics:?}"))
            .to_owned();
        assert!(!metrics.ends_with(":0"), "the banner names the real port: {metrics}");
        Server { child, addr, metrics, _dir: dir }
    }

    /// `GET /metrics`: the response body.
    fn scrape(&self) -> String {
        let mut stream = TcpStream::connect(&self.metrics).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.metrics).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response.split_once("\r\n\r\n").unwrap().1.to_owned()
    }
}

/// The value of the sample named `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        (series_name == name && labels.iter().all(|label| series_labels.contains(label))).then(|| value.parse().ok())?
    })
}

#[test]
fn serve_exposes_prometheus_metrics() {
    let server = Server::start();
    let db = Client::tcp(server.addr.clone(), ClientOptions::default().retry(true));
    for i in 0..5 {
        db.put(format!("key{i}"), format!("value{i}")).unwrap();
    }
    for i in 0..3 {
        assert_eq!(db.get(format!("key{i}")).unwrap().as_deref(), Some(format!("value{i}").as_bytes()));
    }
    let entries: Vec<_> = db.iter(IterOptions::default()).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 5);

    let text = server.scrape();
    let requests = |kind: &str| {
        sample(&text, "multilevel_requests_total", &[&format!("kind=\"{kind}\""), "outcome=\"ok\""])
            .unwrap_or_else(|| panic!("no {kind} requests counted in:\n{text}"))
    };
    assert_eq!(requests("put"), 5.0);
    assert_eq!(requests("get"), 3.0);
    assert_eq!(requests("iterator_open"), 1.0);
    assert!(requests("iterator_next") >= 1.0);
    assert!(text.contains("# HELP multilevel_requests_total "), "help texts are served:\n{text}");
    assert_eq!(sample(&text, "multilevel_connections", &[]), Some(1.0), "{text}");
    assert!(sample(&text, "multilevel_received_bytes_total", &[]).unwrap() > 0.0, "{text}");
    assert!(sample(&text, "multilevel_sent_bytes_total", &[]).unwrap() > 0.0, "{text}");
    assert!(sample(&text, "multilevel_store_commit_writes_count", &[]).unwrap() > 0.0, "{text}");
    assert!(sample(&text, "multilevel_store_commit_duration_seconds_count", &[]).unwrap() > 0.0, "{text}");
    assert!(sample(&text, "multilevel_request_duration_seconds_count", &["kind=\"get\""]).unwrap() >= 3.0, "{text}");

    // The connection's end takes it off the gauge.
    db.close();
    drop(db);
    let mut gauge = None;
    for _ in 0..100 {
        gauge = sample(&server.scrape(), "multilevel_connections", &[]);
        if gauge == Some(0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gauge, Some(0.0));
}

#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .arg(dir.path().join("db"))
        .args(["--listen", "127.0.0.1:0", "--metrics", "not-an-address"])
        .env_remove("MULTILEVEL_METRICS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--metrics") && stderr.contains("not an address"), "{stderr}");
}
