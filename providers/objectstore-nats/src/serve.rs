//! Serving `cim:ecs/objectstore` with per-invocation parameter decoding under a deadline.

use cim_wrpc::serve::function;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};

use crate::bindings::exports::cim::ecs::objectstore::Handler as _;
use crate::provider::ObjectStoreProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/objectstore@0.1.0";

/// The invocation streams of every `cim:ecs/objectstore` function.
pub async fn exports(
    wrpc: WrpcClient,
    provider: ObjectStoreProvider,
) -> anyhow::Result<InvocationStreams> {
    let p = provider.clone();
    let put = function(&wrpc, INSTANCE, "put", move |cx, (data, media_type)| {
        let p = p.clone();
        async move { Ok((p.put(cx, data, media_type).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let get = function(&wrpc, INSTANCE, "get", move |cx, (id,)| {
        let p = p.clone();
        async move { Ok((p.get(cx, id).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let stat = function(&wrpc, INSTANCE, "stat", move |cx, (id,)| {
        let p = p.clone();
        async move { Ok((p.stat(cx, id).await?,)) }
    })
    .await?;
    let delete = function(&wrpc, INSTANCE, "delete", move |cx, (id,)| {
        let p = provider.clone();
        async move { Ok((p.delete(cx, id).await?,)) }
    })
    .await?;
    Ok(vec![put, get, stat, delete])
}
