//! Sublevels on every client: isolation from siblings and the parent's other keys, nesting,
//! ranges, reverse, limits and seeks inside the sublevel, clears, batches spanning sublevels,
//! and names of any bytes.

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{BatchOp, ClientOptions, IterOptions, KeyRange, MemoryBackend, MemoryStore};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer, runtime};

/// The operations the test needs, on each adapter's `Sublevel`.
trait View: Sized {
    fn put(&self, key: &[u8], value: &str);
    fn get(&self, key: &[u8]) -> Option<Bytes>;
    fn keys(&self, options: IterOptions, seek: Option<&[u8]>) -> Vec<Bytes>;
    fn clear(&self, range: KeyRange);
    fn sub(&self, name: &[u8]) -> Self;
    fn key(&self, key: &[u8]) -> Bytes;
}

macro_rules! view {
    ($ty:ty, $run:expr, $next:ident $(, $await:tt)?) => {
        impl View for $ty {
            fn put(&self, key: &[u8], value: &str) {
                $run(async { self.put(key, value)$(.$await)? }).unwrap()
            }
            fn get(&self, key: &[u8]) -> Option<Bytes> {
                $run(async { self.get(key)$(.$await)? }).unwrap()
            }
            fn keys(&self, options: IterOptions, seek: Option<&[u8]>) -> Vec<Bytes> {
                $run(async {
                    let mut it = self.iter(options).unwrap();
                    if let Some(target) = seek {
                        it.seek(target);
                    }
                    let mut keys = Vec::new();
                    while let Some(entry) = it.$next()$(.$await)? {
                        keys.push(entry.unwrap().key);
                    }
                    keys
                })
            }
            fn clear(&self, range: KeyRange) {
                $run(async { self.clear(range)$(.$await)? }).unwrap()
            }
            fn sub(&self, name: &[u8]) -> Self {
                self.sublevel(name)
            }
            fn key(&self, key: &[u8]) -> Bytes {
                self.key(key)
            }
        }
    };
}

fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f) // the blocking client's calls complete inside the future's first poll
}

view!(multilevel_blocking::Sublevel, blocking, next);
view!(multilevel_tokio::Sublevel, |f| runtime().block_on(f), next, await);
view!(multilevel_async_std::Sublevel, smol::block_on, next, await);

fn b(key: &str) -> Bytes {
    Bytes::copy_from_slice(key.as_bytes())
}

fn scenario<V: View>(root: &AnyClient, users: V, posts: V, adapter: Adapter) {
    let admins = users.sub(b"admins");
    users.put(b"a", "1");
    users.put(b"", "empty key");
    users.put(&[0xff], "top");
    admins.put(b"x", "3");
    posts.put(b"a", "2");
    // The parent's own keys right at the sublevel's edges.
    root.put("!users", "parent").unwrap();
    root.put("!users\"", "parent").unwrap();
    root.put("!user", "parent").unwrap();

    assert_eq!(users.get(b"a"), Some(b("1")), "{adapter:?}");
    assert_eq!(posts.get(b"a"), Some(b("2")), "{adapter:?}");
    assert_eq!(root.get("!users!a").unwrap(), Some(b("1")), "{adapter:?}: abstract-level's layout");
    assert_eq!(users.key(b"k"), b("!users!k"));

    let all = users.keys(IterOptions::default(), None);
    // The nested sublevel's entries are in its parent, under their prefixed keys (as in Level).
    assert_eq!(all, vec![b(""), b("!admins!x"), b("a"), Bytes::from_static(&[0xff])], "{adapter:?}");
    let reverse = users.keys(IterOptions { reverse: true, limit: Some(2), ..IterOptions::default() }, None);
    assert_eq!(reverse, vec![Bytes::from_static(&[0xff]), b("a")], "{adapter:?}");
    assert_eq!(users.keys(IterOptions::default(), Some(b"a")), vec![b("a"), Bytes::from_static(&[0xff])]);
    // A seek below the sublevel lands on its first key, above it ends the iterator.
    let below = users.keys(IterOptions { reverse: true, ..IterOptions::default() }, Some(b""));
    assert_eq!(below, vec![b("")], "{adapter:?}");
    let range = KeyRange::all().gte("").lt("a");
    assert_eq!(users.keys(IterOptions { range, ..IterOptions::default() }, None), vec![b(""), b("!admins!x")]);
    assert_eq!(admins.keys(IterOptions::default(), None), vec![b("x")], "{adapter:?}");

    // One batch across sublevels, on the parent.
    let ops = vec![
        BatchOp::Put { key: users.key(b"b"), value: b("4") },
        BatchOp::Put { key: posts.key(b"b"), value: b("5") },
        BatchOp::Del { key: users.key(b"a") },
    ];
    root.batch(ops).unwrap();
    assert_eq!((users.get(b"b"), posts.get(b"b"), users.get(b"a")), (Some(b("4")), Some(b("5")), None));

    users.clear(KeyRange::all());
    assert!(users.keys(IterOptions::default(), None).is_empty(), "{adapter:?}");
    assert_eq!(admins.get(b"x"), None, "{adapter:?}: clearing a sublevel clears what is nested in it");
    assert_eq!(posts.get(b"a"), Some(b("2")), "{adapter:?}: a sibling is untouched");
    for parent_key in ["!users", "!users\"", "!user"] {
        assert_eq!(root.get(parent_key).unwrap(), Some(b("parent")), "{adapter:?}: {parent_key}");
    }

    // Names of any bytes are their own places.
    let odd = [&[0u8][..], &[0xff], b"!", b"\"", b"%21", b""];
    for (i, name) in odd.iter().enumerate() {
        users.sub(name).put(b"k", &i.to_string());
    }
    for (i, name) in odd.iter().enumerate() {
        assert_eq!(users.sub(name).get(b"k"), Some(Bytes::from(i.to_string())), "{adapter:?}: name {name:?}");
        assert_eq!(users.sub(name).keys(IterOptions::default(), None), vec![b("k")], "{adapter:?}: {name:?}");
    }
}

#[test]
fn sublevels_on_every_client() {
    for adapter in ALL {
        let server = BackendServer::start(adapter, MemoryBackend::new(MemoryStore::new()));
        let root = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        match &root {
            AnyClient::Blocking(c) => scenario(&root, c.sublevel("users"), c.sublevel("posts"), adapter),
            AnyClient::Tokio(c) => scenario(&root, c.sublevel("users"), c.sublevel("posts"), adapter),
            AnyClient::Smol(c) => scenario(&root, c.sublevel("users"), c.sublevel("posts"), adapter),
        }
    }
}
