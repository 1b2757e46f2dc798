//! The document agent (seed 004): an AI participant that reacts to a document's text.
//!
//! On `TextAttached` it embeds the text, stores the embedding on the document's graph node
//! and links it `SIMILAR_TO` the documents it resembles (cosine similarity at or above a
//! threshold), asks a chat model to choose one of the document's categories, checks the
//! answer, and sends the document `Classify` — or `RecordClassificationFailure` when the
//! answer is unusable — caused by the `TextAttached` event. The prompt is stored in the
//! object store and named by its CID in the resulting event, together with the model that
//! answered, so every classification can be audited and reproduced.
//!
//! Delivery is at least once: the agent looks at the document's history first and does
//! nothing for a text whose classification (or failure) is recorded. An inference server
//! that does not answer is an error (`unavailable`), so the event store delivers the event
//! again later and nothing is lost; a model the server does not have, or a refused request,
//! is recorded as a failure, because asking again would not help.

use cim_domain::{Aggregate, EcsError, EntityRef, Envelope, EventLog, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::document::{Document, DocumentCommand, DocumentEvent};

/// The relationship between similar documents.
pub const SIMILAR_TO: &str = "SIMILAR_TO";

/// The read-only Cypher query for every stored document embedding of a model (parameter
/// `model`); rows have the columns `key` (the document's entity reference) and `embedding`.
pub const EMBEDDINGS_QUERY: &str =
    "MATCH (d:Entity) WHERE d.embedding_model = $model RETURN d.key AS key, d.embedding AS embedding";

/// How the agent works.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Model for embeddings (empty: the provider's default).
    pub embedding_model: String,
    /// Model for classification (empty: the provider's default).
    pub chat_model: String,
    /// Documents at least this similar (cosine) are linked.
    pub min_similarity: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            embedding_model: String::new(),
            chat_model: String::new(),
            min_similarity: 0.5,
        }
    }
}

/// Language and embedding models (`cim:ecs/inference`).
pub trait Inference {
    /// One vector per input, in order.
    fn embed(&mut self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, EcsError>;
    /// The answering model's name and its answer to `user` under `system`.
    fn chat(&mut self, model: &str, system: &str, user: &str)
        -> Result<(String, String), EcsError>;
}

/// Content by CID (`cim:ecs/objectstore`).
pub trait Objects {
    /// Stores `data`; returns its CID.
    fn put(&mut self, data: &[u8], media_type: &str) -> Result<String, EcsError>;
}

/// The knowledge graph (`cim:ecs/graph`).
pub trait Knowledge {
    /// Sets the embedding (and the model that made it) on the document's node.
    fn store_embedding(
        &mut self,
        document: &str,
        model: &str,
        embedding: &[f32],
    ) -> Result<(), EcsError>;
    /// Every document node's embedding made by `model`.
    fn embeddings(&mut self, model: &str) -> Result<Vec<(String, Vec<f32>)>, EcsError>;
    /// Links two documents `SIMILAR_TO` with their similarity.
    fn link_similar(&mut self, from: &str, to: &str, score: f64) -> Result<(), EcsError>;
}

/// The document entity (`cim:document/commands` of the document component).
pub trait Documents {
    /// Sends `command` to `document` with envelope `meta`; returns the events it appended.
    fn send(
        &mut self,
        document: &EntityRef,
        command: &DocumentCommand,
        meta: Envelope,
    ) -> Result<Vec<RecordedEvent>, EcsError>;
}

/// What the model is asked to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// One of the document's categories.
    pub category: String,
    /// Confidence in `[0, 1]`.
    pub confidence: f64,
}

/// The system prompt of a classification.
pub const SYSTEM_PROMPT: &str = "You classify business documents. Choose exactly one of the given categories. Answer with JSON only, no prose: {\"category\": \"<one of the categories>\", \"confidence\": <a number between 0 and 1>}.";

/// The user message of a classification: title, categories and text, one per line.
pub fn classification_prompt(title: &str, categories: &[String], text: &str) -> String {
    format!(
        "Title: {title}\nCategories: {}\nText:\n{text}",
        categories.join(", ")
    )
}

