//! The wire messages, one enum per direction, and their postcard encoding.
//!
//! Compatibility rule: variants and error codes are only ever appended, never reordered or
//! removed, and the handshake structs ([`ClientHello`], [`ServerHello`]) and [`Goodbye`] keep
//! their layout forever, so peers of different versions can still tell each other so.
//!
//! The schema (the message types) is in `schema`, the postcard encoding and strict decoding in
//! `codec`, the zero-copy decoders of the bulk messages in `zero_copy` and the direct encoders of
//! the most frequent ones in `direct` (their variant indices in `tags`); everything public is
//! re-exported here.

mod codec;
pub(crate) mod direct;
mod schema;
mod tags;
mod zero_copy;

pub use codec::{DecodeError, WireMessage, copy, decode, decode_prefix, encode, encode_within, encoded_len};
pub use schema::*;
pub use zero_copy::{decode_client, decode_server};

pub(crate) use crate::ids::IdMap;
pub use crate::iter_cost::{ENTRY_OVERHEAD, entry_cost};
