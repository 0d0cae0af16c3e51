//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use multilevel_store::{
    BatchOp, ConnectionStore, Execution, KeyRange, Outcome, SessionId, StoreError, StoreRequest, WriteOp, WriteRequest,
};

/// Runs a read and returns its inline result.
pub fn read(conn: &mut ConnectionStore, request: StoreRequest) -> Result<Outcome, StoreError> {
    assert!(!request.is_write());
    match conn.execute(request, |_| panic!("done must not be called for an inline read")) {
        Execution::Ready(result) => result,
        Execution::Queued => panic!("a read was queued"),
    }
}

/// Runs a write and waits for its result.
pub fn write(conn: &mut ConnectionStore, session: SessionId, request: u64, op: WriteOp) -> Result<Outcome, StoreError> {
    let (tx, rx) = mpsc::channel();
    let execution = conn.execute(StoreRequest::Write(WriteRequest { session, request, op }), move |result| {
        tx.send(result).unwrap();
    });
    assert_eq!(execution, Execution::Queued);
    rx.recv_timeout(Duration::from_secs(60)).expect("done was not called")
}

/// Issues a write with a fresh request id of session 1.
pub struct Writer {
    pub session: SessionId,
    pub next: u64,
}

impl Writer {
    pub fn new(session: SessionId) -> Self {
        Self { session, next: 1 }
    }

    pub fn write(&mut self, conn: &mut ConnectionStore, op: WriteOp) -> Result<Outcome, StoreError> {
        self.next += 1;
        write(conn, self.session, self.next, op)
    }

    pub fn put(&mut self, conn: &mut ConnectionStore, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        assert_eq!(self.write(conn, put(key, value)), Ok(Outcome::Written));
    }

    pub fn del(&mut self, conn: &mut ConnectionStore, key: impl AsRef<[u8]>) {
        assert_eq!(self.write(conn, WriteOp::Del { key: b(key) }), Ok(Outcome::Written));
    }
}

pub fn b(bytes: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(bytes.as_ref())
}

pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> WriteOp {
    WriteOp::Put { key: b(key), value: b(value) }
}

pub fn batch_put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> BatchOp {
    BatchOp::Put { key: b(key), value: b(value) }
}

pub fn get(conn: &mut ConnectionStore, key: impl AsRef<[u8]>) -> Option<Bytes> {
    match read(conn, StoreRequest::Get { key: b(key) }) {
        Ok(Outcome::Value(value)) => value,
        other => panic!("unexpected get result {other:?}"),
    }
}

/// Every entry of `range` in order, read through an iterator snapshot in small batches.
pub fn scan(conn: &mut ConnectionStore, iterator: u64, range: KeyRange, reverse: bool) -> Vec<(Bytes, Bytes)> {
    assert_eq!(read(conn, StoreRequest::OpenIterator { iterator }), Ok(Outcome::IteratorOpened));
    let entries = drain(conn, iterator, range, reverse, 3, 1 << 20)
        .into_iter()
        .map(|(k, v)| (k, v.expect("values were asked for")))
        .collect();
    conn.close_iterator(iterator);
    entries
}

/// Reads an open iterator to its end, resuming each batch past the last key like the server.
pub fn drain(
    conn: &mut ConnectionStore,
    iterator: u64,
    mut range: KeyRange,
    reverse: bool,
    max_entries: u64,
    max_bytes: u64,
) -> Vec<(Bytes, Option<Bytes>)> {
    let mut all = Vec::new();
    loop {
        let read_request = multilevel_store::BatchRead {
            iterator,
            range: range.clone(),
            reverse,
            max_entries,
            max_bytes,
            values: true,
        };
        let Ok(Outcome::Batch { entries, exhausted }) = read(conn, StoreRequest::ReadBatch(read_request)) else {
            panic!("batch read failed");
        };
        if let Some((last, _)) = entries.last() {
            range = if reverse { range.before(last) } else { range.after(last) };
        }
        all.extend(entries);
        if exhausted {
            return all;
        }
    }
}
