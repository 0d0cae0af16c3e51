//! Framing: every message travels as a LEB128 varint length followed by that many bytes.
//!
//! [`FrameDecoder`] is a push decoder: feed it whatever bytes arrived, split anywhere, and pull
//! whole frames out. It checks a frame's declared length against its maximum as soon as the
//! prefix is complete, before buffering the body, so a hostile prefix of several GiB costs
//! nothing but an error.

use bytes::{Buf, Bytes, BytesMut};

/// The longest varint length prefix accepted: five bytes encode any `u32`.
pub const MAX_PREFIX_LEN: usize = 5;

/// Why a byte stream could not be split into frames. The connection cannot continue after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared frame length exceeds the configured maximum.
    #[error("frame of {declared} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Length the peer declared.
        declared: u64,
        /// The maximum this side accepts.
        max: u32,
    },
    /// The length prefix is not a valid varint of at most five bytes.
    #[error("malformed frame length prefix")]
    BadPrefix,
}

/// Outcome of reading a length prefix from the front of a buffer.
enum Prefix {
    /// Not enough bytes yet.
    Partial,
    /// `(prefix_len, body_len)`.
    Complete(usize, u64),
}

fn read_prefix(buf: &[u8]) -> Result<Prefix, FrameError> {
    let mut value: u64 = 0;
    for (i, byte) in buf.iter().take(MAX_PREFIX_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Prefix::Complete(i + 1, value));
        }
    }
    if buf.len() >= MAX_PREFIX_LEN { Err(FrameError::BadPrefix) } else { Ok(Prefix::Partial) }
}

/// A push decoder that splits a byte stream into frames.
///
/// Call [`push`](Self::push) with each chunk read from the transport, then
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)` ("need more bytes").
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: u32,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        Self { buf: BytesMut::new(), max_frame, failed: None }
    }

    /// The largest frame body this decoder accepts.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Changes the largest accepted frame body, e.g. after a handshake negotiated it.
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Appends bytes that arrived from the transport. Call [`next_frame`](Self::next_frame)
    /// afterwards to take out what became complete.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete frame body out of the buffer.
    ///
    /// Returns `Ok(None)` when more bytes are needed. An error is sticky: the stream cannot be
    /// resynchronised, so every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match read_prefix(&self.buf) {
            Ok(Prefix::Partial) => Ok(None),
            Ok(Prefix::Complete(head, len)) => {
                if len > u64::from(self.max_frame) {
                    return Err(self.fail(FrameError::TooLarge { declared: len, max: self.max_frame }));
                }
                // Bounded by max_frame, checked above, so the cast cannot truncate.
                let len = len as usize;
                if self.buf.len() < head + len {
                    return Ok(None);
                }
                self.buf.advance(head);
                Ok(Some(self.buf.split_to(len).freeze()))
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// The body bytes of the frame being received that have arrived so far, if its length
    /// prefix is complete. Lets a receiver reject a peer early, e.g. on a bad handshake.
    pub fn partial_body(&self) -> Option<&[u8]> {
        match read_prefix(&self.buf) {
            Ok(Prefix::Complete(head, len)) => {
                let end = self.buf.len().min(head.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)));
                Some(&self.buf[head..end])
            }
            _ => None,
        }
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.buf = BytesMut::new();
        self.failed = Some(err.clone());
        err
    }
}

/// Appends `len` as a LEB128 varint.
pub fn put_prefix(out: &mut BytesMut, mut len: u32) {
    while len >= 0x80 {
        out.extend_from_slice(&[(len as u8) | 0x80]);
        len >>= 7;
    }
    out.extend_from_slice(&[len as u8]);
}

/// Appends one frame holding `body` to `out`.
pub fn encode_frame(out: &mut BytesMut, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("frame bodies are far below 4 GiB");
    put_prefix(out, len);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bodies: &[&[u8]]) -> BytesMut {
        let mut out = BytesMut::new();
        for body in bodies {
            encode_frame(&mut out, body);
        }
        out
    }

    #[test]
    fn every_split_decodes_the_same_frames() {
        let big = vec![7u8; 300];
        let bodies: Vec<&[u8]> = vec![b"", b"a", &big, b"hello", b""];
        let stream = frames(&bodies);
        for split in 0..=stream.len() {
            let mut dec = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                dec.push(part);
                while let Some(frame) = dec.next_frame().unwrap() {
                    got.push(frame.to_vec());
                }
            }
            let want: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, want, "split at {split}");
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn byte_at_a_time() {
        let stream = frames(&[b"abc", &[0u8; 200], b"z"]);
        let mut dec = FrameDecoder::new(1024);
        let mut count = 0;
        for byte in stream.iter() {
            dec.push(&[*byte]);
            while dec.next_frame().unwrap().is_some() {
                count += 1;
            }
        }
        assert_eq!(count, 3);
    }

    #[test]
    fn oversized_length_is_rejected_from_the_prefix_alone() {
        let mut prefix = BytesMut::new();
        put_prefix(&mut prefix, 3 << 30); // a 3 GiB frame, no body
        let mut dec = FrameDecoder::new(1 << 20);
        dec.push(&prefix);
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge { declared: 3 << 30, max: 1 << 20 }));
        // Sticky, and nothing is buffered afterwards.
        dec.push(&[0; 64]);
        assert_eq!(dec.buffered(), 0);
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn prefix_of_six_continuation_bytes_is_malformed() {
        let mut dec = FrameDecoder::new(u32::MAX);
        dec.push(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(dec.next_frame(), Err(FrameError::BadPrefix));
    }

    #[test]
    fn partial_prefix_waits() {
        let mut dec = FrameDecoder::new(1 << 20);
        dec.push(&[0x80]);
        assert_eq!(dec.next_frame(), Ok(None));
        dec.push(&[0x01]); // 128
        assert_eq!(dec.next_frame(), Ok(None));
        dec.push(&[9; 128]);
        assert_eq!(dec.next_frame().unwrap().unwrap().len(), 128);
    }
}
