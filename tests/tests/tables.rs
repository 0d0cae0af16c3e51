//! Typed tables on every client, on LMDB and on a real etcd cluster: typed get/put/del, ranges
//! of typed keys in the type's order (forward, reverse, limited, seeks), keys-only and
//! values-only iterators, clears of a typed range, a batch across tables, both value codecs, and
//! entries that do not decode reported as errors without ending the iteration.

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdOptions};
use multilevel_proto::table::{Json, Postcard, TableError};
use multilevel_proto::{BatchOp, ClientOptions};
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer, TestServer, runtime};
use serde::{Deserialize, Serialize};

/// A composite key: ordered by team, then by the signed score, then by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, storekey::Encode, storekey::Decode)]
struct Rank {
    team: String,
    score: i32,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Player {
    name: String,
    tags: Vec<String>,
}

type Row = (Rank, Player);

/// What the scenario needs of each adapter's `Table<Rank, Player, C>`, run to completion.
trait Players {
    fn put(&self, key: &Rank, value: &Player);
    fn get(&self, key: &Rank) -> Option<Player>;
    fn get_many(&self, keys: &[Rank]) -> Vec<Option<Player>>;
    fn del(&self, key: &Rank);
    fn clear(&self, range: std::ops::Range<Rank>);
    /// Every item of `iter_with(range, reverse, limit)`, seeking to `seek` after the first.
    fn rows(
        &self,
        range: std::ops::RangeFrom<Rank>,
        reverse: bool,
        limit: Option<u64>,
        seek: Option<&Rank>,
    ) -> Vec<Result<Row, TableError>>;
    fn keys(&self) -> Vec<Rank>;
    fn values(&self) -> Vec<Player>;
    fn ops(&self, put: (&Rank, &Player), del: &Rank) -> Vec<BatchOp>;
    fn put_raw(&self, key: &[u8], value: &[u8]);
    fn raw(&self, key: &Rank) -> Option<Bytes>;
}

macro_rules! players {
    ($table:ident, $run:expr, $next:ident $(, $await:tt)?) => {
        impl<C: multilevel_proto::table::ValueCodec> Players for $table::Table<Rank, Player, C> {
            fn put(&self, key: &Rank, value: &Player) {
                $run(async { self.put(key, value)$(.$await)? }).unwrap()
            }
            fn get(&self, key: &Rank) -> Option<Player> {
                $run(async { self.get(key)$(.$await)? }).unwrap()
            }
            fn get_many(&self, keys: &[Rank]) -> Vec<Option<Player>> {
                $run(async { self.get_many(keys)$(.$await)? }).unwrap()
            }
            fn del(&self, key: &Rank) {
                $run(async { self.del(key)$(.$await)? }).unwrap()
            }
            fn clear(&self, range: std::ops::Range<Rank>) {
                $run(async { self.clear(range)$(.$await)? }).unwrap()
            }
            fn rows(
                &self,
                range: std::ops::RangeFrom<Rank>,
                reverse: bool,
                limit: Option<u64>,
                seek: Option<&Rank>,
            ) -> Vec<Result<Row, TableError>> {
                $run(async {
                    let mut it = self.iter_with(range, reverse, limit).unwrap();
                    let mut out = Vec::new();
                    while let Some(row) = it.$next()$(.$await)? {
                        out.push(row);
                        if let (1, Some(target)) = (out.len(), seek) {
                            it.seek(target).unwrap();
                        }
                    }
                    out
                })
            }
            fn keys(&self) -> Vec<Rank> {
                $run(async {
                    let mut it = self.keys(..).unwrap();
                    let mut out = Vec::new();
                    while let Some(key) = it.$next()$(.$await)? {
                        out.push(key.unwrap());
                    }
                    out
                })
            }
            fn values(&self) -> Vec<Player> {
                $run(async {
                    let mut it = self.values(..).unwrap();
                    let mut out = Vec::new();
                    while let Some(value) = it.$next()$(.$await)? {
                        out.push(value.unwrap());
                    }
                    out
                })
            }
            fn ops(&self, put: (&Rank, &Player), del: &Rank) -> Vec<BatchOp> {
                vec![self.put_op(put.0, put.1).unwrap(), self.del_op(del).unwrap()]
            }
            fn put_raw(&self, key: &[u8], value: &[u8]) {
                $run(async { self.sublevel().put(key, value)$(.$await)? }).unwrap()
            }
            fn raw(&self, key: &Rank) -> Option<Bytes> {
                let stored = multilevel_proto::table::TableCodec::<Rank, Player, C>::encode_key(key).unwrap();
                $run(async { self.sublevel().get(stored)$(.$await)? }).unwrap()
            }
        }
    };
}

fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f) // the blocking client's calls complete inside the future's first poll
}

