//! Commit messages: the events of one multi-event append stored as **one** JetStream message.
//!
//! An append of one event is one message whose body is the event's payload and whose headers
//! carry the rest (see [`crate::store`]). An append of several events (a *commit*) is one
//! message on the same entity subject, marked by the [`header::EVENTS`] header (the number of
//! events), whose body is a JSON array with one entry per event:
//!
//! ```json
//! [{"cid":"bafy…","previous":"bafy…","version":2,"event":"Tagged","schema":1,
//!   "id":"…","correlation_id":"…","causation_id":"…","occurred_at_ms":1700000000000,
//!   "payload":{"tag":"x"}}]
//! ```
//!
//! Exactly one of `payload` (the JSON payload, byte for byte), `payload_bytes` (a payload that
//! is not a JSON text on its own, as an array of bytes) or `payload_cid` (the object CID of an
//! offloaded payload) is present. The commit message also carries the last event's
//! [`header::VERSION`] and [`header::CID`], so positions can be found from headers alone.
//!
//! One message is stored or not, so a commit is all-or-nothing by construction, is guarded by
//! one `Nats-Expected-Last-Subject-Sequence` and is deduplicated by one `Nats-Msg-Id` (the last
//! event's CID). Every event keeps its own CID, chained to the one before it.

use cid::Cid;
use cim_domain::{EcsError, EntityRef, Envelope, RecordedEvent, Subject, Token};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::names::header;

/// One event of a commit and, when its payload was offloaded, the payload's object CID (the
/// event's `payload` is then empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The event.
    pub event: RecordedEvent,
    /// The object CID of the offloaded payload, if it was offloaded.
    pub offloaded: Option<Cid>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    cid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
    version: u64,
    event: String,
    schema: u32,
    id: String,
    correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<String>,
    occurred_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_cid: Option<String>,
}

/// The payload as embedded JSON when that round-trips byte for byte: a JSON text without
/// surrounding whitespace, and not `null` (which would read back as "absent").
fn embedded_json(payload: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.is_empty() || text.trim() != text || text == "null" {
        return None;
    }
    RawValue::from_string(text.to_owned()).ok()
}

/// Encodes the events of one commit as the body of its message.
pub fn encode(events: &[Stored]) -> Result<Vec<u8>, EcsError> {
    let entries: Vec<Entry> = events
        .iter()
        .map(|s| {
            let ev = &s.event;
            let (payload, payload_bytes, payload_cid) = match &s.offloaded {
                Some(cid) => (None, None, Some(cid.to_string())),
                None => match embedded_json(&ev.payload) {
                    Some(json) => (Some(json), None, None),
                    None => (None, Some(ev.payload.clone()), None),
                },
            };
            Entry {
                cid: ev.cid.to_string(),
                previous: ev.previous.map(|p| p.to_string()),
                version: ev.version,
                event: ev.name.to_string(),
                schema: ev.schema_version,
                id: ev.meta.id.clone(),
                correlation_id: ev.meta.correlation_id.clone(),
                causation_id: ev.meta.causation_id.clone(),
                occurred_at_ms: ev.meta.occurred_at_ms,
                payload,
                payload_bytes,
                payload_cid,
            }
        })
        .collect();
    serde_json::to_vec(&entries)
        .map_err(|e| EcsError::Unavailable(format!("encoding an event commit: {e}")))
}

