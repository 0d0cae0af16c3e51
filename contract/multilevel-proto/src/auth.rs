//! Tokens that let clients in, each with a role.
//!
//! A server given [`Tokens`] answers a client's hello only after the client presented one of
//! them (`ClientMessage::Auth`, sent right after the hello). Tokens are compared in constant
//! time, and every token is compared, so timing tells nothing about which one nearly matched.

use std::fmt;

use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Reads only: every write is refused with a read-only error.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

/// Why a token list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// A line is not `<role> <token>`.
    #[error("line {line}: expected `<role> <token>` with role `read-write` or `read-only`")]
    BadLine {
        /// The 1-based line number.
        line: usize,
    },
    /// A token is shorter than 16 bytes, which is too easy to guess.
    #[error("line {line}: a token must be at least 16 bytes long")]
    TooShort {
        /// The 1-based line number.
        line: usize,
    },
    /// No token at all: a server would let nobody in.
    #[error("no tokens given")]
    Empty,
}

/// The tokens a server accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens").field("count", &self.entries.len()).finish()
    }
}

impl Tokens {
    /// Reads a token list: one `<role> <token>` per line, role `read-write` (or `rw`) or
    /// `read-only` (or `ro`); blank lines and lines starting with `#` are skipped. Meant for a
    /// file or an environment variable, never a command-line argument (visible in `ps`).
    pub fn parse(text: &str) -> Result<Self, TokensError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(TokensError::BadLine { line: i + 1 });
            };
            let role = match role {
                "read-write" | "rw" => Role::ReadWrite,
                "read-only" | "ro" => Role::ReadOnly,
                _ => return Err(TokensError::BadLine { line: i + 1 }),
            };
            if token.len() < 16 {
                return Err(TokensError::TooShort { line: i + 1 });
            }
            entries.push((token.as_bytes().to_vec(), role));
        }
        if entries.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Self { entries })
    }

    /// The role of `presented`, if it is one of the tokens. Takes the same time whichever
    /// token matches, or none.
    pub fn check(&self, presented: &[u8]) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(*role);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let tokens = Tokens::parse("# admins\nrw 0123456789abcdef-admin\n\nro 0123456789abcdef-reader\n").unwrap();
        assert_eq!(tokens.check(b"0123456789abcdef-admin"), Some(Role::ReadWrite));
        assert_eq!(tokens.check(b"0123456789abcdef-reader"), Some(Role::ReadOnly));
        assert_eq!(tokens.check(b"0123456789abcdef-"), None);
        assert_eq!(tokens.check(b""), None);
        assert!(!format!("{tokens:?}").contains("admin"), "tokens never show in logs");
    }

    #[test]
    fn bad_lists_are_refused() {
        assert_eq!(Tokens::parse("admin 0123456789abcdef"), Err(TokensError::BadLine { line: 1 }));
        assert_eq!(Tokens::parse("rw short"), Err(TokensError::TooShort { line: 1 }));
        assert_eq!(Tokens::parse("# nothing\n"), Err(TokensError::Empty));
        assert_eq!(Tokens::parse("rw a b"), Err(TokensError::BadLine { line: 1 }));
    }
}
