//! The CIM inference capability provider: `cim:ecs/inference` (chat, generate, embed) on an
//! Ollama server through ollama-rs.
//!
//! - Endpoint, default models and deadline come from provider config, and each link to the
//!   provider may override them for its caller ([`config`]).
//! - A model the server lacks is `not-found` (with the `ollama pull` to fix it), a server
//!   that does not answer in time or at all is `unavailable`, a request it refuses is
//!   `invalid` ([`client`]).
//! - The WIT functions are synchronous, so answers are whole: the provider asks Ollama for a
//!   non-streamed answer.
//!
//! See `README.md`.

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "inference-provider",
        path: "../../wit",
        with: {
            "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types,
        },
    });
}

pub mod client;
pub mod config;
mod provider;
mod serve;

pub use provider::InferenceProvider;

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    cim_provider::run(
        InferenceProvider::default(),
        "inference-ollama",
        |_| async { Ok(()) },
        serve::exports,
    )
    .await
}
