//! Serving `cim:ecs/graph` with per-invocation parameter decoding under a deadline.

use cim_wrpc::serve::function;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};

use crate::bindings::exports::cim::ecs::graph::Handler as _;
use crate::provider::GraphProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/graph@0.1.0";

/// The invocation streams of every `cim:ecs/graph` function.
pub async fn exports(
    wrpc: WrpcClient,
    provider: GraphProvider,
) -> anyhow::Result<InvocationStreams> {
    let p = provider.clone();
    let nodes = function(&wrpc, INSTANCE, "merge-nodes", move |cx, (nodes,)| {
        let p = p.clone();
        async move { Ok((p.merge_nodes(cx, nodes).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let edges = function(&wrpc, INSTANCE, "merge-edges", move |cx, (edges,)| {
        let p = p.clone();
        async move { Ok((p.merge_edges(cx, edges).await?,)) }
    })
    .await?;
    let query = function(&wrpc, INSTANCE, "query", move |cx, (cypher, params)| {
        let p = provider.clone();
        async move { Ok((p.query(cx, cypher, params).await?,)) }
    })
    .await?;
    Ok(vec![nodes, edges, query])
}
