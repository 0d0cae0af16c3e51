//! The typed operations every adapter's client offers, written once.
//!
//! An adapter's client defines `fn call(&self, request: Request) -> Result<Response, CallError>`
//! (blocking) or `async fn call(...)` (async) and invokes [`client_api!`](macro@crate::client_api)
//! inside its `impl` block: `client_api!();` for a blocking client, `client_api!(async .await);`
//! for an async one.

/// Generates `get`, `get_many`, `put`, `del`, `clear`, `clear_with`, `stats` and the conditional
/// writes (`batch_if`, `compare_and_swap`, `put_if_absent`, `increment`) on top of the
/// adapter's `call`. See the [module docs](mod@crate::client_api).
#[macro_export]
macro_rules! client_api {
    ($($async:ident $($await:tt)+)?) => {
        /// The value of `key`, or `None` if it is absent.
        pub $($async)? fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<$crate::__bytes::Bytes>, $crate::CallError> {
            self.call($crate::Request::get(key)) $($($await)+)? ?.into_value()
        }

        /// The values of several keys, in the order asked; `None` where a key is absent.
        pub $($async)? fn get_many<K: AsRef<[u8]>>(
            &self,
            keys: impl IntoIterator<Item = K>,
        ) -> Result<Vec<Option<$crate::__bytes::Bytes>>, $crate::CallError> {
            self.call($crate::Request::get_many(keys)) $($($await)+)? ?.into_values()
        }

        /// Sets `key` to `value`.
        pub $($async)? fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), $crate::CallError> {
            self.call($crate::Request::put(key, value)) $($($await)+)? ?.into_done()
        }

        /// Removes `key`; removing an absent key is not an error.
        pub $($async)? fn del(&self, key: impl AsRef<[u8]>) -> Result<(), $crate::CallError> {
            self.call($crate::Request::del(key)) $($($await)+)? ?.into_done()
        }

        /// Removes every key in `range`.
        pub $($async)? fn clear(&self, range: $crate::KeyRange) -> Result<(), $crate::CallError> {
            self.clear_with(range, false, None) $($($await)+)?
        }

        /// Removes at most `limit` keys of `range`, counting from the highest if `reverse`.
        pub $($async)? fn clear_with(
            &self,
            range: $crate::KeyRange,
            reverse: bool,
            limit: Option<u64>,
        ) -> Result<(), $crate::CallError> {
            self.call($crate::Request::Clear { range, reverse, limit }) $($($await)+)? ?.into_done()
        }

        /// Applies `ops` atomically if every one of `conditions` holds, checked on the server in
        /// the same transaction as the writes. `Ok(Err(failed))`: a condition failed (the first
        /// one, with its key's value then) and nothing was applied. A replay after a reconnect
        /// gets the original answer; it is never checked again. See
        /// [`multilevel_proto::condition`](mod@$crate::condition).
        pub $($async)? fn batch_if(
            &self,
            conditions: Vec<$crate::Condition>,
            ops: Vec<$crate::BatchOp>,
        ) -> Result<Result<(), $crate::ConditionFailed>, $crate::CallError> {
            self.call($crate::Request::Conditional { conditions, ops }) $($($await)+)? ?.into_conditional()
        }

        /// Sets `key` to `new` (`None` deletes it) if its value is `old` (`None`: absent),
        /// atomically on the server. `Ok(Err(current))`: the value was not `old` but `current`,
        /// and nothing changed.
        pub $($async)? fn compare_and_swap(
            &self,
            key: impl AsRef<[u8]>,
            old: Option<&[u8]>,
            new: Option<&[u8]>,
        ) -> Result<Result<(), Option<$crate::__bytes::Bytes>>, $crate::CallError> {
            let key = key.as_ref();
            let op = match new {
                Some(value) => $crate::BatchOp::Put { key: $crate::message::copy(key), value: $crate::message::copy(value) },
                None => $crate::BatchOp::Del { key: $crate::message::copy(key) },
            };
            let conditions = vec![$crate::Condition::is(key, old)];
            Ok(self.batch_if(conditions, vec![op]) $($($await)+)? ?.map_err(|failed| failed.current))
        }

        /// Sets `key` to `value` if it is absent, atomically on the server. `Ok(Err(existing))`:
        /// the key was already there with `existing`, and nothing changed; `.is_ok()` says
        /// whether this call claimed it.
        pub $($async)? fn put_if_absent(
            &self,
            key: impl AsRef<[u8]>,
            value: impl AsRef<[u8]>,
        ) -> Result<Result<(), $crate::__bytes::Bytes>, $crate::CallError> {
            let key = key.as_ref();
            let op = $crate::BatchOp::Put { key: $crate::message::copy(key), value: $crate::message::copy(value.as_ref()) };
            let answer = self.batch_if(vec![$crate::Condition::absent(key)], vec![op]) $($($await)+)??;
            Ok(answer.map_err(|failed| failed.current.unwrap_or_default()))
        }

        /// Adds `by` (may be negative) to the counter at `key` on the server, in one
        /// transaction, and returns its new value; an absent key counts as 0. Counters are
        /// stored as decimal ASCII text (`"42"`); a value that is not one fails with
        /// [`ErrorKind::NotANumber`]($crate::ErrorKind::NotANumber) and changes nothing. Applied
        /// at most once: a replay after a reconnect returns the original value.
        pub $($async)? fn increment(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64, $crate::CallError> {
            self.call($crate::Request::increment(key, by)) $($($await)+)? ?.into_counter()
        }

        /// The server's counters (entries, map size, open connections...), as `(name, value)`.
        pub $($async)? fn stats(&self) -> Result<Vec<(String, u64)>, $crate::CallError> {
            self.call($crate::Request::Stats) $($($await)+)? ?.into_stats()
        }
    };
}

