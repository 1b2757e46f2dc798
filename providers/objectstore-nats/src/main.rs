//! The object-store provider binary: everything happens in [`objectstore_nats::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    objectstore_nats::run().await
}
