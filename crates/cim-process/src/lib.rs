//! Process plumbing shared by the CIM's long-running binaries (`cim-host`, `wadm`).

use anyhow::Context as _;

/// Resolves on SIGINT or SIGTERM (what `cim down`, systemd and container runtimes send).
pub async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("failed to listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
