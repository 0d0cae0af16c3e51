//! Tokens scoped to a sublevel, on every client adapter against its own server: a client
//! holding a token scoped to `users` has the whole API through `db.sublevel("users")` (and the
//! sublevels nested in it), and every request kind that reaches outside is refused with
//! `OutOfScope`, without writing anything and without closing the connection.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{
    BatchOp, CallError, ClientOptions, ErrorCode, ErrorKind, IterOptions, KeyRange, SublevelPrefix, Tokens,
};
use multilevel_store::{Store, StoreOptions};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer, runtime};

const ADMIN: &str = "0123456789abcdef-admin";
const USERS: &str = "0123456789abcdef-users";

/// The operations the test needs, on each adapter's `Sublevel`, with their errors.
trait View: Sized {
    fn put(&self, key: &[u8], value: &str) -> Result<(), CallError>;
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, CallError>;
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, CallError>;
    fn del(&self, key: &[u8]) -> Result<(), CallError>;
    /// A batch of this sublevel's keys: `(key, Some(value))` puts, `(key, None)` deletes.
    fn batch(&self, ops: &[(&[u8], Option<&str>)]) -> Result<(), CallError>;
    fn clear(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), CallError>;
    fn keys(&self, options: IterOptions, seek: Option<&[u8]>) -> Result<Vec<Bytes>, CallError>;
    fn sub(&self, name: &[u8]) -> Self;
}

macro_rules! view {
    ($ty:ty, $run:expr, $next:ident, $batch:ident $(, $await:tt)?) => {
        impl View for $ty {
            fn put(&self, key: &[u8], value: &str) -> Result<(), CallError> {
                $run(async { self.put(key, value)$(.$await)? })
            }
            fn get(&self, key: &[u8]) -> Result<Option<Bytes>, CallError> {
                $run(async { self.get(key)$(.$await)? })
            }
            fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, CallError> {
                $run(async { self.get_many(keys)$(.$await)? })
            }
            fn del(&self, key: &[u8]) -> Result<(), CallError> {
                $run(async { self.del(key)$(.$await)? })
            }
            fn batch(&self, ops: &[(&[u8], Option<&str>)]) -> Result<(), CallError> {
                $run(async { $batch(self, ops)$(.$await)? })
            }
            fn clear(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), CallError> {
                $run(async { self.clear_with(range, reverse, limit)$(.$await)? })
            }
            fn keys(&self, options: IterOptions, seek: Option<&[u8]>) -> Result<Vec<Bytes>, CallError> {
                $run(async {
                    let mut it = self.iter(options)?;
                    if let Some(target) = seek {
                        it.seek(target);
                    }
                    let mut keys = Vec::new();
                    while let Some(entry) = it.$next()$(.$await)? {
                        keys.push(entry?.key);
                    }
                    Ok(keys)
                })
            }
            fn sub(&self, name: &[u8]) -> Self {
                self.sublevel(name)
            }
        }
    };
}

fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f) // the blocking client's calls complete inside the future's first poll
}

fn blocking_batch(db: &multilevel_blocking::Sublevel, ops: &[(&[u8], Option<&str>)]) -> Result<(), CallError> {
    let batch = ops.iter().fold(db.batch(), |batch, (key, value)| match value {
        Some(value) => batch.put(key, value),
        None => batch.del(key),
    });
    batch.write()
}

fn batch_ops(ops: &[(&[u8], Option<&str>)]) -> Vec<BatchOp> {
    ops.iter()
        .map(|(key, value)| match value {
            Some(value) => {
                BatchOp::Put { key: Bytes::copy_from_slice(key), value: Bytes::copy_from_slice(value.as_bytes()) }
            }
            None => BatchOp::Del { key: Bytes::copy_from_slice(key) },
        })
        .collect()
}

async fn tokio_batch(db: &multilevel_tokio::Sublevel, ops: &[(&[u8], Option<&str>)]) -> Result<(), CallError> {
    db.batch(batch_ops(ops)).await
}

