//! The build pipeline system: [`cim_model::pipeline`] behind `cim:ecs/reactor`.
//!
//! Linked from the event-store provider with a subscription to package events, it builds every
//! requested flake attribute through its `cim:ecs/build` import (the nix-build provider) and
//! records the outcome on the package through its `cim:package/commands` import (the package
//! component), caused by the triggering event. Redeliveries do nothing twice (the decision is
//! taken from the package's history, read through the `cim:ecs/eventstore` import).

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "cim:systems/pipeline-component",
        path: [
            "../../wit",
            "../../wit/entities/document",
            "../../wit/entities/package",
            "../../wit/systems",
        ],
        generate_all,
    });
}

use bindings::cim::ecs::types::{EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict};
use bindings::cim::ecs::{build, eventstore};
use bindings::exports::cim::ecs::reactor::Guest;
use cim_model::package::PackageCommand;
use cim_model::pipeline::{BuildOutcome, Builder, Packages};

cim_domain::wit_conversions!();
cim_domain::imported_event_log!();

type DomainErrorOf = cim_domain::EcsError;

include!(concat!(env!("OUT_DIR"), "/client.rs"));

/// The exported component; its imports are the pipeline's ports.
struct Component;

impl Builder for ImportedLog {
    fn build(
        &mut self,
        flake_ref: &str,
        attribute: &str,
    ) -> Result<BuildOutcome, cim_domain::EcsError> {
        let r = build::build(flake_ref, attribute).map_err(error_in)?;
        Ok(BuildOutcome {
            success: r.success,
            out_paths: r.out_paths,
            nar_hash: r.nar_hash,
            nar_cid: r.nar_cid,
            log_cid: r.log_cid,
            error: r.error,
        })
    }
}

impl Packages for ImportedLog {
    fn send(
        &mut self,
        package: &cim_domain::EntityRef,
        command: &PackageCommand,
        meta: cim_domain::Envelope,
    ) -> Result<Vec<cim_domain::RecordedEvent>, cim_domain::EcsError> {
        if package.kind.as_str() != <cim_model::package::Package as cim_domain::Aggregate>::KIND {
            return Err(DomainErrorOf::Invalid(format!(
                "{package} is not a package: only packages are linked"
            )));
        }
        send_typed(package.id.as_str(), command, &envelope_out(meta), None)
            .map_err(error_in)?
            .into_iter()
            .map(stored_event_in)
            .collect()
    }
}

impl Guest for Component {
    fn on_event(ev: Event) -> Result<(), EcsError> {
        let event = event_in(ev)
            .map_err(|m| EcsError::Invalid(format!("undecodable event delivered: {m}")))?;
        let now = wasmcloud_component::wasi::clocks::wall_clock::now();
        let now_ms = now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000);
        let outcome = event
            .verify_self()
            .and_then(|()| cim_model::pipeline::react(&mut ImportedLog, &event, now_ms));
        match outcome {
            Ok(cim_model::pipeline::Reaction::Ignored) => Ok(()),
            Ok(reaction) => {
                wasmcloud_component::info!(context: "pipeline", "{} v{} ({}): {reaction:?}", event.entity, event.version, event.cid);
                Ok(())
            }
            Err(e) => {
                wasmcloud_component::warn!(context: "pipeline", "{} v{} ({}): {e}", event.entity, event.version, event.cid);
                Err(error_out(e))
            }
        }
    }
}

bindings::export!(Component with_types_in bindings);
