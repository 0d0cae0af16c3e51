//! The handshake of a multilevel connection: the client's hello, then its token when the
//! server requires one, answered by the server's hello.

use bytes::Bytes;

use super::{Phase, ServerConnection, ServerError};
use crate::message::{
    ClientMessage, MAGIC, PROTOCOL_VERSION, ServerHello, ServerMessage, SessionId, decode, decode_prefix,
};

impl ServerConnection {
    /// Rejects a peer that is not a multilevel client as soon as its first bytes show it,
    /// rather than waiting for a frame whose length was never meant as one.
    pub(super) fn check_hello_start(&mut self) -> Result<(), ServerError> {
        // A hello frame is the Hello tag (0) followed by the magic.
        let mut expected = [0u8; 5];
        expected[1..].copy_from_slice(&MAGIC);
        let Some(body) = self.decoder.partial_body() else {
            if self.decoder.buffered() >= crate::frame::MAX_PREFIX_LEN {
                return Err(self.fail(ServerError::BadMagic));
            }
            return Ok(());
        };
        let n = body.len().min(expected.len());
        if body[..n] != expected[..n] {
            return Err(self.fail(ServerError::BadMagic));
        }
        Ok(())
    }

    pub(super) fn process_hello(&mut self, frame: &Bytes) -> Result<(), ServerError> {
        // Lenient about trailing bytes so a newer client's longer hello still gets a clear
        // version error rather than a parse error.
        let hello = match decode_prefix::<ClientMessage>(frame) {
            Ok((ClientMessage::Hello(hello), rest)) => {
                if hello.magic == MAGIC && hello.version == PROTOCOL_VERSION && !rest.is_empty() {
                    return Err(crate::message::DecodeError::TrailingBytes(rest.len()).into());
                }
                hello
            }
            Ok(_) => return Err(ServerError::Unexpected("a request before the handshake")),
            Err(_) => return Err(ServerError::BadMagic),
        };
        if hello.magic != MAGIC {
            return Err(ServerError::BadMagic);
        }
        if hello.version != PROTOCOL_VERSION {
            return Err(ServerError::VersionMismatch { client: hello.version, server: PROTOCOL_VERSION });
        }
        self.client_max_frame = hello.max_frame;
        self.features = hello.features & crate::condition::SUPPORTED_FEATURES;
        if self.config.tokens.is_some() {
            self.phase = Phase::AwaitingAuth { session: hello.session };
            return Ok(());
        }
        self.open(hello.session);
        Ok(())
    }

    /// Checks the token that must follow the hello.
    pub(super) fn process_auth(&mut self, session: SessionId, frame: &Bytes) -> Result<(), ServerError> {
        let token = match decode::<ClientMessage>(frame)? {
            ClientMessage::Auth { token } => token,
            _ => return Err(ServerError::Unauthenticated("this server requires a token; none was given")),
        };
        if token.is_empty() {
            return Err(ServerError::Unauthenticated("this server requires a token; none was given"));
        }
        let grant = self.config.tokens.as_ref().and_then(|tokens| tokens.check(token.as_bytes()));
        match grant {
            Some(grant) => {
                self.readonly |= grant.role == crate::auth::Role::ReadOnly;
                self.scope = grant.scope;
                self.open(session);
                Ok(())
            }
            None => Err(ServerError::Unauthenticated("the token was not accepted")),
        }
    }

    /// Completes the handshake.
    fn open(&mut self, session: SessionId) {
        self.phase = Phase::Open { session };
        self.send(&ServerMessage::Hello(ServerHello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            features: self.features,
            max_frame: self.config.max_frame,
            max_key_size: self.config.max_key_size,
            max_in_flight: self.config.max_in_flight,
            max_iterators: self.config.max_iterators,
            readonly: self.readonly,
        }));
    }
}
