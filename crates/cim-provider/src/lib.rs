//! What every CIM capability provider shares.
//!
//! [`run`] is a provider's whole `main`: join the lattice with the host data from stdin
//! (`run_provider`), let the provider get ready on the lattice connection (open its bucket,
//! start its projection), then serve its exports until the host asks it to stop. Exports are
//! built with `cim_wrpc::serve::function`, which decodes each invocation's parameters in its
//! own task under a deadline.

use std::collections::HashMap;
use std::future::Future;

use anyhow::Context as _;
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};
use wasmcloud_provider_sdk::{get_connection, run_provider, serve_provider_exports, Provider};

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

/// A config map from pairs (for tests of config parsing).
pub fn config_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
