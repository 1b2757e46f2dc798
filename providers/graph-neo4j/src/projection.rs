//! The graph projection system: a durable JetStream consumer inside the provider that writes
//! every event into the graph ([`cim_model::graph::project`]), a batch per transaction.
//!
//! - **Idempotent**: every write is a `MERGE` keyed by CID or entity key, with properties
//!   derived from the events alone, so replaying everything leaves the same graph.
//! - **Resumable**: the consumer is durable with explicit acks; a batch's messages are
//!   acknowledged only after its transaction committed, so a restart continues after the last
//!   committed batch, and an interrupted batch is written again (idempotently).
//! - Messages come from one continuous pull stream (`messages()`), not from `fetch()` batches:
//!   a fetch that expires while a message is in flight loses that message client-side, and
//!   with `AckPolicy::All` a later acknowledgement would have covered it unprojected (found by
//!   the end-to-end replay test).
//! - **Batched**: up to `projection_batch` events become one `UNWIND` statement per label and
//!   edge shape, in one transaction.
//!
//! Why in the provider rather than a reactor component: batching across events needs several
//! events in hand at once, and reactor delivery is one event per call (see docs).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use cim_graph::{delta_writes, Graph};
use cim_model::graph::{project, GraphDelta};
use cim_nats::EventStore;
use futures::StreamExt;
use tracing::{debug, error, info, warn};

use crate::config::ProjectionConfig;

/// How long JetStream waits for a batch's acknowledgement before redelivering it.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a batch waits for more events once it has one.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Back-off after a failed batch or a broken consumer.
const RETRY: Duration = Duration::from_secs(2);

/// The consumer configuration of the projection.
pub fn consumer_config(cfg: &ProjectionConfig) -> pull::Config {
    let (filter_subject, filter_subjects) = cim_nats::store::subject_filters(&cfg.subjects);
    pull::Config {
        durable_name: Some(cfg.durable.clone()),
        filter_subject,
        filter_subjects,
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: i64::try_from(cfg.batch * 2).unwrap_or(i64::MAX),
        description: Some("CIM knowledge-graph projection".into()),
        ..Default::default()
    }
}

/// Projects events until the task is aborted, resuming after errors.
pub async fn run(store: EventStore, graph: Arc<Graph>, cfg: ProjectionConfig) {
    info!(durable = %cfg.durable, subjects = ?cfg.subjects, batch = cfg.batch, "graph projection running");
    loop {
        if let Err(e) = run_once(&store, &graph, &cfg).await {
            warn!(error = %e, "graph projection interrupted; resuming");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Projects batches until an error.
pub async fn run_once(
    store: &EventStore,
    graph: &Graph,
    cfg: &ProjectionConfig,
) -> anyhow::Result<()> {
    let consumer = store
        .stream()
        .get_or_create_consumer(&cfg.durable, consumer_config(cfg))
        .await?;
    let mut stream = consumer.messages().await?;
    loop {
        let Some(first) = stream.next().await else {
            anyhow::bail!("the consumer's message stream ended");
        };
        let mut messages = vec![first.map_err(anyhow::Error::msg)?];
        while messages.len() < cfg.batch {
            match tokio::time::timeout(BATCH_WINDOW, stream.next()).await {
                Ok(Some(m)) => messages.push(m.map_err(anyhow::Error::msg)?),
                Ok(None) | Err(_) => break,
            }
        }
        let mut delta = GraphDelta::default();
        for m in &messages {
            let headers = m.headers.clone().unwrap_or_default();
            match store
                .decode_stored(m.subject.as_str(), &headers, &m.payload)
                .await
            {
                Ok(events) => {
                    for ev in events {
                        match ev.verify_self() {
                            Ok(()) => delta.extend(project(&ev)),
                            // Not what the store wrote (its CID does not match its content):
                            // never let it into the graph.
                            Err(e) => {
                                error!(subject = %m.subject, error = %e, "forged event; not projected")
                            }
                        }
                    }
                }
                Err(e) if cim_nats::store::is_malformed(&e) => {
                    error!(subject = %m.subject, error = %e, "not an event; skipped");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (nodes, edges) = delta_writes(&delta);
        if let Err(e) = graph.apply(&nodes, &edges).await {
            for m in &messages {
                let _ = m.ack_with(AckKind::Nak(Some(RETRY))).await;
            }
            return Err(e.into());
        }
        for m in &messages {
            m.ack().await.map_err(anyhow::Error::msg)?;
        }
        debug!(
            events = messages.len(),
            nodes = nodes.len(),
            edges = edges.len(),
            "projected a batch"
        );
    }
}