/// Generates an async client's `Sublevel` type (a view of the keys under a name, with the whole
/// client API) for a client type `$client` with `request(request, timeout)`, an
/// `iter_in(&SublevelPrefix, options)` returning `$iter`, and `Clone`. The tokio and the
/// async-std/smol adapters invoke it in their `sublevel` module.
#[macro_export]
macro_rules! async_sublevel {
    ($client:ty, $iter:ty, $watch:ty) => {
        /// A view of the database holding the keys under a name, made by `Client::sublevel`: every
        /// read, write, clear and iterator stays inside it, and its keys never collide with a
        /// sibling's, whatever their bytes. Nestable ([`sublevel`](Self::sublevel)). Keys are stored
        /// as abstract-level stores a sublevel's (`!name!key`), so a Node program's
        /// `db.sublevel('name')` over many-level sees the same entries; see
        /// [`multilevel_proto::sublevel`](mod@multilevel_proto::sublevel) for the encoding. `stats` is the server's, not the
        /// sublevel's. Cheap to clone: clones share the client's connection.
        #[derive(Debug, Clone)]
        pub struct Sublevel {
            client: $client,
            prefix: $crate::SublevelPrefix,
        }

        impl Sublevel {
            pub(crate) fn new(client: $client, prefix: $crate::SublevelPrefix) -> Self {
                Self { client, prefix }
            }

            async fn call(&self, request: $crate::Request) -> Result<$crate::Response, $crate::CallError> {
                self.client.request(self.prefix.request(request), None).await
            }

            $crate::client_api!(async.await);

            /// Applies puts and deletes of this sublevel atomically, in order. For a batch that spans
            /// sublevels, build it on the parent with [`key`](Self::key) for each sublevel's keys.
            pub async fn batch(&self, ops: Vec<$crate::BatchOp>) -> Result<(), $crate::CallError> {
                self.call($crate::Request::Batch { ops }).await?.into_done()
            }

            /// Iterates over a range of this sublevel; keys come without the sublevel's prefix, and
            /// seeks stay inside it. As `Client::iter` otherwise.
            pub fn iter(&self, options: $crate::IterOptions) -> Result<$iter, $crate::CallError> {
                self.client.iter_in(&self.prefix, options)
            }

            /// Watches changes to a range of this sublevel; keys come without the sublevel's
            /// prefix. As `Client::watch` otherwise.
            pub fn watch(&self, options: $crate::WatchOptions) -> Result<$watch, $crate::CallError> {
                self.client.watch_in(&self.prefix, options)
            }

            /// The sublevel `name` inside this one.
            pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
                Self::new(self.client.clone(), self.prefix.sublevel(name))
            }

            /// The key the database stores for this sublevel's `key`, e.g. to write to several
            /// sublevels in one batch on the parent.
            pub fn key(&self, key: impl AsRef<[u8]>) -> $crate::__bytes::Bytes {
                self.prefix.key(key)
            }

            /// This sublevel's key prefix.
            pub fn prefix(&self) -> &$crate::SublevelPrefix {
                &self.prefix
            }
        }
    };
}

