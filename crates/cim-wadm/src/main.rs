//! `wadm`: the wasmCloud application deployment manager (crate `wadm 0.21.1`) as a binary.
//!
//! No wadm binary can be downloaded here, so the CIM builds this small main around
//! `wadm::start_wadm`. It takes exactly upstream wadm's flags and `WADM_*` variables
//! (`--nats-server`, `--nats-creds-file`, `--http-admin`, …), and `wadm --version` prints
//! `wadm 0.21.1`, so tools that expect upstream wadm accept it.

use anyhow::Context;
use clap::Parser;
use tracing::{error, info};
use wadm::config::WadmConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = WadmConfig::parse();
    let mut tasks = wadm::start_wadm(config)
        .await
        .context("failed to start wadm")?;
    info!("wadm started");
    tokio::select! {
        finished = tasks.join_next() => {
            match finished {
                Some(Ok(Ok(()))) | None => info!("wadm stopped"),
                Some(Ok(Err(e))) => {
                    error!(error = %e, "a wadm task failed");
                    return Err(e);
                }
                Some(Err(e)) => anyhow::bail!("a wadm task panicked: {e}"),
            }
        }
        signal = cim_process::shutdown_signal() => {
            signal?;
            info!("stop signal received, stopping wadm");
        }
    }
    tasks.shutdown().await;
    Ok(())
}
