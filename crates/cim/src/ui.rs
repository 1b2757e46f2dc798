//! `cim ui`: a browser view of the running lattice, served on localhost.
//!
//! One page (`ui/index.html`, no external assets: it works offline) over a small JSON API:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/status` | hosts, components, providers, links, wadm's application status |
//! | `GET /api/entities` | every entity with events, with its event count (stream subjects) |
//! | `GET /api/events/{kind}/{id}` | an entity's events with the CID chain verified per event |
//! | `GET /api/graph` | the knowledge graph: nodes (key, labels) and edges |
//! | `GET /api/live` | server-sent events: `event` for every appended domain event (core NATS `cim.evt.>`), `lattice` for every wasmCloud lattice event (`wasmbus.evt.<lattice>.>`) |
//!
//! Only requests whose `Host` header names the loopback address it serves on (`127.0.0.1`,
//! `localhost` or `[::1]`, with its port) are answered; any other is refused with
//! `421 Misdirected Request`, so a page on another origin that rebinds its DNS name to
//! 127.0.0.1 cannot read the lattice through a browser.
//!
//! The page re-reads what a live message concerns, so what it shows is always what the
//! lattice answers, never a client-side guess.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cim_domain::{EntityRef, RecordedEvent, Subject};
use cim_nats::store::StoredMessage;
use cim_nats::EventStore;
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use serde_json::{json, Value};

use crate::Cli;

/// The page.
const INDEX: &str = include_str!("ui/index.html");

/// Shared state of the handlers.
struct Ui {
    ctx: Cli,
    nats: async_nats::Client,
    store: EventStore,
}

/// An error answered as JSON `{"error": …}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::BAD_GATEWAY, format!("{e:#}"))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Serves the view on `addr` (port 0: any free port). Returns the bound address and the
/// server future, which runs until dropped.
pub async fn bind(
    ctx: &Cli,
    addr: SocketAddr,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let nats = ctx.connect(crate::Role::Reader).await?;
    let store = EventStore::attach(nats.clone())
        .await
        .context("cannot open the event store")?;
    let state = Arc::new(Ui {
        ctx: ctx.clone(),
        nats,
        store,
    });
    let app = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/api/status", get(status))
        .route("/api/entities", get(entities))
        .route("/api/events/{kind}/{id}", get(events))
        .route("/api/graph", get(graph))
        .route("/api/live", get(live))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            match host {
                Some(host) if loopback_host(host, bound.port()) => next.run(request).await,
                _ => (
                    StatusCode::MISDIRECTED_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    format!(
                        "cim ui answers only requests for http://127.0.0.1:{0}/ or http://localhost:{0}/",
                        bound.port()
                    ),
                )
                    .into_response(),
            }
        },
    ));
    Ok((bound, async move { axum::serve(listener, app).await }))
}

