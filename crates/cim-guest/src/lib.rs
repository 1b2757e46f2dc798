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

use cim_domain::{Aggregate, CommandRequest, Settings};

cim_domain::wit_conversions!();

cim_domain::imported_event_log!();

/// The component config key (wadm `config` of the component) naming how many events are
/// appended between snapshots; `0` saves none. Unset means
/// [`cim_domain::handler::DEFAULT_SNAPSHOT_EVERY`].
pub const SNAPSHOT_EVERY_KEY: &str = "snapshot-every";

/// The component's [`Settings`], from its config; a value that is not a whole number is the
/// operator's mistake, reported to every caller until it is fixed.
fn settings() -> Result<Settings, cim_domain::EcsError> {
    use wasmcloud_component::wasi::config::store;
    let value = store::get(SNAPSHOT_EVERY_KEY).map_err(|e| {
        cim_domain::EcsError::Unavailable(format!("reading the component config: {e:?}"))
    })?;
    match value {
        None => Ok(Settings::default()),
        Some(v) => v
            .trim()
            .parse()
            .map(|snapshot_every| Settings { snapshot_every })
            .map_err(|_| {
                cim_domain::EcsError::Unavailable(format!(
                    "component config {SNAPSHOT_EVERY_KEY}={v:?} is not a whole number of events (0 saves no snapshots)"
                ))
            }),
    }
}

/// Handles a command for aggregate `A` against the imported event store: the whole body of an
/// entity component's `handle` export. Outcomes are logged through `wasi:logging`, and so is
/// a snapshot that could not be used or saved.
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
    let outcome = settings().and_then(|settings| {
        cim_domain::handle_command_with::<A>(&mut ImportedLog, request, settings, |notice| {
            wasmcloud_component::warn!(context: A::KIND, "{notice}");
        })
    });
    match outcome {
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

/// Handles command `name` of aggregate `A` that arrived through the entity's typed interface
/// (`cim:<kind>/commands`): `cmd` is the command's generated WIT record, encoded as its JSON
/// payload (ADR 0012), and handled exactly as [`handle`] handles the same command sent to
/// `cim:ecs/entity.handle`. The components' build scripts generate the calls
/// (`cim_witgen::Language::guest_commands`).
pub fn handle_typed<A: Aggregate, C: serde::Serialize>(
    name: &str,
    id: String,
    cmd: &C,
    meta: Envelope,
    expected_version: Option<u64>,
) -> Result<Vec<Event>, EcsError> {
    let payload = serde_json::to_vec(cmd)
        .map_err(|e| EcsError::Invalid(format!("{name} cannot be encoded as JSON: {e}")))?;
    handle::<A>(Command {
        entity: EntityRef {
            kind: A::KIND.to_owned(),
            id,
        },
        name: name.to_owned(),
        payload,
        expected_version,
        meta,
    })
}
