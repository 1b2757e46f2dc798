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

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    cim_provider::run(
        ObjectStoreProvider::default(),
        "objectstore-nats",
        |p| async move {
            p.store()
                .await
                .context("failed to open the object bucket")?;
            Ok(())
        },
        serve::exports,
    )
    .await
}
