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

pub mod nats;
pub mod serve;

pub use bindings::cim::ecs::types::{
    Command, EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict,
};

cim_domain::wit_conversions!();

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> cim_domain::RecordedEvent {
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
        .unwrap()
    }

    #[test]
    fn events_round_trip_through_wit_records() {
        let ev = sample();
        assert_eq!(event_in(event_out(ev.clone())).unwrap(), ev);
        let new = cim_domain::NewEvent {
            name: ev.name.clone(),
            schema_version: 1,
            payload: ev.payload.clone(),
            meta: ev.meta.clone(),
        };
        assert_eq!(new_event_in(new_event_out(new.clone())).unwrap(), new);
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
        let mut ev = event_out(sample());
        ev.cid = "nope".into();
        assert!(event_in(ev).unwrap_err().contains("nope"));
    }
}
