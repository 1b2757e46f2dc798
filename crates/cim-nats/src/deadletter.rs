//! Dead letters: events a reactor gave up on, kept so that one event never stops a reactor and
//! never disappears unseen.
//!
//! The event-store provider delivers each event to a reactor a bounded number of times (with
//! back-off). When the reactor refuses an event for good (`invalid`), when the last allowed
//! delivery fails, or when a message on an event subject is not a CIM event at all, the
//! provider writes a [`DeadLetter`] and moves on to the next event. Records live in the stream
//! [`DEAD_LETTERS_STREAM`], one subject per reactor subscription and event message
//! (`cim.dead.<durable>.<stream sequence>`, last record per subject kept), so a later record
//! for the same message (a failed retry, or its resolution) replaces the earlier one.
//! `cim dead-letters` lists them and `cim dead-letters retry` hands the event to the reactor
//! again.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use cim_domain::EcsError;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::store::unavailable;

/// The stream of dead-letter records.
pub const DEAD_LETTERS_STREAM: &str = "CIM_DEAD_LETTERS";
/// Its subjects.
pub const DEAD_LETTERS_SUBJECTS: &str = "cim.dead.>";

/// Deadline of one dead-letter write or read.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a dead letter still needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The reactor has not processed the event.
    Open,
    /// A retry delivered the event and the reactor accepted it.
    Resolved,
}

/// One event a reactor gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The reactor component (its id on the lattice, e.g. `cim-audit`).
    pub reactor: String,
    /// The durable consumer of the subscription.
    pub durable: String,
    /// The event message's subject (`cim.evt.<kind>.<id>`).
    pub subject: String,
    /// The message's sequence in the events stream.
    pub stream_sequence: u64,
    /// The CID of the first event of the message the reactor did not process (`None` when the
    /// message is not a CIM event at all).
    pub event_cid: Option<String>,
    /// The index of that event within its message (a commit carries several; those before it
    /// were processed).
    pub event_index: usize,
    /// How many times the message was delivered.
    pub deliveries: u64,
    /// The last error.
    pub error: String,
    /// When the record was written (ms since the Unix epoch).
    pub at_ms: u64,
    /// Whether it still needs attention.
    pub status: Status,
}

impl DeadLetter {
    /// The record's subject.
    pub fn record_subject(&self) -> String {
        format!("cim.dead.{}.{}", self.durable, self.stream_sequence)
    }
}

/// Milliseconds since the Unix epoch (a record's `at_ms`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The dead-letter records.
#[derive(Clone)]
pub struct DeadLetters {
    js: jetstream::Context,
}

impl DeadLetters {
    /// Opens the records' stream, creating it if needed (file storage, last record per subject).
    pub async fn open(client: async_nats::Client) -> Result<Self, EcsError> {
        let js = jetstream::new(client);
        let config = stream::Config {
            name: DEAD_LETTERS_STREAM.into(),
            description: Some("CIM dead letters: events reactors gave up on".into()),
            subjects: vec![DEAD_LETTERS_SUBJECTS.into()],
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            allow_direct: true,
            ..Default::default()
        };
        tokio::time::timeout(TIMEOUT, js.get_or_create_stream(config))
            .await
            .map_err(|_| EcsError::Unavailable("JetStream did not answer in time".into()))?
            .map_err(|e| unavailable("opening the dead-letter stream", e))?;
        Ok(Self { js })
    }

    /// Opens the existing stream without creating anything (for readers); `None` when no
    /// reactor ever gave up on an event (the stream does not exist yet).
    pub async fn attach(client: async_nats::Client) -> Result<Option<Self>, EcsError> {
        let js = jetstream::new(client);
        match tokio::time::timeout(TIMEOUT, js.get_stream(DEAD_LETTERS_STREAM)).await {
            Err(_) => Err(EcsError::Unavailable(
                "JetStream did not answer in time".into(),
            )),
            Ok(Ok(_)) => Ok(Some(Self { js })),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(js)
                        if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                Ok(None)
            }
            Ok(Err(e)) => Err(unavailable("opening the dead-letter stream", e)),
        }
    }

    /// Writes (or replaces) the record of `letter`, acknowledged by JetStream.
    pub async fn record(&self, letter: &DeadLetter) -> Result<(), EcsError> {
        let body = serde_json::to_vec(letter).map_err(|e| unavailable("encoding", e))?;
        let ack = tokio::time::timeout(
            TIMEOUT,
            self.js.publish(letter.record_subject(), body.into()),
        )
        .await
        .map_err(|_| EcsError::Unavailable("JetStream did not answer in time".into()))?
        .map_err(|e| unavailable("writing a dead letter", e))?;
        tokio::time::timeout(TIMEOUT, ack)
            .await
            .map_err(|_| EcsError::Unavailable("JetStream did not acknowledge in time".into()))?
            .map_err(|e| unavailable("writing a dead letter", e))?;
        Ok(())
    }

    /// Every record (the latest per reactor subscription and event message), oldest first.
    /// A record that does not decode is skipped and reported in the second list.
    pub async fn list(&self) -> Result<(Vec<DeadLetter>, Vec<String>), EcsError> {
        let stream = tokio::time::timeout(TIMEOUT, self.js.get_stream(DEAD_LETTERS_STREAM))
            .await
            .map_err(|_| EcsError::Unavailable("JetStream did not answer in time".into()))?
            .map_err(|e| unavailable("opening the dead-letter stream", e))?;
        let pending = stream.cached_info().state.messages;
        let mut letters = Vec::new();
        let mut bad = Vec::new();
        if pending == 0 {
            return Ok((letters, bad));
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::LastPerSubject,
                filter_subject: DEAD_LETTERS_SUBJECTS.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("reading dead letters", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("reading dead letters", e))?;
        loop {
            let next = tokio::time::timeout(TIMEOUT, messages.next())
                .await
                .map_err(|_| EcsError::Unavailable("dead letters did not arrive in time".into()))?;
            let Some(msg) = next else { break };
            let msg = msg.map_err(|e| unavailable("reading dead letters", e))?;
            match serde_json::from_slice::<DeadLetter>(&msg.payload) {
                Ok(letter) => letters.push(letter),
                Err(e) => bad.push(format!("{}: {e}", msg.subject)),
            }
            let info = msg
                .info()
                .map_err(|e| unavailable("reading dead letters", e))?;
            if info.pending == 0 {
                break;
            }
        }
        Ok((letters, bad))
    }
}
