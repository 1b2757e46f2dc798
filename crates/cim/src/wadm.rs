//! The wadm API over NATS (`wadm.api.<lattice>.model.*`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn request(
    nats: &async_nats::Client,
    subject: String,
    body: bytes::Bytes,
    yaml: bool,
) -> anyhow::Result<Value> {
    let mut headers = async_nats::HeaderMap::new();
    if yaml {
        headers.insert("Content-Type", "application/yaml");
    }
    let reply = tokio::time::timeout(
        TIMEOUT,
        nats.request_with_headers(subject.clone(), headers, body),
    )
    .await
    .with_context(|| format!("wadm did not answer {subject} in time"))?
    .with_context(|| format!("wadm request {subject} failed"))?;
    serde_json::from_slice(&reply.payload)
        .with_context(|| format!("wadm answered {subject} with non-JSON"))
}

/// Whether wadm answers its API for `lattice`.
pub async fn answers(nats: &async_nats::Client, lattice: &str) -> bool {
    request(
        nats,
        format!("wadm.api.{lattice}.model.get"),
        bytes::Bytes::new(),
        false,
    )
    .await
    .is_ok()
}

/// Puts a manifest (YAML) and returns the version wadm stored.
pub async fn put(
    nats: &async_nats::Client,
    lattice: &str,
    manifest_yaml: &str,
) -> anyhow::Result<String> {
    let reply = request(
        nats,
        format!("wadm.api.{lattice}.model.put"),
        manifest_yaml.to_owned().into(),
        true,
    )
    .await?;
    match reply["result"].as_str() {
        Some("created") | Some("newversion") => Ok(reply["current_version"]
            .as_str()
            .unwrap_or_default()
            .to_owned()),
        _ => bail!("wadm refused the manifest: {}", reply["message"]),
    }
}

/// Deploys the latest version of application `name`.
pub async fn deploy(nats: &async_nats::Client, lattice: &str, name: &str) -> anyhow::Result<()> {
    let reply = request(
        nats,
        format!("wadm.api.{lattice}.model.deploy.{name}"),
        bytes::Bytes::new(),
        false,
    )
    .await?;
    match reply["result"].as_str() {
        Some("acknowledged") => Ok(()),
        _ => bail!("wadm did not deploy {name}: {}", reply["message"]),
    }
}

/// wadm's view of one application.
#[derive(Debug, Clone, Deserialize)]
pub struct AppStatus {
    /// `deployed`, `reconciling`, `waiting`, `failed`, `undeployed`, `unhealthy`.
    #[serde(rename = "type")]
    pub kind: String,
    /// wadm's explanation.
    #[serde(default)]
    pub message: String,
}

/// The status of application `name`.
pub async fn status(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
) -> anyhow::Result<AppStatus> {
    let reply = request(
        nats,
        format!("wadm.api.{lattice}.model.status.{name}"),
        bytes::Bytes::new(),
        false,
    )
    .await?;
    let status = reply
        .get("status")
        .and_then(|s| s.get("status"))
        .cloned()
        .context("wadm status reply has no status")?;
    Ok(serde_json::from_value(status)?)
}

/// Waits until application `name` is deployed, printing each status change.
pub async fn wait_deployed(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let st = status(nats, lattice, name).await?;
        let line = format!(
            "{}{}",
            st.kind,
            if st.message.is_empty() {
                String::new()
            } else {
                format!(": {}", st.message)
            }
        );
        if line != last {
            eprintln!("      wadm: {line}");
            last = line;
        }
        match st.kind.as_str() {
            "deployed" => return Ok(()),
            "failed" => bail!("wadm could not deploy {name}: {}", st.message),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "{name} not deployed after {}s (last status: {last})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
