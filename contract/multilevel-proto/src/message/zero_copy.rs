//! Zero-copy decoding of the messages that carry bulk data: keys and values as slices of the
//! frame instead of copies.

use bytes::Bytes;

use super::codec::{DecodeError, decode};
use super::schema::{ClientMessage, ServerMessage};

/// Decodes a frame body from the server exactly as [`decode`] does (same messages, same
/// errors), except that the keys and values of [`ServerMessage::IterData`] and
/// [`ServerMessage::Value`] are slices of `body` (a reference count each) rather than copies
/// (an allocation and a `memcpy` each). They keep `body`'s buffer alive while they live.
pub fn decode_server(body: &Bytes) -> Result<ServerMessage, DecodeError> {
    match shared::server_message(body) {
        Some(msg) => Ok(msg),
        // Anything else, including every malformed body, goes through the strict decoder.
        None => decode(body),
    }
}

/// Decodes a frame body from a client exactly as [`decode`] does (same messages, same errors),
/// except that the keys and values of [`ClientMessage::Get`], [`ClientMessage::Put`] and
/// [`ClientMessage::Del`] are slices of `body` (a reference count each) rather than copies.
/// They keep `body`'s buffer alive while they live.
pub fn decode_client(body: &Bytes) -> Result<ClientMessage, DecodeError> {
    match shared::client_message(body) {
        Some(msg) => Ok(msg),
        // Anything else, including every malformed body, goes through the strict decoder.
        None => decode(body),
    }
}

/// The zero-copy decoding of the server messages that carry bulk data, mirroring postcard's
/// format rule for rule; `None` means "not one of these, or not valid: use [`decode`]".
mod shared {
    use bytes::Bytes;

    use super::{ClientMessage, ServerMessage};
    use crate::message::WireEntry;
    use crate::message::tags::{DEL, GET, ITER_DATA, PUT, VALUE};

    struct Reader<'a> {
        body: &'a Bytes,
        pos: usize,
    }

    impl Reader<'_> {
        fn byte(&mut self) -> Option<u8> {
            let byte = *self.body.get(self.pos)?;
            self.pos += 1;
            Some(byte)
        }

        /// A postcard varint of at most `max_len` bytes whose last byte is at most `last_max`.
        fn varint(&mut self, max_len: usize, last_max: u8) -> Option<u64> {
            let mut out = 0u64;
            for i in 0..max_len {
                let byte = self.byte()?;
                out |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return (i < max_len - 1 || byte <= last_max).then_some(out);
                }
            }
            None
        }

        fn u32(&mut self) -> Option<u32> {
            self.varint(5, 0x0f).and_then(|n| u32::try_from(n).ok())
        }

        fn u64(&mut self) -> Option<u64> {
            self.varint(10, 0x01)
        }

        fn bytes(&mut self) -> Option<Bytes> {
            let len = usize::try_from(self.u64()?).ok()?;
            let end = self.pos.checked_add(len).filter(|end| *end <= self.body.len())?;
            let bytes = self.body.slice(self.pos..end);
            self.pos = end;
            Some(bytes)
        }

        fn option_bytes(&mut self) -> Option<Option<Bytes>> {
            match self.byte()? {
                0 => Some(None),
                1 => self.bytes().map(Some),
                _ => None,
            }
        }
    }

    pub(super) fn client_message(body: &Bytes) -> Option<ClientMessage> {
        let mut r = Reader { body, pos: 0 };
        let msg = match u64::from(r.u32()?) {
            GET => ClientMessage::Get { id: r.u64()?, key: r.bytes()? },
            PUT => ClientMessage::Put { id: r.u64()?, key: r.bytes()?, value: r.bytes()? },
            DEL => ClientMessage::Del { id: r.u64()?, key: r.bytes()? },
            _ => return None,
        };
        (r.pos == body.len()).then_some(msg)
    }

    pub(super) fn server_message(body: &Bytes) -> Option<ServerMessage> {
        let mut r = Reader { body, pos: 0 };
        let msg = match u64::from(r.u32()?) {
            VALUE => ServerMessage::Value { id: r.u64()?, value: r.option_bytes()? },
            ITER_DATA => {
                let id = r.u64()?;
                let epoch = r.u32()?;
                let len = usize::try_from(r.u64()?).ok()?;
                // Each entry takes at least two bytes: never trust `len` for the allocation.
                let mut entries = Vec::with_capacity(len.min((body.len() - r.pos) / 2));
                for _ in 0..len {
                    entries.push(WireEntry { key: r.option_bytes()?, value: r.option_bytes()? });
                }
                ServerMessage::IterData { id, epoch, entries, last_key: r.bytes()? }
            }
            _ => return None,
        };
        (r.pos == body.len()).then_some(msg)
    }
}
