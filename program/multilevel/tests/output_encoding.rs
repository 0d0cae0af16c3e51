//! The output encodings of the client commands, end to end: `get` gives back exactly the bytes
//! `put` stored (raw to a pipe, escaped text to a terminal), and `--format text|hex|json` print
//! any bytes, control characters and invalid UTF-8 included, safely and distinctly.

use std::process::{Command, Stdio};

use support::*;

mod support;

#[test]
fn put_get_del_in_each_format() {
    let server = ServerProcess::tcp();
    assert_eq!(server.ok(&["put", "hello", "world"]), "", "put prints nothing");
    assert_eq!(server.ok(&["get", "hello"]), "world", "raw bytes when stdout is not a terminal");
    assert_eq!(server.ok(&["get", "hello", "--raw"]), "world");
    assert_eq!(server.ok(&["get", "hello", "--format", "raw"]), "world");
    assert_eq!(server.ok(&["get", "hello", "--format", "text"]), "world\n");
    assert_eq!(server.ok(&["get", "hello", "--format", "hex"]), "776f726c64\n");
    assert_eq!(server.ok(&["get", "--format", "json", "hello"]), "{\"key\":\"hello\",\"value\":\"world\"}\n");
    assert_eq!(server.ok(&["put", "grüße", "tab\there"]), "");
    assert_eq!(server.ok(&["get", "grüße", "--format", "text"]), "tab\\there\n");
    assert_eq!(server.ok(&["get", "grüße"]), "tab\there");

    // Bytes that are not UTF-8, given as hex.
    assert_eq!(server.ok(&["put", "--hex", "00ff", "80ff41"]), "");
    assert_eq!(server.ok(&["get", "--hex", "00ff", "--format", "text"]), "\\x80\\xffA\n");
    assert_eq!(server.ok(&["get", "--hex", "00FF", "--format", "hex"]), "80ff41\n");
    assert_eq!(
        server.ok(&["get", "--hex", "00ff", "--format", "json"]),
        "{\"key\":{\"hex\":\"00ff\"},\"value\":{\"hex\":\"80ff41\"}}\n"
    );
    let bad = server.run(&["get", "--hex", "xyz"]);
    assert_eq!(bad.status.code(), Some(2), "bad hex is a command-line mistake");
    assert!(stderr(&bad).starts_with("multilevel: KEY `xyz` is not hex"), "{}", stderr(&bad));

    // A value piped on stdin is taken as raw bytes.
    let piped = server.run_with_stdin(&["put", "blob"], Some(&[0, 1, 2, 0xff, b'\n']));
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(server.ok(&["get", "blob", "--format", "hex"]), "000102ff0a\n");

    // Deleting, and what a missing key looks like.
    assert_eq!(server.ok(&["del", "hello"]), "");
    let missing = server.run(&["get", "hello"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(missing.stdout, b"");
    assert_eq!(stderr(&missing), "multilevel: not found: hello\n");
    assert_eq!(server.ok(&["del", "hello"]), "", "deleting a missing key is no error");
}

/// `len` bytes of deterministic noise (xorshift): every byte value, lots of invalid UTF-8.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn get_gives_back_exactly_the_bytes_put_stored() {
    let server = ServerProcess::tcp();
    let mut value = noise(1000, 0x9e37_79b9_7f4a_7c15);
    value.extend_from_slice(b"\n\xff\x00\x1b[2J\\"); // a trailing newline, a NUL, an escape...
    let put = server.run_with_stdin(&["put", "blob"], Some(&value));
    assert!(put.status.success(), "{}", stderr(&put));

    // To a pipe.
    let got = server.run(&["get", "blob"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(got.stdout, value, "`get` to a pipe prints the raw bytes");

    // To a file, as in `multilevel get blob > file`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let mut command = program();
    command.args(["get", "blob", "--addr", &server.addr]).stdout(std::fs::File::create(&path).unwrap());
    let status = command.stdin(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&path).unwrap(), value, "`get > file` gives back the file `put < file` stored");

    // `--raw` and `--format raw` say the same whatever stdout is; text is escaped, one line.
    assert_eq!(server.run(&["get", "blob", "--raw"]).stdout, value);
    let text = server.ok(&["get", "blob", "--format", "text"]);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.ends_with("\\n\\xff\\x00\\x1b[2J\\\\\n"), "{text:?}");
    assert!(!text.contains('\x1b'));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn text_output_escapes_control_bytes() {
    let server = ServerProcess::tcp();
    // Key `a<TAB>b`; value `x<NUL>y<LF>z<CR><ESC>]0;owned<BEL><DEL> back\slash <CSI (C1)>`.
    let key = hex_of(b"a\tb");
    let value = hex_of("x\0y\nz\r\x1b]0;owned\x07\x7f back\\slash \u{9b}".as_bytes());
    assert_eq!(server.ok(&["put", "--hex", &key, &value]), "");
    let escaped = r"x\x00y\nz\r\x1b]0;owned\x07\x7f back\\slash \xc2\x9b";
    assert_eq!(server.ok(&["scan"]), format!("a\\tb\t{escaped}\n"), "one line, one tab: key<TAB>value");
    assert_eq!(server.ok(&["scan", "--keys-only"]), "a\\tb\n");
    assert_eq!(server.ok(&["get", "--hex", &key, "--format", "text"]), format!("{escaped}\n"));
    assert_eq!(server.ok(&["mget", "--hex", &key]), format!("a\\tb\t{escaped}\n"));
    // JSON escapes them too (DEL and C1 as \u escapes, which serde_json alone leaves raw).
    let json = server.ok(&["scan", "--format", "json"]);
    assert_eq!(
        json,
        "{\"key\":\"a\\tb\",\"value\":\"x\\u0000y\\nz\\r\\u001b]0;owned\\u0007\\u007f back\\\\slash \\u009b\"}\n"
    );
    // A missing key is named escaped too.
    let missing = server.run(&["get", "--hex", &hex_of(b"\x1b[31m")]);
    assert_eq!(stderr(&missing), "multilevel: not found: 1b5b33316d\n", "--hex names the key in hex");
    let missing = server.run(&["get", "\x1b[31m"]);
    assert_eq!(stderr(&missing), "multilevel: not found: \\x1b[31m\n");
}

/// `get` to a terminal prints escaped text and a newline (run under util-linux `script`, which
/// gives it a pseudo-terminal; skipped where `script` is missing).
#[cfg(target_os = "linux")]
#[test]
fn get_to_a_terminal_prints_escaped_text() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to run the program on a pseudo-terminal");
        return;
    }
    let server = ServerProcess::tcp();
    let put = server.run_with_stdin(&["put", "k"], Some(b"a\tb\x1b[31m"));
    assert!(put.status.success(), "{}", stderr(&put));
    let line = format!("'{BIN}' get k --addr {}", server.addr);
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]).env_remove("MULTILEVEL_ADDR");
    let output = run(command, None);
    assert!(output.status.success(), "{}", stderr(&output));
    // The terminal turns the newline into CR LF.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "a\\tb\\x1b[31m\r\n");
}
