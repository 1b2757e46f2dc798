//! Serving `cim:ecs/inference` with per-invocation parameter decoding under a deadline.

use cim_wrpc::serve::function;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};

use crate::bindings::exports::cim::ecs::inference::Handler as _;
use crate::provider::InferenceProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/inference@0.1.0";

/// The invocation streams of every `cim:ecs/inference` function.
pub async fn exports(
    wrpc: WrpcClient,
    provider: InferenceProvider,
) -> anyhow::Result<InvocationStreams> {
    let p = provider.clone();
    let chat = function(&wrpc, INSTANCE, "chat", move |cx, (model, messages)| {
        let p = p.clone();
        async move { Ok((p.chat(cx, model, messages).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let generate = function(
        &wrpc,
        INSTANCE,
        "generate",
        move |cx, (model, prompt, system)| {
            let p = p.clone();
            async move { Ok((p.generate(cx, model, prompt, system).await?,)) }
        },
    )
    .await?;
    let embed = function(&wrpc, INSTANCE, "embed", move |cx, (model, inputs)| {
        let p = provider.clone();
        async move { Ok((p.embed(cx, model, inputs).await?,)) }
    })
    .await?;
    Ok(vec![chat, generate, embed])
}