/// `cim ui`: serves the view on 127.0.0.1:`port` until Ctrl-C.
pub async fn serve(ctx: &Cli, port: u16) -> anyhow::Result<()> {
    let (addr, server) = bind(ctx, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("cim ui: http://{addr}/ (Ctrl-C to stop)");
    tokio::select! {
        served = server => served.context("the web server stopped")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// Whether a `Host` header names this server: a loopback name with the port it listens on
/// (or no port when that is 80).
fn loopback_host(host: &str, port: u16) -> bool {
    let (name, given) = match host.rsplit_once(':') {
        Some((name, p)) if !name.is_empty() && !p.contains(']') => (name, p.parse::<u16>().ok()),
        _ => (host, (port == 80).then_some(80)),
    };
    given == Some(port)
        && ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|ok| name.eq_ignore_ascii_case(ok))
}

async fn status(State(ui): State<Arc<Ui>>) -> ApiResult<crate::status::LatticeStatus> {
    Ok(Json(
        crate::status::lattice_status(&ui.ctx, &ui.nats).await?,
    ))
}

/// An entity and how many events it has, or why its stream cannot be read now (one bad
/// entity is reported in place and hides no other).
#[derive(Debug, Serialize)]
struct EntitySummary {
    kind: String,
    id: String,
    events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn entities(State(ui): State<Arc<Ui>>) -> ApiResult<Vec<EntitySummary>> {
    let mut subjects = ui
        .store
        .stream()
        .info_with_subjects(Subject::all_events())
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the event stream's subjects: {e}"))?;
    let mut entities = Vec::new();
    while let Some(next) = subjects.next().await {
        let (subject, _messages) =
            next.map_err(|e| anyhow::anyhow!("cannot read the event stream's subjects: {e}"))?;
        if let Ok(Subject::Event(entity)) = subject.parse::<Subject>() {
            entities.push(entity);
        }
    }
    // A subject's message count is its number of appends (a multi-event append is one commit
    // message, ADR 0009); the number of events is the version of its last event.
    let mut out: Vec<EntitySummary> = futures::stream::iter(entities)
        .map(|entity| {
            let store = ui.store.clone();
            async move {
                let head = store.head(&entity).await;
                EntitySummary {
                    kind: entity.kind.to_string(),
                    id: entity.id.to_string(),
                    events: head
                        .as_ref()
                        .ok()
                        .and_then(Option::as_ref)
                        .map_or(0, |h| h.event.version),
                    error: head.err().map(|e| e.to_string()),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    out.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    Ok(Json(out))
}

/// One event as the page shows it, with the verdict on its place in the chain; or a message
/// of the entity's subject that is not an event, with why.
#[derive(Debug, Serialize)]
struct EventView {
    version: u64,
    name: String,
    cid: String,
    previous: Option<String>,
    correlation: String,
    causation: Option<String>,
    occurred_at_ms: u64,
    payload: Value,
    /// `None` when the event verifies (content hashes to its CID, links to the one before).
    chain_error: Option<String>,
    /// The stream sequence of a message that is not an event (then only `chain_error` says
    /// more; the other fields are empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_an_event: Option<u64>,
}

/// Every message of the entity's subject with its own verdict ([`cim_domain::chain::verdicts`]
/// for the events; messages that are not events are reported where they are and skipped).
fn verified(messages: &[StoredMessage]) -> Vec<EventView> {
    let events: Vec<&RecordedEvent> = messages.iter().filter_map(StoredMessage::event).collect();
    let mut verdicts = cim_domain::chain::verdicts(events.iter().copied()).into_iter();
    messages
        .iter()
        .map(|m| match m {
            StoredMessage::Event(ev) => EventView {
                version: ev.version,
                name: ev.name.to_string(),
                cid: ev.cid.to_string(),
                previous: ev.previous.map(|c| c.to_string()),
                correlation: ev.meta.correlation_id.clone(),
                causation: ev.meta.causation_id.clone(),
                occurred_at_ms: ev.meta.occurred_at_ms,
                payload: serde_json::from_slice(&ev.payload).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&ev.payload).into_owned())
                }),
                chain_error: verdicts.next().flatten().map(|e| e.to_string()),
                not_an_event: None,
            },
            StoredMessage::NotAnEvent { sequence, error } => EventView {
                version: 0,
                name: String::new(),
                cid: String::new(),
                previous: None,
                correlation: String::new(),
                causation: None,
                occurred_at_ms: 0,
                payload: Value::Null,
                chain_error: Some(format!(
                    "stream message {sequence} is not an event (skipped): {error}"
                )),
                not_an_event: Some(*sequence),
            },
        })
        .collect()
}

async fn events(
    State(ui): State<Arc<Ui>>,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult<Value> {
    let entity =
        EntityRef::new(&kind, &id).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let messages = ui
        .store
        .read_messages(&entity)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {entity}: {e}"))?;
    let events = verified(&messages);
    let broken = events.iter().filter(|e| e.chain_error.is_some()).count();
    Ok(Json(json!({
        "entity": entity.to_string(),
        "chain": if broken == 0 { "verified" } else { "broken" },
        "events": events,
    })))
}

async fn graph(State(ui): State<Arc<Ui>>) -> ApiResult<Value> {
    let (nodes, edges) = crate::graph::structure(&ui.ctx).await?;
    Ok(Json(crate::graph::to_json(&nodes, &edges)))
}

/// The live feed: domain events and lattice events as they happen on NATS.
async fn live(State(ui): State<Arc<Ui>>) -> Response {
    match feed(&ui).await {
        Ok(stream) => Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
            .into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{e:#}"),
        )
            .into_response(),
    }
}

async fn feed(
    ui: &Ui,
) -> anyhow::Result<impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static> {
    let domain = ui
        .nats
        .subscribe(Subject::all_events())
        .await
        .context("cannot subscribe to events")?
        .flat_map(|msg| futures::stream::iter(domain_events(&msg).into_iter().map(Ok)));
    let lattice = ui
        .nats
        .subscribe(format!("wasmbus.evt.{}.>", ui.ctx.lattice()))
        .await
        .context("cannot subscribe to lattice events")?
        .map(|msg| {
            let kind = msg
                .subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string();
            Ok(SseEvent::default()
                .event("lattice")
                .data(json!({ "type": kind }).to_string()))
        });
    // The first message tells the page the feed is connected.
    let hello = futures::stream::once(async { Ok(SseEvent::default().event("hello").data("{}")) });
    Ok(hello.chain(futures::stream::select(domain, lattice)))
}

/// The domain events of an appended message (one, or several for a commit) as live messages.
/// A message that is not a CIM event gives none.
fn domain_events(msg: &async_nats::Message) -> Vec<SseEvent> {
    let no_headers = async_nats::HeaderMap::new();
    let headers = msg.headers.as_ref().unwrap_or(&no_headers);
    let Ok(events) = cim_nats::store::decode(msg.subject.as_str(), headers, &msg.payload) else {
        return Vec::new();
    };
    events
        .into_iter()
        .map(|ev| {
            let data = json!({
                "kind": ev.entity.kind.to_string(),
                "id": ev.entity.id.to_string(),
                "name": ev.name.to_string(),
                "version": ev.version,
                "cid": ev.cid.to_string(),
                "previous": ev.previous.map(|p| p.to_string()),
            });
            SseEvent::default().event("event").data(data.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::{Envelope, NewEvent, Token};

    fn chain(entity: &EntityRef, n: usize) -> Vec<RecordedEvent> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        for i in 0..n {
            let ev = NewEvent {
                name: Token::parse("event name", "Changed").unwrap(),
                schema_version: 1,
                payload: format!("{{\"n\":{i}}}").into_bytes(),
                meta: Envelope::originating(format!("c{i}"), 0),
            };
            let previous = out.last().map(|e| e.cid);
            out.push(RecordedEvent::seal(entity, i as u64 + 1, previous, ev).unwrap());
        }
        out
    }

    #[test]
    fn only_loopback_host_headers_with_the_served_port_are_accepted() {
        for ok in [
            "127.0.0.1:8480",
            "localhost:8480",
            "LOCALHOST:8480",
            "[::1]:8480",
        ] {
            assert!(loopback_host(ok, 8480), "{ok} refused");
        }
        assert!(loopback_host("localhost", 80));
        for bad in [
            "evil.example:8480",
            "evil.example",
            "127.0.0.1",
            "127.0.0.1:8481",
            "localhost.evil.example:8480",
            "127.0.0.1.nip.io:8480",
            "[::1]",
            "::1",
            "",
            ":8480",
            "127.0.0.1:8480:8480",
        ] {
            assert!(!loopback_host(bad, 8480), "{bad:?} accepted");
        }
    }

    fn messages(events: Vec<RecordedEvent>) -> Vec<StoredMessage> {
        events
            .into_iter()
            .map(|ev| StoredMessage::Event(Box::new(ev)))
            .collect()
    }

    #[test]
    fn a_tampered_event_is_reported_once_and_the_rest_still_verified() {
        let entity = EntityRef::new("thing", "t-1").unwrap();
        let good = verified(&messages(chain(&entity, 4)));
        assert!(good.iter().all(|e| e.chain_error.is_none()));
        assert_eq!(good[2].payload, json!({"n": 2}));

        let mut events = chain(&entity, 4);
        events[1].payload = b"{\"n\":99}".to_vec();
        let bad = verified(&messages(events));
        let errors: Vec<_> = bad.iter().map(|e| e.chain_error.is_some()).collect();
        assert_eq!(errors, [false, true, false, false]);
        assert!(bad[1]
            .chain_error
            .as_ref()
            .unwrap()
            .contains("does not match"));
    }

    #[test]
    fn a_message_that_is_not_an_event_is_reported_in_place_and_the_events_around_it_verify() {
        let entity = EntityRef::new("thing", "t-2").unwrap();
        let mut all = messages(chain(&entity, 3));
        all.insert(
            2,
            StoredMessage::NotAnEvent {
                sequence: 7,
                error: "malformed event message on cim.evt.thing.t-2: missing header".into(),
            },
        );
        let shown = verified(&all);
        let errors: Vec<_> = shown.iter().map(|e| e.chain_error.is_some()).collect();
        assert_eq!(errors, [false, false, true, false]);
        assert_eq!(shown[2].not_an_event, Some(7));
        assert!(shown[2]
            .chain_error
            .as_ref()
            .unwrap()
            .contains("not an event"));
        assert_eq!(shown[3].version, 3);
    }
}
