//! The JetStream event store.
//!
//! One stream, [`names::EVENTS_STREAM`], holds every event on the subject of its entity
//! (`cim.evt.<kind>.<id>`, see [`cim_domain::Subject`]). An append is **one message**:
//!
//! - one event: the body is the event's JSON payload, verbatim; the CID, chain link, version,
//!   name and envelope travel in `Cim-*` headers, so `nats sub 'cim.evt.>'` shows readable facts;
//! - several events (a *commit*): the body is a JSON array of the events, marked by the
//!   `Cim-Events` header (see [`crate::commit`]); every event keeps its own CID and chain link.
//!
//! One message is stored or not, so an append is all-or-nothing. A commit too large for one
//! message (beyond the server's `max_payload`) falls back to a JetStream atomic batch of
//! one-event messages, still all-or-nothing (docs/adr/0009-one-message-per-append.md explains
//! the choice: the atomic batch costs a constant ~7 ms on a disk-backed stream).
//!
//! Appends are guarded per entity by JetStream itself: each publish carries
//! `Nats-Expected-Last-Subject-Sequence` (the stream sequence of the entity's last message, or 0),
//! so of two writers that read the same version only one can append; the other gets a
//! `conflict`. The store remembers the last position it saw of each entity (a load, a read, its
//! own append), so the append that follows a command's load publishes at once; a position
//! another writer moved on is refused by that same check, and the append then looks the head
//! up and proceeds as if nothing had been known. Each publish also carries `Nats-Msg-Id` = the CID of the (last) event it stores,
//! so a publish retried after a lost acknowledgement is deduplicated by the server. An append
//! retried after a lost reply (the events are already stored) is recognised by comparing CIDs
//! and returns the stored events instead of a conflict.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use cid::Cid;
use cim_domain::chain::ChainVerifier;
use cim_domain::{EcsError, EntityRef, Envelope, NewEvent, RecordedEvent, Subject, Token};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::commit::{self, Stored};
use crate::names::{header, EVENTS_STREAM, EVENTS_SUBJECTS, SNAPSHOTS_BUCKET};
use crate::objects::ObjectStore;

/// Most events one append may carry (JetStream's default atomic batch limit, which bounds the
/// fallback for commits too large for one message).
pub const MAX_APPEND: usize = 1000;

/// How long to wait for one JetStream acknowledgement or response.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> EcsError {
    EcsError::Unavailable(format!("{what}: {e}"))
}

/// A saved fold of an entity's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The entity.
    pub entity: EntityRef,
    /// The version the state reflects.
    pub version: u64,
    /// The CID of the last event folded in.
    pub last_cid: String,
    /// The serialized state.
    #[serde(with = "serde_bytes_base64")]
    pub state: Vec<u8>,
}

impl Snapshot {
    /// Decodes a snapshot as stored in the snapshot bucket (JSON); bytes that are not one are
    /// [`EcsError::Unavailable`].
    pub fn decode(bytes: &[u8]) -> Result<Self, EcsError> {
        serde_json::from_slice(bytes).map_err(|e| unavailable("decoding a snapshot", e))
    }

    /// Encodes the snapshot as stored in the snapshot bucket.
    pub fn encode(&self) -> Result<Vec<u8>, EcsError> {
        serde_json::to_vec(self).map_err(|e| unavailable("encoding a snapshot", e))
    }
}

/// A snapshot as the bucket keeps it: the snapshot, and where its event is stored, so a read
/// from the snapshot starts there instead of searching the stream for it. The location is a
/// hint, checked on every read (an entry written before it existed has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeptSnapshot {
    #[serde(flatten)]
    snapshot: Snapshot,
    /// The stream sequence of the message that holds the snapshot's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

mod serde_bytes_base64 {
    //! Snapshots are JSON in the KV bucket; state bytes are kept as a JSON string when they
    //! are UTF-8 (the usual JSON state) and as an array otherwise.
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(b) {
            Ok(t) => Repr::Text(t.to_owned()).serialize(s),
            Err(_) => Repr::Bytes(b.to_vec()).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => t.into_bytes(),
            Repr::Bytes(b) => b,
        })
    }
}

/// Largest event payload accepted, in bytes (larger ones are offloaded to the object store,
/// up to this size).
pub const MAX_EVENT_PAYLOAD: usize = 8 * 1024 * 1024;

/// Payloads larger than this many bytes are offloaded to the object store by default.
pub const DEFAULT_OFFLOAD_ABOVE: usize = 64 * 1024;

/// Reads from versions up to this one start at the beginning of the stream; later ones locate
/// their first event with a binary search ([`EventStore::read`]).
const SCAN_FROM_START: u64 = 32;

/// The consumer filter fields for `filters`: one filter goes to `filter_subject` (every server
/// version understands it), several to `filter_subjects` (nats-server 2.10+).
pub fn subject_filters(filters: &[String]) -> (String, Vec<String>) {
    match filters {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    }
}

/// Encodes a single event as message headers and body (a one-event append).
pub fn encode(ev: &RecordedEvent) -> (HeaderMap, Bytes) {
    let mut h = HeaderMap::new();
    h.insert(header::CID, ev.cid.to_string().as_str());
    if let Some(p) = &ev.previous {
        h.insert(header::PREVIOUS, p.to_string().as_str());
    }
    h.insert(header::VERSION, ev.version.to_string().as_str());
    h.insert(header::EVENT, ev.name.as_str());
    h.insert(header::SCHEMA, ev.schema_version.to_string().as_str());
    h.insert(header::MESSAGE_ID, ev.meta.id.as_str());
    h.insert(header::CORRELATION_ID, ev.meta.correlation_id.as_str());
    if let Some(c) = &ev.meta.causation_id {
        h.insert(header::CAUSATION_ID, c.as_str());
    }
    h.insert(
        header::OCCURRED_AT,
        ev.meta.occurred_at_ms.to_string().as_str(),
    );
    (h, Bytes::from(ev.payload.clone()))
}

