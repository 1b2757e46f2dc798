//! What every CIM capability provider shares.
//!
//! [`run`] is a provider's whole `main`: set up logging at the host's log level (the provider's
//! stderr is the host's, so its lines land in the host's log), join the lattice with the host
//! data from stdin (`run_provider`), let the provider get ready on the lattice connection (open its bucket,
//! start its projection), then serve its exports until the host asks it to stop. Exports are
//! built with `cim_wrpc::serve::function`, which decodes each invocation's parameters in its
//! own task under a deadline.

use std::collections::HashMap;
use std::future::Future;

use anyhow::Context as _;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};
use wasmcloud_provider_sdk::{
    get_connection, load_host_data, run_provider, serve_provider_exports, Provider,
};

/// Runs a provider named `name`: joins the lattice, awaits `ready`, serves `exports`.
pub async fn run<P, R, RFut, E, EFut>(
    provider: P,
    name: &str,
    ready: R,
    exports: E,
) -> anyhow::Result<()>
where
    P: Provider + Clone,
    R: FnOnce(P) -> RFut,
    RFut: Future<Output = anyhow::Result<()>>,
    E: FnOnce(WrpcClient, P) -> EFut,
    EFut: Future<Output = anyhow::Result<InvocationStreams>>,
{
    // Without this every `tracing` line of a provider goes nowhere: the SDK leaves logging to
    // the provider binary (it must not collide with a host that runs providers in process).
    init_logging(name);
    let shutdown = run_provider(provider.clone(), name)
        .await
        .context("failed to start the provider")?;
    ready(provider.clone()).await?;
    let connection = get_connection();
    let wrpc = connection
        .get_wrpc_client(connection.provider_key())
        .await
        .context("failed to create the wRPC client")?;
    serve_provider_exports(&wrpc, provider, shutdown, |w, p| exports(w.clone(), p))
        .await
        .context("provider exports stopped with an error")
}

/// Logs to stderr (the host's log) at the level the host asked for, unless `RUST_LOG` (which
/// the host passes on) says otherwise. Quietly does nothing when a subscriber is already set.
fn init_logging(name: &str) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    use wasmcloud_provider_sdk::core::logging::Level;

    let level = match load_host_data().ok().and_then(|h| h.log_level.clone()) {
        Some(Level::Error | Level::Critical) => LevelFilter::ERROR,
        Some(Level::Warn) => LevelFilter::WARN,
        Some(Level::Debug) => LevelFilter::DEBUG,
        Some(Level::Trace) => LevelFilter::TRACE,
        Some(Level::Info) | None => LevelFilter::INFO,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    tracing::debug!(provider = name, "logging to the host's log");
}

/// A config map from pairs (for tests of config parsing).
pub fn config_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
