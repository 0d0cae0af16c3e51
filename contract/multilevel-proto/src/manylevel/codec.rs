//! Framing of many-level messages: `varint(len)`, one tag byte, then the protobuf body.
//!
//! The length prefix is the same LEB128 varint as multilevel's own framing, so frames are split
//! with [`FrameDecoder`](crate::frame::FrameDecoder), which checks the declared length against
//! its maximum before buffering the body.

use bytes::{BufMut, BytesMut};
use prost::Message;

use super::messages::{
    Batch, Callback, Clear, Delete, Get, GetMany, GetManyCallback, IdOnly, IteratorAck, IteratorClose, IteratorData,
    IteratorEnd, IteratorError, IteratorOpen, IteratorSeek, Put,
};
use crate::frame::put_prefix;

/// Why a many-level frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManyLevelDecodeError {
    /// The frame has no tag byte.
    #[error("empty frame")]
    Empty,
    /// The tag names no message of this direction.
    #[error("unknown many-level message tag {0}")]
    UnknownTag(u8),
    /// The body is not a valid protobuf message of the tag's type.
    #[error("malformed many-level message (tag {tag}): {reason}")]
    Malformed {
        /// The frame's tag.
        tag: u8,
        /// What was wrong.
        reason: String,
    },
}

impl ManyLevelDecodeError {
    /// The id (field 1) of the malformed body, if it can still be read, so the request can be
    /// answered with an error instead of hanging.
    pub fn request_id(frame: &[u8]) -> Option<u32> {
        let body = frame.get(1..)?;
        IdOnly::decode(body).ok()?.id
    }
}

/// Appends one frame: the varint length of tag and body, the tag, the body.
pub fn encode_message<M: Message>(tag: u8, msg: &M, out: &mut BytesMut) {
    let body = msg.encoded_len();
    // Frames are far below 4 GiB: the largest is an iterator batch bounded by configuration.
    let len = u32::try_from(body + 1).unwrap_or(u32::MAX);
    out.reserve(body + 6);
    put_prefix(out, len);
    out.put_u8(tag);
    // Cannot fail: a BytesMut grows as needed.
    let _ = msg.encode(out);
}

fn decode_body<M: Message + Default>(tag: u8, body: &[u8]) -> Result<M, ManyLevelDecodeError> {
    M::decode(body).map_err(|err| ManyLevelDecodeError::Malformed { tag, reason: err.to_string() })
}

/// A message from a guest to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestMessage {
    /// Tag 0.
    Get(Get),
    /// Tag 1.
    Put(Put),
    /// Tag 2.
    Delete(Delete),
    /// Tag 3.
    Batch(Batch),
    /// Tag 4.
    Iterator(IteratorOpen),
    /// Tag 5.
    Clear(Clear),
    /// Tag 6.
    GetMany(GetMany),
    /// Tag 7.
    IteratorClose(IteratorClose),
    /// Tag 8.
    IteratorAck(IteratorAck),
    /// Tag 9.
    IteratorSeek(IteratorSeek),
}

