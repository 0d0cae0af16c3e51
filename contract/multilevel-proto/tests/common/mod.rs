//! Helpers the simulation tests share.

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{ClientHello, encode};
use multilevel_proto::sim::Sim;
use multilevel_proto::{
    ClientConfig, ClientMessage, IterPoll, Request, RequestError, Response, ServerConfig, ServerConnection,
    ServerMessage,
};

/// `Sim::new` starting now (the proto crate itself never reads the clock).
pub(crate) trait NewNow {
    fn new_now(client: ClientConfig, server: ServerConfig) -> Sim;
}

impl NewNow for Sim {
    fn new_now(client: ClientConfig, server: ServerConfig) -> Sim {
        Sim::new(client, server, std::time::Instant::now())
    }
}

pub(crate) fn b(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

pub(crate) fn answer(sim: &Sim, id: u64) -> Result<Response, RequestError> {
    sim.answers.get(&id).unwrap_or_else(|| panic!("request {id} unanswered")).result.clone()
}

pub(crate) fn put(key: &[u8], value: &[u8]) -> Request {
    Request::Put { key: b(key), value: b(value) }
}

pub(crate) fn hello(version: u16, magic: [u8; 4]) -> BytesMut {
    let mut out = BytesMut::new();
    let hello = ClientHello { magic, version, features: 0, session: 9, max_frame: 1 << 20 };
    encode(&ClientMessage::Hello(hello), &mut out);
    out
}

pub(crate) fn drain(sim: &mut Sim, id: u64) -> (Vec<Bytes>, IterPoll) {
    let mut keys = Vec::new();
    loop {
        match sim.iterator_next(id) {
            IterPoll::Entry(entry) => keys.push(entry.key.unwrap_or_default()),
            other => return (keys, other),
        }
    }
}

/// Decodes every server message in `bytes`.
pub(crate) fn server_messages(bytes: &[u8]) -> Vec<ServerMessage> {
    let mut dec = multilevel_proto::FrameDecoder::new(1 << 24);
    dec.push(bytes);
    let mut out = Vec::new();
    while let Some(frame) = dec.next_frame().unwrap() {
        out.push(multilevel_proto::message::decode(&frame).unwrap());
    }
    out
}

pub(crate) fn transmitted(server: &mut ServerConnection) -> Vec<ServerMessage> {
    let mut bytes = Vec::new();
    while let Some(chunk) = server.poll_transmit() {
        bytes.extend_from_slice(&chunk);
    }
    server_messages(&bytes)
}
