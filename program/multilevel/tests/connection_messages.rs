//! What a client command says when the connection goes wrong: nothing listening, something
//! that is not a multilevel server, TLS to a plain server, a read-only database, a value over
//! the limit, and several addresses failing over.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

mod support;

#[test]
fn unreachable_server_fails_fast() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free); // now nothing listens there
    let start = Instant::now();
    let mut command = program();
    command.args(["get", "x", "--addr", &addr, "--timeout", "30s"]);
    let output = run(command, None);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    let message = stderr(&output);
    assert!(message.starts_with(&format!("multilevel: cannot reach {addr}: ")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    // The address can come from MULTILEVEL_ADDR too.
    let mut command = program();
    command.env("MULTILEVEL_ADDR", &addr).args(["get", "x"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {addr}: ")), "{}", stderr(&output));
}

/// A TCP listener that answers each connection with `answer` (if any) and then closes it,
/// after `linger`; for servers that are not multilevel servers.
fn impostor(answer: Option<&'static [u8]>, linger: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                if let Some(answer) = answer {
                    let _ = stream.write_all(answer);
                }
                thread::sleep(linger);
            });
        }
    });
    addr
}

#[test]
fn connection_errors_say_what_answered() {
    // Something answered, and it is not a multilevel server.
    let http = impostor(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n"), Duration::ZERO);
    let output = program().args(["get", "k", "--addr", &http, "--timeout", "20s"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!("multilevel: {http} is not a multilevel server")),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("cannot reach"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1);

    // Something that accepts the connection and says nothing.
    let silent = impostor(None, Duration::from_secs(30));
    let output = program().args(["get", "k", "--addr", &silent, "--timeout", "1s"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("multilevel: {silent} accepted the connection but did not complete a multilevel handshake within 1s\n")
    );

    // Nothing answered.
    let nobody = refused_addr();
    let output = program().args(["get", "k", "--addr", &nobody]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {nobody}: ")), "{}", stderr(&output));
    let output = program().args(["get", "k", "--addr", "no-such-host.invalid:7481"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("multilevel: cannot reach no-such-host.invalid:7481: "), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn a_readonly_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let start = |readonly: bool| {
        let mut command = program();
        command.arg("serve").arg(&db).args(["--listen", "127.0.0.1:0"]);
        if readonly {
            command.arg("--readonly");
        }
        ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()))
    };
    let mut writable = start(false);
    writable.ok(&["put", "k", "v"]);
    assert!(writable.terminate().success());
    let readonly = start(true);
    assert_eq!(readonly.ok(&["get", "k"]), "v");
    let refused = readonly.run(&["put", "k", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stderr(&refused), "multilevel: write refused: the database is served read-only\n");
    drop(readonly);

    // With a token that may write, the refusal is still the database's, and says so.
    let writer = "0123456789abcdef-writer";
    let mut command = program();
    command.env("MULTILEVEL_TOKENS", format!("read-write {writer}\n")).arg("serve").arg(&db);
    command.args(["--listen", "127.0.0.1:0", "--readonly"]);
    let readonly = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let mut put = program();
    put.env("MULTILEVEL_TOKEN", writer).args(["put", "k", "x", "--addr", &readonly.addr, "--timeout", "20s"]);
    let refused = run(put, None);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stderr(&refused), "multilevel: write refused: the database is served read-only\n");
}

#[test]
fn a_value_over_the_limit_says_so() {
    let server = ServerProcess::tcp();
    let big = vec![b'x'; 17 << 20];
    let output = server.run_with_stdin(&["put", "big"], Some(&big));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let max: usize = message
        .strip_prefix("multilevel: value too large (max ")
        .and_then(|rest| rest.split_once(" bytes)"))
        .and_then(|(max, _)| max.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(max > 16_000_000 && max < 16 << 20, "{message}");
    // The largest value it names does fit.
    let output = server.run_with_stdin(&["put", "big"], Some(&big[..max]));
    assert!(output.status.success(), "a value of {max} bytes: {}", stderr(&output));
    let output = server.run_with_stdin(&["put", "big"], Some(&big[..max + 1]));
    assert!(stderr(&output).starts_with("multilevel: value too large"), "{}", stderr(&output));
}

#[test]
fn several_addresses_fail_over() {
    let server = ServerProcess::tcp();
    let dead = refused_addr();
    // The first address is dead, the second alive: the command works.
    let both = format!("{dead},{}", server.addr);
    for (how, flag) in [("flag", true), ("environment", false)] {
        let mut command = program();
        command.args(["put", "k", how, "--timeout", "20s"]);
        if flag {
            command.args(["--addr", &both]);
        } else {
            command.env("MULTILEVEL_ADDR", &both);
        }
        let output = run(command, None);
        assert!(output.status.success(), "{how}: {}", stderr(&output));
        let output = program().args(["get", "k", "--addr", &both]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), how);
    }
    // Repeated --addr flags add up.
    let output = program().args(["get", "k", "--addr", &dead, "--addr", &server.addr]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Every address dead: one line naming them.
    let other = refused_addr();
    let output = program().args(["get", "k", "--addr", &format!("{dead},{other}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {dead},{other}: ")), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1);
    // A malformed address among them is a command-line mistake.
    let output = program().args(["get", "k", "--addr", &format!("{},nonsense", server.addr)]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn tls_to_a_plain_server_names_the_tls_handshake() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let server = ServerProcess::tcp();
    let ca = dir.path().join("ca.pem").display().to_string();
    let dead = refused_addr();
    // Also when the plain server is the second address tried: the TLS failure is named with it.
    for addrs in [server.addr.clone(), format!("{dead},{}", server.addr)] {
        let output = program()
            .args(["get", "k", "--addr", &addrs, "--timeout", "20s", "--tls-ca", &ca, "--tls-name", "localhost"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).starts_with(&format!("multilevel: the TLS handshake with {} failed: ", server.addr)),
            "{addrs}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output).lines().count(), 1);
    }
}