impl GuestMessage {
    /// The message's tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            GuestMessage::Get(_) => 0,
            GuestMessage::Put(_) => 1,
            GuestMessage::Delete(_) => 2,
            GuestMessage::Batch(_) => 3,
            GuestMessage::Iterator(_) => 4,
            GuestMessage::Clear(_) => 5,
            GuestMessage::GetMany(_) => 6,
            GuestMessage::IteratorClose(_) => 7,
            GuestMessage::IteratorAck(_) => 8,
            GuestMessage::IteratorSeek(_) => 9,
        }
    }

    /// Appends the message as one frame, length prefix included.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = self.tag();
        match self {
            GuestMessage::Get(m) => encode_message(tag, m, out),
            GuestMessage::Put(m) => encode_message(tag, m, out),
            GuestMessage::Delete(m) => encode_message(tag, m, out),
            GuestMessage::Batch(m) => encode_message(tag, m, out),
            GuestMessage::Iterator(m) => encode_message(tag, m, out),
            GuestMessage::Clear(m) => encode_message(tag, m, out),
            GuestMessage::GetMany(m) => encode_message(tag, m, out),
            GuestMessage::IteratorClose(m) => encode_message(tag, m, out),
            GuestMessage::IteratorAck(m) => encode_message(tag, m, out),
            GuestMessage::IteratorSeek(m) => encode_message(tag, m, out),
        }
    }

    /// Decodes a frame body (tag byte and protobuf, without the length prefix).
    pub fn decode(frame: &[u8]) -> Result<Self, ManyLevelDecodeError> {
        let (&tag, body) = frame.split_first().ok_or(ManyLevelDecodeError::Empty)?;
        Ok(match tag {
            0 => GuestMessage::Get(decode_body(tag, body)?),
            1 => GuestMessage::Put(decode_body(tag, body)?),
            2 => GuestMessage::Delete(decode_body(tag, body)?),
            3 => GuestMessage::Batch(decode_body(tag, body)?),
            4 => {
                let msg: IteratorOpen = decode_body(tag, body)?;
                if msg.options.is_none() {
                    let reason = "the required field `options` is missing".to_owned();
                    return Err(ManyLevelDecodeError::Malformed { tag, reason });
                }
                GuestMessage::Iterator(msg)
            }
            5 => GuestMessage::Clear(decode_body(tag, body)?),
            6 => GuestMessage::GetMany(decode_body(tag, body)?),
            7 => GuestMessage::IteratorClose(decode_body(tag, body)?),
            8 => GuestMessage::IteratorAck(decode_body(tag, body)?),
            9 => GuestMessage::IteratorSeek(decode_body(tag, body)?),
            other => return Err(ManyLevelDecodeError::UnknownTag(other)),
        })
    }
}

/// A message from the host to a guest.
#[derive(Debug, Clone, PartialEq)]
pub enum HostMessage {
    /// Tag 0.
    Callback(Callback),
    /// Tag 1.
    IteratorData(IteratorData),
    /// Tag 2.
    GetManyCallback(GetManyCallback),
    /// Tag 3.
    IteratorError(IteratorError),
    /// Tag 4.
    IteratorEnd(IteratorEnd),
}

impl HostMessage {
    /// The message's tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            HostMessage::Callback(_) => 0,
            HostMessage::IteratorData(_) => 1,
            HostMessage::GetManyCallback(_) => 2,
            HostMessage::IteratorError(_) => 3,
            HostMessage::IteratorEnd(_) => 4,
        }
    }

    /// Bytes of the whole frame, length prefix included.
    pub fn encoded_len(&self) -> usize {
        let body = match self {
            HostMessage::Callback(m) => m.encoded_len(),
            HostMessage::IteratorData(m) => m.encoded_len(),
            HostMessage::GetManyCallback(m) => m.encoded_len(),
            HostMessage::IteratorError(m) => m.encoded_len(),
            HostMessage::IteratorEnd(m) => m.encoded_len(),
        };
        prost::length_delimiter_len(body + 1) + body + 1
    }

    /// Appends the message as one frame, length prefix included.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = self.tag();
        match self {
            HostMessage::Callback(m) => encode_message(tag, m, out),
            HostMessage::IteratorData(m) => encode_message(tag, m, out),
            HostMessage::GetManyCallback(m) => encode_message(tag, m, out),
            HostMessage::IteratorError(m) => encode_message(tag, m, out),
            HostMessage::IteratorEnd(m) => encode_message(tag, m, out),
        }
    }

    /// Decodes a frame body (tag byte and protobuf, without the length prefix).
    pub fn decode(frame: &[u8]) -> Result<Self, ManyLevelDecodeError> {
        let (&tag, body) = frame.split_first().ok_or(ManyLevelDecodeError::Empty)?;
        Ok(match tag {
            0 => HostMessage::Callback(decode_body(tag, body)?),
            1 => HostMessage::IteratorData(decode_body(tag, body)?),
            2 => HostMessage::GetManyCallback(decode_body(tag, body)?),
            3 => HostMessage::IteratorError(decode_body(tag, body)?),
            4 => HostMessage::IteratorEnd(decode_body(tag, body)?),
            other => return Err(ManyLevelDecodeError::UnknownTag(other)),
        })
    }
}
