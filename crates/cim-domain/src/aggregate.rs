//! The `decide`/`apply` contract of an entity type, and the JSON codec of its messages.
//!
//! An aggregate's commands and events are Rust enums in serde's externally tagged form: the
//! variant name is the message name (`Create`, `DocumentCreated`) and the variant's fields are
//! its JSON payload. [`EventCodec`] splits and joins the two.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::ident::{IdentError, Token};

/// An entity type: pure, synchronous decisions over a state folded from events.
pub trait Aggregate: Default {
    /// The entity kind this aggregate serves (`document`), a valid subject token.
    const KIND: &'static str;
    /// Commands, an externally tagged serde enum.
    type Command: DeserializeOwned;
    /// Events, an externally tagged serde enum.
    type Event: Serialize + DeserializeOwned;
    /// Why a command is refused.
    type Error: std::fmt::Display;

    /// Decides which events a command produces in the current state, or refuses it.
    fn decide(&self, cmd: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Must not fail: events are facts.
    fn apply(&mut self, ev: &Self::Event);

    /// The payload schema version of an event (1 unless an event's shape evolved).
    fn schema_version(_ev: &Self::Event) -> u32 {
        1
    }

    /// Builds the state from a history of events.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        events.into_iter().for_each(|e| state.apply(e));
        state
    }
}

/// Errors translating between message enums and (name, JSON payload) pairs.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The payload is not JSON.
    #[error("payload of {name} is not valid JSON: {source}")]
    Json {
        /// The message name.
        name: String,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// The name is unknown or the payload does not fit the message's fields.
    #[error("{name}: {source}")]
    Shape {
        /// The message name.
        name: String,
        /// The reason, listing the expected names or fields.
        source: serde_json::Error,
    },
    /// The message did not serialize to an externally tagged enum.
    #[error("message does not serialize as a named variant")]
    NotTagged,
    /// The message name is not a valid token.
    #[error(transparent)]
    Name(#[from] IdentError),
    /// Serialization failed.
    #[error("cannot serialize message: {0}")]
    Serialize(serde_json::Error),
}

/// Splits messages into names and JSON payloads and back.
pub struct EventCodec;

impl EventCodec {
    /// Splits a message into its name and JSON payload (`null` for a field-less message).
    pub fn encode<M: Serialize>(message: &M) -> Result<(Token, Vec<u8>), CodecError> {
        let value = serde_json::to_value(message).map_err(CodecError::Serialize)?;
        let (name, payload) = match value {
            Value::String(name) => (name, Value::Null),
            Value::Object(map) if map.len() == 1 => {
                let (name, payload) = map.into_iter().next().ok_or(CodecError::NotTagged)?;
                (name, payload)
            }
            _ => return Err(CodecError::NotTagged),
        };
        let bytes = serde_json::to_vec(&payload).map_err(CodecError::Serialize)?;
        Ok((Token::parse("message name", &name)?, bytes))
    }

    /// Joins a name and a JSON payload into a message. An empty payload means `null`.
    pub fn decode<M: DeserializeOwned>(name: &str, payload: &[u8]) -> Result<M, CodecError> {
        let payload: Value = if payload.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(payload).map_err(|source| CodecError::Json {
                name: name.to_owned(),
                source,
            })?
        };
        let tagged = if payload.is_null() {
            Value::String(name.to_owned())
        } else {
            let mut map = serde_json::Map::new();
            map.insert(name.to_owned(), payload);
            Value::Object(map)
        };
        serde_json::from_value(tagged).map_err(|source| CodecError::Shape {
            name: name.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Named { title: String },
        Bare,
    }

    #[test]
    fn round_trips_struct_and_unit_variants() {
        for m in [Msg::Named { title: "t".into() }, Msg::Bare] {
            let (name, payload) = EventCodec::encode(&m).unwrap();
            let back: Msg = EventCodec::decode(name.as_str(), &payload).unwrap();
            assert_eq!(back, m);
        }
        let (name, payload) = EventCodec::encode(&Msg::Bare).unwrap();
        assert_eq!((name.as_str(), payload.as_slice()), ("Bare", &b"null"[..]));
        assert_eq!(EventCodec::decode::<Msg>("Bare", b"").unwrap(), Msg::Bare);
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        assert!(matches!(
            EventCodec::decode::<Msg>("Named", b"{not json"),
            Err(CodecError::Json { .. })
        ));
        let err = EventCodec::decode::<Msg>("Launch", b"{}").unwrap_err();
        assert!(matches!(err, CodecError::Shape { .. }));
        assert!(
            err.to_string().contains("Named"),
            "lists the known names: {err}"
        );
        assert!(matches!(
            EventCodec::decode::<Msg>("Named", br#"{"title": 3}"#),
            Err(CodecError::Shape { .. })
        ));
    }
}
