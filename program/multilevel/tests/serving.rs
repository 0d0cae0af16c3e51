//! `multilevel serve` (and `multilevel` with no command), end to end: its one-line errors, SIGTERM,
//! Unix sockets (owner-only), tokens and TLS, and never listening on the clients' address.

use std::path::PathBuf;

use support::*;

mod support;

#[test]
fn serve_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut command = program();
    command.arg("serve").arg(dir.path().join("db")).args(["--addr", &addr]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    let message = stderr(&output);
    assert!(message.starts_with(&format!("multilevel: cannot listen on {addr}: ")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a database").unwrap();
    let mut command = program();
    command.arg("serve").arg(&file).args(["--listen", "127.0.0.1:0"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("multilevel: cannot open the database: "), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[cfg(unix)]
#[test]
fn no_command_serves_multilevel_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = program();
    command.current_dir(dir.path()).args(["--addr", "127.0.0.1:0"]);
    let mut server = ServerProcess::start(command, "multilevel: serving multilevel-data on 127.0.0.1:");
    server.addr = format!("127.0.0.1:{}", server.addr);
    server.ok(&["put", "k", "v"]);
    assert_eq!(server.ok(&["get", "k"]), "v");
    assert!(dir.path().join("multilevel-data").join("data.mdb").is_file());
    assert!(server.terminate().success(), "a graceful shutdown exits with 0");
}

#[cfg(unix)]
#[test]
fn serve_and_talk_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (db, socket): (PathBuf, PathBuf) = (dir.path().join("db"), dir.path().join("sock"));
    // A stale socket file from a server that is gone is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut command = program();
    command.arg("serve").arg(&db).arg("--unix").arg(&socket);
    let mut server =
        ServerProcess::start(command, &format!("multilevel: serving {} on unix:{}", db.display(), socket.display()));
    assert_eq!(server.addr, "");
    let unix = |args: &[&str]| {
        let mut command = program();
        command.args(args).arg("--unix").arg(&socket).args(["--timeout", "20s"]);
        run(command, None)
    };
    let put = unix(&["put", "over", "unix"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = unix(&["get", "over"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(get.stdout, b"unix");

    // A second server refuses to take over a live socket.
    let mut second = program();
    second.arg("serve").arg(dir.path().join("db2")).arg("--unix").arg(&socket);
    let refused = run(second, None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("another server is listening on this socket"), "{}", stderr(&refused));
    // Nor a file that is not a socket: it is left as it was.
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let mut third = program();
    third.arg("serve").arg(dir.path().join("db3")).arg("--unix").arg(&precious);
    let refused = run(third, None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("a regular file is there, not a socket"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep");

    assert!(server.terminate().success());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    let gone = unix(&["get", "over"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).starts_with(&format!("multilevel: cannot reach unix:{}: ", socket.display())));
}

#[test]
fn serve_with_tokens_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let pem = |name: &str| dir.path().join(name).display().to_string();
    let writer = "0123456789abcdef-writer";
    let reader = "0123456789abcdef-reader";
    let db = dir.path().join("db");
    let mut command = program();
    command
        .env("MULTILEVEL_TOKENS", format!("read-write {writer}\nread-only {reader}\n"))
        .arg("serve")
        .arg(&db)
        .args(["--listen", "127.0.0.1:0", "--tls-cert", &pem("server.pem"), "--tls-key", &pem("server.key")]);
    let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let client = |token: Option<&str>, tls: bool, args: &[&str]| {
        let mut command = program();
        command.env_remove("MULTILEVEL_TOKEN").args(args).args(["--addr", &server.addr, "--timeout", "5s"]);
        if let Some(token) = token {
            command.env("MULTILEVEL_TOKEN", token);
        }
        if tls {
            command.args(["--tls-ca", &pem("ca.pem"), "--tls-name", "localhost"]);
        }
        run(command, None)
    };
    assert_eq!(stdout_of(client(Some(writer), true, &["put", "k", "v"]), &["put"]), "");
    assert_eq!(stdout_of(client(Some(reader), true, &["get", "k"]), &["get"]), "v");
    // A read-only token is not a read-only database.
    let refused = client(Some(reader), true, &["put", "k", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "multilevel: write refused: this connection's token is read-only: it may read but not write\n"
    );
    let wrong = client(Some("0123456789abcdef-guessed"), true, &["get", "k"]);
    assert_eq!(wrong.status.code(), Some(1), "a wrong token got in");
    assert_eq!(stderr(&wrong), format!("multilevel: the token was refused by {}\n", server.addr));
    let none = client(None, true, &["get", "k"]);
    assert_eq!(none.status.code(), Some(1), "no token got in");
    assert!(stderr(&none).contains("requires a token"), "{}", stderr(&none));
    assert!(!stderr(&none).contains("cannot reach"), "{}", stderr(&none));
    for out in [&wrong, &none] {
        assert!(!stderr(out).contains("guessed"), "the token is never echoed");
    }
    let plain = client(Some(writer), false, &["get", "k"]);
    assert_eq!(plain.status.code(), Some(1), "plain TCP to a TLS server must fail");
    let message = stderr(&plain);
    assert!(message.contains("is not a multilevel server") && message.contains("--tls-ca"), "{message}");
    assert!(!message.contains("cannot reach"), "something answered: {message}");
}

#[test]
fn a_token_scoped_to_a_sublevel() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "0123456789abcdef-admin";
    let users = "0123456789abcdef-users";
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("rw {admin}\n# the users' service\nrw {users} sublevel=users\n")).unwrap();
    let db = dir.path().join("db");
    let mut command = program();
    command.arg("serve").arg(&db).arg("--tokens-file").arg(&tokens).args(["--listen", "127.0.0.1:0"]);
    let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let client = |token: &str, args: &[&str]| {
        let mut command = program();
        command.env("MULTILEVEL_TOKEN", token).args(args).args(["--addr", &server.addr, "--timeout", "5s"]);
        run(command, None)
    };
    assert_eq!(stdout_of(client(users, &["put", "k", "v", "--sublevel", "users"]), &["put"]), "");
    assert_eq!(stdout_of(client(users, &["get", "k", "--sublevel", "users"]), &["get"]), "v");
    assert_eq!(stdout_of(client(admin, &["get", "!users!k"]), &["get"]), "v");
    let refused = client(users, &["get", "k"]);
    assert_eq!(refused.status.code(), Some(1), "a root read got through");
    assert_eq!(
        stderr(&refused),
        "multilevel: refused: this connection's token is limited to the sublevel users (stored keys starting with \
         \"!users!\"); the key \"k\" is outside it; work inside that sublevel with --sublevel (once per nested name: \
         `users/admins` is --sublevel users --sublevel admins)\n"
    );
    let sibling = client(users, &["put", "k", "x", "--sublevel", "posts"]);
    assert_eq!(sibling.status.code(), Some(1), "a sibling's write got through");
    assert!(stderr(&sibling).contains("the key \"!posts!k\" is outside it"), "{}", stderr(&sibling));

    // A bad line is refused with its number, before serving.
    std::fs::write(&tokens, format!("rw {admin}\nrw {users} sublevel=a//b\n")).unwrap();
    let mut command = program();
    command.arg("serve").arg(dir.path().join("db2")).arg("--tokens-file").arg(&tokens);
    command.args(["--listen", "127.0.0.1:0"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("multilevel: bad token list: line 2: bad sublevel path: a sublevel name is empty"),
        "{message}"
    );
    assert!(!message.contains(users), "the token is never echoed: {message}");
}

#[cfg(unix)]
#[test]
fn the_unix_socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sock");
    let db = dir.path().join("db");
    let mut command = program();
    command.arg("serve").arg(&db).arg("--unix").arg(&socket);
    let _server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
}

#[test]
fn serve_never_listens_on_the_clients_address() {
    // MULTILEVEL_ADDR names a port already taken: `serve` must not try it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for with_flag in [false, true] {
        let mut command = program();
        command.env("MULTILEVEL_ADDR", &taken_addr).arg("serve").arg(&db);
        if with_flag {
            command.args(["--listen", "127.0.0.1:0"]);
        } else {
            command.env("MULTILEVEL_LISTEN", "127.0.0.1:0");
        }
        let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
        assert_ne!(server.addr, taken_addr);
        assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
        // Clients still read MULTILEVEL_ADDR.
        let mut client = program();
        client.env("MULTILEVEL_ADDR", &server.addr).args(["put", "k", "v"]);
        let output = run(client, None);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // And `serve --help` says where it listens.
    let help = String::from_utf8(program().args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("--listen") && help.contains("MULTILEVEL_LISTEN"), "{help}");
    assert!(!help.contains("[env: MULTILEVEL_ADDR"), "{help}");
}
