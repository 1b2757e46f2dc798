//! Serving `cim:ecs/build` with per-invocation parameter decoding under a deadline.

use cim_wrpc::serve::function;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};

use crate::bindings::exports::cim::ecs::build::Handler as _;
use crate::provider::BuildProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/build@0.1.0";

/// The invocation streams of `cim:ecs/build`.
pub async fn exports(
    wrpc: WrpcClient,
    provider: BuildProvider,
) -> anyhow::Result<InvocationStreams> {
    let build = function(
        &wrpc,
        INSTANCE,
        "build",
        move |cx, (flake_ref, attribute)| {
            let p = provider.clone();
            async move { Ok((p.build(cx, flake_ref, attribute).await?,)) }
        },
    )
    .await?;
    Ok(vec![build])
}
