//! The CIM object-store capability provider: `cim:ecs/objectstore` over a NATS Object Store
//! bucket whose object names are CIDs ([`cim_nats::ObjectStore`]).
//!
//! - `put` computes the CID (CIDv1, raw, sha2-256, the scheme of `cim-domain`) and stores the
//!   bytes once; `get` verifies the bytes against the CID and fails loudly on a mismatch;
//!   `stat` describes; `delete` only where the provider config allows it.
//! - Invocations are decoded per call under a deadline ([`cim_wrpc::serve`]).
//!
//! See `README.md` and [`config`].

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "objectstore-provider",
        path: "../../wit",
        with: {
            "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types,
        },
    });
}

pub mod config;
mod provider;
mod serve;

pub use provider::ObjectStoreProvider;

use anyhow::Context as _;
use wasmcloud_provider_sdk::{get_connection, run_provider, serve_provider_exports};

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    let provider = ObjectStoreProvider::default();
    let shutdown = run_provider(provider.clone(), "objectstore-nats")
        .await
        .context("failed to start the provider")?;
    let connection = get_connection();
    provider
        .store()
        .await
        .context("failed to open the object bucket")?;
    let wrpc = connection
        .get_wrpc_client(connection.provider_key())
        .await
        .context("failed to create the wRPC client")?;
    serve_provider_exports(&wrpc, provider, shutdown, serve::exports)
        .await
        .context("provider exports stopped with an error")
}
