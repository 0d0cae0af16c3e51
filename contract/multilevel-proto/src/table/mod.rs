//! Typed tables: keys and values of Rust types over a sublevel, as heed's `Database<K, V>` or
//! redb's `TableDefinition<K, V>` hand them out.
//!
//! Each adapter's `Client::table::<K, V>("users")` (or `Table::<K, V, Json>::new(sublevel)` for
//! another value codec) gives a view whose methods take and return `K` and `V`; its iterators
//! yield `(K, V)`, `K` or `V`, and a stored entry that does not decode as the table's types is
//! reported as a [`TableError`], never a panic. The runtime-neutral part lives here: the
//! encodings ([`TableCodec`]), the error, the typed iterator ([`TableIter`]) and the macro the
//! adapters expand ([`table_api!`](crate::table_api)).
//!
//! # Keys: order-preserving, with `storekey`
//! A table's keys are encoded with [`storekey`], so that the byte order the store sorts by is the
//! key type's own order: a range of typed keys iterates in `K`'s [`Ord`] order, reverse too.
//! Supported: the unsigned and signed integers (`u8`..`u128`, `i8`..`i128`), `bool`, `char`,
//! `String`, `Vec<T>` and `[T; N]` of supported `T` (so `Vec<u8>` byte strings), `Option<T>`,
//! tuples of up to six supported types, and structs and enums deriving `storekey::Encode` and
//! `storekey::Decode` (add `storekey` to your dependencies for the derives; field order is the
//! sort order). Floats encode too, ordered as their IEEE bits (`-0.0 < 0.0`, NaN last). The
//! order of the integers, strings, byte strings and tuples is checked by property tests
//! against their `Ord`.
//!
//! We compared three crates: `bytekey` (unmaintained; its forks `bytekey-fix` and `bytekey2` are
//! serde-based but little used), `ordcode` (serde-based, last released in 2022) and `storekey`
//! (maintained by SurrealDB, which stores its own keys with it; own derive macros). `storekey`
//! is the one kept up to date and used in production for exactly this job, so we use it rather
//! than write an encoding of our own.
//!
//! # Values: serde, postcard by default
//! Values go through a [`ValueCodec`]: [`Postcard`] (the default: compact, the encoding the wire
//! protocol already uses) or `Json` (cargo feature `json`; so programs in other languages can read them, e.g. a Node
//! program over many-level with `valueEncoding: 'json'` on the same sublevel). Any `V:
//! Serialize + DeserializeOwned` works; postcard is not self-describing, so changing `V`'s shape
//! later needs a migration, as with any schema.

mod api;
mod iter;

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CallError, Entry, KeyRange};

pub use iter::{SeekStored, TableIter};
pub use storekey;

/// How a table stores its values. Implemented by [`Postcard`] and `Json`.
pub trait ValueCodec {
    /// A name for error messages.
    const NAME: &'static str;
    /// The bytes stored for `value`.
    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String>;
    /// The value stored as `bytes`.
    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String>;
}

/// Values as [postcard](https://docs.rs/postcard): compact, Rust-to-Rust. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl ValueCodec for Postcard {
    const NAME: &'static str = "postcard";
    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(value).map_err(|e| e.to_string())
    }
    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }
}

