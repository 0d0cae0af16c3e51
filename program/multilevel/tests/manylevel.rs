//! `multilevel serve --protocol many-level`, and `--many-level-addr` beside the native
//! protocol, end to end: the real binary, spoken to over TCP and a Unix socket with the raw
//! frames captured from many-level 2.0 (reference §1.5), and answered byte for byte as the
//! original host answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use support::{ServerProcess, program};

mod support;

/// Starts `multilevel serve <tmp>/db --protocol many-level` plus `extra` and reads its banner.
fn serve(extra: &[&str]) -> ServerProcess {
    let args: Vec<&str> = ["--protocol", "many-level"].into_iter().chain(extra.iter().copied()).collect();
    start(&args, 1)
}

/// Starts `multilevel serve <tmp>/db` with `args` and reads `banners` banner lines (30 s at
/// most), with the database path replaced by `DB` so tests can match them.
fn start(args: &[&str], banners: usize) -> ServerProcess {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut command = program();
    command.arg("serve").arg(&db).args(args);
    let mut server =
        ServerProcess::start_with_banners(command, &format!("multilevel: serving {} on ", db.display()), banners);
    let db = db.display().to_string();
    server.banners.iter_mut().for_each(|line| *line = line.replace(&db, "DB"));
    server.dir = Some(dir);
    server
}

/// Hex bytes, with quoted runs taken as ASCII.
fn hex(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(part.as_bytes());
        } else {
            out.extend(part.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()));
        }
    }
    out
}

/// Sends `request` and reads exactly as many bytes as `reply` has; they must be equal.
fn exchange(stream: &mut (impl Read + Write), request: &str, reply: &str) {
    stream.write_all(&hex(request)).unwrap();
    let want = hex(reply);
    let mut got = vec![0u8; want.len()];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(got, want, "reply to {request}");
}

/// The captured session: put, get, get missing, getMany, del, batch, then an iterator
/// (first batch of one entry, the rest after the ack) and a clear.
fn captured_session(stream: &mut (impl Read + Write)) {
    exchange(stream, "09 01 08 01 12 01 61 1a 01 31", "03 00 08 01");
    exchange(stream, "06 00 08 02 12 01 61", "06 00 08 02 1a 01 31");
    exchange(stream, "07 00 08 03 12 02 7a 7a", r#"14 00 08 03 12 0f "LEVEL_NOT_FOUND""#);
    exchange(stream, "0a 06 08 04 12 01 61 12 02 7a 7a", "0a 02 08 04 1a 03 0a 01 31 1a 00");
    exchange(stream, "06 02 08 05 12 01 61", "03 00 08 05");
    exchange(
        stream,
        r#"27 03 08 06 12 0b 0a 03 "put" 12 01 62 1a 01 32 12 08 0a 03 "del" 12 01 63 12 0b 0a 03 "put" 12 01 63 1a 01 33"#,
        "03 00 08 06",
    );
    exchange(
        stream,
        "14 04 08 01 10 00 1a 0b 08 01 10 01 22 01 62 38 0a 40 00 20 00",
        "0b 01 08 01 10 00 1a 01 62 1a 01 32",
    );
    // After the ack: the last entry, then the end.
    exchange(stream, "07 08 08 01 10 00 18 01", "0b 01 08 01 10 00 1a 01 63 1a 01 33 05 04 08 01 10 00");
    stream.write_all(&hex("03 07 08 01")).unwrap(); // close: no reply
    exchange(stream, "0c 05 08 07 12 07 1a 01 62 38 01 40 00", "03 00 08 07");
    exchange(stream, "07 00 08 08 12 02 63 63", r#"14 00 08 08 12 0f "LEVEL_NOT_FOUND""#);
    exchange(stream, "06 00 08 09 12 01 62", "06 00 08 09 1a 01 32");
}

#[test]
fn serve_many_level_over_tcp_answers_captured_frames() {
    let server = serve(&["--addr", "127.0.0.1:0"]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    captured_session(&mut stream);

    // An unknown tag closes the connection (no id to answer); the server goes on serving.
    stream.write_all(&hex("03 0a 08 01")).unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "closed without a reply");
    let mut again = TcpStream::connect(&server.addr).unwrap();
    again.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    exchange(&mut again, "06 00 08 01 12 01 62", "06 00 08 01 1a 01 32");
}

#[cfg(unix)]
#[test]
fn serve_many_level_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("many.sock");
    let server = serve(&["--unix", socket.to_str().unwrap()]);
    let mut stream = std::os::unix::net::UnixStream::connect(server.addr.strip_prefix("unix:").unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    captured_session(&mut stream);
}

#[test]
fn many_level_refuses_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "read-write s3cr3t-token-of-some-length\n").unwrap();
    // Serving only many-level, or a many-level listener beside the native one.
    for flags in [["--protocol", "many-level"], ["--many-level-addr", "127.0.0.1:0"]] {
        let output = program()
            .arg("serve")
            .arg(dir.path().join("db"))
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .arg("--tokens-file")
            .arg(&tokens)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flags:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("many-level has no authentication"), "{flags:?}");
    }
}

/// Runs a client command of the real binary against the native listener at `addr`.
fn client(addr: &str, args: &[&str]) -> std::process::Output {
    program().args(["--addr", addr]).args(args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn one_process_serves_both_protocols_from_one_database() {
    let server = start(&["--addr", "127.0.0.1:0", "--many-level-addr", "127.0.0.1:0"], 2);
    let native = server.addr.as_str();
    let many = server.banners[1].strip_prefix("multilevel: serving DB to many-level guests on ").expect("banner");

    // A many-level guest writes a=1 (captured frames); the native client reads it.
    let mut guest = TcpStream::connect(many).unwrap();
    guest.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    exchange(&mut guest, "09 01 08 01 12 01 61 1a 01 31", "03 00 08 01");
    let got = client(native, &["get", "a"]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(got.stdout, b"1", "raw bytes: stdout is a pipe");

    // The native client writes b=2; the guest reads it.
    let put = client(native, &["put", "b", "2"]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    exchange(&mut guest, "06 00 08 02 12 01 62", "06 00 08 02 1a 01 32");
    drop(server);
}
