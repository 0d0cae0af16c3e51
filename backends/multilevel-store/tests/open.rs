//! Opening: bad paths and files give errors, not panics; a closed store reopens.

mod common;

use std::fs;

use common::*;
use multilevel_store::{OpenError, Outcome, Store, StoreOptions};

#[test]
fn a_file_is_not_a_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"hello").unwrap();
    let err = Store::open(&file, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotADirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    // A directory that would have to be created under a file.
    let err = Store::open(file.join("sub"), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotADirectory { .. } | OpenError::Io { .. }), "{err:?}");
}

#[test]
fn an_unwritable_place_gives_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    }
    let probe = locked.join("probe");
    if fs::write(&probe, b"").is_err() {
        // Not root: the permission bits hold.
        let err = Store::open(&locked, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, OpenError::PermissionDenied { .. }), "{err:?}");
        assert!(err.to_string().contains("permission denied"), "{err}");
        let err = Store::open(locked.join("sub"), StoreOptions::default()).unwrap_err();
        assert!(matches!(err, OpenError::PermissionDenied { .. }), "{err:?}");
    } else {
        // Root ignores permission bits; use places no one can create files in.
        let err = Store::open("/proc/multilevel-store-test/db", StoreOptions::default()).unwrap_err();
        assert!(matches!(err, OpenError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("/proc/multilevel-store-test/db: could not create"), "{err}");
        if let Err(err) = Store::open("/sys/multilevel-store-test", StoreOptions::default()) {
            assert!(err.to_string().contains("/sys/multilevel-store-test"), "the error names the path: {err}");
        }
    }
}

#[test]
fn a_file_that_is_not_lmdb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data.mdb"), vec![b'x'; 64 << 10]).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not an LMDB database"), "{err}");
}

#[test]
fn a_path_with_a_nul_byte_is_refused() {
    let err = Store::open("/tmp/bad\0path", StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::InvalidPath { .. }), "{err:?}");
}

#[test]
fn a_store_opens_once_per_process_and_reopens_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::AlreadyOpen { .. }), "{err:?}");
    let mut conn = store.connection();
    assert_eq!(write(&mut conn, 1, 1, put("k", "v")), Ok(Outcome::Written));
    // A connection keeps the store open.
    let clone = store.clone();
    assert!(!clone.close());
    drop(conn);
    assert!(store.close());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(get(&mut store.connection(), "k"), Some(b("v")));
    // Dropping every handle closes it too.
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default().no_sync(true)).unwrap();
    assert_eq!(get(&mut store.connection(), "k"), Some(b("v")));
}

#[test]
fn writes_queued_before_the_last_handle_drops_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..100u64 {
        let tx = tx.clone();
        let request = multilevel_store::WriteRequest { session: 1, request: i + 1, op: put(i.to_be_bytes(), "") };
        let _ = conn.execute(multilevel_store::StoreRequest::Write(request), move |r| tx.send(r).unwrap());
    }
    drop(tx);
    drop(conn);
    drop(store);
    assert_eq!(rx.iter().filter(|r| *r == Ok(Outcome::Written)).count(), 100);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.stats().unwrap().entries, 100);
}
