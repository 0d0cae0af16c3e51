//! Sublevels: views of the database under a name, with the whole client API.

use bytes::Bytes;
use multilevel_proto::{BatchOp, CallError, IterOptions, Request, Response, SublevelPrefix};

use crate::client::{Client, Iter};

/// A view of the database holding the keys under a name, made by [`Client::sublevel`]: every
/// read, write, clear and iterator stays inside it, and its keys never collide with a
/// sibling's, whatever their bytes. Nestable ([`sublevel`](Self::sublevel)). Keys are stored
/// as abstract-level stores a sublevel's (`!name!key`), so a Node program's
/// `db.sublevel('name')` over many-level sees the same entries; see
/// [`multilevel_proto::sublevel`] for the encoding. `stats` is the server's, not the
/// sublevel's. Cheap to clone: clones share the client's connection.
#[derive(Debug, Clone)]
pub struct Sublevel {
    client: Client,
    prefix: SublevelPrefix,
}

impl Sublevel {
    pub(crate) fn new(client: Client, prefix: SublevelPrefix) -> Self {
        Self { client, prefix }
    }

    async fn call(&self, request: Request) -> Result<Response, CallError> {
        self.client.request(self.prefix.request(request), None).await
    }

    multilevel_proto::client_api!(async.await);

    /// Applies puts and deletes of this sublevel atomically, in order. For a batch that spans
    /// sublevels, build it on the parent with [`key`](Self::key) for each sublevel's keys.
    pub async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), CallError> {
        self.call(Request::Batch { ops }).await?.into_done()
    }

    /// Iterates over a range of this sublevel; keys come without the sublevel's prefix, and
    /// seeks stay inside it. As [`Client::iter`] otherwise.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, CallError> {
        self.client.iter_in(&self.prefix, options)
    }

    /// The sublevel `name` inside this one.
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
        Self::new(self.client.clone(), self.prefix.sublevel(name))
    }

    /// The key the database stores for this sublevel's `key`, e.g. to write to several
    /// sublevels in one batch on the parent.
    pub fn key(&self, key: impl AsRef<[u8]>) -> Bytes {
        self.prefix.key(key)
    }

    /// This sublevel's key prefix.
    pub fn prefix(&self) -> &SublevelPrefix {
        &self.prefix
    }
}
