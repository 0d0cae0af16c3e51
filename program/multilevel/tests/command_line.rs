//! The command line itself: mistakes exit with status 2 before connecting, durations are
//! humantime's, and each command's `--help` lists only its own options.

use support::*;

mod support;

#[test]
fn command_line_mistakes_exit_with_status_2() {
    let nobody = refused_addr();
    let mistake = |args: &[&str], env: Option<(&str, &str)>, says: &str| {
        let mut command = program();
        command.args(args);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let output = run(command, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(says), "{args:?}: {}", stderr(&output));
        assert_eq!(output.stdout, b"");
    };
    mistake(&["get", "k", "--addr", "nonsense"], None, "`nonsense` is not an address");
    mistake(&["get", "k", "--addr", "127.0.0.1"], None, "expected HOST:PORT");
    mistake(&["get", "k", "--addr", "127.0.0.1:99999"], None, "is not an address");
    mistake(&["get", "k"], Some(("MULTILEVEL_ADDR", "nonsense")), "`nonsense` is not an address");
    mistake(&["serve", "--listen", "nonsense"], None, "`nonsense` is not an address");
    mistake(&["serve", "--map-size", "lots"], None, "`lots` is not a size");
    // --etcd serves a cluster: no directory, no LMDB options; --namespace needs it.
    mistake(&["serve", "--etcd", "http://127.0.0.1:1", "--map-size", "1GiB"], None, "cannot be used with");
    mistake(&["serve", "--etcd", "http://127.0.0.1:1", "--no-sync"], None, "cannot be used with");
    mistake(&["serve", "some/dir", "--etcd", "http://127.0.0.1:1"], None, "cannot be used with");
    mistake(&["serve", "--namespace", "app"], None, "--etcd");
    #[cfg(not(feature = "etcd"))]
    mistake(&["serve", "--etcd", "http://127.0.0.1:1"], None, "built without etcd support");
    mistake(&["serve", "--map-size", "12parsecs"], None, "unknown size unit `parsecs`");
    // Bad hex is found before connecting (nothing listens at `nobody`).
    mistake(&["get", "--hex", "zz", "--addr", &nobody], None, "KEY `zz` is not hex");
    mistake(&["put", "--hex", "00", "zz", "--addr", &nobody], None, "VALUE `zz` is not hex");
    mistake(&["scan", "--hex", "--prefix", "0", "--addr", &nobody], None, "--prefix `0` is not hex");
    mistake(&["mget", "--hex", "00", "0g", "--addr", &nobody], None, "KEY `0g` is not hex");
    mistake(&["get", "k", "--timeout", "soon"], None, "`soon` is not a duration");
    mistake(&["get", "k", "--timeout", "0s"], None, "more than zero");
    mistake(&["get", "k", "--format", "yaml"], None, "invalid value 'yaml'");
    mistake(&["scan", "--format", "raw"], None, "invalid value 'raw'");
    mistake(&["clear", "--addr", &nobody], None, "--all");
    mistake(&["clear", "--all", "--prefix", "a"], None, "cannot be used with");
    mistake(&["mget"], None, "required");
    mistake(&["frobnicate"], None, "unrecognized subcommand");
    mistake(&["--addr", &nobody, "get", "k", "--listen", "127.0.0.1:0"], None, "--listen");
}

#[test]
fn durations_are_humantime() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "k", "v"]);
    // Options before the command name apply to it, as they did when they were global.
    let output = program().args(["--addr", &server.addr, "--timeout", "1h30m", "get", "k"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"v");
    for timeout in ["1h30m", "2m 30s", "1500ms", "1.5s", "10", "0.5"] {
        let output = program().args(["get", "k", "--addr", &server.addr, "--timeout", timeout]).output().unwrap();
        assert!(output.status.success(), "--timeout {timeout}: {}", stderr(&output));
        assert_eq!(output.stdout, b"v");
    }
}

#[test]
fn each_command_shows_only_its_own_options() {
    let help = |args: &[&str]| String::from_utf8(program().args(args).output().unwrap().stdout).unwrap();
    let serve = help(&["serve", "--help"]);
    for client_only in ["--hex", "--tls-ca", "--token-file", "--format", "--timeout", "[env: MULTILEVEL_ADDR"] {
        assert!(!serve.contains(client_only), "serve --help shows {client_only}:\n{serve}");
    }
    assert!(serve.contains("--tls-cert") && serve.contains("--readonly"), "{serve}");
    let get = help(&["get", "--help"]);
    for serve_only in ["--listen", "--readonly", "--tls-cert", "--map-size", "--tokens-file", "--protocol"] {
        assert!(!get.contains(serve_only), "get --help shows {serve_only}:\n{get}");
    }
    assert!(get.contains("--addr") && get.contains("--raw") && get.contains("--hex"), "{get}");
    assert!(get.lines().count() <= 30, "get --help is {} lines:\n{get}", get.lines().count());
    let stats = help(&["stats", "--help"]);
    assert!(!stats.contains("--hex") && stats.contains("--addr"), "{stats}");
    let top = help(&["--help"]);
    for hidden in ["--tls-cert <PEM>", "--listen <HOST:PORT>", "--readonly  "] {
        assert!(!top.contains(hidden), "`multilevel --help` lists serve's {hidden}:\n{top}");
    }
    assert!(top.contains("mget") && top.contains("count") && top.contains("clear"), "{top}");
}
