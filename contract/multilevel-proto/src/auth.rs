//! Tokens that let clients in, each with a role and a scope.
//!
//! A server given [`Tokens`] answers a client's hello only after the client presented one of
//! them (`ClientMessage::Auth`, sent right after the hello). Tokens are compared in constant
//! time, and every token is compared, so timing tells nothing about which one nearly matched.
//! A token may be scoped to a sublevel: the server then refuses every request of that
//! connection that reaches a key outside it (see [`Grant`]).

use std::fmt;

use subtle::ConstantTimeEq;

use crate::sublevel::{SublevelPathError, SublevelPrefix};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Reads only: every write is refused with a read-only error.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

/// What a connection that presented a token may do: its role, and the sublevel its keys must
/// lie in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Reads only, or reads and writes.
    pub role: Role,
    /// The sublevel every key and range of the connection's requests must lie in (nested
    /// sublevels included); [`SublevelPrefix::root`] for the whole database.
    pub scope: SublevelPrefix,
}

impl Grant {
    /// A grant of `role` inside `scope`.
    pub fn new(role: Role, scope: SublevelPrefix) -> Self {
        Self { role, scope }
    }
}

/// Why a token list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// A line is not `<role> <token> [sublevel=PATH]`.
    #[error(
        "line {line}: expected `<role> <token>` with role `read-write` or `read-only`, optionally followed by \
         `sublevel=PATH`"
    )]
    BadLine {
        /// The 1-based line number.
        line: usize,
    },
    /// An option after the token is not one this version knows (only `sublevel=PATH` is), or
    /// is given twice. It is not shown: it may be a token pasted by mistake.
    #[error("line {line}: unknown or repeated option after the token (the only option is `sublevel=PATH`, once)")]
    BadOption {
        /// The 1-based line number.
        line: usize,
    },
    /// The path of `sublevel=PATH` could not be read.
    #[error(
        "line {line}: bad sublevel path: {error}; write nested names as `outer/inner`, and `/`, `%`, spaces and \
         other bytes in a name as `%XX`"
    )]
    BadSublevel {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: SublevelPathError,
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
    entries: Vec<(Vec<u8>, Grant)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a token.
        f.debug_struct("Tokens").field("count", &self.entries.len()).finish()
    }
}

