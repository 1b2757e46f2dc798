//! Verification of an entity's CID chain.
//!
//! A chain is valid when every event's CID matches its content, versions count up from 1
//! without gaps, every `previous` names the CID of the event before it, and every event
//! belongs to the same entity. That detects a tampered, reordered, missing or foreign event.

use cid::Cid;
use thiserror::Error;

use crate::event::{CidError, RecordedEvent};
use crate::ident::EntityRef;

/// Why a sequence of events is not a valid chain.
#[derive(Debug, Error)]
pub enum ChainError {
    /// An event's content does not hash to its stored CID.
    #[error("{entity} v{version}: stored CID {stored} does not match its content ({computed})")]
    Tampered {
        /// The entity.
        entity: EntityRef,
        /// The event's version.
        version: u64,
        /// The CID the event carries.
        stored: String,
        /// The CID of its content.
        computed: String,
    },
    /// Versions do not count up by one: an event is missing, duplicated or out of order.
    #[error("{entity}: expected version {expected}, found {found} (missing or reordered event)")]
    VersionGap {
        /// The entity.
        entity: EntityRef,
        /// The version that should come next.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// An event's `previous` does not name the event before it.
    #[error("{entity} v{version}: previous is {found:?}, expected {expected:?}")]
    BrokenLink {
        /// The entity.
        entity: EntityRef,
        /// The event's version.
        version: u64,
        /// The CID the chain requires (None for the first event).
        expected: Option<String>,
        /// The CID the event names.
        found: Option<String>,
    },
    /// An event of another entity appeared in the chain.
    #[error("event of {found} found in the chain of {expected}")]
    ForeignEvent {
        /// The chain's entity.
        expected: EntityRef,
        /// The intruding event's entity.
        found: EntityRef,
    },
    /// A CID could not be computed.
    #[error(transparent)]
    Cid(#[from] CidError),
}

/// Verifies a chain one event at a time, as events stream in.
#[derive(Debug, Clone, Default)]
pub struct ChainVerifier {
    entity: Option<EntityRef>,
    version: u64,
    last: Option<Cid>,
    /// When true, the next event's `previous` and version are trusted (a read from mid-stream).
    trust_next_position: bool,
}

impl ChainVerifier {
    /// A verifier for a chain that starts at version 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier that continues a chain known to end at `version` with `last` (a snapshot).
    pub fn after(entity: EntityRef, version: u64, last: Cid) -> Self {
        Self {
            entity: Some(entity),
            version,
            last: Some(last),
            trust_next_position: false,
        }
    }

    /// A verifier for a read that starts mid-stream: the first event's position is taken as
    /// given (its content is still checked), everything after it is verified fully.
    pub fn partial() -> Self {
        Self {
            trust_next_position: true,
            ..Self::default()
        }
    }

    /// Checks the next event of the chain.
    pub fn push(&mut self, ev: &RecordedEvent) -> Result<(), ChainError> {
        let entity = self.entity.get_or_insert_with(|| ev.entity.clone());
        if ev.entity != *entity {
            return Err(ChainError::ForeignEvent {
                expected: entity.clone(),
                found: ev.entity.clone(),
            });
        }
        let computed = ev.computed_cid()?;
        if computed != ev.cid {
            return Err(ChainError::Tampered {
                entity: entity.clone(),
                version: ev.version,
                stored: ev.cid.to_string(),
                computed: computed.to_string(),
            });
        }
        if self.trust_next_position {
            self.trust_next_position = false;
        } else {
            if ev.version != self.version + 1 {
                return Err(ChainError::VersionGap {
                    entity: entity.clone(),
                    expected: self.version + 1,
                    found: ev.version,
                });
            }
            if ev.previous != self.last {
                return Err(ChainError::BrokenLink {
                    entity: entity.clone(),
                    version: ev.version,
                    expected: self.last.map(|c| c.to_string()),
                    found: ev.previous.map(|c| c.to_string()),
                });
            }
        }
        self.version = ev.version;
        self.last = Some(ev.cid);
        Ok(())
    }

    /// The version of the last verified event (0 before any).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The CID of the last verified event.
    pub fn last_cid(&self) -> Option<Cid> {
        self.last
    }
}

/// Verifies a complete chain, from version 1.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<(), ChainError> {
    let mut verifier = ChainVerifier::new();
    events.into_iter().try_for_each(|ev| verifier.push(ev))
}

/// Each event's own verdict, for views that show every event: `None` when it verifies in its
/// place (content hashes to its CID, it follows the event before it), else why not. After a
/// failing event, verification continues from that event as stored, so one tampered event is
/// reported once and the events after it are still judged (a good v1 before a tampered v2
/// stays good).
pub fn verdicts<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Vec<Option<ChainError>> {
    let mut verifier = ChainVerifier::new();
    events
        .into_iter()
        .map(|ev| {
            let verdict = verifier.push(ev).err();
            if verdict.is_some() {
                verifier = ChainVerifier::after(ev.entity.clone(), ev.version, ev.cid);
            }
            verdict
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::event::NewEvent;
    use crate::ident::Token;
    use proptest::prelude::*;

    fn chain(entity: &EntityRef, payloads: &[Vec<u8>]) -> Vec<RecordedEvent> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let previous = out.last().map(|e| e.cid);
            let ev = NewEvent {
                name: Token::parse("event name", "Changed").unwrap(),
                schema_version: 1,
                payload: p.clone(),
                meta: Envelope::originating(format!("c{i}"), 0),
            };
            out.push(RecordedEvent::seal(entity, i as u64 + 1, previous, ev).unwrap());
        }
        out
    }

    fn entity() -> EntityRef {
        EntityRef::new("document", "d1").unwrap()
    }

    fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 2..12)
    }

    #[test]
    fn empty_chain_is_valid() {
        assert!(verify_chain(&[]).is_ok());
    }

    #[test]
    fn foreign_event_is_detected() {
        let mut events = chain(&entity(), &[b"a".to_vec()]);
        let other = chain(&EntityRef::new("document", "d2").unwrap(), &[b"b".to_vec()]);
        events.push(other[0].clone());
        assert!(matches!(
            verify_chain(&events),
            Err(ChainError::ForeignEvent { .. })
        ));
    }

    #[test]
    fn a_verifier_resumes_after_a_snapshot() {
        let events = chain(&entity(), &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let mut v = ChainVerifier::after(entity(), 2, events[1].cid);
        v.push(&events[2]).unwrap();
        assert_eq!(v.version(), 3);
        let mut wrong = ChainVerifier::after(entity(), 2, events[0].cid);
        assert!(matches!(
            wrong.push(&events[2]),
            Err(ChainError::BrokenLink { .. })
        ));
    }

    #[test]
    fn a_partial_read_trusts_only_the_first_position() {
        let events = chain(
            &entity(),
            &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()],
        );
        let mut v = ChainVerifier::partial();
        v.push(&events[1]).unwrap();
        v.push(&events[2]).unwrap();
        assert!(matches!(
            v.push(&events[0]),
            Err(ChainError::VersionGap { .. })
        ));
    }

    proptest! {
        #[test]
        fn honest_chains_verify(p in payloads()) {
            prop_assert!(verify_chain(&chain(&entity(), &p)).is_ok());
        }

        #[test]
        fn tampering_is_detected(p in payloads(), idx in any::<prop::sample::Index>()) {
            let mut events = chain(&entity(), &p);
            let i = idx.index(events.len());
            events[i].payload.push(0xff);
            let tampered = matches!(verify_chain(&events), Err(ChainError::Tampered { .. }));
            prop_assert!(tampered, "tampering event {} went unnoticed", i);
        }

        #[test]
        fn a_missing_event_is_detected(p in payloads(), idx in any::<prop::sample::Index>()) {
            let mut events = chain(&entity(), &p);
            let i = idx.index(events.len() - 1);
            events.remove(i);
            prop_assert!(verify_chain(&events).is_err());
        }

        #[test]
        fn reordering_is_detected(p in payloads(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let mut events = chain(&entity(), &p);
            let (i, j) = (a.index(events.len()), b.index(events.len()));
            prop_assume!(i != j);
            events.swap(i, j);
            prop_assert!(verify_chain(&events).is_err());
        }

        #[test]
        fn relinking_a_tampered_event_is_still_detected(p in payloads()) {
            // Rewrite event 1 and re-seal it: its successor's `previous` no longer matches.
            let mut events = chain(&entity(), &p);
            let forged = NewEvent {
                name: events[0].name.clone(),
                schema_version: 1,
                payload: b"forged".to_vec(),
                meta: events[0].meta.clone(),
            };
            events[0] = RecordedEvent::seal(&entity(), 1, None, forged).unwrap();
            let broken = matches!(verify_chain(&events), Err(ChainError::BrokenLink { .. }));
            prop_assert!(broken, "a re-sealed first event must break the link to its successor");
        }
    }

    #[test]
    fn each_event_gets_its_own_verdict_and_one_tampered_event_is_reported_once() {
        let entity = entity();
        let mut events = chain(&entity, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        events[1].payload = b"tampered".to_vec();
        let v = verdicts(&events);
        assert!(v[0].is_none(), "v1 is good");
        assert!(v[1].is_some(), "v2 is tampered");
        assert!(
            v[2].is_none(),
            "v3 links to v2's CID as stored, so it is judged on its own"
        );
        assert!(verdicts(&chain(&entity, &[b"a".to_vec()]))[0].is_none());
    }
}
