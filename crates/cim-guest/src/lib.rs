//! Guest-side glue shared by every CIM entity component.
//!
//! It generates the bindings of the `cim:ecs/entity-component` world once, converts between
//! WIT records and [`cim_domain`] types, and runs [`cim_domain::handle_command`] against the
//! `eventstore` import. An entity component is then a few lines:
//!
//! ```text
//! struct Component;
//! impl cim_guest::bindings::exports::cim::ecs::entity::Guest for Component {
//!     fn handle(cmd: cim_guest::Command) -> Result<Vec<cim_guest::Event>, cim_guest::EcsError> {
//!         cim_guest::handle::<cim_model::document::Document>(cmd)
//!     }
//! }
//! cim_guest::bindings::export!(Component with_types_in cim_guest::bindings);
//! ```

/// Generated bindings of the `cim:ecs/entity-component` world.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "entity-component",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

use bindings::cim::ecs::eventstore;
pub use bindings::cim::ecs::types::{
    Command, EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict,
};

use cim_domain::event::parse_cid;
use cim_domain::{Aggregate, CommandRequest, EventLog, RecordedEvent};

fn envelope_in(e: Envelope) -> cim_domain::Envelope {
    cim_domain::Envelope {
        id: e.id,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        occurred_at_ms: e.occurred_at_ms,
    }
}

fn envelope_out(e: cim_domain::Envelope) -> Envelope {
    Envelope {
        id: e.id,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        occurred_at_ms: e.occurred_at_ms,
    }
}

fn entity_out(e: &cim_domain::EntityRef) -> EntityRef {
    EntityRef {
        kind: e.kind.to_string(),
        id: e.id.to_string(),
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

fn error_in(e: EcsError) -> cim_domain::EcsError {
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
pub fn event_out(e: RecordedEvent) -> Event {
    Event {
        cid: e.cid.to_string(),
        previous: e.previous.map(|c| c.to_string()),
        entity: entity_out(&e.entity),
        version: e.version,
        name: e.name.to_string(),
        schema_version: e.schema_version,
        payload: e.payload,
        meta: envelope_out(e.meta),
    }
}

/// Converts a WIT event from the event store into a domain event, validating every field.
pub fn event_in(e: Event) -> Result<RecordedEvent, cim_domain::EcsError> {
    let bad = |m: String| {
        cim_domain::EcsError::Unavailable(format!("event store returned a malformed event: {m}"))
    };
    Ok(RecordedEvent {
        cid: parse_cid(&e.cid).map_err(|x| bad(x.to_string()))?,
        previous: e
            .previous
            .as_deref()
            .map(parse_cid)
            .transpose()
            .map_err(|x| bad(x.to_string()))?,
        entity: cim_domain::EntityRef::new(&e.entity.kind, &e.entity.id)
            .map_err(|x| bad(x.to_string()))?,
        version: e.version,
        name: cim_domain::Token::parse("event name", &e.name).map_err(|x| bad(x.to_string()))?,
        schema_version: e.schema_version,
        payload: e.payload,
        meta: envelope_in(e.meta),
    })
}

/// The `eventstore` import, seen as a [`EventLog`].
struct ImportedLog;

impl EventLog for ImportedLog {
    fn read(
        &mut self,
        entity: &cim_domain::EntityRef,
        from: u64,
        max: u32,
    ) -> Result<Vec<RecordedEvent>, cim_domain::EcsError> {
        eventstore::read(&entity_out(entity), from, max)
            .map_err(error_in)?
            .into_iter()
            .map(event_in)
            .collect()
    }

    fn append(
        &mut self,
        entity: &cim_domain::EntityRef,
        expected_version: u64,
        events: Vec<cim_domain::NewEvent>,
    ) -> Result<Vec<RecordedEvent>, cim_domain::EcsError> {
        let events: Vec<NewEvent> = events
            .into_iter()
            .map(|e| NewEvent {
                name: e.name.to_string(),
                schema_version: e.schema_version,
                payload: e.payload,
                meta: envelope_out(e.meta),
            })
            .collect();
        eventstore::append(&entity_out(entity), expected_version, &events)
            .map_err(error_in)?
            .into_iter()
            .map(event_in)
            .collect()
    }
}

/// Handles a command for aggregate `A` against the imported event store: the whole body of an
/// entity component's `handle` export. Outcomes are logged through `wasi:logging`.
pub fn handle<A: Aggregate>(cmd: Command) -> Result<Vec<Event>, EcsError> {
    let target = format!("{}/{} {}", cmd.entity.kind, cmd.entity.id, cmd.name);
    let request = CommandRequest {
        kind: cmd.entity.kind,
        id: cmd.entity.id,
        name: cmd.name,
        payload: cmd.payload,
        expected_version: cmd.expected_version,
        meta: envelope_in(cmd.meta),
    };
    match cim_domain::handle_command::<A>(&mut ImportedLog, request) {
        Ok(events) => {
            wasmcloud_component::debug!(context: A::KIND, "{target}: {} event(s) appended", events.len());
            Ok(events.into_iter().map(event_out).collect())
        }
        Err(e) => {
            wasmcloud_component::info!(context: A::KIND, "{target}: {e}");
            Err(error_out(e))
        }
    }
}
