//! The postcard variant indices of the messages that the direct encoders (`direct`) and the
//! zero-copy decoders (`zero_copy`) handle by hand. Both are checked against serde's own
//! encoding by tests, so a wrong index here fails them.

/// Variant index of [`ClientMessage::Get`](super::ClientMessage::Get).
pub(super) const GET: u64 = 4;
/// Variant index of [`ClientMessage::Put`](super::ClientMessage::Put).
pub(super) const PUT: u64 = 6;
/// Variant index of [`ClientMessage::Del`](super::ClientMessage::Del).
pub(super) const DEL: u64 = 7;
/// Variant index of [`ServerMessage::Value`](super::ServerMessage::Value).
pub(super) const VALUE: u64 = 4;
/// Variant index of [`ServerMessage::IterData`](super::ServerMessage::IterData).
pub(super) const ITER_DATA: u64 = 8;
