//! The commands on keys and ranges, end to end: `scan` with the range flags, `count`, `mget`,
//! `clear`, `--sublevel`, and `stats`.

use support::*;

mod support;

/// Five entries a..e with values 1..5, written through `import` from stdin.
fn five_entries(server: &ServerProcess) {
    let lines: String = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, key)| format!("{{\"key\":\"{key}\",\"value\":\"{}\"}}\n", i + 1))
        .collect();
    let output = server.run_with_stdin(&["import"], Some(lines.as_bytes()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"");
    assert_eq!(stderr(&output), "imported 5 entries\n");
}

#[test]
fn scan_with_ranges_and_options() {
    let server = ServerProcess::tcp();
    five_entries(&server);
    assert_eq!(server.ok(&["scan"]), "a\t1\nb\t2\nc\t3\nd\t4\ne\t5\n");
    assert_eq!(server.ok(&["scan", "--gt", "a", "--lte", "c"]), "b\t2\nc\t3\n");
    assert_eq!(server.ok(&["scan", "--gte", "b", "--lt", "d"]), "b\t2\nc\t3\n");
    assert_eq!(server.ok(&["scan", "--gte", "b", "--lt", "d", "--reverse"]), "c\t3\nb\t2\n");
    assert_eq!(server.ok(&["scan", "--limit", "2"]), "a\t1\nb\t2\n");
    assert_eq!(server.ok(&["scan", "--reverse", "--limit", "2", "--keys-only"]), "e\nd\n");
    assert_eq!(server.ok(&["scan", "--values-only", "--gt", "c"]), "4\n5\n");
    assert_eq!(server.ok(&["scan", "--keys-only", "--format", "hex", "--lt", "c"]), "61\n62\n");
    assert_eq!(server.ok(&["scan", "--format", "hex", "--gte", "e"]), "65\t35\n");
    assert_eq!(server.ok(&["scan", "--hex", "--gte", "63", "--lte", "64", "--keys-only"]), "c\nd\n");
    assert_eq!(
        server.ok(&["scan", "--format", "json", "--gte", "d"]),
        "{\"key\":\"d\",\"value\":\"4\"}\n{\"key\":\"e\",\"value\":\"5\"}\n"
    );
    assert_eq!(server.ok(&["scan", "--format", "json", "--keys-only", "--limit", "1"]), "{\"key\":\"a\"}\n");
    assert_eq!(server.ok(&["scan", "--format", "json", "--values-only", "--limit", "1"]), "{\"value\":\"1\"}\n");
    assert_eq!(server.ok(&["scan", "--gt", "e"]), "", "an empty range prints nothing");
    let conflicting = server.run(&["scan", "--keys-only", "--values-only"]);
    assert_eq!(conflicting.status.code(), Some(2), "a usage error");
}