/// Decodes a stored message back into its events: one, or several for a commit (without
/// verifying CIDs, see [`ChainVerifier`], and without fetching offloaded payloads: their
/// `payload` is empty; [`EventStore::decode_stored`] fetches them).
pub fn decode(
    subject: &str,
    headers: &HeaderMap,
    payload: &[u8],
) -> Result<Vec<RecordedEvent>, EcsError> {
    match subject.parse::<Subject>() {
        Ok(Subject::Event(entity)) => Ok(decode_message(&entity, headers, payload)?
            .into_iter()
            .map(|s| s.event)
            .collect()),
        _ => Err(EcsError::Unavailable(format!(
            "malformed event message on {subject}: not an event subject"
        ))),
    }
}

/// Decodes a message of `entity`'s stream (the subject already known) into its events.
fn decode_message(
    entity: &EntityRef,
    headers: &HeaderMap,
    payload: &[u8],
) -> Result<Vec<Stored>, EcsError> {
    use async_nats::header::HeaderName;
    if let Some(count) = headers.get(HeaderName::from_static(header::EVENTS)) {
        return commit::decode(entity, count.as_str(), payload);
    }
    let event = decode_single(entity.clone(), headers, payload)?;
    let offloaded = headers
        .get(HeaderName::from_static(header::PAYLOAD_CID))
        .map(|cid| {
            Cid::try_from(cid.as_str()).map_err(|e| {
                EcsError::Unavailable(format!(
                    "malformed event message on {}: {e}",
                    Subject::event(entity)
                ))
            })
        })
        .transpose()?;
    Ok(vec![Stored { event, offloaded }])
}

/// Decodes a one-event message: the hot path of reads, so header names are static and nothing
/// is copied that is parsed anyway.
fn decode_single(
    entity: EntityRef,
    headers: &HeaderMap,
    payload: &[u8],
) -> Result<RecordedEvent, EcsError> {
    use async_nats::header::HeaderName;
    let bad = |m: String| {
        EcsError::Unavailable(format!(
            "malformed event message on {}: {m}",
            Subject::event(&entity)
        ))
    };
    let get = |name: &'static str| {
        headers
            .get(HeaderName::from_static(name))
            .map(|v| v.as_str())
    };
    let need = |name: &'static str| get(name).ok_or_else(|| bad(format!("missing header {name}")));
    let cid = |text: &str| Cid::try_from(text).map_err(|e| bad(format!("{text}: {e}")));
    let number = |name: &'static str| -> Result<u64, EcsError> {
        need(name)?.parse().map_err(|e| bad(format!("{name}: {e}")))
    };
    Ok(RecordedEvent {
        cid: cid(need(header::CID)?)?,
        previous: get(header::PREVIOUS).map(cid).transpose()?,
        version: number(header::VERSION)?,
        name: Token::parse("event name", need(header::EVENT)?).map_err(|e| bad(e.to_string()))?,
        schema_version: u32::try_from(number(header::SCHEMA)?)
            .map_err(|e| bad(format!("schema: {e}")))?,
        payload: payload.to_vec(),
        meta: Envelope {
            id: need(header::MESSAGE_ID)?.to_owned(),
            correlation_id: need(header::CORRELATION_ID)?.to_owned(),
            causation_id: get(header::CAUSATION_ID).map(str::to_owned),
            occurred_at_ms: number(header::OCCURRED_AT)?,
        },
        entity,
    })
}

/// Why a publish did not store the events.
enum Published {
    /// The entity's subject moved on since it was read.
    WrongLastSequence,
    /// Anything else; nothing was stored.
    Failed(EcsError),
}

/// The acknowledgement of an atomic batch commit.
#[derive(Deserialize)]
struct BatchAck {
    count: Option<u64>,
    error: Option<ApiError>,
}

