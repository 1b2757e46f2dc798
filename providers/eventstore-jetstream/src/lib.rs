//! The CIM event-store capability provider.
//!
//! - Serves `cim:ecs/eventstore` to linked entity components, backed by
//!   [`cim_nats::EventStore`] (JetStream, per-entity optimistic concurrency, CID chains).
//! - Drives linked system components that export `cim:ecs/reactor`: each provider → reactor
//!   link gets a durable JetStream consumer, and every matching event is delivered with
//!   `on-event`, at least once and in stream order ([`subscription`]).
//!
//! See `README.md` for link configuration and `config.rs` for the keys.

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "eventstore-provider",
        path: "../../wit",
        with: {
            "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types,
            "cim:ecs/reactor@0.1.0": cim_wrpc::bindings::cim::ecs::reactor,
        },
    });
}

pub mod config;
mod eventstore;
mod provider;
pub mod serve;
pub mod subscription;

pub use provider::EventStoreProvider;

use anyhow::Context as _;

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    cim_provider::run(
        EventStoreProvider::default(),
        "eventstore-jetstream",
        |p| async move {
            p.store().await.context("failed to open the event store")?;
            Ok(())
        },
        serve::exports,
    )
    .await
}
