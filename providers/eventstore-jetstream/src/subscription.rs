//! Delivery of events to reactor components: a durable pull consumer per link, one message in
//! flight at a time (stream order), acknowledged only after the reactor returned `ok` for each
//! of its events (one, or several for a commit, delivered one by one in order).
//!
//! One event never stops a reactor:
//!
//! - `ok` for every event: the message is acknowledged (double ack, so a lost ack cannot cause
//!   a redelivery the provider does not know about).
//! - `invalid`: the reactor says the event can never be processed; it is written to the dead
//!   letters ([`cim_nats::deadletter`]) and skipped, so it cannot block the events behind it.
//! - any other error, a failed call or a call past its deadline: the message is negatively
//!   acknowledged with a back-off (the link's `retry_delay_secs`, doubled for each delivery, at
//!   most a minute), so it comes again; the provider remembers how many events of it were
//!   already delivered and resumes after them (a restarted provider starts the message over:
//!   delivery is at least once). After `max_deliver` deliveries the event is written to the
//!   dead letters with the last error, and the reactor moves on.
//! - a message on an event subject that is not a CIM event: dead-lettered at once.
//! - while a call runs, the provider reports progress to JetStream every third of the ack wait;
//!   the ack wait therefore only expires when the provider itself died, and the durable
//!   consumer hands the event to the next provider instance. Nothing is lost across restarts:
//!   the server never drops a message on its own (the consumer's own `max_deliver` is
//!   unlimited); only the provider gives up, and only after writing the dead letter.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Message};
use async_nats::HeaderMap;
use cim_nats::deadletter::{now_ms, DeadLetter, DeadLetters, Status};
use cim_nats::EventStore;
use cim_wrpc::bindings::cim::ecs::{reactor, types::EcsError};
use futures::StreamExt;
use tracing::{debug, error, warn};
use wrpc_transport::Invoke;

use crate::config::SubscriptionConfig;

/// Back-off before a broken consumer is recreated.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);