/// A JetStream API error.
#[derive(Deserialize)]
struct ApiError {
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// The events stream's configuration. The stream keeps events forever (file storage, no max
/// age), is append-only at the server (`deny_delete`, `deny_purge`: nats-server refuses any
/// later update that would allow them again), allows direct gets (used to find an entity's
/// last event) and atomic batches (multi-event appends are all-or-nothing).
fn events_stream_config() -> serde_json::Value {
    serde_json::json!({
        "name": EVENTS_STREAM,
        "description": "CIM domain events: one subject per entity, CID-chained, append-only",
        "subjects": [EVENTS_SUBJECTS],
        "retention": "limits",
        "storage": "file",
        "discard": "old",
        "max_age": 0,
        "num_replicas": 1,
        "duplicate_window": 120_000_000_000u64,
        "deny_delete": true,
        "deny_purge": true,
        "allow_direct": true,
        "allow_atomic": true,
    })
}

/// Whether an existing stream's configuration already has every setting of `wanted` (so no
/// update is needed: the roles that run the lattice may not update the stream).
fn stream_config_has(existing: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    const KEYS: [&str; 8] = [
        "subjects",
        "retention",
        "storage",
        "max_age",
        "deny_delete",
        "deny_purge",
        "allow_direct",
        "allow_atomic",
    ];
    KEYS.iter().all(|k| {
        let default = serde_json::Value::Bool(false);
        existing.get(k).unwrap_or(&default) == wanted.get(k).unwrap_or(&default)
    })
}

/// One JetStream API request with a deadline; the reply's JSON.
async fn js_api(
    client: &async_nats::Client,
    subject: String,
    body: String,
    what: &str,
) -> Result<serde_json::Value, EcsError> {
    let reply = tokio::time::timeout(ACK_TIMEOUT, client.request(subject, body.into()))
        .await
        .map_err(|_| {
            EcsError::Unavailable(format!(
                "{what}: JetStream did not answer in time (or this user may not ask)"
            ))
        })?
        .map_err(|e| unavailable(what, e))?;
    serde_json::from_slice(&reply.payload).map_err(|e| unavailable(what, e))
}

/// The API error of a JetStream reply, if any.
fn api_error(reply: &serde_json::Value) -> Option<ApiError> {
    reply
        .get("error")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
}

/// Creates the events stream, or brings an existing one up to [`events_stream_config`]
/// (through the JetStream API directly: the client's stream config has no field for
/// `allow_atomic` yet). A stream that already has the configuration is left alone, so this
/// needs the right to update the stream only when something must change: `cim up` does that
/// as the admin before the lattice starts.
pub async fn ensure_events_stream(client: &async_nats::Client) -> Result<(), EcsError> {
    let config = events_stream_config();
    let what = "creating the events stream";
    let info = js_api(
        client,
        format!("$JS.API.STREAM.INFO.{EVENTS_STREAM}"),
        String::new(),
        what,
    )
    .await?;
    let op = match api_error(&info) {
        None if info
            .get("config")
            .is_some_and(|c| stream_config_has(c, &config)) =>
        {
            return Ok(())
        }
        None => "UPDATE",
        // 10059: stream not found.
        Some(e) if e.err_code == 10059 => "CREATE",
        Some(e) => {
            return Err(EcsError::Unavailable(format!(
                "cannot read the events stream: {} (code {})",
                e.description, e.err_code
            )))
        }
    };
    let reply = js_api(
        client,
        format!("$JS.API.STREAM.{op}.{EVENTS_STREAM}"),
        config.to_string(),
        what,
    )
    .await?;
    match api_error(&reply) {
        None => Ok(()),
        // Created meanwhile by another process with this configuration.
        Some(e) if op == "CREATE" && e.err_code == 10058 => Ok(()),
        Some(e) => Err(EcsError::Unavailable(format!(
            "cannot {} the events stream: {} (code {})",
            op.to_lowercase(),
            e.description,
            e.err_code
        ))),
    }
}

/// How many messages one batched direct get asks for (the server may send fewer: the reader
/// asks again from where the batch ended).
const DIRECT_BATCH: usize = 1024;

/// Most bytes one batched direct get asks for, so a batch of large messages stays bounded.
const DIRECT_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// One message of an entity's subject, as [`EventStore::read_messages`] decodes it.
#[derive(Debug, Clone)]
pub enum StoredMessage {
    /// An event (a commit message gives one per event).
    Event(Box<RecordedEvent>),
    /// A message that is not an event, or whose offloaded payload could not be fetched.
    NotAnEvent {
        /// Its stream sequence.
        sequence: u64,
        /// Why it is not an event.
        error: String,
    },
}

impl StoredMessage {
    /// The event, when the message is one.
    pub fn event(&self) -> Option<&RecordedEvent> {
        match self {
            StoredMessage::Event(ev) => Some(ev),
            StoredMessage::NotAnEvent { .. } => None,
        }
    }
}

/// Whether a decoding error means the message itself is not an event (never going to decode),
/// rather than something unavailable right now.
pub fn is_malformed(e: &EcsError) -> bool {
    matches!(e, EcsError::Unavailable(m) if m.starts_with("malformed event message"))
}

/// The last event of an entity and its stream sequence.
#[derive(Debug, Clone)]
pub struct Head {
    /// Stream sequence of the entity's last message.
    pub sequence: u64,
    /// The last event. Its payload is empty when it was offloaded to the object store (a head
    /// is for positions and CIDs; read the event to get its payload).
    pub event: RecordedEvent,
}

/// The JetStream event store.
#[derive(Clone)]
pub struct EventStore {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    snapshots: kv::Store,
    objects: ObjectStore,
    offload_above: usize,
    heads: Heads,
}

/// The last known position of entities this store read or appended to, so an append that
/// follows a load (every command) need not look the head up again. A position is a hint:
/// JetStream checks it on the publish (`Nats-Expected-Last-Subject-Sequence`), and an append
/// whose hint is stale looks the head up and tries again.
#[derive(Clone, Default)]
struct Heads(std::sync::Arc<std::sync::Mutex<Known>>);

/// What [`Heads`] keeps per entity.
#[derive(Default)]
struct Known {
    /// Where each entity's stream ends.
    heads: std::collections::HashMap<EntityRef, Position>,
    /// Where the read that follows the last one starts: (its first version, the stream
    /// sequence of the message holding it), so reading a long stream page by page needs no
    /// search per page.
    next_reads: std::collections::HashMap<EntityRef, (u64, u64)>,
}

/// Where an entity's stream ends: its last event's version and CID, and the stream sequence of
/// its last message.
#[derive(Debug, Clone, Copy)]
struct Position {
    version: u64,
    cid: Cid,
    sequence: u64,
}

/// Most positions kept; beyond, the cache starts again empty (a miss costs one lookup).
const MAX_HEADS: usize = 16_384;

/// Inserts into a map bounded by [`MAX_HEADS`] entries (beyond, it starts again empty).
fn bounded_insert<V>(map: &mut std::collections::HashMap<EntityRef, V>, entity: &EntityRef, v: V) {
    if map.len() >= MAX_HEADS && !map.contains_key(entity) {
        map.clear();
    }
    map.insert(entity.clone(), v);
}

impl Heads {
    /// The cache (nothing panics while it is held, so a poisoned lock still holds facts).
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, entity: &EntityRef) -> Option<Position> {
        self.lock().heads.get(entity).copied()
    }

    fn put(&self, entity: &EntityRef, position: Position) {
        bounded_insert(&mut self.lock().heads, entity, position);
    }

    fn forget(&self, entity: &EntityRef) {
        self.lock().heads.remove(entity);
    }

    /// The stream sequence to start a read of `entity` from version `from` at, when the last
    /// read ended just before it.
    fn next_read(&self, entity: &EntityRef, from: u64) -> Option<u64> {
        let known = self.lock();
        let (version, sequence) = known.next_reads.get(entity)?;
        (*version == from).then_some(*sequence)
    }

    fn read_ended(&self, entity: &EntityRef, next_version: u64, sequence: u64) {
        bounded_insert(
            &mut self.lock().next_reads,
            entity,
            (next_version, sequence),
        );
    }
}

impl EventStore {
    /// Offloads payloads larger than `bytes` to the object store (default
    /// [`DEFAULT_OFFLOAD_ABOVE`]); the stored message then carries the payload's CID.
    pub fn with_offload_above(mut self, bytes: usize) -> Self {
        self.offload_above = bytes;
        self
    }

    /// The object store large payloads are offloaded to.
    pub fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    /// Encodes an event for storage, offloading a large payload to the object store first
    /// (content-addressed, so a retried append stores it once).
    async fn encode_stored(&self, ev: &RecordedEvent) -> Result<(HeaderMap, Bytes), EcsError> {
        let (mut headers, body) = encode(ev);
        match self.offload(ev).await? {
            None => Ok((headers, body)),
            Some(cid) => {
                headers.insert(header::PAYLOAD_CID, cid.to_string().as_str());
                Ok((headers, Bytes::new()))
            }
        }
    }

