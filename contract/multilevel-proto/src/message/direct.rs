//! Direct encoders of the most frequent messages: the bytes postcard would write for
//! [`ClientMessage::Get`], [`ClientMessage::Put`], [`ClientMessage::Del`],
//! [`ServerMessage::Value`] and [`ServerMessage::IterData`], written without serde.
//!
//! The generic [`encode_within`] walks a message twice (once to size it, once to write it)
//! and needs an iterator batch as a `Vec<WireEntry>` built for the purpose. These size the
//! frame arithmetically and write each key and value with one copy, an iterator batch
//! straight from the store's. Tests check them byte for byte against the generic encoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::encode_within;
use super::schema::{ClientMessage, ServerMessage};
use super::tags::{DEL, GET, ITER_DATA, PUT, VALUE};
use crate::frame::put_prefix;

/// Appends `msg` as one frame to `out` if its body is at most `max` bytes, as
/// [`encode_within`] does; gets, puts and deletes without serde.
pub(crate) fn encode_client(msg: &ClientMessage, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    match msg {
        ClientMessage::Get { id, key } => encode_keyed(GET, *id, key, None, max, out),
        ClientMessage::Put { id, key, value } => encode_keyed(PUT, *id, key, Some(value), max, out),
        ClientMessage::Del { id, key } => encode_keyed(DEL, *id, key, None, max, out),
        msg => encode_within(msg, max, out),
    }
}

/// Appends `msg` as one frame to `out` if its body is at most `max` bytes, as
/// [`encode_within`] does; the answer to a get without serde.
pub(crate) fn encode_server(msg: &ServerMessage, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    match msg {
        ServerMessage::Value { id, value } => encode_value(*id, value.as_deref(), max, out),
        msg => encode_within(msg, max, out),
    }
}

/// A request of a tag, an id, a key and perhaps a value.
fn encode_keyed(
    tag: u64,
    id: u64,
    key: &[u8],
    value: Option<&Bytes>,
    max: usize,
    out: &mut BytesMut,
) -> Result<(), usize> {
    let len = varint_len(tag) + varint_len(id) + bytes_len(key) + value.map_or(0, |v| bytes_len(v));
    if len > max {
        return Err(len);
    }
    put_prefix(out, u32::try_from(len).map_err(|_| len)?);
    out.reserve(len);
    put_varint(out, tag);
    put_varint(out, id);
    put_bytes(out, key);
    if let Some(value) = value {
        put_bytes(out, value);
    }
    Ok(())
}

/// The length of `n` as a postcard varint.
fn varint_len(n: u64) -> usize {
    // 7 bits per byte, at least one byte.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// The encoded length of a byte string: its length, then its bytes.
fn bytes_len(bytes: &[u8]) -> usize {
    varint_len(bytes.len() as u64) + bytes.len()
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `ServerMessage::Value { id, value }` as one frame to `out` if its body is at most
/// `max` bytes; otherwise appends nothing and returns the body's size.
fn encode_value(id: u64, value: Option<&[u8]>, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    let len = varint_len(VALUE) + varint_len(id) + 1 + value.map_or(0, bytes_len);
    if len > max {
        return Err(len);
    }
    put_prefix(out, u32::try_from(len).map_err(|_| len)?);
    out.reserve(len);
    put_varint(out, VALUE);
    put_varint(out, id);
    match value {
        None => out.put_u8(0),
        Some(value) => {
            out.put_u8(1);
            put_bytes(out, value);
        }
    }
    Ok(())
}

/// An iterator batch as the store read it, with what the iterator delivers.
pub(crate) struct IterBatch<'a> {
    /// The iterator's id on this connection.
    pub(crate) id: u64,
    /// The iterator's epoch (seeks so far).
    pub(crate) epoch: u32,
    /// The entries: each key, and its value when values were read.
    pub(crate) entries: &'a [(Bytes, Option<Bytes>)],
    /// Whether keys are sent.
    pub(crate) keys: bool,
    /// Whether values are sent (an entry read without one sends an empty value).
    pub(crate) values: bool,
    /// The last key read, where the iterator resumes.
    pub(crate) last_key: &'a [u8],
}

impl IterBatch<'_> {
    fn entry_len(&self, (key, value): &(Bytes, Option<Bytes>)) -> usize {
        let key = if self.keys { 1 + bytes_len(key) } else { 1 };
        let value = if self.values { 1 + value.as_deref().map_or(1, bytes_len) } else { 1 };
        key + value
    }
}

