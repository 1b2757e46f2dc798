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
use wasmcloud_provider_sdk::{get_connection, run_provider, serve_provider_exports};

/// Runs the provider: reads the host data from stdin, joins the lattice, serves
/// `cim:ecs/eventstore` ([`serve`]: parameters decoded per invocation, under a deadline) until
/// the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    let provider = EventStoreProvider::default();
    let shutdown = run_provider(provider.clone(), "eventstore-jetstream")
        .await
        .context("failed to start the provider")?;
    let connection = get_connection();
    provider
        .store()
        .await
        .context("failed to open the event store")?;
    let wrpc = connection
        .get_wrpc_client(connection.provider_key())
        .await
        .context("failed to create the wRPC client")?;
    serve_provider_exports(&wrpc, provider, shutdown, serve::exports)
        .await
        .context("provider exports stopped with an error")
}
