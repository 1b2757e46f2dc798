//! `cim events`: an entity's stream with its CID chain verified.

use anyhow::{bail, Context as _};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use cim_domain::chain::ChainVerifier;
use cim_domain::{EntityRef, RecordedEvent, Subject};
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

fn print(e: &RecordedEvent) {
    println!(
        "v{:<3} {:<22} {}  caused by {}  {}",
        e.version,
        e.name,
        e.cid,
        e.meta.causation_id.as_deref().unwrap_or("-"),
        String::from_utf8_lossy(&e.payload)
    );
}

/// `cim events`: prints the entity's events, verifies the chain, and optionally follows it.
pub async fn print_events(ctx: &Cli, entity: &str, follow: bool) -> anyhow::Result<()> {
    let entity = parse_entity(entity)?;
    let nats = ctx.connect(crate::Role::Reader).await?;
    let store = EventStore::attach(nats.clone()).await?;
    // The stream position is taken before reading, so an event appended meanwhile is seen
    // by the follower (possibly twice: versions already printed are skipped).
    let start = store.head(&entity).await?.map_or(1, |h| h.sequence + 1);
    let events = read_events(nats, &entity).await?;
    events.iter().for_each(print);
    println!("chain verified: {} event(s) of {entity}", events.len());
    if !follow {
        return Ok(());
    }
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
        let events = store
            .decode_stored(
                &subject,
                &msg.headers.clone().unwrap_or_default(),
                &msg.payload,
            )
            .await?;
        for ev in events {
            if ev.version <= printed {
                continue;
            }
            verifier.push(&ev).context("chain verification failed")?;
            print(&ev);
            printed = ev.version;
        }
    }
}
