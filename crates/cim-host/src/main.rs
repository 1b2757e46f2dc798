//! `cim-host`: a wasmCloud 1.9.x host launcher.
//!
//! No host binary for the 1.x line is published on a package registry, so the CIM ships this
//! small launcher around the `wasmcloud-host` library (`wasmbus::Host::new`). It accepts the
//! same `WASMCLOUD_*` environment variables as the upstream `wasmcloud` binary for the options
//! it supports, so scripts written for `wash up --host-path` keep working.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tracing::{info, warn};
use wasmcloud_host::url::Url;
use wasmcloud_host::wasmbus::{Features, Host, HostConfig};

/// Command-line options; every flag can also be set through its `WASMCLOUD_*` variable.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Run a wasmCloud 1.9.x host (wasmcloud-host 0.27.1) on a NATS lattice"
)]
struct Args {
    /// NATS host for control interface and RPC connections.
    #[arg(long, env = "WASMCLOUD_NATS_HOST", default_value = "127.0.0.1")]
    nats_host: String,
    /// NATS port for control interface and RPC connections.
    #[arg(long, env = "WASMCLOUD_NATS_PORT", default_value_t = 4222)]
    nats_port: u16,
    /// A NATS `.creds` file (user JWT and seed) for the control and RPC connections.
    #[arg(long, env = "WASMCLOUD_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
    /// Lattice name this host joins.
    #[arg(long, env = "WASMCLOUD_LATTICE", default_value = "default")]
    lattice: String,
    /// JetStream domain for the host's key-value buckets.
    #[arg(long, env = "WASMCLOUD_JS_DOMAIN")]
    js_domain: Option<String>,
    /// Allow components and providers to be loaded from `file://` references.
    #[arg(long, env = "WASMCLOUD_ALLOW_FILE_LOAD", default_value_t = false)]
    allow_file_load: bool,
    /// Timeout for RPC calls, in milliseconds.
    #[arg(long, env = "WASMCLOUD_RPC_TIMEOUT_MS", default_value_t = 2000)]
    rpc_timeout_ms: u64,
    /// Interval between host heartbeats, in seconds (wadm learns of hosts from heartbeats).
    #[arg(long, env = "WASMCLOUD_HEARTBEAT_INTERVAL", default_value_t = 30)]
    heartbeat_interval_secs: u64,
    /// Longest a component invocation may run, in seconds, before the host abandons it and
    /// frees its instance slot. An invocation whose provider call lost its reply (a provider
    /// or nats-server restart) waits this long; while `instances` of them wait, the
    /// component accepts nothing. wasmCloud's default is 600; ours covers the longest caller
    /// deadline (a reactor call, 180 s in our manifests) and no more.
    #[arg(long, env = "WASMCLOUD_MAX_EXECUTION_TIME_SECS", default_value_t = 200)]
    max_execution_time_secs: u64,
    /// Host labels as `key=value`, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Experimental features, comma separated (e.g. `builtin-http-server`).
    #[arg(long, env = "WASMCLOUD_EXPERIMENTAL_FEATURES", value_delimiter = ',')]
    experimental_features: Vec<String>,
}

/// Parses `key=value` labels from flags and from `WASMCLOUD_LABEL_<key>` variables.
fn collect_labels(
    flags: &[String],
    env: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<HashMap<String, String>> {
    let mut labels = HashMap::new();
    for (key, value) in env {
        if let Some(name) = key.strip_prefix("WASMCLOUD_LABEL_") {
            labels.insert(name.to_ascii_lowercase(), value);
        }
    }
    for flag in flags {
        let Some((k, v)) = flag.split_once('=') else {
            bail!("label `{flag}` must have the form key=value");
        };
        if k.is_empty() {
            bail!("label `{flag}` has an empty key");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cranelift_codegen=warn,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let nats_url = Url::parse(&format!("nats://{}:{}", args.nats_host, args.nats_port))
        .context("invalid NATS host or port")?;
    let labels = collect_labels(&args.labels, std::env::vars())?;
    let experimental_features: Features = args
        .experimental_features
        .iter()
        .filter(|f| !f.trim().is_empty())
        .map(|f| Features::from(f.trim()))
        .sum();

    let (jwt, key) = match &args.nats_creds {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read NATS credentials {}", path.display()))?;
            let (jwt, seed) = cim_nats::auth::parse_creds(&text)
                .with_context(|| format!("malformed NATS credentials {}", path.display()))?;
            let key =
                nkeys::KeyPair::from_seed(&seed).context("invalid seed in NATS credentials")?;
            (Some(jwt), Some(Arc::new(key)))
        }
        None => (None, None),
    };
    let config = HostConfig {
        ctl_jwt: jwt.clone(),
        ctl_key: key.clone(),
        rpc_jwt: jwt,
        rpc_key: key,
        ctl_nats_url: nats_url.clone(),
        rpc_nats_url: nats_url,
        lattice: Arc::from(args.lattice.as_str()),
        js_domain: args.js_domain,
        allow_file_load: args.allow_file_load,
        rpc_timeout: Duration::from_millis(args.rpc_timeout_ms),
        heartbeat_interval: Some(Duration::from_secs(args.heartbeat_interval_secs.max(1))),
        max_execution_time: Duration::from_secs(args.max_execution_time_secs.max(1)),
        labels,
        experimental_features,
        // Report the wasmCloud release line this crate belongs to (1.9.x), not our own version.
        version: "1.9.2".to_string(),
        ..HostConfig::default()
    };
    info!(lattice = %args.lattice, "starting wasmCloud host");
    let (host, shutdown) = Host::new(config)
        .await
        .context("failed to start the wasmCloud host")?;

    tokio::select! {
        stopped = host.stopped() => { stopped.context("host stopped unexpectedly")?; }
        signal = cim_process::shutdown_signal() => {
            signal?;
            info!("stop signal received, stopping host");
        }
    }
    drop(host);
    if let Err(e) = shutdown.await {
        warn!(error = %e, "host shutdown reported an error");
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::collect_labels;

    #[test]
    fn labels_come_from_flags_and_environment() {
        let env = vec![
            ("WASMCLOUD_LABEL_ZONE".to_string(), "eu".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let labels = collect_labels(&["role=edge".to_string()], env.into_iter()).unwrap();
        assert_eq!(labels.get("zone").map(String::as_str), Some("eu"));
        assert_eq!(labels.get("role").map(String::as_str), Some("edge"));
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn malformed_label_is_an_error() {
        let err = collect_labels(&["novalue".to_string()], std::iter::empty()).unwrap_err();
        assert!(err.to_string().contains("key=value"), "{err}");
        assert!(collect_labels(&["=x".to_string()], std::iter::empty()).is_err());
    }
}