/// Checks a model's answer: JSON `{"category", "confidence"}` (possibly inside prose or a
/// code fence), a category of the document, a confidence in `[0, 1]`.
pub fn parse_answer(answer: &str, categories: &[String]) -> Result<Answer, String> {
    let start = answer.find('{');
    let end = answer.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &answer[s..=e],
        _ => return Err("the answer contains no JSON object".into()),
    };
    let parsed: Answer = serde_json::from_str(json)
        .map_err(|e| format!("the answer is not {{\"category\", \"confidence\"}} JSON: {e}"))?;
    let category = parsed.category.trim();
    let Some(known) = categories.iter().find(|c| c.eq_ignore_ascii_case(category)) else {
        return Err(format!(
            "the answer's category {category:?} is not one of {categories:?}"
        ));
    };
    if !parsed.confidence.is_finite() || !(0.0..=1.0).contains(&parsed.confidence) {
        return Err(format!(
            "the answer's confidence {} is outside [0, 1]",
            parsed.confidence
        ));
    }
    Ok(Answer {
        category: known.clone(),
        confidence: parsed.confidence,
    })
}

/// Cosine similarity of two vectors (0 when either is zero or they differ in length).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// What one delivered event led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    /// Not a document's text.
    Ignored,
    /// The text's classification (or failure) is already recorded, or the document is gone.
    AlreadyDone,
    /// The document was classified.
    Classified {
        /// The category.
        category: String,
        /// The model's confidence.
        confidence: f64,
        /// Documents linked as similar, with their scores.
        similar: Vec<(String, f64)>,
    },
    /// The classification failed and the failure is recorded.
    Failed {
        /// Why.
        reason: String,
    },
}

fn decode(event: &RecordedEvent) -> Result<DocumentEvent, EcsError> {
    Document::decode_event(event.name.as_str(), event.schema_version, &event.payload).map_err(|e| {
        EcsError::Invalid(format!(
            "{} v{}: undecodable document event: {e}",
            event.entity, event.version
        ))
    })
}

/// Reads a whole stream.
fn history(log: &mut impl EventLog, entity: &EntityRef) -> Result<Vec<RecordedEvent>, EcsError> {
    let page = cim_domain::handler::READ_PAGE;
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let next = log.read(entity, out.len() as u64 + 1, page)?;
        let n = next.len();
        out.extend(next);
        if n < page as usize {
            return Ok(out);
        }
    }
}

/// Longest model answer kept in a failure event.
const ANSWER_KEPT: usize = 2000;

