//! Events and their content identifiers.
//!
//! # Canonical encoding
//!
//! An event's CID is a CIDv1 with the **dag-cbor** codec (`0x71`) and a **sha2-256**
//! multihash (`0x12`) over the DAG-CBOR encoding of this map (keys in DAG-CBOR's canonical
//! order: shorter first, then bytewise):
//!
//! | key | value |
//! |---|---|
//! | `name` | event name (text) |
//! | `entity` | `"<kind>/<id>"` (text) |
//! | `schema` | payload schema version (unsigned) |
//! | `payload` | payload bytes exactly as stored (byte string) |
//! | `version` | position in the entity's stream, from 1 (unsigned) |
//! | `previous` | CID link (tag 42) of the previous event, or `null` for the first |
//!
//! The envelope (ids, correlation, causation, timestamps) is deliberately **not** hashed:
//! equal facts at the same place in the same chain hash equally, which is what makes a retried
//! append idempotent (`Nats-Msg-Id` = CID). Because `previous` is hashed, each CID commits to the
//! entity's whole history. Objects (blobs) use the **raw** codec (`0x55`) with sha2-256.
//! See `docs/adr/0002-event-cids.md`.

use cid::Cid;
use multihash::Multihash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::envelope::Envelope;
use crate::ident::{EntityRef, Token};

/// Multicodec code of DAG-CBOR, the codec of event CIDs.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw bytes, the codec of object CIDs.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Errors computing or parsing content identifiers.
#[derive(Debug, Error)]
pub enum CidError {
    /// A string is not a valid CID.
    #[error("invalid CID {text:?}: {source}")]
    Parse {
        /// The text that failed to parse.
        text: String,
        /// The parser's reason.
        source: cid::Error,
    },
    /// The canonical encoding could not be produced.
    #[error("cannot encode event canonically: {0}")]
    Encode(String),
}

/// Parses a CID from its string form, with a typed error.
pub fn parse_cid(text: &str) -> Result<Cid, CidError> {
    Cid::try_from(text).map_err(|source| CidError::Parse {
        text: text.to_owned(),
        source,
    })
}

fn sha256_multihash(bytes: &[u8]) -> Multihash<64> {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash buffer.
    Multihash::wrap(SHA2_256, &digest).unwrap_or_default()
}

/// The CID (raw codec, sha2-256) naming a blob of bytes in the object store.
pub fn object_cid(bytes: &[u8]) -> Cid {
    Cid::new_v1(RAW, sha256_multihash(bytes))
}

/// The hashed part of an event, field order = DAG-CBOR canonical key order.
#[derive(Serialize)]
struct Canonical<'a> {
    name: &'a str,
    entity: String,
    schema: u32,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    version: u64,
    previous: Option<Cid>,
}

/// The canonical DAG-CBOR bytes an event CID hashes.
fn canonical_bytes(
    entity: &EntityRef,
    version: u64,
    name: &str,
    schema_version: u32,
    payload: &[u8],
    previous: Option<&Cid>,
) -> Result<Vec<u8>, CidError> {
    let canonical = Canonical {
        name,
        entity: entity.to_string(),
        schema: schema_version,
        payload,
        version,
        previous: previous.copied(),
    };
    serde_ipld_dagcbor::to_vec(&canonical).map_err(|e| CidError::Encode(e.to_string()))
}

/// Computes the CID of an event from the parts the chain commits to.
pub fn event_cid(
    entity: &EntityRef,
    version: u64,
    name: &str,
    schema_version: u32,
    payload: &[u8],
    previous: Option<&Cid>,
) -> Result<Cid, CidError> {
    let bytes = canonical_bytes(entity, version, name, schema_version, payload, previous)?;
    Ok(Cid::new_v1(DAG_CBOR, sha256_multihash(&bytes)))
}

/// A fact decided by an entity, not yet placed in its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Past-tense event name (`DocumentCreated`).
    pub name: Token,
    /// Version of the payload's schema, from 1.
    pub schema_version: u32,
    /// JSON payload bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Correlation and causation.
    pub meta: Envelope,
}

