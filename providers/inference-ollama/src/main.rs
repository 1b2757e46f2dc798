//! The inference provider binary: everything happens in [`inference_ollama::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    inference_ollama::run().await
}
