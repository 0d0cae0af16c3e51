//! The typed table every adapter offers, written once as a macro like
//! [`client_api!`](crate::client_api).

/// Generates an adapter's `Table<K, V, C>` (a typed view of a sublevel) and `table::<K, V>(name)`
/// on its `Client` and `Sublevel`, for a sublevel type with the client API (`get`, `put`, `del`,
/// `clear_with`, `iter`, `sublevel`, `key`), an iterator type with `seek`, and blocking or async
/// calls as for `client_api!`: `table_api!(Client, Sublevel, Iter);` or
/// `table_api!(Client, Sublevel, Iter, async .await);`. See [`table`](mod@crate::table).
#[macro_export]
macro_rules! table_api {
    ($client:ty, $sublevel:ty, $iter:ty $(, $async:ident $($await:tt)+)?) => {
        /// A typed view of a sublevel: keys of type `K` in `K`'s order, values of type `V` stored
        /// with the codec `C` ([`Postcard`](multilevel_proto::table::Postcard) unless another is
        /// named, e.g. `Json` with the `json` feature). Made by `Client::table` or
        /// `Sublevel::table`, or [`Table::new`] for another codec. Cheap to clone. See
        /// [`multilevel_proto::table`] for the supported key types and the encodings.
        pub struct Table<K, V, C = $crate::table::Postcard> {
            sublevel: $sublevel,
            types: $crate::table::Types<K, V, C>,
        }

        impl<K, V, C> Clone for Table<K, V, C> {
            fn clone(&self) -> Self {
                Self { sublevel: self.sublevel.clone(), types: ::std::marker::PhantomData }
            }
        }

        impl<K, V, C> ::std::fmt::Debug for Table<K, V, C> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Table")
                    .field("sublevel", &self.sublevel)
                    .field("key", &::std::any::type_name::<K>())
                    .field("value", &::std::any::type_name::<V>())
                    .finish()
            }
        }

        impl<K, V, C> Table<K, V, C>
        where
            K: $crate::table::storekey::Encode + $crate::table::storekey::Decode,
            V: $crate::__serde::Serialize + $crate::__serde::de::DeserializeOwned,
            C: $crate::table::ValueCodec,
        {
            /// The table over `sublevel`'s keys.
            pub fn new(sublevel: $sublevel) -> Self {
                Self { sublevel, types: ::std::marker::PhantomData }
            }

            /// The untyped sublevel underneath.
            pub fn sublevel(&self) -> &$sublevel {
                &self.sublevel
            }

            /// The value at `key`, or `None` if it is absent.
            pub $($async)? fn get(&self, key: &K) -> Result<Option<V>, $crate::table::TableError> {
                let stored = $crate::table::TableCodec::<K, V, C>::encode_key(key)?;
                match self.sublevel.get(&stored) $($($await)+)? ? {
                    Some(bytes) => $crate::table::TableCodec::<K, V, C>::decode_value(Some(&stored), &bytes).map(Some),
                    None => Ok(None),
                }
            }

            /// The values at several keys, in the order asked; `None` where a key is absent.
            pub $($async)? fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, $crate::table::TableError> {
                let stored = keys
                    .iter()
                    .map($crate::table::TableCodec::<K, V, C>::encode_key)
                    .collect::<Result<Vec<_>, _>>()?;
                let values = self.sublevel.get_many(&stored) $($($await)+)? ?;
                stored
                    .iter()
                    .zip(values)
                    .map(|(key, value)| match value {
                        Some(bytes) => $crate::table::TableCodec::<K, V, C>::decode_value(Some(key), &bytes).map(Some),
                        None => Ok(None),
                    })
                    .collect()
            }

            /// Sets `key` to `value`.
            pub $($async)? fn put(&self, key: &K, value: &V) -> Result<(), $crate::table::TableError> {
                let (key, value) = self.encode(key, value)?;
                Ok(self.sublevel.put(key, value) $($($await)+)? ?)
            }

            /// Removes `key`; removing an absent key is not an error.
            pub $($async)? fn del(&self, key: &K) -> Result<(), $crate::table::TableError> {
                let key = $crate::table::TableCodec::<K, V, C>::encode_key(key)?;
                Ok(self.sublevel.del(key) $($($await)+)? ?)
            }

            /// Removes every key in `range` (`..` for the whole table).
            pub $($async)? fn clear(&self, range: impl ::std::ops::RangeBounds<K>) -> Result<(), $crate::table::TableError> {
                let range = $crate::table::TableCodec::<K, V, C>::range(range)?;
                Ok(self.sublevel.clear_with(range, false, None) $($($await)+)? ?)
            }

            /// The `(key, value)` pairs of `range`, in `K`'s order.
            pub fn iter(
                &self,
                range: impl ::std::ops::RangeBounds<K>,
            ) -> Result<$crate::table::TableIter<$iter, K, (K, V)>, $crate::table::TableError> {
                self.iter_with(range, false, None)
            }

            /// The `(key, value)` pairs of `range`, from the highest key if `reverse`, at most
            /// `limit` of them.
            pub fn iter_with(
                &self,
                range: impl ::std::ops::RangeBounds<K>,
                reverse: bool,
                limit: Option<u64>,
            ) -> Result<$crate::table::TableIter<$iter, K, (K, V)>, $crate::table::TableError> {
                let iter = self.open(range, reverse, limit, true, true)?;
                Ok($crate::table::TableIter::new(iter, $crate::table::TableCodec::<K, V, C>::pair))
            }

            /// The keys of `range` (the values are not sent), in `K`'s order.
            pub fn keys(
                &self,
                range: impl ::std::ops::RangeBounds<K>,
            ) -> Result<$crate::table::TableIter<$iter, K, K>, $crate::table::TableError> {
                let iter = self.open(range, false, None, true, false)?;
                Ok($crate::table::TableIter::new(iter, $crate::table::TableCodec::<K, V, C>::key))
            }

            /// The values of `range` (the keys are not sent), in their keys' order.
            pub fn values(
                &self,
                range: impl ::std::ops::RangeBounds<K>,
            ) -> Result<$crate::table::TableIter<$iter, K, V>, $crate::table::TableError> {
                let iter = self.open(range, false, None, false, true)?;
                Ok($crate::table::TableIter::new(iter, $crate::table::TableCodec::<K, V, C>::value))
            }

            /// A put of `key` and `value` as a batch operation on the database's own keys, for
            /// the client's `batch`: one batch may write to several tables and sublevels, and
            /// stays atomic.
            pub fn put_op(&self, key: &K, value: &V) -> Result<$crate::BatchOp, $crate::table::TableError> {
                let (key, value) = self.encode(key, value)?;
                Ok($crate::BatchOp::Put { key: self.sublevel.key(key), value })
            }

            /// A delete of `key` as a batch operation on the database's own keys (see
            /// [`put_op`](Self::put_op)).
            pub fn del_op(&self, key: &K) -> Result<$crate::BatchOp, $crate::table::TableError> {
                let key = $crate::table::TableCodec::<K, V, C>::encode_key(key)?;
                Ok($crate::BatchOp::Del { key: self.sublevel.key(key) })
            }

            fn encode(
                &self,
                key: &K,
                value: &V,
            ) -> Result<($crate::__bytes::Bytes, $crate::__bytes::Bytes), $crate::table::TableError> {
                Ok((
                    $crate::table::TableCodec::<K, V, C>::encode_key(key)?,
                    $crate::table::TableCodec::<K, V, C>::encode_value(value)?,
                ))
            }

            fn open(
                &self,
                range: impl ::std::ops::RangeBounds<K>,
                reverse: bool,
                limit: Option<u64>,
                keys: bool,
                values: bool,
            ) -> Result<$iter, $crate::table::TableError> {
                let range = $crate::table::TableCodec::<K, V, C>::range(range)?;
                Ok(self.sublevel.iter($crate::IterOptions { range, reverse, limit, keys, values })?)
            }
        }

        impl $crate::table::SeekStored for $iter {
            fn seek_stored(&mut self, target: &[u8]) {
                self.seek(target)
            }
        }

        impl $client {
            /// A typed table over the sublevel `name` (keys `K` in their own order, values `V`
            /// as postcard): see [`Table`].
            pub fn table<K, V>(&self, name: impl AsRef<[u8]>) -> Table<K, V>
            where
                K: $crate::table::storekey::Encode + $crate::table::storekey::Decode,
                V: $crate::__serde::Serialize + $crate::__serde::de::DeserializeOwned,
            {
                Table::new(self.sublevel(name))
            }
        }

        impl $sublevel {
            /// A typed table over the sublevel `name` inside this one: see [`Table`].
            pub fn table<K, V>(&self, name: impl AsRef<[u8]>) -> Table<K, V>
            where
                K: $crate::table::storekey::Encode + $crate::table::storekey::Decode,
                V: $crate::__serde::Serialize + $crate::__serde::de::DeserializeOwned,
            {
                Table::new(self.sublevel(name))
            }
        }
    };
}
