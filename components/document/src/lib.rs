//! The document entity component: [`cim_model::document::Document`] behind `cim:ecs/entity`.

use cim_guest::bindings::exports::cim::ecs::entity::Guest;
use cim_guest::{Command, EcsError, Event};
use cim_model::document::Document;

/// The exported component.
struct Component;

impl Guest for Component {
    fn handle(cmd: Command) -> Result<Vec<Event>, EcsError> {
        cim_guest::handle::<Document>(cmd)
    }
}

cim_guest::bindings::export!(Component with_types_in cim_guest::bindings);