/// Appends the `ServerMessage::IterData` of `batch` as one frame to `out`, exactly as the
/// generic encoder would encode the message with its entries as `WireEntry`s (`key` present
/// if `keys`, `value` present if `values`, empty when not read), if its body is at most `max`
/// bytes; otherwise appends nothing and returns the body's size.
pub(crate) fn encode_iter_data(batch: &IterBatch<'_>, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    let entries: usize = batch.entries.iter().map(|entry| batch.entry_len(entry)).sum();
    let len = varint_len(ITER_DATA)
        + varint_len(batch.id)
        + varint_len(u64::from(batch.epoch))
        + varint_len(batch.entries.len() as u64)
        + entries
        + bytes_len(batch.last_key);
    if len > max {
        return Err(len);
    }
    put_prefix(out, u32::try_from(len).map_err(|_| len)?);
    out.reserve(len);
    put_varint(out, ITER_DATA);
    put_varint(out, batch.id);
    put_varint(out, u64::from(batch.epoch));
    put_varint(out, batch.entries.len() as u64);
    for (key, value) in batch.entries {
        if batch.keys {
            out.put_u8(1);
            put_bytes(out, key);
        } else {
            out.put_u8(0);
        }
        if batch.values {
            out.put_u8(1);
            put_bytes(out, value.as_deref().unwrap_or_default());
        } else {
            out.put_u8(0);
        }
    }
    put_bytes(out, batch.last_key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::WireEntry;

    fn generic<M: crate::message::WireMessage>(msg: &M, max: usize) -> (Result<(), usize>, BytesMut) {
        let mut out = BytesMut::new();
        (encode_within(msg, max, &mut out), out)
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for n in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = BytesMut::new();
            put_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
        }
    }

    proptest! {
        #[test]
        fn requests_are_what_the_generic_encoder_writes(
            tag in 0..3u8,
            id in any::<u64>(),
            key in proptest::collection::vec(any::<u8>(), 0..300),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            max in 0usize..700,
        ) {
            let (key, value) = (Bytes::from(key), Bytes::from(value));
            let msg = match tag {
                0 => ClientMessage::Get { id, key },
                1 => ClientMessage::Put { id, key, value },
                _ => ClientMessage::Del { id, key },
            };
            let mut out = BytesMut::new();
            let direct = encode_client(&msg, max, &mut out);
            let (expected, expected_out) = generic(&msg, max);
            prop_assert_eq!(direct, expected);
            prop_assert_eq!(out, expected_out);
        }

        #[test]
        fn value_is_what_the_generic_encoder_writes(
            id in any::<u64>(),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            max in 0usize..400,
        ) {
            let msg = ServerMessage::Value { id, value: value.clone().map(Bytes::from) };
            let mut out = BytesMut::new();
            let direct = encode_server(&msg, max, &mut out);
            let (expected, expected_out) = generic(&msg, max);
            prop_assert_eq!(direct, expected);
            prop_assert_eq!(out, expected_out);
        }

        #[test]
        fn iter_data_is_what_the_generic_encoder_writes(
            id in any::<u64>(),
            epoch in any::<u32>(),
            entries in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..200), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
                0..40,
            ),
            keys in any::<bool>(),
            values in any::<bool>(),
            last_key in proptest::collection::vec(any::<u8>(), 0..200),
            max in 0usize..20_000,
        ) {
            let entries: Vec<(Bytes, Option<Bytes>)> =
                entries.into_iter().map(|(k, v)| (Bytes::from(k), v.map(Bytes::from))).collect();
            let batch = IterBatch { id, epoch, entries: &entries, keys, values, last_key: &last_key };
            let mut out = BytesMut::new();
            let direct = encode_iter_data(&batch, max, &mut out);
            let wire = entries
                .iter()
                .map(|(key, value)| WireEntry {
                    key: keys.then(|| key.clone()),
                    value: values.then(|| value.clone().unwrap_or_default()),
                })
                .collect();
            let msg = ServerMessage::IterData { id, epoch, entries: wire, last_key: Bytes::from(last_key.clone()) };
            let (expected, expected_out) = generic(&msg, max);
            prop_assert_eq!(direct, expected);
            prop_assert_eq!(out, expected_out);
        }
    }
}