/// The longest back-off before a redelivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The back-off before redelivering a message delivered `deliveries` times so far: `first`,
/// doubled for each further delivery, at most [`MAX_BACKOFF`].
pub fn backoff(first: Duration, deliveries: u64) -> Duration {
    let doublings = deliveries.saturating_sub(1).min(16) as u32;
    first.saturating_mul(2u32.pow(doublings)).min(MAX_BACKOFF)
}

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
        // The provider bounds deliveries and dead-letters what it gives up on; the server
        // itself must never drop a message without that record.
        max_deliver: -1,
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
    let letters = DeadLetters::open(store.client().clone()).await?;
    let consumer = store
        .stream()
        .get_or_create_consumer(&cfg.durable, consumer_config(target, cfg))
        .await?;
    let mut messages = consumer.messages().await?;
    // The stream sequence of a message left part-way and how many of its events were delivered.
    let mut resume: Option<(u64, usize)> = None;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let info = msg.info().map_err(anyhow::Error::msg)?;
        let (sequence, deliveries) = (info.stream_sequence, info.delivered.max(1) as u64);
        let letter = |event_cid: Option<String>, event_index: usize, error: String| DeadLetter {
            reactor: target.to_string(),
            durable: cfg.durable.clone(),
            subject: msg.subject.to_string(),
            stream_sequence: sequence,
            event_cid,
            event_index,
            deliveries,
            error,
            at_ms: now_ms(),
            status: Status::Open,
        };
        let headers = msg.headers.clone().unwrap_or_default();
        let events = match store
            .decode_stored(msg.subject.as_str(), &headers, &msg.payload)
            .await
        {
            Ok(events) => events,
            Err(e) if cim_nats::store::is_malformed(&e) => {
                // Not an event this store wrote; redelivering cannot help.
                give_up(&letters, letter(None, 0, e.to_string())).await?;
                ack(&msg, AckKind::Term).await?;
                continue;
            }
            Err(e) if deliveries >= cfg.max_deliver => {
                give_up(&letters, letter(None, 0, e.to_string())).await?;
                ack(&msg, AckKind::Term).await?;
                continue;
            }
            Err(e) => {
                // The offloaded payload could not be fetched now: try again later.
                warn!(subject = %msg.subject, error = %e, "event not readable yet; redelivering later");
                ack(
                    &msg,
                    AckKind::Nak(Some(backoff(cfg.retry_delay, deliveries))),
                )
                .await?;
                continue;
            }
        };
        let skip = match resume {
            Some((seq, delivered)) if seq == sequence => delivered,
            _ => 0,
        };
        let mut delivered = skip;
        let mut failed = None;
        for (index, event) in events.into_iter().enumerate().skip(skip) {
            let cid = event.cid.to_string();
            match deliver_event(&msg, target, cfg, wrpc, event).await? {
                Outcome::Done => delivered += 1,
                Outcome::Refused(reason) => {
                    give_up(&letters, letter(Some(cid), index, reason)).await?;
                    delivered += 1;
                }
                Outcome::Failed(error) => {
                    failed = Some((cid, index, error));
                    break;
                }
            }
        }
        match failed {
            None => {
                resume = None;
                msg.double_ack().await.map_err(anyhow::Error::msg)?;
            }
            Some((cid, index, error)) if deliveries >= cfg.max_deliver => {
                let error = format!("{error} (given up after {deliveries} deliveries)");
                give_up(&letters, letter(Some(cid), index, error)).await?;
                resume = None;
                ack(&msg, AckKind::Term).await?;
            }
            Some(_) => {
                resume = Some((sequence, delivered));
                ack(
                    &msg,
                    AckKind::Nak(Some(backoff(cfg.retry_delay, deliveries))),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Writes the dead letter (acknowledged by JetStream) before the caller lets go of the event.
async fn give_up(letters: &DeadLetters, letter: DeadLetter) -> anyhow::Result<()> {
    letters.record(&letter).await?;
    error!(
        reactor = %letter.reactor,
        subject = %letter.subject,
        sequence = letter.stream_sequence,
        cid = ?letter.event_cid,
        deliveries = letter.deliveries,
        error = %letter.error,
        "event dead-lettered; the reactor moves on (`cim dead-letters` lists it)"
    );
    Ok(())
}

/// What became of one event handed to a reactor.
enum Outcome {
    /// Processed.
    Done,
    /// Refused for good (`invalid`).
    Refused(String),
    /// Not processed this time; may come again.
    Failed(String),
}

/// Hands one event to the reactor.
async fn deliver_event<C>(
    msg: &Message,
    target: &str,
    cfg: &SubscriptionConfig,
    wrpc: &C,
    event: cim_domain::RecordedEvent,
) -> anyhow::Result<Outcome>
where
    C: Invoke<Context = Option<HeaderMap>>,
{
    let cid = event.cid;
    let wit_event = cim_wrpc::event_out(event);
    let call = reactor::on_event(wrpc, None, &wit_event);
    Ok(match with_progress(msg, cfg, call).await? {
        Some(Ok(Ok(()))) => {
            debug!(%target, %cid, "delivered");
            Outcome::Done
        }
        Some(Ok(Err(EcsError::Invalid(reason)))) => Outcome::Refused(format!("invalid: {reason}")),
        Some(Ok(Err(e))) => {
            warn!(%target, %cid, error = ?e, "reactor refused the event; redelivering later");
            Outcome::Failed(format!("{e:?}"))
        }
        Some(Err(e)) => {
            warn!(%target, %cid, error = %e, "reactor unreachable; redelivering later");
            Outcome::Failed(format!("reactor unreachable: {e:#}"))
        }
        None => {
            warn!(%target, %cid, timeout = ?cfg.call_timeout, "reactor call timed out; redelivering later");
            Outcome::Failed(format!(
                "the reactor call timed out after {:?}",
                cfg.call_timeout
            ))
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

async fn ack(msg: &Message, kind: AckKind) -> anyhow::Result<()> {
    msg.ack_with(kind).await.map_err(anyhow::Error::msg)
}
