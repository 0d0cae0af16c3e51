//! A read-only open creates nothing: a mistyped path is an error naming it, not a new empty
//! database served read-only.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use multilevel_store::{OpenError, Outcome, Store, StoreError, StoreOptions};

/// Every entry under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_missing_path_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mistyped").join("db");
    let err = Store::open(&path, StoreOptions::default().readonly(true)).unwrap_err();
    assert!(matches!(&err, OpenError::Missing { path: p } if p == &path), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("no database at {}: ", path.display())), "{message}");
    assert!(message.contains("read-only"), "{message}");
    assert!(listing(dir.path()).is_empty(), "created {:?}", listing(dir.path()));
}

#[test]
fn an_empty_directory_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path(), StoreOptions::default().readonly(true)).unwrap_err();
    assert!(matches!(err, OpenError::Missing { .. }), "{err:?}");
    assert!(listing(dir.path()).is_empty(), "created {:?}", listing(dir.path()));
}

#[test]
fn a_file_is_still_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"hello").unwrap();
    let err = Store::open(&file, StoreOptions::default().readonly(true)).unwrap_err();
    assert!(matches!(err, OpenError::NotADirectory { .. }), "{err:?}");
    assert_eq!(fs::read(&file).unwrap(), b"hello");
}

#[test]
fn an_existing_database_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(write(&mut store.connection(), 1, 1, put("k", "v")), Ok(Outcome::Written));
    assert!(store.close());
    let before = listing(dir.path());

    let store = Store::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    assert!(store.server_config().readonly);
    let mut conn = store.connection();
    assert_eq!(get(&mut conn, "k"), Some(b("v")));
    assert_eq!(write(&mut conn, 2, 1, put("k", "w")), Err(StoreError::ReadOnly));
    drop(conn);
    assert!(store.close());
    assert_eq!(listing(dir.path()), before);
}
