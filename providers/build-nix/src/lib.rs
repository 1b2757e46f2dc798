//! The CIM nix-build capability provider: `cim:ecs/build` with `nix build`.
//!
//! - Only flake refs within the calling link's allow-list (`allowed_flake_refs` link config)
//!   are built; refs and attribute paths are validated against a narrow grammar first
//!   ([`flakeref`]), and Nix runs without a shell ([`nix`]).
//! - Builds are sandboxed and offline by default (no substituters), limited in number and
//!   killed with their process group past their timeout ([`config`]).
//! - Every build that ran stores its log in the object store by CID; a successful build also
//!   stores the NAR of its first output, the artifact a package publishes.
//!
//! See `README.md`.

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "build-provider",
        path: "../../wit",
        with: {
            "cim:ecs/types@0.1.0": cim_wrpc::bindings::cim::ecs::types,
        },
    });
}

pub mod config;
pub mod flakeref;
pub mod nix;
mod provider;
mod serve;

pub use provider::BuildProvider;

use anyhow::Context as _;

/// Runs the provider until the host asks it to stop.
pub async fn run() -> anyhow::Result<()> {
    cim_provider::run(
        BuildProvider::default(),
        "build-nix",
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