/// A stored event: one link of its entity's CID chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// This event's CID.
    #[serde(with = "cid_text")]
    pub cid: Cid,
    /// The previous event's CID; `None` for version 1.
    #[serde(with = "cid_text::option")]
    pub previous: Option<Cid>,
    /// The entity the event belongs to.
    pub entity: EntityRef,
    /// Position in the entity's stream, from 1.
    pub version: u64,
    /// Past-tense event name.
    pub name: Token,
    /// Version of the payload's schema.
    pub schema_version: u32,
    /// JSON payload bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Correlation and causation.
    pub meta: Envelope,
}

impl RecordedEvent {
    /// Places `event` at `version` of `entity`'s chain after `previous`, computing its CID.
    pub fn seal(
        entity: &EntityRef,
        version: u64,
        previous: Option<Cid>,
        event: NewEvent,
    ) -> Result<Self, CidError> {
        let cid = event_cid(
            entity,
            version,
            event.name.as_str(),
            event.schema_version,
            &event.payload,
            previous.as_ref(),
        )?;
        Ok(Self {
            cid,
            previous,
            entity: entity.clone(),
            version,
            name: event.name,
            schema_version: event.schema_version,
            payload: event.payload,
            meta: event.meta,
        })
    }

    /// Recomputes this event's CID from its content (ignoring the stored `cid`).
    pub fn computed_cid(&self) -> Result<Cid, CidError> {
        event_cid(
            &self.entity,
            self.version,
            self.name.as_str(),
            self.schema_version,
            &self.payload,
            self.previous.as_ref(),
        )
    }

