//! Delivery of events to reactor components: a durable pull consumer per link, one event in
//! flight at a time (stream order), acknowledged only after the reactor returns `ok`.
//!
//! An `on-event` error or a failed call is negatively acknowledged with a back-off, so the
//! event comes again; the consumer is durable, so nothing is lost across provider restarts.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use cim_nats::store::decode;
use cim_nats::EventStore;
use futures::StreamExt;
use tracing::{debug, error, warn};
use wasmcloud_provider_sdk::get_connection;

use crate::config::SubscriptionConfig;

/// How long a delivered event may stay unacknowledged before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// Back-off before a failed event is redelivered.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Delivers events to `target` until the task is aborted, recreating the consumer on errors.
pub async fn deliver(store: EventStore, target: String, cfg: SubscriptionConfig) {
    loop {
        if let Err(e) = deliver_once(&store, &target, &cfg).await {
            warn!(%target, durable = %cfg.durable, error = %e, "subscription interrupted; resuming");
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

async fn deliver_once(
    store: &EventStore,
    target: &str,
    cfg: &SubscriptionConfig,
) -> anyhow::Result<()> {
    let consumer = store
        .stream()
        .get_or_create_consumer(
            &cfg.durable,
            pull::Config {
                durable_name: Some(cfg.durable.clone()),
                filter_subject: cfg.filter.clone(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 1,
                max_deliver: cfg.max_deliver,
                description: Some(format!("CIM reactor subscription for {target}")),
                ..Default::default()
            },
        )
        .await?;
    let wrpc = get_connection().get_wrpc_client(target).await?;
    let mut messages = consumer.messages().await?;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let headers = msg.headers.clone().unwrap_or_default();
        let event = match decode(msg.subject.as_str(), &headers, &msg.payload) {
            Ok(ev) => ev,
            Err(e) => {
                // Not an event this store wrote; redelivering cannot help.
                error!(subject = %msg.subject, error = %e, "terminating undecodable message");
                msg.ack_with(AckKind::Term)
                    .await
                    .map_err(anyhow::Error::msg)?;
                continue;
            }
        };
        let cid = event.cid;
        let outcome = cim_wrpc::bindings::cim::ecs::reactor::on_event(
            &wrpc,
            None,
            &cim_wrpc::event_out(event),
        )
        .await;
        match outcome {
            Ok(Ok(())) => {
                debug!(%target, %cid, "delivered");
                msg.double_ack().await.map_err(anyhow::Error::msg)?;
            }
            Ok(Err(e)) => {
                warn!(%target, %cid, error = ?e, "reactor refused the event; redelivering later");
                msg.ack_with(AckKind::Nak(Some(RETRY_DELAY)))
                    .await
                    .map_err(anyhow::Error::msg)?;
            }
            Err(e) => {
                warn!(%target, %cid, error = %e, "reactor unreachable; redelivering later");
                msg.ack_with(AckKind::Nak(Some(RETRY_DELAY)))
                    .await
                    .map_err(anyhow::Error::msg)?;
            }
        }
    }
    Ok(())
}
