//! The document agent: [`cim_model::agent`] behind `cim:ecs/reactor`.
//!
//! Linked from the event-store provider with a subscription to document events. Its imports
//! are its ports: `eventstore` (the document's history), `inference` (embeddings and the
//! classification), `graph` (embeddings on document nodes, `SIMILAR_TO` links),
//! `objectstore` (prompts by CID) and `cim:document/commands` (the document component's typed
//! commands, sent by the generated `send_typed`: no command JSON is assembled here).
//!
//! Settings come from the component's config (`wasi:config/store`): `embedding_model`
//! (default `all-minilm`), `chat_model` (default: the inference link's model) and
//! `min_similarity` (default `0.5`).

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "cim:systems/agent-component",
        path: [
            "../../wit",
            "../../wit/entities/document",
            "../../wit/entities/package",
            "../../wit/systems",
        ],
        generate_all,
    });
}

use bindings::cim::ecs::graph::{self, Edge, Node, Property, Value};
use bindings::cim::ecs::inference::{self, Message, Role};
use bindings::cim::ecs::types::{EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict};
use bindings::cim::ecs::{eventstore, objectstore};
use bindings::exports::cim::ecs::reactor::Guest;
use cim_model::agent::{Documents, Inference, Knowledge, Objects, Reaction, Settings, SIMILAR_TO};
use cim_model::document::DocumentCommand;

cim_domain::wit_conversions!();
cim_domain::imported_event_log!();

type DomainErrorOf = cim_domain::EcsError;

include!(concat!(env!("OUT_DIR"), "/client.rs"));

/// The exported component; its imports are the agent's ports.
struct Component;

type DomainError = cim_domain::EcsError;

impl Inference for ImportedLog {
    fn embed(&mut self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, DomainError> {
        inference::embed(model, inputs).map_err(error_in)
    }

    fn chat(
        &mut self,
        model: &str,
        system: &str,
        user: &str,
    ) -> Result<(String, String), DomainError> {
        let messages = [
            Message {
                role: Role::System,
                content: system.into(),
            },
            Message {
                role: Role::User,
                content: user.into(),
            },
        ];
        let answer = inference::chat(model, &messages).map_err(error_in)?;
        Ok((answer.model, answer.content))
    }
}

impl Objects for ImportedLog {
    fn put(&mut self, data: &[u8], media_type: &str) -> Result<String, DomainError> {
        objectstore::put(data, media_type).map_err(error_in)
    }
}

fn text(name: &str, value: &str) -> Property {
    Property {
        name: name.into(),
        value: Value::Text(value.into()),
    }
}

impl Knowledge for ImportedLog {
    fn store_embedding(
        &mut self,
        document: &str,
        model: &str,
        embedding: &[f32],
    ) -> Result<(), DomainError> {
        let node = Node {
            label: "Entity".into(),
            key: document.into(),
            properties: vec![
                Property {
                    name: "embedding".into(),
                    value: Value::Floats(embedding.iter().map(|x| f64::from(*x)).collect()),
                },
                text("embedding_model", model),
            ],
        };
        graph::merge_nodes(&[node]).map_err(error_in).map(|_| ())
    }

    fn embeddings(&mut self, model: &str) -> Result<Vec<(String, Vec<f32>)>, DomainError> {
        let rows = graph::query(cim_model::agent::EMBEDDINGS_QUERY, &[text("model", model)])
            .map_err(error_in)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                // Columns are named, not ordered: ArcadeDB returns them in its own order.
                let column = |name: &str| {
                    row.columns
                        .iter()
                        .position(|c| c == name)
                        .and_then(|i| row.values.get(i))
                };
                match (column("key"), column("embedding")) {
                    (Some(Value::Text(key)), Some(Value::Floats(v))) => {
                        Some((key.clone(), v.iter().map(|x| *x as f32).collect()))
                    }
                    _ => None,
                }
            })
            .collect())
    }

    fn link_similar(&mut self, from: &str, to: &str, score: f64) -> Result<(), DomainError> {
        let edge = Edge {
            from_label: "Entity".into(),
            from_key: from.into(),
            rel: SIMILAR_TO.into(),
            to_label: "Entity".into(),
            to_key: to.into(),
            properties: vec![Property {
                name: "score".into(),
                value: Value::Float(score),
            }],
        };
        graph::merge_edges(&[edge]).map_err(error_in).map(|_| ())
    }
}

impl Documents for ImportedLog {
    fn send(
        &mut self,
        document: &cim_domain::EntityRef,
        command: &DocumentCommand,
        meta: cim_domain::Envelope,
    ) -> Result<Vec<cim_domain::RecordedEvent>, DomainError> {
        if document.kind.as_str() != <cim_model::document::Document as cim_domain::Aggregate>::KIND
        {
            return Err(DomainErrorOf::Invalid(format!(
                "{document} is not a document: only documents are linked"
            )));
        }
        send_typed(document.id.as_str(), command, &envelope_out(meta), None)
            .map_err(error_in)?
            .into_iter()
            .map(stored_event_in)
            .collect()
    }
}

/// The agent's settings from the component config, with defaults.
fn settings() -> Settings {
    use wasmcloud_component::wasi::config::store::get;
    let value = |key: &str| get(key).ok().flatten().filter(|v| !v.trim().is_empty());
    let mut s = Settings {
        embedding_model: "all-minilm".into(),
        ..Settings::default()
    };
    if let Some(m) = value("embedding_model") {
        s.embedding_model = m;
    }
    if let Some(m) = value("chat_model") {
        s.chat_model = m;
    }
    if let Some(t) = value("min_similarity").and_then(|t| t.trim().parse::<f64>().ok()) {
        s.min_similarity = t;
    }
    s
}

impl Guest for Component {
    fn on_event(ev: Event) -> Result<(), EcsError> {
        let event = event_in(ev)
            .map_err(|m| EcsError::Invalid(format!("undecodable event delivered: {m}")))?;
        let now = wasmcloud_component::wasi::clocks::wall_clock::now();
        let now_ms = now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000);
        let outcome = event
            .verify_self()
            .and_then(|()| cim_model::agent::react(&mut ImportedLog, &settings(), &event, now_ms));
        match outcome {
            Ok(Reaction::Ignored) => Ok(()),
            Ok(reaction) => {
                wasmcloud_component::info!(context: "agent", "{} v{} ({}): {reaction:?}", event.entity, event.version, event.cid);
                Ok(())
            }
            Err(e) => {
                wasmcloud_component::warn!(context: "agent", "{} v{} ({}): {e}", event.entity, event.version, event.cid);
                Err(error_out(e))
            }
        }
    }
}

bindings::export!(Component with_types_in bindings);
