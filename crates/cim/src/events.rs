//! `cim events`: an entity's stream, every event with its own verdict on the CID chain.

use anyhow::{bail, Context as _};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use cim_domain::chain::ChainVerifier;
use cim_domain::{ChainError, EntityRef, RecordedEvent, Subject};
use cim_nats::store::StoredMessage;
use cim_nats::EventStore;
use futures::StreamExt;

use crate::Cli;

fn parse_entity(text: &str) -> anyhow::Result<EntityRef> {
    let (kind, id) = text
        .split_once('/')
        .with_context(|| format!("{text:?} is not of the form <kind>/<id>"))?;
    Ok(EntityRef::new(kind, id)?)
}

/// Reads all events of an entity and verifies the chain.
pub async fn read_events(
    nats: async_nats::Client,
    entity: &EntityRef,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let store = EventStore::attach(nats).await?;
    let mut all = Vec::new();
    loop {
        let page = store.read(entity, all.len() as u64 + 1, 4096).await?;
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    cim_domain::verify_chain(&all)?;
    Ok(all)
}

/// One event with its verdict: ` ✓` when it verifies in its place, else ` ✗ <why>`.
fn print(e: &RecordedEvent, verdict: Option<&ChainError>) {
    println!(
        "v{:<3} {:<22} {}  caused by {}  {}  {}",
        e.version,
        e.name,
        e.cid,
        e.meta.causation_id.as_deref().unwrap_or("-"),
        String::from_utf8_lossy(&e.payload),
        match verdict {
            None => "✓".to_string(),
            Some(why) => format!("✗ {why}"),
        }
    );
}

/// `cim events`: prints every event of the entity with its own verdict (a tampered event does
/// not hide the good ones), reports messages that are not events where they are, and fails
/// when anything does not verify; optionally follows the stream.
pub async fn print_events(ctx: &Cli, entity: &str, follow: bool) -> anyhow::Result<()> {
    let entity = parse_entity(entity)?;
    let nats = ctx.connect(crate::Role::Reader).await?;
    let store = EventStore::attach(nats.clone()).await?;
    // The stream position is taken before reading, so an event appended meanwhile is seen
    // by the follower (possibly twice: versions already printed are skipped).
    let start = store.head(&entity).await?.map_or(1, |h| h.sequence + 1);
    let messages = store.read_messages(&entity).await?;
    let events: Vec<&RecordedEvent> = messages.iter().filter_map(StoredMessage::event).collect();
    let mut verdicts = cim_domain::chain::verdicts(events.iter().copied()).into_iter();
    let mut bad = 0;
    for m in &messages {
        match m {
            StoredMessage::Event(ev) => {
                let verdict = verdicts.next().flatten();
                bad += usize::from(verdict.is_some());
                print(ev, verdict.as_ref());
            }
            StoredMessage::NotAnEvent { sequence, error } => {
                bad += 1;
                println!("--   stream message {sequence} is not an event (skipped)  ✗ {error}");
            }
        }
    }
    if bad > 0 {
        bail!(
            "chain broken: {bad} of {} message(s) and event(s) of {entity} do not verify (marked ✗)",
            messages.len()
        );
    }
    println!("chain verified: {} event(s) of {entity}", events.len());
    if !follow {
        return Ok(());
    }
    let events: Vec<RecordedEvent> = events.into_iter().cloned().collect();
    let mut printed = events.last().map_or(0, |last| last.version);
    let mut verifier = match events.last() {
        Some(last) => ChainVerifier::after(entity.clone(), last.version, last.cid),
        None => ChainVerifier::new(),
    };
    let subject = Subject::event(&entity).to_string();
    let consumer = store
        .stream()
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    println!("following {subject} (Ctrl-C to stop)");
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(msg) = next else {
            bail!("the event stream closed")
        };
        let msg = msg?;
        let events = match store
            .decode_stored(
                &subject,
                &msg.headers.clone().unwrap_or_default(),
                &msg.payload,
            )
            .await
        {
            Ok(events) => events,
            Err(e) => {
                let sequence = msg.info().map_or(0, |i| i.stream_sequence);
                println!("--   stream message {sequence} is not an event (skipped)  ✗ {e}");
                continue;
            }
        };
        for ev in events {
            if ev.version <= printed {
                continue;
            }
            let verdict = verifier.push(&ev).err();
            if verdict.is_some() {
                verifier = ChainVerifier::after(entity.clone(), ev.version, ev.cid);
            }
            print(&ev, verdict.as_ref());
            printed = ev.version;
        }
    }
}
