//! The package entity component: [`cim_model::package::Package`] behind `cim:ecs/entity`.

use cim_guest::bindings::exports::cim::ecs::entity::Guest;
use cim_guest::{Command, EcsError, Event};
use cim_model::package::Package;

/// The exported component.
struct Component;

impl Guest for Component {
    fn handle(cmd: Command) -> Result<Vec<Event>, EcsError> {
        cim_guest::handle::<Package>(cmd)
    }
}

cim_guest::bindings::export!(Component with_types_in cim_guest::bindings);
