//! Guest-side glue shared by CIM projection components (world `cim:ecs/projection-component`:
//! imports `eventstore`, exports `reactor`).
//!
//! A projection is a pure function of one delivered event and an [`EventLog`]; this crate
//! converts the WIT event, hands the function the imported event store, logs the outcome
//! through `wasi:logging` and maps errors back to WIT. A projection component is then:
//!
//! ```text
//! struct Component;
//! impl cim_projection_guest::bindings::exports::cim::ecs::reactor::Guest for Component {
//!     fn on_event(ev: cim_projection_guest::Event) -> Result<(), cim_projection_guest::EcsError> {
//!         cim_projection_guest::project("audit", ev, cim_model::audit::audit)
//!     }
//! }
//! cim_projection_guest::bindings::export!(Component with_types_in cim_projection_guest::bindings);
//! ```
//!
//! It is a separate crate from `cim-guest` because wit-bindgen records each crate's world in
//! the component it is linked into: an entity component must not claim to export `reactor`,
//! nor a projection `entity`.

/// Generated bindings of the `cim:ecs/projection-component` world.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "projection-component",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

use bindings::cim::ecs::eventstore;
pub use bindings::cim::ecs::types::{
    EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict,
};

use cim_domain::RecordedEvent;

cim_domain::wit_conversions!();
cim_domain::imported_event_log!();

/// Runs `projection` for one delivered event against the imported event store: the whole body
/// of a projection component's `on-event` export. `name` labels the log lines.
///
/// An event that does not decode is `invalid` (the event store stops redelivering it).
pub fn project<T: std::fmt::Debug>(
    name: &str,
    ev: Event,
    projection: impl FnOnce(&mut ImportedLog, &RecordedEvent) -> Result<T, cim_domain::EcsError>,
) -> Result<(), EcsError> {
    let event =
        event_in(ev).map_err(|m| EcsError::Invalid(format!("undecodable event delivered: {m}")))?;
    match projection(&mut ImportedLog, &event) {
        Ok(outcome) => {
            wasmcloud_component::debug!(context: name, "{} v{} ({}): {outcome:?}", event.entity, event.version, event.cid);
            Ok(())
        }
        Err(e) => {
            wasmcloud_component::warn!(context: name, "{} v{} ({}): {e}", event.entity, event.version, event.cid);
            Err(error_out(e))
        }
    }
}
