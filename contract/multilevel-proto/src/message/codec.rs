//! The postcard encoding of the messages: strict decoding, framed encoding, sizes.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::schema::{ClientMessage, ServerMessage};
use crate::frame::put_prefix;

/// Why a frame body could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame names a message variant this version does not know.
    #[error("unknown message variant {0}")]
    UnknownVariant(u32),
    /// The frame has bytes left over after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The frame is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Number of variants in [`ClientMessage`]; a tag at or above it is unknown.
const CLIENT_VARIANTS: u32 = 21;
/// Number of variants in [`ServerMessage`]; a tag at or above it is unknown.
const SERVER_VARIANTS: u32 = 17;

/// A message type that travels in frames.
pub trait WireMessage: Serialize + for<'de> Deserialize<'de> + Sized {
    /// How many variants this version knows.
    const VARIANTS: u32;
}

impl WireMessage for ClientMessage {
    const VARIANTS: u32 = CLIENT_VARIANTS;
}

impl WireMessage for ServerMessage {
    const VARIANTS: u32 = SERVER_VARIANTS;
}

/// Reads the postcard varint tag at the front of a frame.
fn peek_tag(body: &[u8]) -> Option<u32> {
    let mut value: u32 = 0;
    for (i, byte) in body.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Decodes one frame body, strictly: unknown variants and trailing bytes are errors.
pub fn decode<M: WireMessage>(body: &[u8]) -> Result<M, DecodeError> {
    let (msg, rest) = decode_prefix::<M>(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Decodes the message at the front of a frame body and returns the bytes after it.
///
/// Only the handshake uses this leniency, so that a newer peer whose hello grew can still be
/// told which version this side speaks.
pub fn decode_prefix<M: WireMessage>(body: &[u8]) -> Result<(M, &[u8]), DecodeError> {
    match peek_tag(body) {
        Some(tag) if tag >= M::VARIANTS => return Err(DecodeError::UnknownVariant(tag)),
        Some(_) => {}
        None => return Err(DecodeError::Malformed("missing or invalid message tag".into())),
    }
    postcard::take_from_bytes::<M>(body).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Appends `msg` as one frame (length prefix and body) to `out`.
pub fn encode<M: WireMessage>(msg: &M, out: &mut BytesMut) {
    let len = postcard::experimental::serialized_size(msg).expect("wire messages always serialize");
    put_prefix(out, u32::try_from(len).expect("wire messages are far below 4 GiB"));
    out.reserve(len);
    postcard::serialize_with_flavor::<M, _, ()>(msg, AppendBytes(out)).expect("wire messages always serialize");
}

/// Appends `msg` as one frame to `out` if its body is at most `max` bytes; otherwise appends
/// nothing and returns the body's size.
pub fn encode_within<M: WireMessage>(msg: &M, max: usize, out: &mut BytesMut) -> Result<(), usize> {
    let len = postcard::experimental::serialized_size(msg).expect("wire messages always serialize");
    if len > max {
        return Err(len);
    }
    put_prefix(out, u32::try_from(len).expect("wire messages are far below 4 GiB"));
    out.reserve(len);
    postcard::serialize_with_flavor::<M, _, ()>(msg, AppendBytes(out)).expect("wire messages always serialize");
    Ok(())
}

/// Lets postcard append straight into a `BytesMut` we only borrow, a slice at a time (keys and
/// values are copied with one `memcpy` each, not byte by byte).
struct AppendBytes<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for AppendBytes<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend_from_slice(&[data]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The size of `msg`'s frame body, for budget checks before encoding.
pub fn encoded_len<M: WireMessage>(msg: &M) -> usize {
    postcard::experimental::serialized_size(msg).expect("wire messages always serialize")
}

/// A `Bytes` holding a copy of `data`.
pub fn copy(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;
    use crate::message::*;

    #[test]
    fn every_client_variant_round_trips_and_the_count_is_right() {
        let samples = crate::sim::samples::client_messages();
        assert_eq!(samples.len() as u32, CLIENT_VARIANTS);
        for msg in samples {
            let mut out = BytesMut::new();
            encode(&msg, &mut out);
            let mut dec = FrameDecoder::new(1 << 20);
            dec.push(&out);
            let body = dec.next_frame().unwrap().unwrap();
            assert_eq!(decode::<ClientMessage>(&body).unwrap(), msg);
        }
    }

    fn server_samples() -> Vec<ServerMessage> {
        let entry = |k: &[u8], v: Option<&[u8]>| WireEntry { key: Some(copy(k)), value: v.map(copy) };
        vec![
            ServerMessage::Value { id: 1, value: None },
            ServerMessage::Value { id: u64::MAX, value: Some(copy(&[0xff; 200])) },
            ServerMessage::Value { id: 300, value: Some(copy(b"")) },
            ServerMessage::IterData { id: 7, epoch: 0, entries: vec![], last_key: copy(b"") },
            ServerMessage::IterData {
                id: 7,
                epoch: u32::MAX,
                entries: vec![
                    entry(b"a", Some(b"1")),
                    entry(b"", None),
                    WireEntry { key: None, value: Some(copy(&[0x80; 130])) },
                    WireEntry { key: None, value: None },
                ],
                last_key: copy(b"zz"),
            },
            ServerMessage::Done { id: 3 },
            ServerMessage::IterEnd { id: 9, epoch: 2 },
            ServerMessage::ConditionFailed { id: 4, index: 2, current: Some(copy(b"seen")) },
            ServerMessage::ConditionFailed { id: 5, index: 0, current: None },
            ServerMessage::Counter { id: 6, value: i64::MIN },
        ]
    }

    #[test]
    fn decode_server_agrees_with_decode_on_valid_and_damaged_bodies() {
        for msg in server_samples() {
            let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
            assert_eq!(decode_server(&body), Ok(msg.clone()));
            // Every truncation, every extension and every single-byte change.
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|cut| body[..cut].to_vec()).collect();
            for extra in [0u8, 1, 0x80, 0xff] {
                variants.push([&body[..], &[extra]].concat());
            }
            for i in 0..body.len() {
                for byte in [0u8, 1, 2, 0x0f, 0x10, 0x7f, 0x80, 0xff, body[i] ^ 1] {
                    let mut damaged = body.to_vec();
                    damaged[i] = byte;
                    variants.push(damaged);
                }
            }
            for variant in variants {
                let variant = Bytes::from(variant);
                assert_eq!(decode_server(&variant), decode::<ServerMessage>(&variant), "{variant:02x?}");
            }
        }
    }

    #[test]
    fn decode_client_agrees_with_decode_on_valid_and_damaged_bodies() {
        let mut samples = crate::sim::samples::client_messages();
        samples.push(ClientMessage::Get { id: u64::MAX, key: copy(&[0x80; 200]) });
        samples.push(ClientMessage::Put { id: 300, key: copy(&[0xff; 130]), value: copy(&[7; 300]) });
        for msg in samples {
            let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
            assert_eq!(decode_client(&body), Ok(msg.clone()));
            let mut variants: Vec<Vec<u8>> = (0..body.len()).map(|cut| body[..cut].to_vec()).collect();
            for extra in [0u8, 1, 0x80, 0xff] {
                variants.push([&body[..], &[extra]].concat());
            }
            for i in 0..body.len() {
                for byte in [0u8, 1, 2, 4, 6, 7, 0x0f, 0x10, 0x7f, 0x80, 0xff, body[i] ^ 1] {
                    let mut damaged = body.to_vec();
                    damaged[i] = byte;
                    variants.push(damaged);
                }
            }
            for variant in variants {
                let variant = Bytes::from(variant);
                assert_eq!(decode_client(&variant), decode::<ClientMessage>(&variant), "{variant:02x?}");
            }
        }
    }

    #[test]
    fn decode_client_shares_the_frame() {
        let msg = ClientMessage::Put { id: 1, key: copy(b"key"), value: copy(b"value") };
        let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
        let Ok(ClientMessage::Put { value, .. }) = decode_client(&body) else { panic!() };
        assert_eq!(value.as_ptr(), body[body.len() - 5..].as_ptr(), "the value is a slice of the body");
    }

    #[test]
    fn decode_server_shares_the_frame() {
        let msg = ServerMessage::Value { id: 1, value: Some(copy(b"value")) };
        let body = Bytes::from(postcard::to_stdvec(&msg).unwrap());
        let Ok(ServerMessage::Value { value: Some(value), .. }) = decode_server(&body) else { panic!() };
        assert_eq!(value.as_ptr(), body[body.len() - 5..].as_ptr(), "the value is a slice of the body");
    }

    #[test]
    fn huge_varints_are_rejected_like_postcard_does() {
        // Tag Value, id of ten bytes with a last byte above 1, and a u32 epoch of five bytes
        // with a last byte above 0x0f.
        let id = [0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00];
        let epoch = [0x08, 0x01, 0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 0x00];
        for body in [&id[..], &epoch[..]] {
            let body = Bytes::copy_from_slice(body);
            assert!(decode_server(&body).is_err());
            assert_eq!(decode_server(&body), decode::<ServerMessage>(&body));
        }
    }

    #[test]
    fn server_variant_count_matches() {
        // The variant after the last known one must be unknown, the last one known.
        let error = RemoteError::new(ErrorCode::Compacted, "trimmed");
        let last = ServerMessage::WatchError { id: 1, error, oldest: Some(7) };
        let body = postcard::to_stdvec(&last).unwrap();
        assert_eq!(peek_tag(&body), Some(SERVER_VARIANTS - 1));
        assert_eq!(decode::<ServerMessage>(&body).unwrap(), last);
    }

    #[test]
    fn unknown_variant_is_typed() {
        assert_eq!(
            decode::<ClientMessage>(&[CLIENT_VARIANTS as u8]),
            Err(DecodeError::UnknownVariant(CLIENT_VARIANTS))
        );
        assert_eq!(decode::<ServerMessage>(&[0x80, 0x01]), Err(DecodeError::UnknownVariant(128)));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = postcard::to_stdvec(&ClientMessage::Ping { nonce: 5 }).unwrap();
        body.extend_from_slice(&[0, 0]);
        assert_eq!(decode::<ClientMessage>(&body), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn truncated_and_empty_bodies_are_malformed() {
        let body =
            postcard::to_stdvec(&ClientMessage::Put { id: 1, key: copy(b"key"), value: copy(b"value") }).unwrap();
        for cut in 0..body.len() {
            assert!(matches!(decode::<ClientMessage>(&body[..cut]), Err(DecodeError::Malformed(_))), "cut {cut}");
        }
    }
}
