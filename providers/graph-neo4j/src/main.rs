//! The graph provider binary: everything happens in [`graph_neo4j::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    graph_neo4j::run().await
}
