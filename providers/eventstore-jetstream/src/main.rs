//! The event-store provider binary: everything happens in [`eventstore_jetstream::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eventstore_jetstream::run().await
}
