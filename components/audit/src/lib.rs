//! The audit-trail projection component: [`cim_model::audit`] behind `cim:ecs/reactor`.
//!
//! Linked from the event-store provider with a subscription, it mirrors every delivered event
//! into `audit-<kind>/<id>`, exactly once per event however often it is delivered.

use cim_projection_guest::bindings::exports::cim::ecs::reactor::Guest;
use cim_projection_guest::{EcsError, Event};

/// The exported component.
struct Component;

impl Guest for Component {
    fn on_event(ev: Event) -> Result<(), EcsError> {
        cim_projection_guest::project("audit", ev, cim_model::audit::audit)
    }
}

cim_projection_guest::bindings::export!(Component with_types_in cim_projection_guest::bindings);