/// Generates an async client type `$client` on a [`ClientDriver`](crate::ClientDriver)`<$runtime>`
/// (a field `driver`; the adapter adds its constructors and `state`), with its `request`, the typed
/// operations, `batch`, `iter`, `sublevel` (returning `$sublevel`, in scope, made by
/// [`async_sublevel!`](macro@crate::async_sublevel)) and `close`, and the `Iter` type (a
/// `futures_core::Stream`). The tokio and the async-std/smol adapters invoke it in their
/// `client` module.
#[macro_export]
macro_rules! async_client {
    ($client:ident, $runtime:ty, $sublevel:ident) => {
        /// An iterator entry: a key and its value (see [`multilevel_proto::Entry`]).
        pub type Entry = $crate::Entry;

        /// A client of a multilevel server: `Clone + Send + Sync`; clones share one connection.
        #[derive(Clone)]
        pub struct $client {
            driver: std::sync::Arc<$crate::ClientDriver<$runtime>>,
        }

        impl std::fmt::Debug for $client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($client)).field("state", &self.state()).finish_non_exhaustive()
            }
        }

        impl $client {
            /// Issues a request and waits for its answer, failing with
            /// [`RequestError::TimedOut`](multilevel_proto::RequestError::TimedOut) after `timeout` if
            /// one is given (else the client's default).
            pub async fn request(
                &self,
                request: $crate::Request,
                timeout: Option<std::time::Duration>,
            ) -> Result<$crate::Response, $crate::CallError> {
                self.driver.request(request, timeout).await
            }

            async fn call(&self, request: $crate::Request) -> Result<$crate::Response, $crate::CallError> {
                self.driver.request(request, None).await
            }

            $crate::client_api!(async.await);

            /// Applies puts and deletes atomically, in order.
            pub async fn batch(&self, ops: Vec<$crate::BatchOp>) -> Result<(), $crate::CallError> {
                self.call($crate::Request::Batch { ops }).await?.into_done()
            }

            /// Iterates over a range as a [`Stream`](futures_core::Stream) of entries. It reads one
            /// snapshot while the connection lives; with retry on, it resumes after a reconnect
            /// exactly where it stopped.
            pub fn iter(&self, options: $crate::IterOptions) -> Result<Iter, $crate::CallError> {
                self.iter_in(&$crate::SublevelPrefix::root(), options)
            }

            pub(crate) fn iter_in(
                &self,
                sublevel: &$crate::SublevelPrefix,
                options: $crate::IterOptions,
            ) -> Result<Iter, $crate::CallError> {
                self.driver.iter_in(sublevel, options).map(Iter)
            }

            /// Watches the changes to a range, in commit order, as a
            /// [`Stream`](futures_core::Stream) of [`ChangeEvent`](multilevel_proto::ChangeEvent)s
            /// (see [`multilevel_proto::change`]): from now on, or replaying the history the
            /// server keeps from a position. With retry on, it resumes after a reconnect or a
            /// server restart exactly after the last event received: none missed, none repeated.
            pub fn watch(&self, options: $crate::WatchOptions) -> Result<Watch, $crate::CallError> {
                self.watch_in(&$crate::SublevelPrefix::root(), options)
            }

            pub(crate) fn watch_in(
                &self,
                sublevel: &$crate::SublevelPrefix,
                options: $crate::WatchOptions,
            ) -> Result<Watch, $crate::CallError> {
                self.driver.watch_in(sublevel, options).map(Watch)
            }

            /// A view of the keys under `name`, with this client's whole API; see [`Sublevel`](crate::Sublevel).
            pub fn sublevel(&self, name: impl AsRef<[u8]>) -> $sublevel {
                $sublevel::new(self.clone(), $crate::SublevelPrefix::root().sublevel(name))
            }

            /// Closes the client: pending requests fail with
            /// [`RequestError::Closed`](multilevel_proto::RequestError::Closed).
            pub fn close(&self) {
                self.driver.close();
            }
        }

        /// An open iterator, a [`Stream`](futures_core::Stream) of entries; closed (and its server
        /// snapshot released) when dropped.
        #[derive(Debug)]
        pub struct Iter($crate::IterHandle<std::sync::Arc<$crate::ClientDriver<$runtime>>>);

        impl Iter {
            /// Moves to the first key at or after `target` (at or before, for a reverse iterator),
            /// within the iterator's range. The limit keeps counting.
            pub fn seek(&mut self, target: impl AsRef<[u8]>) {
                self.0.seek(target);
            }

            /// Up to `max` entries: waits until at least one is there or the iterator ends; an empty
            /// batch means the end.
            pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, $crate::CallError> {
                let mut out = Vec::new();
                std::future::poll_fn(|cx| self.0.poll_batch(cx, max, &mut out)).await?;
                Ok(out.into_iter().map(Entry::from).collect())
            }
        }

        /// An open watch, a [`Stream`](futures_core::Stream) of change events that ends only
        /// after an error (the client closed, the server refused the watch, or the history it
        /// asked for was trimmed); ended on the server when dropped.
        #[derive(Debug)]
        pub struct Watch($crate::WatchHandle<std::sync::Arc<$crate::ClientDriver<$runtime>>>);

        impl Watch {
            /// Where the watch would resume now, past every event received so far; see
            /// [`WatchHandle::cursor`](multilevel_proto::WatchHandle::cursor).
            pub fn cursor(&self) -> Option<$crate::Cursor> {
                self.0.cursor()
            }
        }

        impl futures_core::Stream for Watch {
            type Item = Result<$crate::ChangeEvent, $crate::CallError>;

            fn poll_next(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                self.get_mut().0.poll_next(cx)
            }
        }

        impl futures_core::Stream for Iter {
            type Item = Result<Entry, $crate::CallError>;

            fn poll_next(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                self.get_mut().0.poll_next(cx).map(|item| item.map(|entry| entry.map(Entry::from)))
            }
        }
    };
}

/// Generates an async adapter's `Transport` type (the boxed halves of one byte stream, as a
/// client's connector returns them) for its runtime's read and write traits, e.g.
/// `async_transport!(tokio::io::AsyncRead, tokio::io::AsyncWrite)`. The adapter adds its
/// constructors.
#[macro_export]
macro_rules! async_transport {
    ($read:path, $write:path) => {
        /// The halves of one async byte stream, as a client's connector returns them.
        pub struct Transport {
            /// Where bytes from the server come from.
            pub reader: Box<dyn $read + Unpin + Send>,
            /// Where bytes to the server go.
            pub writer: Box<dyn $write + Unpin + Send>,
        }

        impl std::fmt::Debug for Transport {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Transport").finish_non_exhaustive()
            }
        }
    };
}
