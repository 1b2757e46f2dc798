//! Serving `cim:ecs/eventstore` over wRPC with each invocation's parameters decoded in its own
//! task under a deadline ([`cim_wrpc::serve`]): garbage on one of the provider's subjects
//! cannot stall the invocations behind it.

use cim_wrpc::serve::function;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};

use crate::bindings::exports::cim::ecs::eventstore::Handler as _;
use crate::provider::EventStoreProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/eventstore@0.1.0";

/// The invocation streams of every `cim:ecs/eventstore` function, for
/// [`wasmcloud_provider_sdk::serve_provider_exports`].
pub async fn exports(
    wrpc: WrpcClient,
    provider: EventStoreProvider,
) -> anyhow::Result<InvocationStreams> {
    let p = provider.clone();
    let append = function(
        &wrpc,
        INSTANCE,
        "append",
        move |cx, (entity, expected, events)| {
            let p = p.clone();
            async move { Ok((p.append(cx, entity, expected, events).await?,)) }
        },
    )
    .await?;
    let p = provider.clone();
    let read = function(&wrpc, INSTANCE, "read", move |cx, (entity, from, max)| {
        let p = p.clone();
        async move { Ok((p.read(cx, entity, from, max).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let load_snapshot = function(&wrpc, INSTANCE, "load-snapshot", move |cx, (entity,)| {
        let p = p.clone();
        async move { Ok((p.load_snapshot(cx, entity).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let save = function(&wrpc, INSTANCE, "save-snapshot", move |cx, (snap,)| {
        let p = p.clone();
        async move { Ok((p.save_snapshot(cx, snap).await?,)) }
    })
    .await?;
    let load = function(&wrpc, INSTANCE, "load", move |cx, (entity, max)| {
        let p = provider.clone();
        async move { Ok((p.load(cx, entity, max).await?,)) }
    })
    .await?;
    Ok(vec![append, read, load_snapshot, save, load])
}
