//! The nix-build provider binary: everything happens in [`build_nix::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    build_nix::run().await
}
