//! The CIM knowledge-graph capability provider: `cim:ecs/graph` on Neo4j 5 over Bolt
//! (`neo4rs`, through [`cim_graph`]), and the graph projection system ([`projection`]).
//!
//! - `merge-nodes` / `merge-edges`: batched, parameterised `UNWIND … MERGE`; labels and types
//!   validated as identifiers; `query`: read-only Cypher with parameters, write clauses
//!   rejected as `invalid`, run in a rolled-back transaction.
//! - Key constraints are created idempotently, per label, before the first write to it.
//! - Connection settings and the password come from provider config (`password_file` keeps
//!   the secret out of the manifest) and are never logged. See `README.md` and [`config`].

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "graph-provider",
        path: "../../wit",
        with: {
            "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types,
        },
    });
}

pub mod config;
pub mod projection;
mod provider;
mod serve;

pub use provider::GraphProvider;

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    cim_provider::run(
        GraphProvider::default(),
        "graph-neo4j",
        |p| async move {
            p.start_projection().await;
            Ok(())
        },
        serve::exports,
    )
    .await
}