    /// Checks what can be checked about a single event on its own: a version from 1, a
    /// previous CID exactly when the version is above 1, and a CID that matches the content.
    /// Systems that receive events from outside the store (reactors, projections) call this
    /// before acting on one; chains are checked with [`crate::ChainVerifier`].
    pub fn verify_self(&self) -> Result<(), crate::EcsError> {
        let invalid =
            |m: String| crate::EcsError::Invalid(format!("{} v{}: {m}", self.entity, self.version));
        if self.version == 0 {
            return Err(invalid("versions start at 1".into()));
        }
        if (self.version == 1) != self.previous.is_none() {
            return Err(invalid("only version 1 has no previous event".into()));
        }
        match self.computed_cid() {
            Ok(cid) if cid == self.cid => Ok(()),
            Ok(cid) => Err(invalid(format!(
                "CID {} does not match the content (which hashes to {cid})",
                self.cid
            ))),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

/// Serde helpers that write CIDs as their canonical strings (for JSON and headers).
pub mod cid_text {
    use cid::Cid;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes a CID as its string form.
    pub fn serialize<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(cid)
    }

    /// Deserializes a CID from its string form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let text = String::deserialize(d)?;
        Cid::try_from(text.as_str()).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Cid>`.
    pub mod option {
        use super::*;

        /// Serializes an optional CID as its string form or null.
        pub fn serialize<S: Serializer>(cid: &Option<Cid>, s: S) -> Result<S::Ok, S::Error> {
            match cid {
                Some(c) => s.collect_str(c),
                None => s.serialize_none(),
            }
        }

        /// Deserializes an optional CID from its string form or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cid>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| Cid::try_from(t.as_str()).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc() -> EntityRef {
        EntityRef::new("document", "d1").unwrap()
    }

    #[test]
    fn event_cids_are_cidv1_dag_cbor_sha256() {
        let cid = event_cid(&doc(), 1, "DocumentCreated", 1, b"{}", None).unwrap();
        assert_eq!(cid.version(), cid::Version::V1);
        assert_eq!(cid.codec(), DAG_CBOR);
        assert_eq!(cid.hash().code(), SHA2_256);
        assert!(cid.to_string().starts_with("bafyrei"), "{cid}");
    }

    /// Pins the canonical encoding: if this CID changes, every stored chain breaks.
    #[test]
    fn canonical_encoding_is_stable() {
        let first = event_cid(&doc(), 1, "DocumentCreated", 1, br#"{"title":"a"}"#, None).unwrap();
        let second = event_cid(
            &doc(),
            2,
            "DocumentTagged",
            1,
            br#"{"tag":"x"}"#,
            Some(&first),
        )
        .unwrap();
        assert_eq!(first.to_string(), GOLDEN_FIRST);
        assert_eq!(second.to_string(), GOLDEN_SECOND);
    }
    const GOLDEN_FIRST: &str = "bafyreibcs4k2oyly6ylsfuqeesv4sh5avuvgc3gkoacrxrrvshsniehfka";
    const GOLDEN_SECOND: &str = "bafyreiemvi3qmtdgkgfbabwthvcbzz4yst7vgzhdlqkwp5d7pezcg26uoq";

    /// DAG-CBOR requires map keys sorted by length, then bytewise; the struct's field order
    /// must produce exactly that.
    #[test]
    fn canonical_keys_are_in_dag_cbor_order() {
        let prev = object_cid(b"p");
        let bytes = canonical_bytes(&doc(), 7, "N", 1, b"{}", Some(&prev)).unwrap();
        assert_eq!(bytes[0], 0xa6, "a map of six entries");
        let keys = ["name", "entity", "schema", "payload", "version", "previous"];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| {
                let mut needle = vec![0x60 + k.len() as u8];
                needle.extend_from_slice(k.as_bytes());
                bytes
                    .windows(needle.len())
                    .position(|w| w == needle.as_slice())
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        // `previous` is a CID link: CBOR tag 42 (0xd8 0x2a).
        assert!(bytes.windows(2).any(|w| w == [0xd8, 0x2a]));
    }

    /// ADR 0002 pins how each value is encoded; an outside implementation relies on it.
    #[test]
    fn the_schema_is_a_cbor_unsigned_integer_as_adr_0002_says() {
        let entry = |schema: u32| {
            let bytes = canonical_bytes(&doc(), 1, "N", schema, b"{}", None).unwrap();
            let key = [&[0x66][..], b"schema"].concat();
            let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
            bytes[at..].to_vec()
        };
        assert_eq!(entry(1)[0], 0x01, "schema 1 is the one byte 0x01");
        assert_eq!(&entry(42)[..2], [0x18, 0x2a], "schema 42 is 0x18 0x2a");
        assert_eq!(&entry(1000)[..3], [0x19, 0x03, 0xe8]);
        let first = canonical_bytes(&doc(), 1, "N", 1, b"{}", None).unwrap();
        assert_eq!(
            *first.last().unwrap(),
            0xf6,
            "`previous` of version 1 is null"
        );
    }

    #[test]
    fn object_cids_use_the_raw_codec() {
        let cid = object_cid(b"hello");
        assert_eq!(cid.codec(), RAW);
        assert!(cid.to_string().starts_with("bafkrei"), "{cid}");
        assert_eq!(parse_cid(&cid.to_string()).unwrap(), cid);
        assert!(matches!(
            parse_cid("not-a-cid"),
            Err(CidError::Parse { .. })
        ));
    }

    #[test]
    fn recorded_events_round_trip_through_json() {
        let ev = RecordedEvent::seal(
            &doc(),
            1,
            None,
            NewEvent {
                name: Token::parse("event name", "DocumentCreated").unwrap(),
                schema_version: 1,
                payload: b"{}".to_vec(),
                meta: Envelope::originating("c1", 5),
            },
        )
        .unwrap();
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains(&ev.cid.to_string()));
        let back: RecordedEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
    }

    proptest! {
        #[test]
        fn cids_are_deterministic(payload in proptest::collection::vec(any::<u8>(), 0..256), version in 1u64..1000, schema in 1u32..5) {
            let a = event_cid(&doc(), version, "Changed", schema, &payload, None).unwrap();
            let b = event_cid(&doc(), version, "Changed", schema, &payload, None).unwrap();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn every_hashed_field_changes_the_cid(payload in proptest::collection::vec(any::<u8>(), 1..64), version in 1u64..1000) {
            let base = event_cid(&doc(), version, "Changed", 1, &payload, None).unwrap();
            let mut flipped = payload.clone();
            flipped[0] ^= 1;
            prop_assert_ne!(base, event_cid(&doc(), version, "Changed", 1, &flipped, None).unwrap());
            prop_assert_ne!(base, event_cid(&doc(), version + 1, "Changed", 1, &payload, None).unwrap());
            prop_assert_ne!(base, event_cid(&doc(), version, "Changed2", 1, &payload, None).unwrap());
            prop_assert_ne!(base, event_cid(&doc(), version, "Changed", 2, &payload, None).unwrap());
            let other = EntityRef::new("document", "d2").unwrap();
            prop_assert_ne!(base, event_cid(&other, version, "Changed", 1, &payload, None).unwrap());
            prop_assert_ne!(base, event_cid(&doc(), version, "Changed", 1, &payload, Some(&base)).unwrap());
        }
    }
}
