//! The many-level 2.0 messages (`schema.proto`, proto2), as derived prost messages.
//!
//! Field numbers and types follow many-level's schema exactly. Required fields are always
//! written, even when zero, as the JavaScript encoder does; optional fields are written only
//! when present, so an empty `bytes` value (present) stays distinct from an absent one.
//! prost writes fields in ascending field-number order and skips unknown fields, as the
//! original decoder does.

use bytes::Bytes;

// ---- Guest to host -------------------------------------------------------------------------

/// Tag 0: read one key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Get {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The key.
    #[prost(bytes = "bytes", required, tag = "2")]
    pub key: Bytes,
}

/// Tag 1: set a key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Put {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The key.
    #[prost(bytes = "bytes", required, tag = "2")]
    pub key: Bytes,
    /// The value; absent is taken as empty.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub value: Option<Bytes>,
}

/// Tag 2: remove a key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Delete {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The key.
    #[prost(bytes = "bytes", required, tag = "2")]
    pub key: Bytes,
}

/// One operation of a [`Batch`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// `"put"` or `"del"`.
    #[prost(string, required, tag = "1")]
    pub r#type: String,
    /// The key.
    #[prost(bytes = "bytes", required, tag = "2")]
    pub key: Bytes,
    /// The value of a put.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub value: Option<Bytes>,
}

/// Tag 3: apply operations atomically.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Batch {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The operations, in order.
    #[prost(message, repeated, tag = "2")]
    pub ops: Vec<Operation>,
}

/// The options of an [`IteratorOpen`]: abstract-level's iterator options.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Options {
    /// Yield keys.
    #[prost(bool, optional, tag = "1")]
    pub keys: Option<bool>,
    /// Yield values.
    #[prost(bool, optional, tag = "2")]
    pub values: Option<bool>,
    /// Keys greater than this.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub gt: Option<Bytes>,
    /// Keys greater than or equal to this.
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub gte: Option<Bytes>,
    /// Keys less than this.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub lt: Option<Bytes>,
    /// Keys less than or equal to this.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub lte: Option<Bytes>,
    /// Most entries to yield; negative means no limit.
    #[prost(sint32, optional, tag = "7")]
    pub limit: Option<i32>,
    /// Walk from the highest key down.
    #[prost(bool, optional, tag = "8")]
    pub reverse: Option<bool>,
}

/// Tag 4: open (or, after a reconnect, reopen) an iterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorOpen {
    /// Iterator id, from the guest's own counter.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// Generation: bumped by the guest on each seek.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
    /// How to iterate (required on the wire; a frame without it is malformed).
    #[prost(message, optional, tag = "3")]
    pub options: Option<Options>,
    /// Entries the guest consumed already (after a reconnect).
    #[prost(uint64, required, tag = "4")]
    pub consumed: u64,
    /// The last key consumed: resume after it.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub bookmark: Option<Bytes>,
    /// A seek target to start from.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub seek: Option<Bytes>,
}

/// The options of a [`Clear`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClearOptions {
    /// Keys greater than this.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub gt: Option<Bytes>,
    /// Keys greater than or equal to this.
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub gte: Option<Bytes>,
    /// Keys less than this.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub lt: Option<Bytes>,
    /// Keys less than or equal to this.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub lte: Option<Bytes>,
    /// Most keys to remove; negative means no limit.
    #[prost(sint32, optional, tag = "7")]
    pub limit: Option<i32>,
    /// Count the limit from the highest key down.
    #[prost(bool, optional, tag = "8")]
    pub reverse: Option<bool>,
}

/// Tag 5: remove a range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Clear {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The range; absent means every key.
    #[prost(message, optional, tag = "2")]
    pub options: Option<ClearOptions>,
}

/// Tag 6: read several keys.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMany {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The keys.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub keys: Vec<Bytes>,
}

/// Tag 7: close an iterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorClose {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
}

/// Tag 8: the guest consumed one [`IteratorData`] message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorAck {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// Generation the ack is for.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
    /// Entries consumed so far, across seeks.
    #[prost(uint64, required, tag = "3")]
    pub consumed: u64,
}

/// Tag 9: move an iterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorSeek {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The new generation.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
    /// Where to go.
    #[prost(bytes = "bytes", required, tag = "3")]
    pub target: Bytes,
}

// ---- Host to guest -------------------------------------------------------------------------

/// Tag 0: the answer to get, put, del, batch and clear.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Callback {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// An error code such as `LEVEL_NOT_FOUND`; absent on success.
    #[prost(string, optional, tag = "2")]
    pub error: Option<String>,
    /// The value of a get.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub value: Option<Bytes>,
}

/// Tag 1: a batch of entries, as a flat list `[k, v, k, v, ...]`, `[k, ...]` or `[v, ...]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorData {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// Generation.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
    /// Keys and/or values.
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub data: Vec<Bytes>,
}

/// One slot of a [`GetManyCallback`]; an absent value means not found.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The value.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub value: Option<Bytes>,
}

/// Tag 2: the answer to getMany.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetManyCallback {
    /// Request id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// An error code; absent on success.
    #[prost(string, optional, tag = "2")]
    pub error: Option<String>,
    /// One slot per key, in order.
    #[prost(message, repeated, tag = "3")]
    pub values: Vec<Value>,
}

/// Tag 3: the iterator failed; nothing more follows for this generation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorError {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// Generation.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
    /// The error code.
    #[prost(string, required, tag = "3")]
    pub error: String,
}

/// Tag 4: the iterator has no more entries in this generation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IteratorEnd {
    /// Iterator id.
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// Generation.
    #[prost(uint32, required, tag = "2")]
    pub seq: u32,
}

/// Only the id (field 1) of any message: used to answer a frame whose body is malformed.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct IdOnly {
    /// The id, if it could be read.
    #[prost(uint32, optional, tag = "1")]
    pub(crate) id: Option<u32>,
}