async fn smol_batch(db: &multilevel_async_std::Sublevel, ops: &[(&[u8], Option<&str>)]) -> Result<(), CallError> {
    db.batch(batch_ops(ops)).await
}

view!(multilevel_blocking::Sublevel, blocking, next, blocking_batch);
view!(multilevel_tokio::Sublevel, |f| runtime().block_on(f), next, tokio_batch, await);
view!(multilevel_async_std::Sublevel, smol::block_on, next, smol_batch, await);

fn b(key: &str) -> Bytes {
    Bytes::copy_from_slice(key.as_bytes())
}

/// Checks that `result` is the refusal of a request outside the sublevel `users`, and returns
/// its message.
fn refused<T: std::fmt::Debug>(result: Result<T, CallError>, adapter: Adapter, what: &str) -> String {
    let err = result.expect_err(&format!("{adapter:?}: {what} was not refused"));
    assert_eq!(err.kind(), ErrorKind::OutOfScope, "{adapter:?}: {what}: {err}");
    let remote = err.remote().expect("a server error");
    assert_eq!(remote.code, ErrorCode::OutOfScope);
    let message = err.to_string();
    assert!(message.contains("limited to the sublevel users"), "{adapter:?}: {what}: {message}");
    message
}

fn scenario<V: View>(admin: &AnyClient, scoped: &AnyClient, users: V, posts: V, adapter: Adapter) {
    // The admin writes around the sublevel, at its edges too.
    for key in ["!users", "!users\"", "!posts!a", "a", "!users!seed"] {
        admin.put(key, "admin").unwrap();
    }

    // Inside: the whole API of the sublevel and of the sublevels nested in it.
    let admins = users.sub(b"admins");
    users.put(b"a", "1").unwrap();
    users.put(b"", "empty key").unwrap();
    users.put(&[0xff], "top").unwrap();
    admins.put(b"x", "2").unwrap();
    assert_eq!(users.get(b"a").unwrap(), Some(b("1")), "{adapter:?}");
    assert_eq!(users.get(b"seed").unwrap(), Some(b("admin")), "{adapter:?}: the admin's write is visible");
    assert_eq!(users.get_many(&[b"a", b"none", b"seed"]).unwrap(), vec![Some(b("1")), None, Some(b("admin"))]);
    users.batch(&[(b"b", Some("3")), (b"c", Some("4")), (b"seed", None)]).unwrap();
    users.del(b"c").unwrap();
    assert_eq!(users.get_many(&[b"b", b"c", b"seed"]).unwrap(), vec![Some(b("3")), None, None], "{adapter:?}");
    let all = users.keys(IterOptions::default(), None).unwrap();
    let top = Bytes::from_static(&[0xff]);
    assert_eq!(all, vec![b(""), b("!admins!x"), b("a"), b("b"), top.clone()], "{adapter:?}");
    let reverse = IterOptions { reverse: true, limit: Some(2), ..IterOptions::default() };
    assert_eq!(users.keys(reverse, None).unwrap(), vec![top.clone(), b("b")], "{adapter:?}");
    let range = IterOptions { range: KeyRange::all().gt("").lte("a"), ..IterOptions::default() };
    assert_eq!(users.keys(range, None).unwrap(), vec![b("!admins!x"), b("a")], "{adapter:?}");
    assert_eq!(users.keys(IterOptions::default(), Some(b"a")).unwrap(), vec![b("a"), b("b"), top.clone()]);
    // Seeks past either end stay inside the sublevel: nothing of the parent leaks.
    let backwards = IterOptions { reverse: true, ..IterOptions::default() };
    assert_eq!(users.keys(backwards.clone(), Some(b"")).unwrap(), vec![b("")], "{adapter:?}");
    assert_eq!(users.keys(IterOptions::default(), Some(&[0xff, 0xff])).unwrap(), Vec::<Bytes>::new());
    assert_eq!(users.keys(backwards, Some(&[0xff, 0xff])).unwrap().len(), 5, "{adapter:?}");
    assert_eq!(admins.keys(IterOptions::default(), None).unwrap(), vec![b("x")], "{adapter:?}");
    users.clear(KeyRange::all().gte("b"), false, Some(1)).unwrap();
    assert_eq!(users.get(b"b").unwrap(), None, "{adapter:?}");
    assert!(scoped.stats().is_ok(), "{adapter:?}: stats stay allowed");

    // Outside: every request kind is refused, nothing is written, the connection lives on.
    let users_prefix = SublevelPrefix::root().sublevel("users");
    refused(scoped.get("a"), adapter, "a root get");
    let message = refused(scoped.put("a", "x"), adapter, "a root put");
    assert!(message.contains("the key \"a\" is outside it"), "{adapter:?}: {message}");
    refused(scoped.del("!users"), adapter, "a del at the sublevel's edge");
    refused(scoped.get_many(&["!users!a", "!users\""]), adapter, "a get_many with one key outside");
    refused(posts.get(b"a"), adapter, "a sibling's get");
    refused(posts.put(b"a", "x"), adapter, "a sibling's put");
    refused(posts.del(b"a"), adapter, "a sibling's del");
    refused(posts.batch(&[(b"a", None)]), adapter, "a sibling's batch");
    refused(posts.clear(KeyRange::all(), false, None), adapter, "a sibling's clear");
    refused(posts.keys(IterOptions::default(), None), adapter, "a sibling's iterator");
    let ops = vec![
        BatchOp::Put { key: users_prefix.key("z"), value: b("in") },
        BatchOp::Put { key: b("a"), value: b("out") },
    ];
    refused(scoped.batch(ops), adapter, "a batch with one op outside");
    let message = refused(scoped.clear_with(KeyRange::all(), false, None), adapter, "a clear of everything");
    assert!(message.contains("clear's range"), "{adapter:?}: {message}");
    refused(scoped.clear_with(KeyRange::all().gte("!users!"), true, Some(1)), adapter, "a clear past the end");
    let message = refused(scoped.scan(IterOptions::default(), None), adapter, "an iterator over everything");
    assert!(message.contains("iterator's range"), "{adapter:?}: {message}");
    let reverse_all = IterOptions { reverse: true, limit: Some(1), ..IterOptions::default() };
    refused(scoped.scan(reverse_all, None), adapter, "a reverse iterator over everything");
    let from_inside = IterOptions { range: KeyRange::all().gte("!users!"), ..IterOptions::default() };
    refused(scoped.scan(from_inside, Some((0, b("!users!a")))), adapter, "an iterator running past the end");

    assert_eq!(users.get(b"z").unwrap(), None, "{adapter:?}: no op of the refused batch was applied");
    for key in ["!users", "!users\"", "!posts!a", "a"] {
        assert_eq!(admin.get(key).unwrap(), Some(b("admin")), "{adapter:?}: {key} untouched");
    }
    assert_eq!(users.get(b"a").unwrap(), Some(b("1")), "{adapter:?}: the connection still works");
}

#[test]
fn a_token_scoped_to_a_sublevel_works_there_and_nowhere_else() {
    let list = format!("rw {ADMIN}\nrw {USERS} sublevel=users\n");
    for adapter in ALL {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut config = multilevel_serve::Backend::server_config(&store);
        config.tokens = Some(Arc::new(Tokens::parse(&list).unwrap()));
        let server = BackendServer::with_config(adapter, store, config);
        let admin = AnyClient::connect(adapter, server.addr, ClientOptions::default().token(ADMIN));
        let scoped = AnyClient::connect(adapter, server.addr, ClientOptions::default().token(USERS));
        match &scoped {
            AnyClient::Blocking(c) => scenario(&admin, &scoped, c.sublevel("users"), c.sublevel("posts"), adapter),
            AnyClient::Tokio(c) => scenario(&admin, &scoped, c.sublevel("users"), c.sublevel("posts"), adapter),
            AnyClient::Smol(c) => scenario(&admin, &scoped, c.sublevel("users"), c.sublevel("posts"), adapter),
        }
    }
}