/// Values as JSON text, readable from any language (cargo feature `json`).
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl ValueCodec for Json {
    const NAME: &'static str = "JSON";
    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// What went wrong with a typed table's request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The request itself failed (connection, deadline, server refusal...).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The key could not be encoded (a custom `storekey::Encode` returned an error).
    #[error("cannot encode the key as a {ty}: {message}")]
    EncodeKey {
        /// The key type.
        ty: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// The value could not be encoded (its `Serialize` failed, e.g. a map with non-string keys
    /// in JSON).
    #[error("cannot encode the value as {codec}: {message}")]
    EncodeValue {
        /// The value codec's name.
        codec: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A stored key of the table's sublevel is not an encoded `K`: something wrote raw bytes
    /// there, or the table was opened with another key type.
    #[error("the stored key {key:?} is not a {ty}: {message}")]
    DecodeKey {
        /// The stored key, within the sublevel.
        key: Bytes,
        /// The key type.
        ty: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A stored value is not an encoded `V` in the table's codec.
    #[error("the value stored at {key:?} is not a {ty} in {codec}: {message}")]
    DecodeValue {
        /// The key it is stored at, within the sublevel (absent for values-only iterators).
        key: Option<Bytes>,
        /// The value type.
        ty: &'static str,
        /// The value codec's name.
        codec: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// The encodings of a table with keys `K`, values `V` and value codec `C`: what the adapters'
/// `Table` types call, usable on their own (e.g. to put typed entries into a batch that spans
/// sublevels, through `Sublevel::key(TableCodec::encode_key(..)?)`).
#[derive(Debug)]
pub struct TableCodec<K, V, C = Postcard>(Types<K, V, C>);

/// The marker a table type holds for its key, value and codec types (a function pointer, so
/// that a table is `Send`, `Sync` and `Unpin` whatever they are).
#[doc(hidden)]
pub type Types<K, V, C> = PhantomData<fn() -> (K, V, C)>;

impl<K, V, C> TableCodec<K, V, C>
where
    K: storekey::Encode + storekey::Decode,
    V: Serialize + DeserializeOwned,
    C: ValueCodec,
{
    /// The bytes stored for `key`, in `K`'s order.
    pub fn encode_key(key: &K) -> Result<Bytes, TableError> {
        encode_key(key)
    }

    /// The key stored as `stored`.
    pub fn decode_key(stored: &Bytes) -> Result<K, TableError> {
        storekey::decode(&stored[..]).map_err(|e| TableError::DecodeKey {
            key: stored.clone(),
            ty: std::any::type_name::<K>(),
            message: e.to_string(),
        })
    }

    /// The bytes stored for `value`.
    pub fn encode_value(value: &V) -> Result<Bytes, TableError> {
        C::encode(value).map(Bytes::from).map_err(|message| TableError::EncodeValue { codec: C::NAME, message })
    }

    /// The value stored as `stored` at `key` (the key only names the entry in errors).
    pub fn decode_value(key: Option<&Bytes>, stored: &[u8]) -> Result<V, TableError> {
        C::decode(stored).map_err(|message| TableError::DecodeValue {
            key: key.cloned(),
            ty: std::any::type_name::<V>(),
            codec: C::NAME,
            message,
        })
    }

    /// The stored-key range of a range of typed keys (`..`, `a..b`, `a..=b`, `a..`...).
    pub fn range(range: impl RangeBounds<K>) -> Result<KeyRange, TableError> {
        let bound = |bound: Bound<&K>| -> Result<Bound<Bytes>, TableError> {
            Ok(match bound {
                Bound::Included(key) => Bound::Included(Self::encode_key(key)?),
                Bound::Excluded(key) => Bound::Excluded(Self::encode_key(key)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        Ok(KeyRange { lower: bound(range.start_bound())?, upper: bound(range.end_bound())? })
    }

    /// A key and value of an iterator's entry.
    pub fn pair(entry: Entry) -> Result<(K, V), TableError> {
        let key = Self::decode_key(&entry.key)?;
        let value = Self::decode_value(Some(&entry.key), &entry.value)?;
        Ok((key, value))
    }

    /// The key of a keys-only iterator's entry.
    pub fn key(entry: Entry) -> Result<K, TableError> {
        Self::decode_key(&entry.key)
    }

    /// The value of a values-only iterator's entry.
    pub fn value(entry: Entry) -> Result<V, TableError> {
        Self::decode_value(None, &entry.value)
    }
}

fn encode_key<K: storekey::Encode>(key: &K) -> Result<Bytes, TableError> {
    storekey::encode_vec(key)
        .map(Bytes::from)
        .map_err(|e| TableError::EncodeKey { ty: std::any::type_name::<K>(), message: e.to_string() })
}

#[cfg(test)]
mod tests;