    /// Decodes a stored message into its events (one, or several for a commit), fetching
    /// offloaded payloads from the object store (verified against their CIDs there; event CIDs
    /// are verified by the reader's chain check as for any event).
    pub async fn decode_stored(
        &self,
        subject: &str,
        headers: &HeaderMap,
        payload: &[u8],
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        let entity = match subject.parse::<Subject>() {
            Ok(Subject::Event(entity)) => entity,
            _ => {
                return Err(EcsError::Unavailable(format!(
                    "malformed event message on {subject}: not an event subject"
                )))
            }
        };
        self.resolve(decode_message(&entity, headers, payload)?)
            .await
    }

    /// Fetches the offloaded payloads of `stored` into their events.
    async fn resolve(&self, stored: Vec<Stored>) -> Result<Vec<RecordedEvent>, EcsError> {
        let mut out = Vec::with_capacity(stored.len());
        for Stored {
            mut event,
            offloaded,
        } in stored
        {
            if let Some(cid) = offloaded {
                event.payload = self.objects.get(&cid).await.map_err(|e| {
                    EcsError::Unavailable(format!(
                        "payload {cid} of {} v{}: {e}",
                        event.entity, event.version
                    ))
                })?;
            }
            out.push(event);
        }
        Ok(out)
    }

    /// Offloads `ev`'s payload to the object store when it is larger than the offload
    /// threshold, returning the object's CID.
    async fn offload(&self, ev: &RecordedEvent) -> Result<Option<Cid>, EcsError> {
        if ev.payload.len() <= self.offload_above {
            return Ok(None);
        }
        Ok(Some(
            self.objects.put(&ev.payload, "application/json").await?,
        ))
    }

    /// Opens the store, creating the events stream and snapshot bucket if they do not exist
    /// (or bringing the stream's configuration up to date, see [`ensure_events_stream`]).
    pub async fn open(client: async_nats::Client) -> Result<Self, EcsError> {
        let js = jetstream::new(client.clone());
        ensure_events_stream(&client).await?;
        Self::attach_with(client, js, true).await
    }

    /// Opens an existing store and never creates or changes anything: what a reader does
    /// (its user may not create streams). Fails when the lattice has no events stream yet.
    pub async fn attach(client: async_nats::Client) -> Result<Self, EcsError> {
        let js = jetstream::new(client.clone());
        Self::attach_with(client, js, false).await
    }

