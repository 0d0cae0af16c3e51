//! The bodies of the fuzz targets in `fuzz_targets/`, as plain functions so that the
//! committed corpus and crash inputs can also be replayed by `cargo test` (see `tests/`).
//!
//! - [`frame_decoder::run`]: raw bytes through `FrameDecoder` and both message decoders.
//! - [`server_input::run`]: a `ServerConnection` after a valid hello, fed arbitrary bytes.
//! - [`client_input::run`]: a `Client` after a valid server hello, fed arbitrary bytes.
//! - [`model::run`]: client + server + `MemoryStore` in a small simulation, checked against a
//!   `BTreeMap` model.

pub mod client_input;
pub mod frame_decoder;
pub mod model;
pub mod seeds;
pub mod server_input;

use multilevel_proto::FrameDecoder;
use multilevel_proto::message::{DecodeError, WireMessage, decode};

/// Control bytes at the front of a raw-bytes input: each read takes the next byte, or 0 once
/// they run out, so every input is valid.
pub struct Header<'a> {
    bytes: &'a [u8],
}

impl<'a> Header<'a> {
    /// Splits `data` into `len` control bytes (zero-padded) and the rest.
    pub fn split(data: &'a [u8], len: usize) -> (Self, &'a [u8]) {
        let n = len.min(data.len());
        (Self { bytes: &data[..n] }, &data[n..])
    }

    /// The next control byte.
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((first, rest)) => {
                self.bytes = rest;
                *first
            }
            None => 0,
        }
    }

    /// One of `choices`, picked by the next byte.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }
}

/// Splits a stream into chunks whose sizes cycle through `sizes` (0 means "the rest").
pub fn chunks<'a>(mut stream: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while !stream.is_empty() {
        let size = match sizes[i % sizes.len()] {
            0 => stream.len(),
            n => usize::from(n).min(stream.len()),
        };
        let (chunk, rest) = stream.split_at(size);
        out.push(chunk);
        stream = rest;
        i += 1;
    }
    out
}

/// Splits a byte stream written by one side into messages, asserting that every frame holds a
/// valid message. Used on what the state machines send: their output must always decode.
pub struct OutputReader<M> {
    decoder: FrameDecoder,
    /// Every message read so far, in order.
    pub messages: Vec<M>,
}

impl<M: WireMessage + std::fmt::Debug> OutputReader<M> {
    /// A reader accepting frames up to `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        Self { decoder: FrameDecoder::new(max_frame), messages: Vec::new() }
    }

    /// Reads `bytes`; returns how many messages they completed (appended to `messages`).
    pub fn read(&mut self, bytes: &[u8]) -> usize {
        self.decoder.push(bytes);
        let before = self.messages.len();
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    let msg: Result<M, DecodeError> = decode(&frame);
                    match msg {
                        Ok(msg) => self.messages.push(msg),
                        Err(err) => panic!("a state machine sent an undecodable frame {frame:02x?}: {err}"),
                    }
                }
                Ok(None) => break,
                Err(err) => panic!("a state machine sent bad framing: {err}"),
            }
        }
        self.messages.len() - before
    }

    /// Bytes of a frame started but not finished.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }
}
