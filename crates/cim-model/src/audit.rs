//! The audit trail: a projection that mirrors every entity's stream into an independent,
//! separately chained stream of `EventAudited` facts.
//!
//! Entity `<kind>/<id>` is audited into `audit-<kind>/<id>`, and the audit event at version
//! `v` records the source event at version `v` (its CID, name and version). Mirroring versions
//! turns the event store's optimistic concurrency into exactly-once effects for an
//! at-least-once subscription:
//!
//! - a redelivered event finds its audit record already at version `v`; the record names the
//!   same source CID, so the delivery is acknowledged and nothing is written twice;
//! - an event that arrives before its predecessors were audited (the audit started late, or an
//!   earlier delivery was given up on) first catches up by reading the missing source events;
//! - an audit record naming a *different* source CID means the trail has diverged from its
//!   source (someone else wrote into it); that is reported as `invalid` and never papered
//!   over.
//!
//! The logic is pure: it runs in the `audit` component against the imported event store and
//! natively against [`cim_domain::testing::MemoryLog`].

use cim_domain::{EcsError, EntityRef, Envelope, EventLog, NewEvent, RecordedEvent, Token};
use serde::{Deserialize, Serialize};

/// Prefix of the entity kinds the audit trail writes.
pub const AUDIT_KIND_PREFIX: &str = "audit-";
/// Name of the audit event.
pub const EVENT_AUDITED: &str = "EventAudited";
/// Events read per catch-up step.
const CATCH_UP_BATCH: u32 = 256;

/// The payload of an `EventAudited` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAudited {
    /// CID of the audited event.
    pub cid: String,
    /// Name of the audited event.
    pub name: String,
    /// Version of the audited event in its entity's stream.
    pub version: u64,
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audited {
    /// The event belongs to an audit trail itself and is not audited again.
    Skipped,
    /// The event was already audited (a redelivery); nothing was written.
    AlreadyRecorded,
    /// Audit records were appended: this many (more than one after a catch-up).
    Recorded(usize),
}

/// The audit trail entity of `source`: kind `audit-<kind>`, same id.
pub fn audit_entity(source: &EntityRef) -> Result<EntityRef, EcsError> {
    let kind = format!("{AUDIT_KIND_PREFIX}{}", source.kind);
    EntityRef::new(&kind, source.id.as_str()).map_err(|e| {
        EcsError::Invalid(format!(
            "entity kind {:?} is too long to audit: {e}",
            source.kind.as_str()
        ))
    })
}

/// The audit record of `event`, caused by it (causation = its CID), in its conversation.
pub fn audit_record(event: &RecordedEvent) -> NewEvent {
    let payload = EventAudited {
        cid: event.cid.to_string(),
        name: event.name.to_string(),
        version: event.version,
    };
    NewEvent {
        name: Token::parse("event name", EVENT_AUDITED).expect("a valid event name"),
        schema_version: 1,
        payload: serde_json::to_vec(&payload).expect("audit payloads serialize"),
        meta: Envelope {
            id: format!("audit:{}", event.cid),
            correlation_id: event.meta.correlation_id.clone(),
            causation_id: Some(event.cid.to_string()),
            occurred_at_ms: event.meta.occurred_at_ms,
        },
    }
}

/// Audits `event` (and any earlier events of its entity the trail is missing) into `log`.
///
/// A delivered event whose version or CID does not hold up ([`RecordedEvent::verify_self`]) is
/// `invalid`: nothing is recorded for it.
pub fn audit(log: &mut impl EventLog, event: &RecordedEvent) -> Result<Audited, EcsError> {
    event.verify_self()?;
    if event.entity.kind.as_str().starts_with(AUDIT_KIND_PREFIX) {
        return Ok(Audited::Skipped);
    }
    let trail = audit_entity(&event.entity)?;
    match log.append(&trail, event.version - 1, vec![audit_record(event)]) {
        Ok(_) => Ok(Audited::Recorded(1)),
        Err(EcsError::Conflict { actual, .. }) if actual >= event.version => {
            let existing = log.read(&trail, event.version, 1)?;
            let record = existing.first().ok_or_else(|| {
                EcsError::Unavailable(format!(
                    "{trail} is at version {actual} but version {} could not be read",
                    event.version
                ))
            })?;
            let recorded: EventAudited = serde_json::from_slice(&record.payload)
                .map_err(|e| diverged(&trail, event, &e.to_string()))?;
            if recorded.cid == event.cid.to_string() {
                Ok(Audited::AlreadyRecorded)
            } else {
                Err(diverged(
                    &trail,
                    event,
                    &format!("it records {}", recorded.cid),
                ))
            }
        }
        Err(EcsError::Conflict { actual, .. }) => catch_up(log, &trail, actual, event),
        Err(e) => Err(e),
    }
}

fn diverged(trail: &EntityRef, event: &RecordedEvent, why: &str) -> EcsError {
    EcsError::Invalid(format!(
        "{trail} diverged from its source at version {} ({}): {why}",
        event.version, event.cid
    ))
}

