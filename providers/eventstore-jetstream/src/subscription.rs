//! Delivery of events to reactor components: a durable pull consumer per link, one message in
//! flight at a time (stream order), acknowledged only after the reactor returned `ok` for each
//! of its events (one, or several for a commit, delivered one by one in order).
//!
//! - `ok` for every event: the message is acknowledged (double ack, so a lost ack cannot cause
//!   a redelivery the provider does not know about).
//! - `invalid`: the reactor says the event can never be processed; it is skipped (logged at
//!   error level, not redelivered) so it cannot block the events behind it forever.
//! - any other error, a failed call or a call past its deadline: the message is negatively
//!   acknowledged with a back-off, so it comes again; the provider remembers how many events
//!   of it were already delivered and resumes after them (a restarted provider starts the
//!   message over: delivery is at least once).
//! - while a call runs, the provider reports progress to JetStream every third of the ack wait;
//!   the ack wait therefore only expires when the provider itself died, and the durable
//!   consumer hands the event to the next provider instance. Nothing is lost across restarts.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Message};
use async_nats::HeaderMap;
use cim_nats::EventStore;
use cim_wrpc::bindings::cim::ecs::{reactor, types::EcsError};
use futures::StreamExt;
use tracing::{debug, error, warn};
use wrpc_transport::Invoke;

use crate::config::SubscriptionConfig;

/// Back-off before a failed event is redelivered, and before a broken consumer is recreated.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Delivers events to `target` through `wrpc` until the task is aborted, recreating the
/// consumer after errors.
pub async fn deliver<C>(store: EventStore, target: String, cfg: SubscriptionConfig, wrpc: C)
where
    C: Invoke<Context = Option<HeaderMap>>,
{
    loop {
        if let Err(e) = deliver_once(&store, &target, &cfg, &wrpc).await {
            warn!(%target, durable = %cfg.durable, error = %e, "subscription interrupted; resuming");
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// The consumer configuration of a subscription.
pub fn consumer_config(target: &str, cfg: &SubscriptionConfig) -> pull::Config {
    let (filter_subject, filter_subjects) = cim_nats::store::subject_filters(&cfg.filters);
    pull::Config {
        durable_name: Some(cfg.durable.clone()),
        filter_subject,
        filter_subjects,
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_ack_pending: 1,
        max_deliver: cfg.max_deliver,
        description: Some(format!("CIM reactor subscription for {target}")),
        ..Default::default()
    }
}

async fn deliver_once<C>(
    store: &EventStore,
    target: &str,
    cfg: &SubscriptionConfig,
    wrpc: &C,
) -> anyhow::Result<()>
where
    C: Invoke<Context = Option<HeaderMap>>,
{
    let consumer = store
        .stream()
        .get_or_create_consumer(&cfg.durable, consumer_config(target, cfg))
        .await?;
    let mut messages = consumer.messages().await?;
    // The stream sequence of a message left part-way and how many of its events were delivered.
    let mut resume: Option<(u64, usize)> = None;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let headers = msg.headers.clone().unwrap_or_default();
        let events = match store
            .decode_stored(msg.subject.as_str(), &headers, &msg.payload)
            .await
        {
            Ok(events) => events,
            Err(e) if is_undecodable(&e) => {
                // Not an event this store wrote; redelivering cannot help.
                error!(subject = %msg.subject, error = %e, "terminating undecodable message");
                ack(&msg, AckKind::Term).await?;
                continue;
            }
            Err(e) => {
                // The offloaded payload could not be fetched now: try again later.
                warn!(subject = %msg.subject, error = %e, "event not readable yet; redelivering later");
                ack(&msg, AckKind::Nak(Some(RETRY_DELAY))).await?;
                continue;
            }
        };
        let sequence = msg.info().map_err(anyhow::Error::msg)?.stream_sequence;
        let skip = match resume {
            Some((seq, delivered)) if seq == sequence => delivered,
            _ => 0,
        };
        let mut delivered = skip;
        let mut complete = true;
        for event in events.into_iter().skip(skip) {
            if deliver_event(&msg, target, cfg, wrpc, event).await? {
                delivered += 1;
            } else {
                complete = false;
                break;
            }
        }
        if complete {
            resume = None;
            msg.double_ack().await.map_err(anyhow::Error::msg)?;
        } else {
            resume = Some((sequence, delivered));
            ack(&msg, AckKind::Nak(Some(RETRY_DELAY))).await?;
        }
    }
    Ok(())
}

/// Hands one event to the reactor: `true` when it is done with (processed, or refused as
/// `invalid` for good), `false` when it must come again.
async fn deliver_event<C>(
    msg: &Message,
    target: &str,
    cfg: &SubscriptionConfig,
    wrpc: &C,
    event: cim_domain::RecordedEvent,
) -> anyhow::Result<bool>
where
    C: Invoke<Context = Option<HeaderMap>>,
{
    let cid = event.cid;
    let wit_event = cim_wrpc::event_out(event);
    let call = reactor::on_event(wrpc, None, &wit_event);
    Ok(match with_progress(msg, cfg, call).await? {
        Some(Ok(Ok(()))) => {
            debug!(%target, %cid, "delivered");
            true
        }
        Some(Ok(Err(EcsError::Invalid(reason)))) => {
            error!(%target, %cid, %reason, "reactor can never process the event; giving up on it");
            true
        }
        Some(Ok(Err(e))) => {
            warn!(%target, %cid, error = ?e, "reactor refused the event; redelivering later");
            false
        }
        Some(Err(e)) => {
            warn!(%target, %cid, error = %e, "reactor unreachable; redelivering later");
            false
        }
        None => {
            warn!(%target, %cid, timeout = ?cfg.call_timeout, "reactor call timed out; redelivering later");
            false
        }
    })
}

/// Awaits `call` up to the call timeout, telling JetStream the message is in progress every
/// third of the ack wait. `None` means the deadline passed.
async fn with_progress<T>(
    msg: &Message,
    cfg: &SubscriptionConfig,
    call: impl std::future::Future<Output = T>,
) -> anyhow::Result<Option<T>> {
    let deadline = tokio::time::sleep(cfg.call_timeout);
    let mut progress = tokio::time::interval((cfg.ack_wait / 3).max(Duration::from_millis(100)));
    progress.tick().await;
    tokio::pin!(call, deadline);
    loop {
        tokio::select! {
            out = &mut call => return Ok(Some(out)),
            () = &mut deadline => return Ok(None),
            _ = progress.tick() => ack(msg, AckKind::Progress).await?,
        }
    }
}

/// Whether a decoding failure is about the message itself (never going to work) rather than
/// an offloaded payload that could not be fetched right now.
fn is_undecodable(e: &cim_domain::EcsError) -> bool {
    matches!(e, cim_domain::EcsError::Unavailable(m) if m.starts_with("malformed event message"))
}

async fn ack(msg: &Message, kind: AckKind) -> anyhow::Result<()> {
    msg.ack_with(kind).await.map_err(anyhow::Error::msg)
}
