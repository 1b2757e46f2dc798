//! Validated identifiers: entity kinds, entity ids and command names.
//!
//! Identifiers become NATS subject tokens, so they are restricted to a conservative alphabet:
//! `A-Z a-z 0-9 _ -`, 1 to [`MAX_TOKEN_LEN`] characters. A `.`, `*`, `>` or whitespace can
//! therefore never change the meaning of a subject built from user input.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest identifier accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentError {
    /// The identifier is empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which identifier was being checked.
        what: &'static str,
    },
    /// The identifier is longer than [`MAX_TOKEN_LEN`].
    #[error("{what} is {len} bytes long; at most {MAX_TOKEN_LEN} are allowed")]
    TooLong {
        /// Which identifier was being checked.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The identifier contains a character outside `A-Z a-z 0-9 _ -`.
    #[error("{what} contains {found:?}; only A-Z, a-z, 0-9, '_' and '-' are allowed")]
    BadChar {
        /// Which identifier was being checked.
        what: &'static str,
        /// The first offending character.
        found: char,
    },
}

/// A validated subject token (an entity kind, an entity id or a command action).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token(String);

impl Token {
    /// Validates `s` as a token; `what` names it in the error ("entity id").
    pub fn parse(what: &'static str, s: &str) -> Result<Self, IdentError> {
        if s.is_empty() {
            return Err(IdentError::Empty { what });
        }
        if s.len() > MAX_TOKEN_LEN {
            return Err(IdentError::TooLong { what, len: s.len() });
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(IdentError::BadChar { what, found });
        }
        Ok(Self(s.to_owned()))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Token {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Token::parse("token", &s)
    }
}

impl From<Token> for String {
    fn from(t: Token) -> Self {
        t.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names one entity: its type (`document`) and its identity within that type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    /// The entity type.
    pub kind: Token,
    /// The identity within the type.
    pub id: Token,
}

impl EntityRef {
    /// Validates both parts of an entity reference.
    pub fn new(kind: &str, id: &str) -> Result<Self, IdentError> {
        Ok(Self {
            kind: Token::parse("entity kind", kind)?,
            id: Token::parse("entity id", id)?,
        })
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ulids_and_kebab_case() {
        assert!(EntityRef::new("document", "01J9ZQ4X7M3V2B8K5N6P0R1S2T").is_ok());
        assert!(EntityRef::new("build-job", "a_b-c").is_ok());
    }

    #[test]
    fn rejects_subject_metacharacters_and_whitespace() {
        for bad in ["a.b", "*", ">", "a b", "a\tb", "a\nb", "ä", "a/b"] {
            let err = Token::parse("entity id", bad).unwrap_err();
            assert!(matches!(err, IdentError::BadChar { .. }), "{bad:?}: {err}");
        }
        assert_eq!(
            Token::parse("entity id", ""),
            Err(IdentError::Empty { what: "entity id" })
        );
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            Token::parse("entity id", &long),
            Err(IdentError::TooLong { len, .. }) if len == MAX_TOKEN_LEN + 1
        ));
        assert!(Token::parse("entity id", &"x".repeat(MAX_TOKEN_LEN)).is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let ok: Token = serde_json::from_str("\"doc-1\"").unwrap();
        assert_eq!(ok.as_str(), "doc-1");
        assert!(serde_json::from_str::<Token>("\"doc.1\"").is_err());
    }
}