/// Appends the records of the source events after `audited` up to and including `event`.
fn catch_up(
    log: &mut impl EventLog,
    trail: &EntityRef,
    mut audited: u64,
    event: &RecordedEvent,
) -> Result<Audited, EcsError> {
    let mut written = 0;
    while audited + 1 < event.version {
        let wanted = u32::try_from(event.version - 1 - audited)
            .unwrap_or(u32::MAX)
            .min(CATCH_UP_BATCH);
        let missing = log.read(&event.entity, audited + 1, wanted)?;
        if missing.is_empty() {
            return Err(EcsError::Unavailable(format!(
                "{} has no version {} to audit",
                event.entity,
                audited + 1
            )));
        }
        let records: Vec<NewEvent> = missing.iter().map(audit_record).collect();
        written += log.append(trail, audited, records)?.len();
        audited += missing.len() as u64;
    }
    log.append(trail, audited, vec![audit_record(event)])?;
    Ok(Audited::Recorded(written + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::testing::MemoryLog;

    fn source() -> EntityRef {
        EntityRef::new("document", "doc-1").unwrap()
    }

    fn write(log: &mut MemoryLog, n: usize) -> Vec<RecordedEvent> {
        let at = log.events(&source()).len() as u64;
        let events = (0..n)
            .map(|i| NewEvent {
                name: Token::parse("event name", "DocumentTagged").unwrap(),
                schema_version: 1,
                payload: format!("{{\"tag\":\"t{}\"}}", at as usize + i).into_bytes(),
                meta: Envelope::originating(format!("cmd-{i}"), 7),
            })
            .collect();
        log.append(&source(), at, events).unwrap()
    }

    fn trail(log: &MemoryLog) -> Vec<EventAudited> {
        log.events(&audit_entity(&source()).unwrap())
            .iter()
            .map(|e| serde_json::from_slice(&e.payload).unwrap())
            .collect()
    }

    #[test]
    fn each_event_is_recorded_once_at_its_own_version() {
        let mut log = MemoryLog::new();
        let events = write(&mut log, 3);
        for ev in &events {
            assert_eq!(audit(&mut log, ev).unwrap(), Audited::Recorded(1));
        }
        // Redelivery of any of them writes nothing.
        for ev in &events {
            assert_eq!(audit(&mut log, ev).unwrap(), Audited::AlreadyRecorded);
        }
        let recorded = trail(&log);
        assert_eq!(recorded.len(), 3);
        for (rec, ev) in recorded.iter().zip(&events) {
            assert_eq!(rec.cid, ev.cid.to_string());
            assert_eq!(rec.version, ev.version);
        }
        let first = &log.events(&audit_entity(&source()).unwrap())[0];
        assert_eq!(
            first.meta.causation_id.as_deref(),
            Some(events[0].cid.to_string().as_str())
        );
        assert_eq!(first.meta.correlation_id, events[0].meta.correlation_id);
    }

    #[test]
    fn a_late_event_catches_up_on_the_ones_before_it() {
        let mut log = MemoryLog::new();
        let events = write(&mut log, 600);
        assert_eq!(
            audit(&mut log, &events[599]).unwrap(),
            Audited::Recorded(600)
        );
        let recorded = trail(&log);
        assert_eq!(recorded.len(), 600);
        assert!(recorded
            .iter()
            .zip(&events)
            .all(|(r, e)| r.cid == e.cid.to_string()));
        assert_eq!(
            audit(&mut log, &events[10]).unwrap(),
            Audited::AlreadyRecorded
        );
    }

    #[test]
    fn a_trail_written_by_someone_else_is_reported_not_overwritten() {
        let mut log = MemoryLog::new();
        let events = write(&mut log, 2);
        let foreign = RecordedEvent {
            version: 2,
            ..events[1].clone()
        };
        // A record at version 1 that names some other event.
        log.append(
            &audit_entity(&source()).unwrap(),
            0,
            vec![audit_record(&foreign)],
        )
        .unwrap();
        let err = audit(&mut log, &events[0]).unwrap_err();
        assert!(
            matches!(&err, EcsError::Invalid(m) if m.contains("diverged")),
            "{err}"
        );
        assert_eq!(trail(&log).len(), 1);
    }

    #[test]
    fn forged_or_impossible_events_are_invalid_and_record_nothing() {
        let mut log = MemoryLog::new();
        let events = write(&mut log, 2);
        let forged = RecordedEvent {
            payload: br#"{"tag":"forged"}"#.to_vec(),
            ..events[1].clone()
        };
        let version_zero = RecordedEvent {
            version: 0,
            ..events[0].clone()
        };
        let no_previous = RecordedEvent {
            previous: None,
            ..events[1].clone()
        };
        for bad in [forged, version_zero, no_previous] {
            let err = audit(&mut log, &bad).unwrap_err();
            assert!(matches!(err, EcsError::Invalid(_)), "{err:?}");
        }
        assert!(trail(&log).is_empty());
    }

    #[test]
    fn audit_trails_are_not_audited_and_long_kinds_are_invalid() {
        let mut log = MemoryLog::new();
        let events = write(&mut log, 1);
        audit(&mut log, &events[0]).unwrap();
        let record = log.events(&audit_entity(&source()).unwrap())[0].clone();
        assert_eq!(audit(&mut log, &record).unwrap(), Audited::Skipped);

        let long = EntityRef::new(&"k".repeat(cim_domain::ident::MAX_TOKEN_LEN), "x").unwrap();
        assert!(matches!(audit_entity(&long), Err(EcsError::Invalid(_))));
    }
}