    async fn attach_with(
        client: async_nats::Client,
        js: jetstream::Context,
        create: bool,
    ) -> Result<Self, EcsError> {
        let missing = |what: &str| {
            EcsError::Unavailable(format!(
                "the lattice has no {what} yet (`cim up` creates it)"
            ))
        };
        let stream = js
            .get_stream(EVENTS_STREAM)
            .await
            .map_err(|e| unavailable("opening the events stream", e))?;
        let snapshots = match js.get_key_value(SNAPSHOTS_BUCKET).await {
            Ok(kv) => kv,
            Err(_) if !create => return Err(missing("snapshot bucket")),
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: SNAPSHOTS_BUCKET.into(),
                    history: 1,
                    storage: stream::StorageType::File,
                    description: "CIM entity snapshots".into(),
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable("creating the snapshot bucket", e))?,
        };
        let objects = if create {
            ObjectStore::open(client.clone()).await?
        } else {
            ObjectStore::attach(client.clone())
                .await
                .map_err(|_| missing("object store"))?
        };
        Ok(Self {
            objects,
            offload_above: DEFAULT_OFFLOAD_ABOVE,
            client,
            js,
            stream,
            snapshots,
            heads: Heads::default(),
        })
    }

    /// The entity's last event and the stream sequence of its message, if it has any.
    ///
    /// A last message that is not an event (see [`EventStore::read_messages`]) is skipped:
    /// the head is then the last event before it, with the sequence of that last message
    /// (where the next append must follow).
    pub async fn head(&self, entity: &EntityRef) -> Result<Option<Head>, EcsError> {
        Ok(self.position(entity).await?.1)
    }

    /// The stream sequence of the entity's last message (0 when it has none) and its head.
    async fn position(&self, entity: &EntityRef) -> Result<(u64, Option<Head>), EcsError> {
        let subject = Subject::event(entity).to_string();
        let msg = match self.stream.direct_get_last_for_subject(&subject).await {
            Ok(msg) => msg,
            Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => {
                return Ok((0, None))
            }
            Err(e) => return Err(unavailable("reading the entity's last event", e)),
        };
        let last = match decode_message(entity, &msg.headers, &msg.payload) {
            Ok(mut stored) => stored.pop().map(|s| s.event),
            Err(e) if is_malformed(&e) => {
                warn!(%subject, sequence = msg.sequence, error = %e, "the entity's last message is not an event; skipping it");
                self.last_event_before(entity, &subject, msg.sequence)
                    .await?
            }
            Err(e) => return Err(e),
        };
        match &last {
            Some(event) => self.heads.put(
                entity,
                Position {
                    version: event.version,
                    cid: event.cid,
                    sequence: msg.sequence,
                },
            ),
            None => self.heads.forget(entity),
        }
        Ok((
            msg.sequence,
            last.map(|event| Head {
                sequence: msg.sequence,
                event,
            }),
        ))
    }

    /// The entity's last event stored before stream sequence `until` (its payload not fetched:
    /// a head is for positions and CIDs), skipping messages that are not events. Only for an
    /// entity whose last message is not an event; reads the entity's whole subject.
    async fn last_event_before(
        &self,
        entity: &EntityRef,
        subject: &str,
        until: u64,
    ) -> Result<Option<RecordedEvent>, EcsError> {
        let (mut next, mut last) = (1, None);
        loop {
            let (page, more) = self.direct_batch(subject, next, DIRECT_BATCH).await?;
            for (sequence, headers, payload) in page {
                if sequence >= until {
                    return Ok(last);
                }
                next = sequence + 1;
                match decode_message(entity, &headers, &payload) {
                    Ok(mut stored) => last = stored.pop().map(|s| s.event).or(last),
                    Err(e) if is_malformed(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if !more {
                return Ok(last);
            }
        }
    }

    /// Every message on the entity's subject, in stream order, each decoded on its own: the
    /// events (offloaded payloads fetched), and the messages that are not events (a message
    /// no event store wrote, e.g. garbage published by a holder of the events role) with why.
    /// Nothing is verified: views show each event with its own verdict
    /// ([`cim_domain::chain::verdicts`]). Reads the whole stream of the entity.
    pub async fn read_messages(&self, entity: &EntityRef) -> Result<Vec<StoredMessage>, EcsError> {
        let subject = Subject::event(entity).to_string();
        let last = match self.stream.direct_get_last_for_subject(&subject).await {
            Ok(msg) => msg.sequence,
            Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(unavailable("reading the entity's last event", e)),
        };
        let mut out = Vec::new();
        let mut next = 1;
        'pages: loop {
            let (page, more) = self.direct_batch(&subject, next, DIRECT_BATCH).await?;
            for (sequence, headers, payload) in page {
                next = sequence + 1;
                match decode_message(entity, &headers, &payload) {
                    Ok(stored) => match self.resolve(stored).await {
                        Ok(events) => out.extend(
                            events
                                .into_iter()
                                .map(|ev| StoredMessage::Event(Box::new(ev))),
                        ),
                        Err(e) => out.push(StoredMessage::NotAnEvent {
                            sequence,
                            error: e.to_string(),
                        }),
                    },
                    Err(e) => out.push(StoredMessage::NotAnEvent {
                        sequence,
                        error: e.to_string(),
                    }),
                }
                if sequence >= last {
                    break 'pages;
                }
            }
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// Appends `events` to `entity` if it is at `expected_version`; see the module docs.
    pub async fn append(
        &self,
        entity: &EntityRef,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if events.len() > MAX_APPEND {
            return Err(EcsError::Invalid(format!(
                "{} events in one append; at most {MAX_APPEND} are stored atomically",
                events.len()
            )));
        }
        if let Some(big) = events.iter().find(|e| e.payload.len() > MAX_EVENT_PAYLOAD) {
            return Err(EcsError::Invalid(format!(
                "event {} has a {}-byte payload; at most {MAX_EVENT_PAYLOAD} bytes are accepted (store larger content in the object store and reference its CID)",
                big.name,
                big.payload.len()
            )));
        }
        // The position this store last saw, when it is the expected one: JetStream checks it.
        if let Some(known) = self
            .heads
            .get(entity)
            .filter(|p| p.version == expected_version)
        {
            let sealed = seal_all(entity, expected_version, Some(known.cid), events.clone())?;
            match self.publish_sealed(entity, &sealed, known.sequence).await {
                Ok(()) => return Ok(sealed),
                // Stale (another writer, another host, a message that is not an event):
                // look the head up as if nothing were known.
                Err(Published::WrongLastSequence) => self.heads.forget(entity),
                Err(Published::Failed(e)) => return Err(e),
            }
        }
        let (last_sequence, head) = self.position(entity).await?;
        let (actual, previous) = match &head {
            Some(h) => (h.event.version, Some(h.event.cid)),
            None => (0, None),
        };
        if actual != expected_version {
            return self
                .replayed_or_conflict(entity, expected_version, actual, events)
                .await;
        }
        let sealed = seal_all(entity, expected_version, previous, events.clone())?;
        match self.publish_sealed(entity, &sealed, last_sequence).await {
            Ok(()) => Ok(sealed),
            Err(Published::WrongLastSequence) => {
                // Someone else appended first, or this very append was stored and its
                // acknowledgement lost: compare CIDs to tell which.
                let now = self.head(entity).await?.map_or(0, |h| h.event.version);
                debug!(%entity, expected = expected_version, actual = now, "append lost a race");
                self.replayed_or_conflict(entity, expected_version, now, events)
                    .await
            }
            Err(Published::Failed(e)) => Err(e),
        }
    }

    /// Stores `sealed` after the message at `last_sequence` of the entity's subject: one
    /// message when the commit fits, else an atomic batch. Remembers the new position.
    async fn publish_sealed(
        &self,
        entity: &EntityRef,
        sealed: &[RecordedEvent],
        last_sequence: u64,
    ) -> Result<(), Published> {
        let max_payload = self.client.server_info().max_payload;
        let subject = Subject::event(entity).to_string();
        let commit = self
            .encode_commit(sealed)
            .await
            .map_err(Published::Failed)?;
        let stored = match commit {
            Some((headers, body)) if message_size(&headers, &body) <= max_payload => self
                .publish_one(&subject, sealed, headers, body, last_sequence)
                .await
                .map(Some),
            commit => {
                let mut messages = Vec::with_capacity(sealed.len());
                for ev in sealed {
                    let (headers, body) =
                        self.encode_stored(ev).await.map_err(Published::Failed)?;
                    let size = message_size(&headers, &body);
                    if size > max_payload {
                        return Err(Published::Failed(EcsError::Invalid(format!(
                            "event {} is {size} bytes; the server accepts at most {max_payload}",
                            ev.name
                        ))));
                    }
                    messages.push((headers, body));
                }
                match (commit, messages.pop()) {
                    // One event: its own message (one too large for a message was refused above).
                    (None, Some((headers, body))) => self
                        .publish_one(&subject, sealed, headers, body, last_sequence)
                        .await
                        .map(Some),
                    // A commit beyond one message: an atomic batch of one-event messages.
                    (_, last) => {
                        messages.extend(last);
                        self.publish_batch(&subject, sealed, messages, last_sequence)
                            .await
                            .map(|()| None)
                    }
                }
            }
        };
        match (stored, sealed.last()) {
            (Ok(Some(sequence)), Some(last)) => {
                self.heads.put(
                    entity,
                    Position {
                        version: last.version,
                        cid: last.cid,
                        sequence,
                    },
                );
                Ok(())
            }
            (Ok(_), _) => {
                self.heads.forget(entity);
                Ok(())
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The commit message of several events (`None` for one event, which is its own message).
    async fn encode_commit(
        &self,
        sealed: &[RecordedEvent],
    ) -> Result<Option<(HeaderMap, Bytes)>, EcsError> {
        let [_, .., last] = sealed else {
            return Ok(None);
        };
        let mut stored = Vec::with_capacity(sealed.len());
        for ev in sealed {
            stored.push(Stored {
                offloaded: self.offload(ev).await?,
                event: ev.clone(),
            });
        }
        let body = commit::encode(&stored)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::EVENTS, sealed.len().to_string().as_str());
        headers.insert(header::VERSION, last.version.to_string().as_str());
        headers.insert(header::CID, last.cid.to_string().as_str());
        Ok(Some((headers, Bytes::from(body))))
    }

    /// Publishes one message (one event, or the commit of `sealed`) with per-subject optimistic
    /// concurrency and deduplication by the last event's CID; returns its stream sequence.
    async fn publish_one(
        &self,
        subject: &str,
        sealed: &[RecordedEvent],
        mut headers: HeaderMap,
        body: Bytes,
        last_sequence: u64,
    ) -> Result<u64, Published> {
        let Some(last) = sealed.last() else {
            return Ok(last_sequence);
        };
        headers.insert("Nats-Msg-Id", last.cid.to_string().as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            last_sequence.to_string().as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), headers, body)
            .await
            .map_err(|e| Published::Failed(unavailable("publishing an event", e)))?;
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Err(_) => Err(Published::Failed(EcsError::Unavailable(
                "no acknowledgement from JetStream in time; retrying the same append is safe"
                    .into(),
            ))),
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    jetstream::context::PublishErrorKind::WrongLastSequence
                ) =>
            {
                Err(Published::WrongLastSequence)
            }
            Ok(Err(e)) => Err(Published::Failed(unavailable("storing an event", e))),
        }
    }

    /// Publishes several events as one JetStream atomic batch of one-event messages: all are
    /// stored or none. Only for commits too large for one message: on a disk-backed stream the
    /// server stages every batch in a file store of its own (~7 ms, whatever the batch size).
    ///
    /// The first message carries the per-subject expectation (checked against the state before
    /// the batch); only the commit message is acknowledged. Batches carry no `Nats-Msg-Id`
    /// (a duplicate id would reject the whole batch); a retried batch is recognised by CID in
    /// [`EventStore::replayed_or_conflict`] instead.
    async fn publish_batch(
        &self,
        subject: &str,
        sealed: &[RecordedEvent],
        messages: Vec<(HeaderMap, Bytes)>,
        last_sequence: u64,
    ) -> Result<(), Published> {
        let batch_id = sealed[0].cid.to_string();
        let n = messages.len();
        for (i, (mut headers, body)) in messages.into_iter().enumerate() {
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            if i == 0 {
                headers.insert(
                    "Nats-Expected-Last-Subject-Sequence",
                    last_sequence.to_string().as_str(),
                );
            }
            if i + 1 < n {
                self.client
                    .publish_with_headers(subject.to_owned(), headers, body)
                    .await
                    .map_err(|e| Published::Failed(unavailable("publishing an event batch", e)))?;
                continue;
            }
            headers.insert("Nats-Batch-Commit", "1");
            let reply = tokio::time::timeout(
                ACK_TIMEOUT,
                self.client
                    .request_with_headers(subject.to_owned(), headers, body),
            )
            .await
            .map_err(|_| {
                Published::Failed(EcsError::Unavailable(
                    "no acknowledgement for an event batch in time".into(),
                ))
            })?
            .map_err(|e| Published::Failed(unavailable("committing an event batch", e)))?;
            let ack: BatchAck = serde_json::from_slice(&reply.payload).map_err(|e| {
                Published::Failed(unavailable("reading the batch acknowledgement", e))
            })?;
            return match ack.error {
                None if ack.count == Some(n as u64) => Ok(()),
                None => Err(Published::Failed(EcsError::Unavailable(format!(
                    "batch acknowledged {:?} of {n} events",
                    ack.count
                )))),
                Some(err) if err.err_code == 10071 || err.err_code == 10164 => {
                    Err(Published::WrongLastSequence)
                }
                Some(err) => Err(Published::Failed(EcsError::Unavailable(format!(
                    "JetStream rejected the event batch: {} (code {})",
                    err.description, err.err_code
                )))),
            };
        }
        Ok(())
    }

    /// The entity moved past `expected`: either this exact append already happened (a retry
    /// after a lost reply), or someone else wrote first.
    async fn replayed_or_conflict(
        &self,
        entity: &EntityRef,
        expected: u64,
        actual: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        let conflict = EcsError::Conflict { expected, actual };
        let n = events.len() as u64;
        if actual < expected + n {
            return Err(conflict);
        }
        let from = expected.max(1);
        let window = self
            .read(entity, from, u32::try_from(n + 1).unwrap_or(u32::MAX))
            .await?;
        let (previous, candidates) = if expected == 0 {
            (None, &window[..])
        } else {
            match window.split_first() {
                Some((p, rest)) => (Some(p.cid), rest),
                None => return Err(conflict),
            }
        };
        let sealed = seal_all(entity, expected, previous, events)?;
        let same = candidates.len() >= sealed.len()
            // The same CIDs are not enough: a CID commits to the fact, not to the command
            // that decided it, so two commands deciding the same fact at the same version
            // yield the same CIDs. Only the command that stored them gets them as its answer;
            // the other gets `conflict` (and, without an expected version, decides again).
            && sealed
                .iter()
                .zip(candidates)
                .all(|(a, b)| a.cid == b.cid && a.meta.id == b.meta.id);
        if same {
            Ok(candidates[..sealed.len()].to_vec())
        } else {
            Err(conflict)
        }
    }

    /// Reads at most `max` events of `entity` from version `from` (1-based), verifying the chain.
    pub async fn read(
        &self,
        entity: &EntityRef,
        from: u64,
        max: u32,
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        let head = self.head(entity).await?;
        let hint = self.heads.next_read(entity, from.max(1));
        Ok(self.read_from(entity, head, from, max, hint).await?.0)
    }

    /// The latest snapshot of `entity` and at most `max` events from it on (from the
    /// snapshot's own version, or from version 1 without a snapshot or with one whose state
    /// is not UTF-8 text), verifying the chain:
    /// what a command reads first, in one call. The read starts at the stream sequence saved
    /// with the snapshot, so its cost does not grow with the entity's history.
    pub async fn load(
        &self,
        entity: &EntityRef,
        max: u32,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), EcsError> {
        let (kept, mut head) = tokio::try_join!(self.kept_snapshot(entity), self.head(entity))?;
        // A snapshot's state is JSON text (it crosses WIT as a `string`); one that is not (no
        // component wrote it) is no snapshot, and the events are read from version 1.
        let kept = kept.filter(|k| {
            let text = std::str::from_utf8(&k.snapshot.state).is_ok();
            if !text {
                warn!(%entity, version = k.snapshot.version, "a stored snapshot's state is not UTF-8 text; ignoring it");
            }
            text
        });
        // Read side by side, the snapshot may be newer than the head: look the head up again.
        if let Some(k) = &kept {
            if head.as_ref().map_or(0, |h| h.event.version) < k.snapshot.version {
                head = self.head(entity).await?;
            }
        }
        let (from, hint) = match &kept {
            Some(k) => (
                k.snapshot.version.max(1),
                k.sequence
                    .or_else(|| self.heads.next_read(entity, k.snapshot.version.max(1))),
            ),
            None => (1, None),
        };
        let (events, _) = self.read_from(entity, head, from, max, hint).await?;
        Ok((kept.map(|k| k.snapshot), events))
    }

    /// [`EventStore::read`] given the entity's head, starting at stream sequence `hint` when
    /// given (checked: a hint past the first event to read is dropped and the start searched
    /// for). Also returns the stream sequence of the message holding the first event read.
    async fn read_from(
        &self,
        entity: &EntityRef,
        head: Option<Head>,
        from: u64,
        max: u32,
        hint: Option<u64>,
    ) -> Result<(Vec<RecordedEvent>, Option<u64>), EcsError> {
        let from = from.max(1);
        let Some(head) = head else {
            return Ok((Vec::new(), None));
        };
        if from > head.event.version || max == 0 {
            return Ok((Vec::new(), None));
        }
        let subject = Subject::event(entity).to_string();
        if let Some(start) = hint.filter(|&s| s >= 1 && s <= head.sequence) {
            match self
                .read_pages(entity, &subject, &head, start, from, max)
                .await
            {
                Ok(read) if read.0.first().map(|e| e.version) == Some(from) => return Ok(read),
                Ok(_) => {
                    debug!(%entity, start, from, "the saved start of a read was past its first event; searching")
                }
                // Whatever went wrong from the hint (a chain that does not start where it
                // should), the search decides.
                Err(e) => {
                    debug!(%entity, start, from, error = %e, "a read from its saved start failed; searching")
                }
            }
        }
        let start = self.start_sequence(&subject, head.sequence, from).await?;
        self.read_pages(entity, &subject, &head, start, from, max)
            .await
    }

    /// Reads pages of `subject` from stream sequence `start` until `max` events from version
    /// `from` on are read or the head is reached, verifying the chain of those events.
    async fn read_pages(
        &self,
        entity: &EntityRef,
        subject: &str,
        head: &Head,
        start: u64,
        from: u64,
        max: u32,
    ) -> Result<(Vec<RecordedEvent>, Option<u64>), EcsError> {
        let mut next = start;
        let (mut first_sequence, mut last_sequence) = (None, None);
        let mut verifier = if from == 1 {
            ChainVerifier::new()
        } else {
            ChainVerifier::partial()
        };
        let mut out = Vec::new();
        let mut first_page = true;
        'pages: loop {
            // Every message holds at least one event: ask for no more than are still wanted
            // (and one, for a first message holding versions before `from`); once a page held
            // nothing wanted (a start far before `from`), ask for full pages.
            let wanted = if first_page || !out.is_empty() {
                (max as usize).saturating_sub(out.len()).saturating_add(1)
            } else {
                DIRECT_BATCH
            };
            first_page = false;
            let (page, more) = self
                .direct_batch(subject, next, wanted.min(DIRECT_BATCH))
                .await?;
            for (sequence, headers, payload) in page {
                next = sequence + 1;
                let stored = match decode_message(entity, &headers, &payload) {
                    Ok(stored) => stored,
                    // Not an event (no event store wrote it): it holds no fact, so it is
                    // skipped, and the chain verification of the events around it is
                    // unaffected.
                    Err(e) if is_malformed(&e) => {
                        warn!(%entity, sequence, error = %e, "skipping a message that is not an event");
                        if sequence >= head.sequence {
                            break 'pages;
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let last_version = stored.last().map_or(0, |s| s.event.version);
                // Only the events wanted have their offloaded payloads fetched.
                let room = (max as usize).saturating_sub(out.len());
                let wanted: Vec<Stored> = stored
                    .into_iter()
                    .filter(|s| s.event.version >= from)
                    .take(room)
                    .collect();
                for ev in self.resolve(wanted).await? {
                    verifier.push(&ev).map_err(|e| {
                        EcsError::Unavailable(format!("event chain of {entity} is corrupt: {e}"))
                    })?;
                    first_sequence.get_or_insert(sequence);
                    last_sequence = Some(sequence);
                    out.push(ev);
                }
                // The head was read first: once its version is reached, the page is complete.
                if out.len() >= max as usize || last_version >= head.event.version {
                    break 'pages;
                }
            }
            if !more {
                break;
            }
        }
        // The next read (the next page of a long replay) starts at the message holding the
        // last event returned: the rest of a commit, or the next message.
        if let (Some(last), Some(sequence)) = (out.last(), last_sequence) {
            self.heads.read_ended(entity, last.version + 1, sequence);
        }
        Ok((out, first_sequence))
    }

    /// Up to `batch` messages on `subject` from stream sequence `from` on, with their
    /// sequences, by one batched direct get (nats-server 2.11 and later, ADR-31 of the NATS
    /// architecture): a read creates no consumer, so nothing is left behind on the server.
    /// The flag says whether more messages on the subject follow the batch.
    async fn direct_batch(
        &self,
        subject: &str,
        from: u64,
        batch: usize,
    ) -> Result<(Vec<(u64, HeaderMap, Bytes)>, bool), EcsError> {
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable("reading events", e))?;
        let request = serde_json::json!({
            "seq": from,
            "next_by_subj": subject,
            "batch": batch,
            "max_bytes": DIRECT_BATCH_BYTES,
        });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{EVENTS_STREAM}"),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| unavailable("reading events", e))?;
        let mut out = Vec::new();
        loop {
            let msg = tokio::time::timeout(ACK_TIMEOUT, replies.next())
                .await
                .map_err(|_| EcsError::Unavailable("reading events timed out".into()))?
                .ok_or_else(|| EcsError::Unavailable("the event stream closed".into()))?;
            let headers = msg.headers.unwrap_or_default();
            match msg.status.map(|s| s.as_u16()) {
                None | Some(200) => {
                    let sequence = headers
                        .get(async_nats::header::NATS_SEQUENCE)
                        .and_then(|v| v.as_str().parse().ok())
                        .ok_or_else(|| {
                            EcsError::Unavailable(format!(
                                "a direct get on {subject} answered without a sequence"
                            ))
                        })?;
                    out.push((sequence, headers, msg.payload));
                }
                // End of the batch: more follow when some are still pending.
                Some(204) => {
                    let pending: u64 = headers
                        .get("Nats-Num-Pending")
                        .and_then(|v| v.as_str().parse().ok())
                        .unwrap_or(0);
                    return Ok((out, pending > 0));
                }
                // Nothing (more) on the subject from `from` on.
                Some(404) => return Ok((out, false)),
                Some(code) => {
                    return Err(EcsError::Unavailable(format!(
                        "a direct get on {subject} failed: {code} {}",
                        msg.description.unwrap_or_default()
                    )))
                }
            }
        }
    }

    /// A stream sequence from which the first message on `subject` holds the event at version
    /// `from` (which must exist: `from` ≤ the head's version, and the head is at `head_seq`).
    ///
    /// Versions grow along a subject's messages (a message's `Cim-Version` is its last event's),
    /// so this is a binary search over stream sequences with direct gets for the first message
    /// whose last version is at least `from` ("first message on the subject at or after
    /// sequence s"):
    /// about log2(stream length) lookups instead of decoding every earlier event of the entity.
    async fn start_sequence(
        &self,
        subject: &str,
        head_seq: u64,
        from: u64,
    ) -> Result<u64, EcsError> {
        if from <= SCAN_FROM_START {
            return Ok(1);
        }
        let (mut lo, mut hi) = (1, head_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let msg = self
                .stream
                .direct_get_next_for_subject(subject, Some(mid))
                .await
                .map_err(|e| unavailable("locating the first event to read", e))?;
            let header = |name: async_nats::header::HeaderName| -> Result<u64, EcsError> {
                msg.headers
                    .as_ref()
                    .and_then(|h| h.get(name.clone()))
                    .and_then(|v| v.as_str().trim().parse().ok())
                    .ok_or_else(|| {
                        EcsError::Unavailable(format!(
                            "malformed event message on {subject}: no {name}"
                        ))
                    })
            };
            let version = match header(async_nats::header::HeaderName::from_static(header::VERSION))
            {
                Ok(v) => v,
                // Not an event: reading from `lo` is always early enough (the reader skips
                // versions before `from`).
                Err(e) if is_malformed(&e) => return Ok(lo),
                Err(e) => return Err(e),
            };
            if version >= from {
                hi = mid;
            } else {
                lo = header(async_nats::header::NATS_SEQUENCE)? + 1;
            }
        }
        Ok(lo)
    }

    /// The latest snapshot of an entity.
    pub async fn load_snapshot(&self, entity: &EntityRef) -> Result<Option<Snapshot>, EcsError> {
        Ok(self.kept_snapshot(entity).await?.map(|k| k.snapshot))
    }

    /// The latest snapshot of an entity with where its event is stored.
    async fn kept_snapshot(&self, entity: &EntityRef) -> Result<Option<KeptSnapshot>, EcsError> {
        let key = snapshot_key(entity);
        match self.snapshots.get(&key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| unavailable("decoding a snapshot", e)),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable("loading a snapshot", e)),
        }
    }

    /// Saves a snapshot after checking that it names an event of the entity's chain, with the
    /// stream sequence of that event's message (where [`EventStore::load`] starts reading).
    pub async fn save_snapshot(&self, snap: Snapshot) -> Result<(), EcsError> {
        let head = self.head(&snap.entity).await?;
        let (at, sequence) = self
            .read_from(&snap.entity, head, snap.version, 1, None)
            .await?;
        match at.first() {
            Some(ev) if ev.version == snap.version && ev.cid.to_string() == snap.last_cid => {}
            _ => {
                return Err(EcsError::NotFound(format!(
                    "{} has no event {} at version {}",
                    snap.entity, snap.last_cid, snap.version
                )))
            }
        }
        let entity = snapshot_key(&snap.entity);
        let bytes = serde_json::to_vec(&KeptSnapshot {
            snapshot: snap,
            sequence,
        })
        .map_err(|e| unavailable("encoding a snapshot", e))?;
        self.snapshots
            .put(entity, bytes.into())
            .await
            .map_err(|e| unavailable("saving a snapshot", e))?;
        Ok(())
    }

    /// The NATS connection the store uses.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The underlying stream handle (for consumers of subscriptions).
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }
}

/// Bytes a message occupies against the server's `max_payload` (body plus headers).
fn message_size(headers: &HeaderMap, body: &Bytes) -> usize {
    let header_bytes: usize = headers
        .iter()
        .map(|(k, vs)| {
            let name: &str = k.as_ref();
            vs.iter()
                .map(|v| name.len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum();
    body.len() + header_bytes + 16
}

fn snapshot_key(entity: &EntityRef) -> String {
    format!("{}.{}", entity.kind, entity.id)
}

fn seal_all(
    entity: &EntityRef,
    version: u64,
    mut previous: Option<Cid>,
    events: Vec<NewEvent>,
) -> Result<Vec<RecordedEvent>, EcsError> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, ev)| {
            let rec = RecordedEvent::seal(entity, version + i as u64 + 1, previous, ev)
                .map_err(|e| EcsError::Invalid(e.to_string()))?;
            previous = Some(rec.cid);
            Ok(rec)
        })
        .collect()
}
