//! What a blocking client hands out: sublevel views, batches and iterators.

use bytes::Bytes;
use multilevel_proto::{BatchOp, IterOptions, Request, Response, SublevelPrefix};

use crate::client::{Client, Entry, Error};

/// A view of the database holding the keys under a name, made by [`Client::sublevel`]: every
/// read, write, clear and iterator stays inside it, and its keys never collide with a
/// sibling's, whatever their bytes. Nestable ([`sublevel`](Self::sublevel)). Keys are stored
/// as abstract-level stores a sublevel's (`!name!key`), so a Node program's
/// `db.sublevel('name')` over many-level sees the same entries; see
/// [`multilevel_proto::sublevel`] for the encoding. `stats` is the server's, not the
/// sublevel's. Cheap to clone: clones share the client's connection.
#[derive(Debug, Clone)]
pub struct Sublevel {
    pub(crate) client: Client,
    pub(crate) prefix: SublevelPrefix,
}

impl Sublevel {
    fn call(&self, request: Request) -> Result<Response, Error> {
        self.client.request(self.prefix.request(request))
    }

    multilevel_proto::client_api!();

    /// Starts an atomic batch of this sublevel's keys. For a batch that spans sublevels,
    /// build it on the parent with [`Batch::put_in`] and [`Batch::del_in`].
    pub fn batch(&self) -> Batch<'_> {
        Batch { client: &self.client, prefix: self.prefix.clone(), ops: Vec::new() }
    }

    /// Watches changes to a range of this sublevel; keys come without the sublevel's prefix.
    /// As [`Client::watch`] otherwise.
    pub fn watch(&self, options: multilevel_proto::WatchOptions) -> Result<crate::Watch, Error> {
        self.client.watch_in(&self.prefix, options)
    }

    /// Iterates over a range of this sublevel; keys come without the sublevel's prefix, and
    /// seeks stay inside it. As [`Client::iter`] otherwise.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        self.client.iter_in(&self.prefix, options)
    }

    /// The sublevel `name` inside this one.
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
        Sublevel { client: self.client.clone(), prefix: self.prefix.sublevel(name) }
    }

    /// The key the database stores for this sublevel's `key`.
    pub fn key(&self, key: impl AsRef<[u8]>) -> Bytes {
        self.prefix.key(key)
    }
}

/// An atomic batch of puts and deletes, built by [`Client::batch`] or [`Sublevel::batch`].
#[derive(Debug)]
pub struct Batch<'a> {
    pub(crate) client: &'a Client,
    /// Where the batch's own keys live.
    pub(crate) prefix: SublevelPrefix,
    pub(crate) ops: Vec<BatchOp>,
}

impl Batch<'_> {
    /// Adds a put.
    pub fn put(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Put { key: self.prefix.key(key), value: Bytes::copy_from_slice(value.as_ref()) });
        self
    }

    /// Adds a delete.
    pub fn del(mut self, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Del { key: self.prefix.key(key) });
        self
    }

    /// Adds a put of `sublevel`'s `key`: one batch may span sublevels and stays atomic.
    pub fn put_in(mut self, sublevel: &Sublevel, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Put { key: sublevel.key(key), value: Bytes::copy_from_slice(value.as_ref()) });
        self
    }

    /// Adds a delete of `sublevel`'s `key`.
    pub fn del_in(mut self, sublevel: &Sublevel, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Del { key: sublevel.key(key) });
        self
    }

    /// Applies every operation atomically.
    pub fn write(self) -> Result<(), Error> {
        self.client.request(Request::Batch { ops: self.ops })?.into_done()
    }
}

/// An open iterator; closed (and its server snapshot released) when dropped.
#[derive(Debug)]
pub struct Iter {
    pub(crate) client: Client,
    pub(crate) id: u64,
}

impl Iter {
    /// Moves to the first key at or after `target` (at or before, for a reverse iterator),
    /// within the iterator's range. The limit keeps counting.
    pub fn seek(&mut self, target: impl AsRef<[u8]>) {
        self.client.shared().lock().machine().seek(self.id, Bytes::copy_from_slice(target.as_ref()));
        self.client.shared().flush();
    }

    /// Up to `max` entries: blocks until at least one is there or the iterator ends; an empty
    /// batch means the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        let shared = self.client.shared();
        shared.block_on(|router, cx| router.poll_iterator_batch(self.id, max, &mut out, cx))?;
        shared.flush(); // credit for what was read
        Ok(out.into_iter().map(Entry::from).collect())
    }
}

impl Iterator for Iter {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let shared = self.client.shared();
        let item = shared.block_on(|router, cx| router.poll_iterator(self.id, cx));
        if shared.lock().machine().wants_transmit() {
            shared.flush(); // credit, when due
        }
        item.map(|r| r.map(Entry::from).map_err(Error::from))
    }
}

impl Drop for Iter {
    fn drop(&mut self) {
        self.client.shared().lock().close_iterator(self.id);
        self.client.shared().flush();
    }
}