#[test]
fn prefix_count_mget_and_clear() {
    let server = ServerProcess::tcp();
    let mut lines = String::new();
    for key in ["a", "user/1", "user/2", "user/3", "user0", "users", "z"] {
        lines.push_str(&format!("{{\"key\":\"{key}\",\"value\":\"={key}\"}}\n"));
    }
    // Keys at the 0xff edge.
    for key in ["ff", "ff00", "ffff", "ffff01", "fe", "feff"] {
        lines.push_str(&format!("{{\"key\":{{\"hex\":\"{key}\"}},\"value\":\"x\"}}\n"));
    }
    assert!(server.run_with_stdin(&["import"], Some(lines.as_bytes())).status.success());

    assert_eq!(server.ok(&["scan", "--prefix", "user/", "--keys-only"]), "user/1\nuser/2\nuser/3\n");
    assert_eq!(
        server.ok(&["scan", "--prefix", "user/", "--gt", "user/1", "--reverse"]),
        "user/3\t=user/3\nuser/2\t=user/2\n"
    );
    assert_eq!(server.ok(&["scan", "--prefix", "user"]).lines().count(), 5);
    assert_eq!(server.ok(&["scan", "--prefix", "nobody"]), "");
    assert_eq!(
        server.ok(&["scan", "--hex", "--prefix", "ff", "--keys-only", "--format", "hex"]),
        "ff\nff00\nffff\nffff01\n"
    );
    assert_eq!(server.ok(&["scan", "--hex", "--prefix", "ffff", "--keys-only", "--format", "hex"]), "ffff\nffff01\n");
    assert_eq!(server.ok(&["scan", "--hex", "--prefix", "fe", "--keys-only", "--format", "hex"]), "fe\nfeff\n");
    assert_eq!(
        server.ok(&["export", "--prefix", "user/", "--limit", "1"]),
        "{\"key\":\"user/1\",\"value\":\"=user/1\"}\n"
    );

    assert_eq!(server.ok(&["count"]), "13\n");
    assert_eq!(server.ok(&["count", "--prefix", "user/"]), "3\n");
    assert_eq!(server.ok(&["count", "--hex", "--prefix", "ff"]), "4\n");
    assert_eq!(server.ok(&["count", "--gte", "b", "--lt", "v"]), "5\n");
    assert_eq!(server.ok(&["count", "--prefix", "nobody"]), "0\n");

    // mget: a line per key asked, in order; a missing key alone on its line, and status 1.
    assert_eq!(server.ok(&["mget", "a", "z"]), "a\t=a\nz\t=z\n");
    let some_missing = server.run(&["mget", "z", "nope", "a", "gone"]);
    assert_eq!(some_missing.status.code(), Some(1));
    assert_eq!(String::from_utf8(some_missing.stdout.clone()).unwrap(), "z\t=z\nnope\na\t=a\ngone\n");
    assert_eq!(stderr(&some_missing), "multilevel: not found: nope, gone\n");
    let json = server.run(&["mget", "a", "nope", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(json.stdout).unwrap(),
        "{\"key\":\"a\",\"value\":\"=a\"}\n{\"key\":\"nope\",\"value\":null}\n"
    );
    assert_eq!(server.ok(&["mget", "--hex", "ff", "--format", "hex"]), "ff\t78\n");

    // clear: a prefix, a range with a limit, and everything only with --all.
    assert_eq!(server.ok(&["clear", "--prefix", "user/"]), "");
    assert_eq!(server.ok(&["count", "--prefix", "user"]), "2\n");
    assert_eq!(server.ok(&["clear", "--hex", "--prefix", "ffff"]), "");
    assert_eq!(server.ok(&["scan", "--hex", "--gte", "fe", "--keys-only", "--format", "hex"]), "fe\nfeff\nff\nff00\n");
    assert_eq!(server.ok(&["clear", "--gte", "u", "--lt", "zz", "--limit", "1", "--reverse"]), "");
    assert_eq!(server.ok(&["scan", "--keys-only", "--lt", "\u{7f}"]), "a\nuser0\nusers\n");
    assert_eq!(server.ok(&["clear", "--all"]), "");
    assert_eq!(server.ok(&["count"]), "0\n");
}

#[test]
fn sublevels_hold_their_own_keys() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "ada", "top"]);
    // A put through --sublevel is stored under the abstract-level key, and read back by its own.
    server.ok(&["put", "--sublevel", "users", "ada", "admin"]);
    assert_eq!(server.ok(&["get", "!users!ada"]), "admin");
    assert_eq!(server.ok(&["get", "ada", "--sublevel", "users"]), "admin");
    assert_eq!(server.ok(&["get", "ada"]), "top", "the parent's own key is another");
    server.ok(&["put", "!users!bob", "x"]); // written raw, seen in the sublevel
    server.ok(&["put", "--sublevel", "posts", "1", "hello"]);

    // A scan of a sublevel lists only its keys, without the prefix; ranges stay inside it.
    assert_eq!(server.ok(&["scan", "--sublevel", "users"]), "ada\tadmin\nbob\tx\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--reverse", "--keys-only"]), "bob\nada\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--gt", "ada"]), "bob\tx\n");
    assert_eq!(server.ok(&["count", "--sublevel", "users"]), "2\n");
    assert_eq!(server.ok(&["count", "--sublevel", "nobody"]), "0\n");
    assert_eq!(server.ok(&["mget", "--sublevel", "users", "bob", "ada"]), "bob\tx\nada\tadmin\n");
    assert_eq!(
        server.ok(&["export", "--sublevel", "posts"]),
        "{\"key\":\"1\",\"value\":\"hello\"}\n",
        "export gives the sublevel's keys, ready to import into another"
    );
    assert_eq!(
        server.ok(&["scan", "--keys-only"]),
        "!posts!1\n!users!ada\n!users!bob\nada\n",
        "the parent sees its sublevels' entries under their stored keys"
    );

    // Nested: --sublevel a --sublevel b is !a!!b!key.
    server.ok(&["put", "--sublevel", "a", "--sublevel", "b", "k", "deep"]);
    assert_eq!(server.ok(&["get", "!a!!b!k"]), "deep");
    assert_eq!(server.ok(&["scan", "--sublevel", "a"]), "!b!k\tdeep\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "a", "--sublevel", "b"]), "k\tdeep\n");
    // Options before the command name still apply (and nest in order).
    let output =
        program().args(["--sublevel", "a", "--sublevel", "b", "get", "k", "--addr", &server.addr]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"deep");

    // import, del and clear stay inside the sublevel too.
    let imported = server.run_with_stdin(
        &["import", "--sublevel", "users"],
        Some(b"{\"key\":\"cy\",\"value\":\"1\"}\n{\"key\":\"dee\",\"value\":\"2\"}\n"),
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(server.ok(&["get", "!users!dee"]), "2");
    server.ok(&["del", "--sublevel", "users", "bob"]);
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--keys-only"]), "ada\ncy\ndee\n");
    server.ok(&["clear", "--sublevel", "users", "--all"]);
    assert_eq!(server.ok(&["count", "--sublevel", "users"]), "0\n");
    assert_eq!(server.ok(&["scan", "--keys-only"]), "!a!!b!k\n!posts!1\nada\n", "nothing else was cleared");
    let missing = server.run(&["get", "--sublevel", "users", "ada"]);
    assert_eq!(stderr(&missing), "multilevel: not found: ada\n", "the key as given");
}

#[test]
fn stats_shows_counters() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "a", "1"]);
    server.ok(&["put", "b", "2"]);
    let text = server.ok(&["stats"]);
    let stats: Vec<(&str, u64)> = text
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    assert!(stats.contains(&("entries", 2)), "{text}");
    let connections = stats.iter().find(|(name, _)| *name == "connections").expect("a connections line").1;
    assert!(connections >= 1, "{text}");
    assert!(stats.iter().any(|(name, value)| *name == "map_size" && *value > 0), "{text}");

    let json = server.ok(&["stats", "--format", "json"]);
    assert_eq!(json.lines().count(), 1);
    let object: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(object["entries"], 2);
    assert!(object["connections"].as_u64().unwrap() >= 1);
}

#[test]
fn incr_counts_on_the_server_in_decimal_text() {
    let server = ServerProcess::tcp();
    assert_eq!(server.ok(&["incr", "hits"]), "1\n");
    assert_eq!(server.ok(&["incr", "hits", "41"]), "42\n");
    assert_eq!(server.ok(&["incr", "hits", "-50"]), "-8\n");
    assert_eq!(server.ok(&["get", "hits"]), "-8", "stored as decimal text");
    assert_eq!(server.ok(&["incr", "--sublevel", "stats", "n", "2"]), "2\n");
    assert_eq!(server.ok(&["get", "!stats!n"]), "2");
    server.ok(&["put", "word", "seven"]);
    let refused = server.run(&["incr", "word"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("not a decimal integer"), "{message}");
    assert_eq!(server.ok(&["get", "word"]), "seven", "nothing applied");
}
