//! Telling a multilevel server's handshake answer from anything else that may answer.

use super::error::ConnectionError;
use crate::message::{Goodbye, GoodbyeReason, MAGIC};

/// The first body byte of a [`ServerMessage::Hello`] and of a [`ServerMessage::Goodbye`]: the
/// postcard tags of their variants.
const HELLO_TAG: u8 = 0;
const GOODBYE_TAG: u8 = 1;

/// Whether `partial`, the start of the first frame's body, may begin a hello (its tag, then
/// the magic) or a goodbye, the only frames a server sends first.
pub(super) fn could_start_handshake_answer(partial: &[u8]) -> bool {
    match partial.split_first() {
        None => true,
        Some((&HELLO_TAG, magic)) => MAGIC.starts_with(&magic[..magic.len().min(MAGIC.len())]),
        Some((&GOODBYE_TAG, _)) => true,
        Some(_) => false,
    }
}

/// What a peer that fails the handshake's framing or decoding is: not a multilevel server.
pub(super) fn not_multilevel(err: &dyn std::fmt::Display) -> ConnectionError {
    ConnectionError::NotMultilevel(format!("its first answer is not a multilevel handshake ({err})"))
}

pub(super) fn goodbye_error(goodbye: Goodbye) -> ConnectionError {
    match goodbye.reason {
        GoodbyeReason::BadMagic | GoodbyeReason::VersionMismatch => ConnectionError::Incompatible(goodbye.message),
        GoodbyeReason::Unauthenticated => ConnectionError::Unauthenticated(goodbye.message),
        _ => ConnectionError::Goodbye(goodbye),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::frame::FrameDecoder;
    use crate::message::{PROTOCOL_VERSION, ServerHello, ServerMessage, encode};

    #[test]
    fn handshake_answers_start_with_the_tags_the_partial_check_expects() {
        let hello = ServerHello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            features: 0,
            max_frame: 1 << 20,
            max_key_size: 512,
            max_in_flight: 64,
            max_iterators: 8,
            readonly: false,
        };
        let goodbye = Goodbye { reason: GoodbyeReason::Unauthenticated, message: "no".into() };
        for msg in [ServerMessage::Hello(hello), ServerMessage::Goodbye(goodbye)] {
            let mut out = BytesMut::new();
            encode(&msg, &mut out);
            // Every cut of a real answer may be a handshake answer.
            for cut in 0..out.len() {
                let mut decoder = FrameDecoder::new(1 << 20);
                decoder.push(&out[..cut]);
                assert!(decoder.partial_body().is_none_or(could_start_handshake_answer), "{msg:?} cut at {cut}");
            }
        }
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.push(b"HTTP/1.1 400 Bad Request\r\n");
        assert!(!decoder.partial_body().is_none_or(could_start_handshake_answer));
    }
}