/// The agent's reaction to one delivered event, idempotent under redelivery.
pub fn react<P>(
    ports: &mut P,
    settings: &Settings,
    event: &RecordedEvent,
    now_ms: u64,
) -> Result<Reaction, EcsError>
where
    P: EventLog + Inference + Objects + Knowledge + Documents,
{
    if event.entity.kind.as_str() != Document::KIND || event.name.as_str() != "TextAttached" {
        return Ok(Reaction::Ignored);
    }
    let DocumentEvent::TextAttached { text } = decode(event)? else {
        return Ok(Reaction::Ignored);
    };
    let stream = history(ports, &event.entity)?;
    let mut title_categories = None;
    for e in &stream {
        match decode(e)? {
            DocumentEvent::DocumentCreated {
                title, categories, ..
            } => title_categories = Some((title, categories)),
            DocumentEvent::DocumentClassified { .. }
            | DocumentEvent::ClassificationFailed { .. }
            | DocumentEvent::DocumentArchived { .. }
                if e.version > event.version =>
            {
                return Ok(Reaction::AlreadyDone)
            }
            _ => {}
        }
    }
    let Some((title, categories)) = title_categories else {
        return Err(EcsError::Invalid(format!(
            "{}: text attached to a document that was never created",
            event.entity
        )));
    };
    let key = event.entity.to_string();

    // Conceptual space: the text's embedding, and the documents near it.
    let vectors = ports.embed(&settings.embedding_model, std::slice::from_ref(&text))?;
    let embedding = vectors.into_iter().next().ok_or_else(|| {
        EcsError::Unavailable("the inference provider returned no embedding".into())
    })?;
    let embedding_model = if settings.embedding_model.is_empty() {
        "default"
    } else {
        settings.embedding_model.as_str()
    };
    ports.store_embedding(&key, embedding_model, &embedding)?;
    let mut similar = Vec::new();
    for (other, vector) in ports.embeddings(embedding_model)? {
        if other == key {
            continue;
        }
        let score = cosine(&embedding, &vector);
        if score >= settings.min_similarity {
            ports.link_similar(&key, &other, score)?;
            similar.push((other, score));
        }
    }
    similar.sort_by(|a, b| b.1.total_cmp(&a.1));

    // Classification, with the exact prompt kept by CID.
    let user = classification_prompt(&title, &categories, &text);
    let prompt = serde_json::json!({
        "model": settings.chat_model,
        "system": SYSTEM_PROMPT,
        "user": user,
    });
    let prompt_cid = ports.put(prompt.to_string().as_bytes(), "application/json")?;
    let (command, reaction) = match ports.chat(&settings.chat_model, SYSTEM_PROMPT, &user) {
        Ok((model, answer)) => match parse_answer(&answer, &categories) {
            Ok(a) => (
                DocumentCommand::Classify {
                    category: a.category.clone(),
                    confidence: a.confidence,
                    classified_by: "agent".into(),
                    model: Some(model),
                    prompt_cid: Some(prompt_cid),
                },
                Reaction::Classified {
                    category: a.category,
                    confidence: a.confidence,
                    similar,
                },
            ),
            Err(reason) => (
                DocumentCommand::RecordClassificationFailure {
                    reason: reason.clone(),
                    model,
                    prompt_cid: Some(prompt_cid),
                    answer: Some(answer.chars().take(ANSWER_KEPT).collect()),
                },
                Reaction::Failed { reason },
            ),
        },
        Err(EcsError::NotFound(why) | EcsError::Invalid(why) | EcsError::Rejected(why)) => {
            let reason = format!("the model could not be asked: {why}");
            (
                DocumentCommand::RecordClassificationFailure {
                    reason: reason.clone(),
                    model: if settings.chat_model.is_empty() {
                        "default".into()
                    } else {
                        settings.chat_model.clone()
                    },
                    prompt_cid: Some(prompt_cid),
                    answer: None,
                },
                Reaction::Failed { reason },
            )
        }
        Err(retry) => return Err(retry),
    };
    let meta = Envelope {
        id: format!("agent-classify-{}", event.cid),
        correlation_id: event.meta.correlation_id.clone(),
        causation_id: Some(event.cid.to_string()),
        occurred_at_ms: now_ms,
    };
    match ports.send(&event.entity, &command, meta) {
        Ok(_) => Ok(reaction),
        // Another delivery recorded it first, or the document moved on (archived): re-read.
        Err(EcsError::Rejected(why)) => {
            let later = history(ports, &event.entity)?;
            let done = later.iter().filter(|e| e.version > event.version).any(|e| {
                matches!(
                    decode(e),
                    Ok(DocumentEvent::DocumentClassified { .. }
                        | DocumentEvent::ClassificationFailed { .. }
                        | DocumentEvent::DocumentArchived { .. })
                )
            });
            if done {
                Ok(Reaction::AlreadyDone)
            } else {
                Err(EcsError::Invalid(format!(
                    "{}: the document refused the agent's command: {why}",
                    event.entity
                )))
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use cim_domain::testing::{run_commands, MemoryLog};
    use cim_domain::{handle_command, object_cid, CommandRequest, EventCodec, NewEvent};

    /// The ports of a test: the real document aggregate on an in-memory log, a graph of
    /// embeddings in a map, objects in a map, and model answers given by the test (the
    /// embeddings are made-up vectors: this tests the agent's decisions, not a model).
    #[derive(Default)]
    struct Ports {
        log: MemoryLog,
        vectors: BTreeMap<String, Vec<f32>>,
        graph: BTreeMap<String, Vec<f32>>,
        edges: Vec<(String, String, f64)>,
        objects: BTreeMap<String, Vec<u8>>,
        answers: Vec<Result<(String, String), EcsError>>,
        embed_down: bool,
        chats: usize,
    }

    impl EventLog for Ports {
        fn read(
            &mut self,
            e: &EntityRef,
            from: u64,
            max: u32,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.read(e, from, max)
        }
        fn append(
            &mut self,
            e: &EntityRef,
            expected: u64,
            events: Vec<NewEvent>,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.append(e, expected, events)
        }
    }

    impl Inference for Ports {
        fn embed(&mut self, _model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, EcsError> {
            if self.embed_down {
                return Err(EcsError::Unavailable("connection refused".into()));
            }
            Ok(inputs.iter().map(|t| self.vectors[t].clone()).collect())
        }
        fn chat(
            &mut self,
            _model: &str,
            system: &str,
            user: &str,
        ) -> Result<(String, String), EcsError> {
            assert_eq!(system, SYSTEM_PROMPT);
            assert!(user.contains("Categories: invoice, recipe"), "{user}");
            self.chats += 1;
            self.answers.remove(0)
        }
    }

    impl Objects for Ports {
        fn put(&mut self, data: &[u8], _media_type: &str) -> Result<String, EcsError> {
            let cid = object_cid(data).to_string();
            self.objects.insert(cid.clone(), data.to_vec());
            Ok(cid)
        }
    }

    impl Knowledge for Ports {
        fn store_embedding(&mut self, d: &str, _m: &str, v: &[f32]) -> Result<(), EcsError> {
            self.graph.insert(d.into(), v.to_vec());
            Ok(())
        }
        fn embeddings(&mut self, _m: &str) -> Result<Vec<(String, Vec<f32>)>, EcsError> {
            Ok(self.graph.clone().into_iter().collect())
        }
        fn link_similar(&mut self, a: &str, b: &str, score: f64) -> Result<(), EcsError> {
            self.edges.push((a.into(), b.into(), score));
            Ok(())
        }
    }

    impl Documents for Ports {
        fn send(
            &mut self,
            d: &EntityRef,
            command: &DocumentCommand,
            meta: Envelope,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            let (name, payload) = EventCodec::encode(command).unwrap();
            handle_command::<Document>(
                &mut self.log,
                CommandRequest {
                    kind: d.kind.to_string(),
                    id: d.id.to_string(),
                    name: name.to_string(),
                    payload,
                    expected_version: None,
                    meta,
                },
            )
        }
    }

    fn settings() -> Settings {
        Settings {
            embedding_model: "all-minilm".into(),
            chat_model: "cim-scripted-chat".into(),
            min_similarity: 0.5,
        }
    }

    /// Creates document `id` with `text` attached; returns the TextAttached event.
    fn document(ports: &mut Ports, id: &str, text: &str, vector: Vec<f32>) -> RecordedEvent {
        ports.vectors.insert(text.into(), vector);
        let create = format!(
            r#"{{"title":"{id}","content_cid":"{}","media_type":"text/plain","categories":["invoice","recipe"]}}"#,
            object_cid(text.as_bytes())
        );
        let attach = serde_json::json!({ "text": text }).to_string();
        let events = run_commands::<Document>(
            &mut ports.log,
            "document",
            id,
            &[("Create", &create), ("AttachText", &attach)],
        );
        events[1].clone()
    }

    fn later(ports: &Ports, event: &RecordedEvent) -> Vec<(String, DocumentEvent)> {
        ports
            .log
            .events(&event.entity)
            .iter()
            .skip(event.version as usize)
            .map(|e| (e.meta.causation_id.clone().unwrap(), decode(e).unwrap()))
            .collect()
    }

    #[test]
    fn a_text_is_embedded_linked_to_similar_documents_and_classified() {
        let mut p = Ports {
            answers: vec![
                Ok((
                    "m1".into(),
                    r#"{"category":"invoice","confidence":0.8}"#.into(),
                )),
                Ok((
                    "m1".into(),
                    "```json\n{\"category\": \"Invoice\", \"confidence\": 0.7}\n```".into(),
                )),
                Ok((
                    "m1".into(),
                    r#"{"category":"recipe","confidence":0.9}"#.into(),
                )),
            ],
            ..Ports::default()
        };
        let a = document(&mut p, "a", "Pay 42 EUR by Friday", vec![1.0, 0.1, 0.0]);
        let b = document(&mut p, "b", "Invoice due: 40 EUR", vec![0.9, 0.2, 0.0]);
        let c = document(&mut p, "c", "Bake the bread", vec![0.0, 0.1, 1.0]);
        assert!(
            matches!(react(&mut p, &settings(), &a, 5).unwrap(), Reaction::Classified { ref similar, .. } if similar.is_empty())
        );
        let rb = react(&mut p, &settings(), &b, 6).unwrap();
        let Reaction::Classified {
            category, similar, ..
        } = rb
        else {
            panic!("{rb:?}")
        };
        assert_eq!(
            category, "invoice",
            "case-insensitive match, canonical name kept"
        );
        assert_eq!(similar.len(), 1);
        assert_eq!(similar[0].0, "document/a");
        assert!(similar[0].1 > 0.9);
        react(&mut p, &settings(), &c, 7).unwrap();
        assert_eq!(
            p.edges.len(),
            1,
            "the unrelated document is linked to nothing: {:?}",
            p.edges
        );

        let recorded = later(&p, &b);
        assert_eq!(recorded.len(), 1);
        let (cause, event) = &recorded[0];
        assert_eq!(
            cause,
            &b.cid.to_string(),
            "caused by the TextAttached event"
        );
        let DocumentEvent::DocumentClassified {
            model,
            prompt_cid,
            classified_by,
            ..
        } = event
        else {
            panic!("{event:?}")
        };
        assert_eq!(
            (model.as_deref(), classified_by.as_str()),
            (Some("m1"), "agent")
        );
        let prompt = &p.objects[prompt_cid.as_ref().unwrap()];
        let prompt: serde_json::Value = serde_json::from_slice(prompt).unwrap();
        assert!(prompt["user"]
            .as_str()
            .unwrap()
            .contains("Invoice due: 40 EUR"));
        assert_eq!(prompt["system"], SYSTEM_PROMPT);
    }

    #[test]
    fn a_redelivered_text_is_not_classified_twice() {
        let mut p = Ports {
            answers: vec![Ok((
                "m1".into(),
                r#"{"category":"invoice","confidence":0.8}"#.into(),
            ))],
            ..Ports::default()
        };
        let a = document(&mut p, "a", "Pay 42 EUR", vec![1.0, 0.0]);
        react(&mut p, &settings(), &a, 5).unwrap();
        assert_eq!(
            react(&mut p, &settings(), &a, 6).unwrap(),
            Reaction::AlreadyDone
        );
        assert_eq!(p.chats, 1);
        assert_eq!(later(&p, &a).len(), 1);
    }

    #[test]
    fn unusable_answers_become_recorded_failures() {
        for (answer, needle) in [
            ("I am not sure what this is.", "no JSON object"),
            (r#"{"category":"poem","confidence":0.9}"#, "not one of"),
            (r#"{"category":"invoice","confidence":7}"#, "outside [0, 1]"),
            (r#"{"category":"invoice"}"#, "not {\"category\""),
        ] {
            let mut p = Ports {
                answers: vec![Ok(("m1".into(), answer.into()))],
                ..Ports::default()
            };
            let a = document(&mut p, "a", "Pay 42 EUR", vec![1.0, 0.0]);
            let r = react(&mut p, &settings(), &a, 5).unwrap();
            assert!(
                matches!(&r, Reaction::Failed { reason } if reason.contains(needle)),
                "{answer}: {r:?}"
            );
            let recorded = later(&p, &a);
            let DocumentEvent::ClassificationFailed {
                answer: kept,
                model,
                ..
            } = &recorded[0].1
            else {
                panic!("{recorded:?}")
            };
            assert_eq!((kept.as_deref(), model.as_str()), (Some(answer), "m1"));
        }
    }

    #[test]
    fn a_missing_model_is_recorded_and_an_unreachable_server_retried() {
        let mut p = Ports {
            answers: vec![Err(EcsError::NotFound("model \"x\" not found".into()))],
            ..Ports::default()
        };
        let a = document(&mut p, "a", "Pay 42 EUR", vec![1.0, 0.0]);
        assert!(matches!(
            react(&mut p, &settings(), &a, 5).unwrap(),
            Reaction::Failed { .. }
        ));

        let mut p = Ports {
            embed_down: true,
            ..Ports::default()
        };
        let a = document(&mut p, "a", "Pay 42 EUR", vec![1.0, 0.0]);
        assert!(matches!(
            react(&mut p, &settings(), &a, 5),
            Err(EcsError::Unavailable(_))
        ));
        assert!(
            later(&p, &a).is_empty(),
            "nothing recorded: the event is delivered again"
        );
        p.embed_down = false;
        p.answers
            .push(Err(EcsError::Unavailable("chat timed out".into())));
        assert!(matches!(
            react(&mut p, &settings(), &a, 5),
            Err(EcsError::Unavailable(_))
        ));
        assert!(later(&p, &a).is_empty());
    }

    #[test]
    fn other_events_are_ignored_and_answers_parse_strictly() {
        let mut p = Ports::default();
        let a = document(&mut p, "a", "x", vec![1.0]);
        let created = p.log.events(&a.entity)[0].clone();
        assert_eq!(
            react(&mut p, &settings(), &created, 1).unwrap(),
            Reaction::Ignored
        );
        let cats = vec!["invoice".to_string()];
        assert!(parse_answer("{} {", &cats).is_err());
        assert!(parse_answer(r#"{"category":"invoice","confidence":NaN}"#, &cats).is_err());
        assert_eq!(
            parse_answer(r#"Sure! {"category":" invoice ","confidence":1}"#, &cats).unwrap(),
            Answer {
                category: "invoice".into(),
                confidence: 1.0
            }
        );
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
