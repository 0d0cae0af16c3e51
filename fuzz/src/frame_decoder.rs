//! Target `frame_decoder`: raw bytes pushed into a `FrameDecoder` in fuzzer-chosen chunks.
//!
//! Input: byte 0 picks `max_frame`, bytes 1..4 the chunk sizes (cycled, 0 = the rest), then
//! the stream. Checked:
//! - no panic, in the decoder or in `decode::<ClientMessage>` / `decode::<ServerMessage>`;
//! - the decoder agrees with a straightforward reference parser written here: same frames,
//!   same error, each frame and error reported as soon as the bytes that make it arrived,
//!   `buffered()` and `partial_body()` match what is left;
//! - no frame is longer than `max_frame`; an error is sticky and drops the buffer;
//! - a body that decodes re-encodes (to a frame no longer than the original body) and decodes
//!   to the same message; encoding is stable; `decode_prefix` agrees with `decode`;
//! - the client's zero-copy `decode_server` gives what `decode::<ServerMessage>` gives, message
//!   or error.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{DecodeError, WireMessage, decode, decode_prefix, decode_server, encode, encoded_len};
use multilevel_proto::{ClientMessage, FrameDecoder, FrameError, ServerMessage};

use crate::{Header, chunks};

/// Bytes of control at the front of an input.
pub const HEADER_LEN: usize = 4;

/// The `max_frame` values byte 0 picks from.
pub const MAX_FRAMES: [u32; 12] = [0, 1, 2, 5, 16, 127, 128, 300, 4096, 1 << 20, u32::MAX - 1, u32::MAX];

/// What the reference parser found.
#[derive(Debug)]
struct Reference {
    /// `(body, offset just past the frame)`.
    frames: Vec<(Vec<u8>, usize)>,
    /// The error, and the stream offset at which it becomes detectable.
    error: Option<(FrameError, usize)>,
    /// Offset of the first byte not consumed by a frame.
    consumed: usize,
    /// For an incomplete frame whose prefix is complete: where its body starts.
    pending_body: Option<usize>,
}

fn reference(stream: &[u8], max_frame: u32) -> Reference {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        // LEB128, at most five bytes.
        let mut value: u64 = 0;
        let mut head = None;
        for i in 0..5 {
            let Some(&byte) = stream.get(pos + i) else { break };
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                head = Some(i + 1);
                break;
            }
            if i == 4 {
                let error = Some((FrameError::BadPrefix, pos + 5));
                return Reference { frames, error, consumed: pos, pending_body: None };
            }
        }
        let Some(head) = head else {
            return Reference { frames, error: None, consumed: pos, pending_body: None };
        };
        if value > u64::from(max_frame) {
            let error = Some((FrameError::TooLarge { declared: value, max: max_frame }, pos + head));
            return Reference { frames, error, consumed: pos, pending_body: None };
        }
        let end = pos + head + value as usize;
        if end > stream.len() {
            return Reference { frames, error: None, consumed: pos, pending_body: Some(pos + head) };
        }
        frames.push((stream[pos + head..end].to_vec(), end));
        pos = end;
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (mut header, stream) = Header::split(data, HEADER_LEN);
    let max_frame = header.pick(&MAX_FRAMES);
    let sizes = [header.byte(), header.byte(), header.byte()];
    let want = reference(stream, max_frame);

    let mut dec = FrameDecoder::new(max_frame);
    assert_eq!(dec.max_frame(), max_frame);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error: Option<FrameError> = None;
    let mut pushed = 0;
    for chunk in chunks(stream, &sizes) {
        dec.push(chunk);
        pushed += chunk.len();
        if let Some(err) = &error {
            // Sticky: nothing is buffered and the same error comes back.
            assert_eq!(dec.buffered(), 0, "a failed decoder buffered input");
            assert_eq!(dec.next_frame().as_ref(), Err(err));
            assert_eq!(dec.partial_body(), None);
            continue;
        }
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() as u64 <= u64::from(max_frame), "frame of {} > max {max_frame}", frame.len());
                    got.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(err) => {
                    assert_eq!(dec.buffered(), 0, "the buffer is dropped on error");
                    assert_eq!(dec.next_frame().as_ref(), Err(&err), "errors are sticky");
                    error = Some(err);
                    break;
                }
            }
        }
        // Everything that the bytes so far make complete has come out, and nothing more.
        let due = want.frames.iter().take_while(|(_, end)| *end <= pushed).count();
        assert_eq!(got.len(), due, "frames out after {pushed} bytes");
        let error_due = want.error.as_ref().filter(|(_, at)| *at <= pushed).map(|(e, _)| e);
        assert_eq!(error.as_ref(), error_due, "error after {pushed} bytes");
    }

    let want_frames: Vec<&Vec<u8>> = want.frames.iter().map(|(f, _)| f).collect();
    let got_frames: Vec<&Vec<u8>> = got.iter().collect();
    assert_eq!(got_frames, want_frames, "frames differ from the reference parser");
    assert_eq!(error.as_ref(), want.error.as_ref().map(|(e, _)| e));
    if error.is_none() {
        assert_eq!(dec.buffered(), stream.len() - want.consumed, "buffered() after the last frame");
        let partial = want.pending_body.map(|start| &stream[start..]);
        assert_eq!(dec.partial_body(), partial, "partial_body()");
    }

    for frame in &got {
        check_message::<ClientMessage>(frame);
        check_message::<ServerMessage>(frame);
        let shared = decode_server(&Bytes::copy_from_slice(frame));
        assert_eq!(shared, decode::<ServerMessage>(frame), "decode_server disagrees with decode");
    }
}

/// Decodes `body` strictly and leniently, and round-trips what decodes.
pub fn check_message<M: WireMessage + PartialEq + Debug>(body: &[u8]) {
    let strict = decode::<M>(body);
    let lenient = decode_prefix::<M>(body);
    match (&strict, &lenient) {
        (Ok(msg), Ok((prefix_msg, rest))) => {
            assert!(rest.is_empty(), "decode accepted {} trailing bytes", rest.len());
            assert_eq!(msg, prefix_msg);
        }
        (Err(DecodeError::TrailingBytes(n)), Ok((_, rest))) => {
            assert!(*n > 0);
            assert_eq!(*n, rest.len(), "trailing byte count");
        }
        (Err(strict_err), Err(lenient_err)) => assert_eq!(strict_err, lenient_err),
        (strict, lenient) => panic!("decode {strict:?} disagrees with decode_prefix {lenient:?}"),
    }
    let Ok(msg) = strict else { return };

    let mut out = BytesMut::new();
    encode(&msg, &mut out);
    let mut dec = FrameDecoder::new(u32::MAX);
    dec.push(&out);
    let frame = dec.next_frame().expect("own framing is valid").expect("a whole frame");
    assert_eq!(dec.buffered(), 0, "encode wrote one frame exactly");
    assert_eq!(frame.len(), encoded_len(&msg), "encoded_len");
    assert!(frame.len() <= body.len(), "re-encoding {msg:?} grew it from {} to {} bytes", body.len(), frame.len());
    let again: M = decode(&frame).unwrap_or_else(|e| panic!("{msg:?} re-encoded to {frame:02x?}, which fails: {e}"));
    assert_eq!(again, msg, "round trip changed the message");
    let mut out2 = BytesMut::new();
    encode(&again, &mut out2);
    assert_eq!(out, out2, "encoding is not stable");
}
