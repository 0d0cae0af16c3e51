//! The typed operations every adapter's client offers, written once.
//!
//! An adapter's client defines `fn call(&self, request: Request) -> Result<Response, CallError>`
//! (blocking) or `async fn call(...)` (async) and invokes [`client_api!`](macro@crate::client_api)
//! inside its `impl` block: `client_api!();` for a blocking client, `client_api!(async .await);`
//! for an async one.

/// Generates `get`, `get_many`, `put`, `del`, `clear`, `clear_with` and `stats` on top of the
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

        /// The server's counters (entries, map size, open connections...), as `(name, value)`.
        pub $($async)? fn stats(&self) -> Result<Vec<(String, u64)>, $crate::CallError> {
            self.call($crate::Request::Stats) $($($await)+)? ?.into_stats()
        }
    };
}