players!(multilevel_blocking, blocking, next);
players!(multilevel_tokio, |f| runtime().block_on(f), next, await);
players!(multilevel_async_std, smol::block_on, next, await);

fn rank(team: &str, score: i32, name: &str) -> Rank {
    Rank { team: team.into(), score, name: name.into() }
}

fn player(name: &str) -> Player {
    Player { name: name.into(), tags: vec![format!("#{name}")] }
}

fn scenario(root: &AnyClient, table: &impl Players, other: &impl Players, json: bool, what: &str) {
    // Inserted out of order; the edges of the key's fields: empty and NUL strings, i32 extremes.
    let mut ranks = vec![
        rank("red", 5, "b"),
        rank("blue", -3, "x"),
        rank("red", -1, "a"),
        rank("", 0, ""),
        rank("red", i32::MAX, ""),
        rank("red", i32::MIN, "z"),
        rank("red\0", 0, "n"),
        rank("red", 5, "a"),
        rank("reds", -7, "q"),
    ];
    for r in &ranks {
        table.put(r, &player(&r.name));
    }
    ranks.sort();
    let row = |r: &Rank| (r.clone(), player(&r.name));

    assert_eq!(table.get(&ranks[2]), Some(player(&ranks[2].name)), "{what}");
    assert_eq!(table.get(&rank("green", 0, "")), None, "{what}");
    let many = table.get_many(&[ranks[0].clone(), rank("none", 1, ""), ranks[8].clone()]);
    assert_eq!(many, vec![Some(player(&ranks[0].name)), None, Some(player(&ranks[8].name))], "{what}");
    assert_eq!(table.keys(), ranks, "{what}: keys in Rank's order");
    let names: Vec<Player> = ranks.iter().map(|r| player(&r.name)).collect();
    assert_eq!(table.values(), names, "{what}: values in their keys' order");

    // A typed range: every key of team "red" and above, forward, reverse, limited, with a seek.
    let from = rank("red", i32::MIN, "");
    let tail: Vec<Row> = ranks.iter().filter(|r| **r >= from).map(row).collect();
    let got: Vec<Row> = table.rows(from.clone().., false, None, None).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, tail, "{what}: forward range");
    let got: Vec<Row> = table.rows(from.clone().., true, Some(3), None).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, tail.iter().rev().take(3).cloned().collect::<Vec<_>>(), "{what}: reverse, limit 3");
    let target = rank("red", 5, "");
    let got: Vec<Row> =
        table.rows(from.clone().., false, None, Some(&target)).into_iter().map(Result::unwrap).collect();
    let mut expected = vec![tail[0].clone()];
    expected.extend(tail.iter().filter(|(r, _)| *r >= target).cloned());
    assert_eq!(got, expected, "{what}: seek to a typed key");

    // The stored bytes: JSON text with the Json codec, postcard otherwise.
    let raw = table.raw(&ranks[0]).unwrap();
    if json {
        assert_eq!(serde_json::from_slice::<Player>(&raw).unwrap(), player(&ranks[0].name), "{what}");
    } else {
        assert_eq!(postcard_decode(&raw), player(&ranks[0].name), "{what}");
    }

    // A batch across two tables is one atomic write on the parent.
    other.put(&rank("x", 1, "gone"), &player("gone"));
    let mut ops = table.ops((&rank("new", 0, "n"), &player("n")), &ranks[0]);
    ops.extend(other.ops((&rank("x", 2, "kept"), &player("kept")), &rank("x", 1, "gone")));
    root.batch(ops).unwrap();
    assert_eq!(table.get(&rank("new", 0, "n")), Some(player("n")), "{what}");
    assert_eq!(table.get(&ranks[0]), None, "{what}");
    assert_eq!(other.keys(), vec![rank("x", 2, "kept")], "{what}: the other table");
    table.del(&rank("new", 0, "n"));
    table.put(&ranks[0], &player(&ranks[0].name));

    // Entries the table's types do not describe are errors, and the iteration goes on.
    table.put_raw(b"\x01not a rank", b"junk");
    let all = table.rows(rank("", i32::MIN, "").., false, None, None);
    let bad: Vec<&TableError> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(bad.len(), 1, "{what}: {all:?}");
    assert!(matches!(bad[0], TableError::DecodeKey { .. }), "{what}: {bad:?}");
    assert_eq!(all.len(), ranks.len() + 1, "{what}");
    let junk_value_key = rank("zzz", 0, "");
    let stored = multilevel_proto::table::TableCodec::<Rank, (), Postcard>::encode_key(&junk_value_key).unwrap();
    table.put_raw(&stored, if json { b"{not json" } else { b"" });
    let err = table.rows(junk_value_key.clone().., false, None, None).pop().unwrap().unwrap_err();
    assert!(matches!(err, TableError::DecodeValue { .. }), "{what}: {err:?}");
    assert!(err.to_string().contains("is not a"), "{what}: {err}");

    // A clear of a typed range removes exactly its keys (the undecodable entries are left out here).
    table.clear(rank("red", i32::MIN, "")..rank("red\0", 0, ""));
    let left: Vec<Rank> = ranks.iter().filter(|r| r.team != "red").cloned().collect();
    let keys: Vec<Rank> = table
        .rows(rank("", i32::MIN, "").., false, None, None)
        .into_iter()
        .filter_map(|r| r.ok().map(|(k, _)| k))
        .filter(|k| *k != junk_value_key)
        .collect();
    assert_eq!(keys, left, "{what}: after the clear");
}

