//! Native wRPC bindings of the `cim:ecs` WIT package, generated once.
//!
//! [`bindings`] is the `testing-client` world: client functions for every interface (what the
//! `cim` CLI and tests call over NATS) and the shared record types. Providers that export an
//! interface generate their own world with `with: { "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types }`
//! so every crate speaks the same Rust types. The conversions between these records and
//! [`cim_domain`] types live here, once.

/// Generated client bindings (world `cim:ecs/testing-client`).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "testing-client",
        path: "../../wit",
    });
}

pub use bindings::cim::ecs::types::{
    Command, EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict,
};

use cim_domain::event::parse_cid;

/// Converts a domain entity reference to its WIT form.
pub fn entity_out(e: &cim_domain::EntityRef) -> EntityRef {
    EntityRef {
        kind: e.kind.to_string(),
        id: e.id.to_string(),
    }
}

/// Validates a WIT entity reference.
pub fn entity_in(e: &EntityRef) -> Result<cim_domain::EntityRef, cim_domain::EcsError> {
    cim_domain::EntityRef::new(&e.kind, &e.id)
        .map_err(|x| cim_domain::EcsError::Invalid(x.to_string()))
}

/// Converts a domain envelope to its WIT form.
pub fn envelope_out(e: cim_domain::Envelope) -> Envelope {
    Envelope {
        id: e.id,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        occurred_at_ms: e.occurred_at_ms,
    }
}

/// Converts a WIT envelope to its domain form.
pub fn envelope_in(e: Envelope) -> cim_domain::Envelope {
    cim_domain::Envelope {
        id: e.id,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        occurred_at_ms: e.occurred_at_ms,
    }
}

/// Converts a domain error to its WIT form.
pub fn error_out(e: cim_domain::EcsError) -> EcsError {
    use cim_domain::EcsError as D;
    match e {
        D::Rejected(m) => EcsError::Rejected(m),
        D::Conflict { expected, actual } => {
            EcsError::Conflict(VersionConflict { expected, actual })
        }
        D::Invalid(m) => EcsError::Invalid(m),
        D::NotFound(m) => EcsError::NotFound(m),
        D::Unavailable(m) => EcsError::Unavailable(m),
    }
}

/// Converts a WIT error to its domain form.
pub fn error_in(e: EcsError) -> cim_domain::EcsError {
    use cim_domain::EcsError as D;
    match e {
        EcsError::Rejected(m) => D::Rejected(m),
        EcsError::Conflict(c) => D::Conflict {
            expected: c.expected,
            actual: c.actual,
        },
        EcsError::Invalid(m) => D::Invalid(m),
        EcsError::NotFound(m) => D::NotFound(m),
        EcsError::Unavailable(m) => D::Unavailable(m),
    }
}

/// Converts a stored event to its WIT form.
pub fn event_out(e: cim_domain::RecordedEvent) -> Event {
    Event {
        cid: e.cid.to_string(),
        previous: e.previous.map(|c| c.to_string()),
        entity: entity_out(&e.entity),
        version: e.version,
        name: e.name.to_string(),
        schema_version: e.schema_version,
        payload: e.payload.into(),
        meta: envelope_out(e.meta),
    }
}

/// Validates a WIT event into a domain event (its CID is checked by chain verification).
pub fn event_in(e: Event) -> Result<cim_domain::RecordedEvent, cim_domain::EcsError> {
    let bad = |m: String| cim_domain::EcsError::Invalid(format!("malformed event: {m}"));
    Ok(cim_domain::RecordedEvent {
        cid: parse_cid(&e.cid).map_err(|x| bad(x.to_string()))?,
        previous: e
            .previous
            .as_deref()
            .map(parse_cid)
            .transpose()
            .map_err(|x| bad(x.to_string()))?,
        entity: entity_in(&e.entity)?,
        version: e.version,
        name: cim_domain::Token::parse("event name", &e.name).map_err(|x| bad(x.to_string()))?,
        schema_version: e.schema_version,
        payload: e.payload.to_vec(),
        meta: envelope_in(e.meta),
    })
}

/// Validates a WIT new event into its domain form.
pub fn new_event_in(e: NewEvent) -> Result<cim_domain::NewEvent, cim_domain::EcsError> {
    Ok(cim_domain::NewEvent {
        name: cim_domain::Token::parse("event name", &e.name)
            .map_err(|x| cim_domain::EcsError::Invalid(x.to_string()))?,
        schema_version: e.schema_version,
        payload: e.payload.to_vec(),
        meta: envelope_in(e.meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_wit_records() {
        let entity = cim_domain::EntityRef::new("document", "d1").unwrap();
        let ev = cim_domain::RecordedEvent::seal(
            &entity,
            1,
            None,
            cim_domain::NewEvent {
                name: cim_domain::Token::parse("event name", "Created").unwrap(),
                schema_version: 1,
                payload: b"{}".to_vec(),
                meta: cim_domain::Envelope::originating("c1", 3),
            },
        )
        .unwrap();
        assert_eq!(event_in(event_out(ev.clone())).unwrap(), ev);
    }

    #[test]
    fn errors_round_trip() {
        for e in [
            cim_domain::EcsError::Rejected("r".into()),
            cim_domain::EcsError::Conflict {
                expected: 1,
                actual: 2,
            },
            cim_domain::EcsError::Invalid("i".into()),
            cim_domain::EcsError::NotFound("n".into()),
            cim_domain::EcsError::Unavailable("u".into()),
        ] {
            assert_eq!(error_in(error_out(e.clone())), e);
        }
    }

    #[test]
    fn malformed_wit_events_are_invalid() {
        let mut ev = event_out(
            cim_domain::RecordedEvent::seal(
                &cim_domain::EntityRef::new("document", "d1").unwrap(),
                1,
                None,
                cim_domain::NewEvent {
                    name: cim_domain::Token::parse("event name", "Created").unwrap(),
                    schema_version: 1,
                    payload: b"{}".to_vec(),
                    meta: cim_domain::Envelope::originating("c1", 3),
                },
            )
            .unwrap(),
        );
        ev.cid = "nope".into();
        assert!(matches!(
            event_in(ev),
            Err(cim_domain::EcsError::Invalid(_))
        ));
    }
}
