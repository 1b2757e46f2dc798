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
///
/// The state is serializable so entity components can keep snapshots of it
/// ([`crate::snapshot`]).
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// The entity kind this aggregate serves (`document`), a valid subject token.
    const KIND: &'static str;
    /// The version of the state's shape and of the rules that fold events into it, recorded in
    /// every snapshot. Bump it whenever `apply` or the state's fields change meaning: a
    /// snapshot written under another schema is ignored and the entity replayed from its
    /// events, never decided on.
    const STATE_SCHEMA: u32 = 1;
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

    /// An upcaster: brings the payload of a stored event written in an older shape to the
    /// shape [`Self::Event`] decodes, before it is decoded. Returns `None` when the payload
    /// needs no change (the default, and the common case, which costs nothing).
    fn upcast(_name: &str, _schema_version: u32, _payload: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Decodes a stored event: [`Self::upcast`], then [`EventCodec::decode`]. Everything that
    /// reads an aggregate's stored events goes through here.
    fn decode_event(
        name: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self::Event, CodecError> {
        match Self::upcast(name, schema_version, payload) {
            Some(upcast) => EventCodec::decode(name, &upcast),
            None => EventCodec::decode(name, payload),
        }
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

/// A JSON value parsed with every object's keys unique, at any depth: a payload such as
/// `{"tag":"a","tag":"b"}` is refused rather than read as its last value.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key {key:?} (every key may appear once)"
                )));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// Splits messages into names and JSON payloads and back.
pub struct EventCodec;

impl EventCodec {
    /// Splits a message into its name and JSON payload (`null` for a field-less message).
    pub fn encode<M: Serialize>(message: &M) -> Result<(Token, Vec<u8>), CodecError> {
        // Serialized directly, never through `serde_json::Value`: a struct's fields keep
        // their declaration order whatever features other crates turn on for serde_json
        // (`preserve_order` changes how a `Value` orders its keys), so a component and a
        // native build encode an event to the same bytes and the same CID.
        let bytes = serde_json::to_vec(message).map_err(CodecError::Serialize)?;
        let (name, payload) = if bytes.first() == Some(&b'"') {
            let name: String = serde_json::from_slice(&bytes).map_err(CodecError::Serialize)?;
            (name, b"null".to_vec())
        } else {
            let tagged: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_slice(&bytes).map_err(|_| CodecError::NotTagged)?;
            let mut entries = tagged.into_iter();
            match (entries.next(), entries.next()) {
                (Some((name, payload)), None) => (name, payload.get().as_bytes().to_vec()),
                _ => return Err(CodecError::NotTagged),
            }
        };
        Ok((Token::parse("message name", &name)?, payload))
    }

    /// Joins a name and a JSON payload into a message. An empty payload means `null`; a
    /// payload with a key twice in one object is refused ([`CodecError::Json`]).
    pub fn decode<M: DeserializeOwned>(name: &str, payload: &[u8]) -> Result<M, CodecError> {
        let payload: Value = if payload.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice::<Strict>(payload)
                .map_err(|source| CodecError::Json {
                    name: name.to_owned(),
                    source,
                })?
                .0
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
    fn a_key_given_twice_is_refused_at_any_depth() {
        let top = EventCodec::decode::<Msg>("Named", br#"{"title":"a","title":"b"}"#);
        assert!(
            matches!(&top, Err(CodecError::Json { source, .. }) if source.to_string().contains("duplicate key \"title\"")),
            "{top:?}"
        );
        let nested = EventCodec::decode::<serde_json::Value>(
            "Named",
            br#"{"title":"a","meta":[{"k":1,"k":2}]}"#,
        );
        assert!(matches!(nested, Err(CodecError::Json { .. })), "{nested:?}");
        let fine = EventCodec::decode::<Msg>("Named", br#"{"title":"a"}"#).unwrap();
        assert_eq!(fine, Msg::Named { title: "a".into() });
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