impl Tokens {
    /// Reads a token list: one `<role> <token> [sublevel=PATH]` per line, separated by
    /// whitespace, role `read-write` (or `rw`) or `read-only` (or `ro`); blank lines and lines
    /// starting with `#` are skipped. Meant for a file or an environment variable, never a
    /// command-line argument (visible in `ps`).
    ///
    /// `sublevel=PATH` scopes the token to a sublevel: `sublevel=users`, or nested,
    /// `sublevel=users/admins`. Names are separated by `/`; in a name, `%XX` (two hex digits)
    /// stands for the byte XX and must be used for `/`, `%`, whitespace and any byte that is
    /// not valid text (see [`SublevelPrefix::from_path`]). Without it a token reaches the whole
    /// database.
    ///
    /// ```text
    /// # role  token                         scope
    /// rw      0123456789abcdef-admin
    /// ro      0123456789abcdef-reports      sublevel=reports
    /// rw      0123456789abcdef-team-a       sublevel=teams/a%20b
    /// ```
    pub fn parse(text: &str) -> Result<Self, TokensError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(role), Some(token)) = (parts.next(), parts.next()) else {
                return Err(TokensError::BadLine { line: i + 1 });
            };
            let mut scope = None;
            for option in parts {
                match option.split_once('=') {
                    Some(("sublevel", path)) if scope.is_none() => {
                        let prefix = SublevelPrefix::from_path(path)
                            .map_err(|error| TokensError::BadSublevel { line: i + 1, error })?;
                        scope = Some(prefix);
                    }
                    // Never echo either: it may be a second token (base64 ends in `=`).
                    Some(_) => return Err(TokensError::BadOption { line: i + 1 }),
                    None => return Err(TokensError::BadLine { line: i + 1 }),
                }
            }
            let role = match role {
                "read-write" | "rw" => Role::ReadWrite,
                "read-only" | "ro" => Role::ReadOnly,
                _ => return Err(TokensError::BadLine { line: i + 1 }),
            };
            if token.len() < 16 {
                return Err(TokensError::TooShort { line: i + 1 });
            }
            entries.push((token.as_bytes().to_vec(), Grant::new(role, scope.unwrap_or_default())));
        }
        if entries.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Self { entries })
    }

    /// What `presented` grants, if it is one of the tokens. Takes the same time whichever
    /// token matches, or none.
    pub fn check(&self, presented: &[u8]) -> Option<Grant> {
        let mut found = None;
        for (token, grant) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(grant);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let tokens = Tokens::parse("# admins\nrw 0123456789abcdef-admin\n\nro 0123456789abcdef-reader\n").unwrap();
        let root = SublevelPrefix::root();
        assert_eq!(tokens.check(b"0123456789abcdef-admin"), Some(Grant::new(Role::ReadWrite, root.clone())));
        assert_eq!(tokens.check(b"0123456789abcdef-reader"), Some(Grant::new(Role::ReadOnly, root)));
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
        assert_eq!(Tokens::parse("rw 0123456789abcdef second-0123456789abcdef"), Err(TokensError::BadLine { line: 1 }));
    }

    #[test]
    fn tokens_may_be_scoped_to_a_sublevel() {
        let list = "rw 0123456789abcdef-users sublevel=users\n\
                    ro 0123456789abcdef-admins\tsublevel=users/admins\n\
                    rw 0123456789abcdef-odd sublevel=a%2Fb/%00%FF\n";
        let tokens = Tokens::parse(list).unwrap();
        let users = SublevelPrefix::root().sublevel("users");
        assert_eq!(tokens.check(b"0123456789abcdef-users"), Some(Grant::new(Role::ReadWrite, users.clone())));
        assert_eq!(
            tokens.check(b"0123456789abcdef-admins"),
            Some(Grant::new(Role::ReadOnly, users.sublevel("admins")))
        );
        let odd = SublevelPrefix::root().sublevel("a/b").sublevel([0, 0xff]);
        assert_eq!(tokens.check(b"0123456789abcdef-odd"), Some(Grant::new(Role::ReadWrite, odd)));
    }

    #[test]
    fn bad_scopes_are_refused_with_their_line() {
        let ok = "rw 0123456789abcdef-admin\n";
        let err = |line: &str| Tokens::parse(&format!("{ok}{line}")).unwrap_err();
        assert_eq!(
            err("rw 0123456789abcdef-x sublevel="),
            TokensError::BadSublevel { line: 2, error: SublevelPathError::EmptyName }
        );
        assert_eq!(
            err("rw 0123456789abcdef-x sublevel=a//b"),
            TokensError::BadSublevel { line: 2, error: SublevelPathError::EmptyName }
        );
        assert_eq!(
            err("rw 0123456789abcdef-x sublevel=a%4"),
            TokensError::BadSublevel { line: 2, error: SublevelPathError::BadEscape { at: 1 } }
        );
        assert_eq!(err("rw 0123456789abcdef-x sublevel=a sublevel=b"), TokensError::BadOption { line: 2 });
        assert_eq!(err("rw 0123456789abcdef-x prefix=a"), TokensError::BadOption { line: 2 });
        let pasted = err("rw 0123456789abcdef-x c2VjcmV0LXRva2VuLTAxMjM0NTY=").to_string();
        assert!(!pasted.contains("c2VjcmV0"), "a pasted token is never echoed: {pasted}");
        let message = err("rw 0123456789abcdef-x sublevel=a%4").to_string();
        assert!(message.starts_with("line 2: bad sublevel path: `%` at byte 1"), "{message}");
    }
}
