//! `cim call`: a typed wRPC call of `cim:ecs/entity.handle` on a deployed entity component.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use cim_domain::{EcsError, RecordedEvent};
use cim_wrpc::{Command, EntityRef, Envelope};

use crate::Cli;

/// How long a call may take (the component rehydrates, decides and appends).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The component id wadm gives the entity component of `kind` in the CIM manifests.
pub fn component_id(kind: &str) -> String {
    format!("cim-{kind}")
}

/// Builds a command with a fresh id that starts its own conversation.
pub fn command_for(
    kind: &str,
    id: &str,
    name: &str,
    json: &str,
    expected_version: Option<u64>,
) -> Command {
    let command_id = ulid::Ulid::new().to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Command {
        entity: EntityRef {
            kind: kind.to_owned(),
            id: id.to_owned(),
        },
        name: name.to_owned(),
        payload: json.as_bytes().to_vec().into(),
        expected_version,
        meta: Envelope {
            id: command_id.clone(),
            correlation_id: command_id,
            causation_id: None,
            occurred_at_ms: u64::try_from(now).unwrap_or(u64::MAX),
        },
    }
}

/// Calls the entity component of `cmd.entity.kind` over wRPC.
///
/// The outer error is a transport failure (no such component, timeout); the inner result is
/// the entity's answer.
pub async fn call(
    nats: &async_nats::Client,
    lattice: &str,
    cmd: &Command,
) -> anyhow::Result<Result<Vec<RecordedEvent>, EcsError>> {
    let prefix = format!("{lattice}.{}", component_id(&cmd.entity.kind));
    let client = wrpc_transport_nats::Client::new(nats.clone(), prefix.clone(), None)
        .await
        .context("cannot create a wRPC client")?;
    // The deadline covers the whole exchange, results included: a host that fails an
    // invocation (a trapped component) may never send a result.
    let answer = tokio::time::timeout(
        CALL_TIMEOUT,
        cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, cmd),
    )
    .await
    .with_context(|| format!("no answer from {prefix} within {}s", CALL_TIMEOUT.as_secs()))?
    .with_context(|| {
        format!(
            "wRPC call to {prefix} failed (is the `{}` component deployed?)",
            cmd.entity.kind
        )
    })?;
    Ok(match answer {
        Ok(events) => Ok(events
            .into_iter()
            .map(cim_wrpc::event_in)
            .collect::<Result<Vec<_>, String>>()
            .map_err(anyhow::Error::msg)
            .context("the component returned a malformed event")?),
        Err(e) => Err(cim_wrpc::error_in(e)),
    })
}

/// `cim call`: sends the command and prints the resulting events, or the typed error.
pub async fn call_and_print(
    ctx: &Cli,
    kind: &str,
    name: &str,
    id: &str,
    json: &str,
    expected_version: Option<u64>,
) -> anyhow::Result<()> {
    let nats = ctx.connect(crate::Role::Client).await?;
    let cmd = command_for(kind, id, name, json, expected_version);
    match call(&nats, ctx.lattice(), &cmd).await? {
        Ok(events) => {
            if events.is_empty() {
                println!("accepted; no new events (already in that state)");
            }
            for e in events {
                println!(
                    "v{} {} {} {}",
                    e.version,
                    e.name,
                    e.cid,
                    String::from_utf8_lossy(&e.payload)
                );
            }
            Ok(())
        }
        Err(e) => anyhow::bail!("{kind}/{id} {name}: {e}"),
    }
}
