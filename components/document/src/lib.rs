//! The document entity (seed 004): [`cim_model::document::Document`] behind `cim:ecs/entity` and behind its typed
//! `cim:document/commands`, whose functions `build.rs` generates from the WIT.

/// Generated bindings of the `cim:document/document-component` world; the shared `cim:ecs`
/// types and the event-store import are `cim_guest`'s.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "cim:document/document-component",
        path: ["../../wit", "../../wit/entities/document"],
        with: {
            "cim:ecs/types@0.1.0": cim_guest::bindings::cim::ecs::types,
            "cim:ecs/eventstore@0.1.0": cim_guest::bindings::cim::ecs::eventstore,
        },
        additional_derives: [serde::Serialize],
        generate_all,
    });
}

use cim_guest::{Command, EcsError, Event};
use cim_model::document::Document;

/// The exported component.
struct Component;

impl bindings::exports::cim::ecs::entity::Guest for Component {
    fn handle(cmd: Command) -> Result<Vec<Event>, EcsError> {
        cim_guest::handle::<Document>(cmd)
    }
}

include!(concat!(env!("OUT_DIR"), "/commands.rs"));

bindings::export!(Component with_types_in bindings);