/// Decodes the body of a commit message of `entity` that announced `count` events (the value
/// of its [`header::EVENTS`] header). CIDs are parsed, not verified (see
/// [`cim_domain::ChainVerifier`]).
pub fn decode(entity: &EntityRef, count: &str, body: &[u8]) -> Result<Vec<Stored>, EcsError> {
    let bad = |m: String| {
        EcsError::Unavailable(format!(
            "malformed event message on {}: {m}",
            Subject::event(entity)
        ))
    };
    let count: usize = count
        .trim()
        .parse()
        .map_err(|e| bad(format!("{}: {e}", header::EVENTS)))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| bad(format!("commit body: {e}")))?;
    if entries.len() != count || count == 0 {
        return Err(bad(format!(
            "the commit announces {count} events and holds {}",
            entries.len()
        )));
    }
    if entries
        .windows(2)
        .any(|w| w[0].version.checked_add(1) != Some(w[1].version))
    {
        return Err(bad("the commit's versions are not consecutive".into()));
    }
    let cid = |text: &str| Cid::try_from(text).map_err(|e| bad(format!("{text}: {e}")));
    entries
        .into_iter()
        .map(|e| {
            let (payload, offloaded) = match (e.payload, e.payload_bytes, e.payload_cid) {
                (Some(json), None, None) => (json.get().as_bytes().to_vec(), None),
                (None, Some(bytes), None) => (bytes, None),
                (None, None, Some(object)) => (Vec::new(), Some(cid(&object)?)),
                _ => {
                    return Err(bad(format!(
                        "event v{} must carry exactly one of payload, payload_bytes, payload_cid",
                        e.version
                    )))
                }
            };
            Ok(Stored {
                event: RecordedEvent {
                    cid: cid(&e.cid)?,
                    previous: e.previous.as_deref().map(cid).transpose()?,
                    entity: entity.clone(),
                    version: e.version,
                    name: Token::parse("event name", &e.event).map_err(|e| bad(e.to_string()))?,
                    schema_version: e.schema,
                    payload,
                    meta: Envelope {
                        id: e.id,
                        correlation_id: e.correlation_id,
                        causation_id: e.causation_id,
                        occurred_at_ms: e.occurred_at_ms,
                    },
                },
                offloaded,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::{ChainVerifier, NewEvent};

    fn commit(payloads: &[&[u8]]) -> Vec<Stored> {
        let entity = EntityRef::new("document", "d-1").unwrap();
        let mut previous = None;
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ev = RecordedEvent::seal(
                    &entity,
                    i as u64 + 1,
                    previous,
                    NewEvent {
                        name: Token::parse("event name", "Changed").unwrap(),
                        schema_version: 1,
                        payload: p.to_vec(),
                        meta: Envelope::originating(format!("c{i}"), 7),
                    },
                )
                .unwrap();
                previous = Some(ev.cid);
                Stored {
                    event: ev,
                    offloaded: None,
                }
            })
            .collect()
    }

    #[test]
    fn payloads_round_trip_byte_for_byte() {
        let payloads: [&[u8]; 7] = [
            br#"{"b":1,"a":[1, 2]}"#,
            b" {\"padded\":true} ",
            b"null",
            b"",
            b"\xff\x00binary",
            b"\"text\"",
            b"[1,2,3]",
        ];
        let events = commit(&payloads);
        let body = encode(&events).unwrap();
        let entity = events[0].event.entity.clone();
        let back = decode(&entity, "7", &body).unwrap();
        assert_eq!(back, events);
        let mut chain = ChainVerifier::new();
        for s in &back {
            chain.push(&s.event).unwrap();
        }
        // JSON payloads are embedded as JSON, so the commit reads as JSON.
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""payload":{"b":1,"a":[1, 2]}"#), "{text}");
    }

    #[test]
    fn offloaded_payloads_are_named_by_cid() {
        let mut events = commit(&[b"{}", b"{}"]);
        let object = events[0].event.cid;
        events[1].offloaded = Some(object);
        let body = encode(&events).unwrap();
        let back = decode(&events[0].event.entity, "2", &body).unwrap();
        assert_eq!(back[1].offloaded, Some(object));
        assert!(back[1].event.payload.is_empty());
    }

    #[test]
    fn malformed_commits_are_typed_errors() {
        let events = commit(&[b"{}", b"{}"]);
        let entity = events[0].event.entity.clone();
        let body = encode(&events).unwrap();
        let malformed = |count: &str, body: &[u8]| match decode(&entity, count, body) {
            Err(EcsError::Unavailable(m)) => assert!(m.starts_with("malformed event message")),
            other => panic!("{other:?}"),
        };
        malformed("3", &body);
        malformed("two", &body);
        malformed("0", b"[]");
        malformed("2", b"{not json");
        let text = String::from_utf8(body).unwrap();
        malformed(
            "2",
            text.replace(r#""version":2"#, r#""version":5"#).as_bytes(),
        );
        malformed("2", text.replace(r#""payload":{}"#, "").as_bytes());
        malformed(
            "2",
            text.replacen(r#""payload":{}"#, r#""payload":{},"payload_bytes":[1]"#, 1)
                .as_bytes(),
        );
    }
}