fn postcard_decode(bytes: &[u8]) -> Player {
    multilevel_proto::table::TableCodec::<u8, Player, Postcard>::decode_value(None, bytes).unwrap()
}

fn run(adapter: Adapter, addr: std::net::SocketAddr, what: &str) {
    let root = AnyClient::connect(adapter, addr, ClientOptions::default());
    let what_json = format!("{what}, JSON values");
    match &root {
        AnyClient::Blocking(c) => {
            scenario(&root, &c.table::<Rank, Player>("players"), &c.table::<Rank, Player>("other"), false, what);
            let json = multilevel_blocking::Table::<Rank, Player, Json>::new(c.sublevel("json"));
            scenario(&root, &json, &c.sublevel("a").table::<Rank, Player>("b"), true, &what_json);
        }
        AnyClient::Tokio(c) => {
            scenario(&root, &c.table::<Rank, Player>("players"), &c.table::<Rank, Player>("other"), false, what);
            let json = multilevel_tokio::Table::<Rank, Player, Json>::new(c.sublevel("json"));
            scenario(&root, &json, &c.sublevel("a").table::<Rank, Player>("b"), true, &what_json);
        }
        AnyClient::Smol(c) => {
            scenario(&root, &c.table::<Rank, Player>("players"), &c.table::<Rank, Player>("other"), false, what);
            let json = multilevel_async_std::Table::<Rank, Player, Json>::new(c.sublevel("json"));
            scenario(&root, &json, &c.sublevel("a").table::<Rank, Player>("b"), true, &what_json);
        }
    }
}

#[test]
fn typed_tables_on_every_client_over_lmdb() {
    for adapter in ALL {
        let server = TestServer::start(adapter, StoreOptions::default());
        run(adapter, server.addr, &format!("{adapter:?} on LMDB"));
    }
}

#[test]
fn typed_tables_on_every_client_over_etcd() {
    let Some(cluster) = EtcdCluster::start() else { return };
    for adapter in ALL {
        let options = EtcdOptions { namespace: format!("tables-{adapter:?}").into_bytes(), ..EtcdOptions::default() };
        let backend = EtcdBackend::connect(&cluster.endpoints(), options).expect("connect to the test cluster");
        let server = BackendServer::start(adapter, backend);
        run(adapter, server.addr, &format!("{adapter:?} on etcd"));
    }
}
