//! The package entity (seed 002, commit to deployment): [`cim_model::package::Package`] behind `cim:ecs/entity` and behind its typed
//! `cim:package/commands`, whose functions `build.rs` generates from the WIT.

/// Generated bindings of the `cim:package/package-component` world; the shared `cim:ecs`
/// types and the event-store import are `cim_guest`'s.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "cim:%package/package-component",
        path: ["../../wit", "../../wit/entities/package"],
        with: {
            "cim:ecs/types@0.1.0": cim_guest::bindings::cim::ecs::types,
            "cim:ecs/eventstore@0.1.0": cim_guest::bindings::cim::ecs::eventstore,
        },
        additional_derives: [serde::Serialize],
        generate_all,
    });
}

use cim_guest::{Command, EcsError, Event};
use cim_model::package::Package;

/// The exported component.
struct Component;

impl bindings::exports::cim::ecs::entity::Guest for Component {
    fn handle(cmd: Command) -> Result<Vec<Event>, EcsError> {
        cim_guest::handle::<Package>(cmd)
    }
}

include!(concat!(env!("OUT_DIR"), "/commands.rs"));

bindings::export!(Component with_types_in bindings);
