//! Events written by CIM 0.1 (before the rules' types are generated from WIT, issue 16) still
//! read: `fixtures/events-0.1.jsonl` was written once by `examples/event_fixture.rs` with the
//! rules of that version and is never rewritten. Whatever the rules' types become, these
//! stored events must verify, decode and rehydrate to the same states.

use cim_domain::handler::rehydrate;
use cim_domain::testing::MemoryLog;
use cim_domain::{verify_chain, Aggregate, EntityRef, EventCodec, RecordedEvent};
use cim_model::document::{Document, DocumentEvent};
use cim_model::package::{Package, PackageEvent, Phase};

fn fixture() -> Vec<RecordedEvent> {
    include_str!("fixtures/events-0.1.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a recorded event"))
        .collect()
}

fn stream(kind: &str, id: &str) -> (EntityRef, Vec<RecordedEvent>) {
    let entity = EntityRef::new(kind, id).unwrap();
    let events = fixture()
        .into_iter()
        .filter(|e| e.entity == entity)
        .collect();
    (entity, events)
}

/// The state `A` folds from the stored events of `kind/id`, through the command pipeline's
/// own rehydration (chain verified on the way).
fn state_of<A: Aggregate>(kind: &str, id: &str) -> A {
    let (entity, events) = stream(kind, id);
    let mut log = MemoryLog::new();
    *log.events_mut(&entity) = events;
    let (state, version) = rehydrate::<A>(&mut log, &entity).unwrap();
    assert_eq!(version, log.events(&entity).len() as u64);
    state
}

#[test]
fn the_stored_events_of_0_1_are_unchanged_chains() {
    for (kind, id, n) in [("document", "invoice-42", 7), ("package", "hello", 12)] {
        let (_, events) = stream(kind, id);
        assert_eq!(events.len(), n, "{kind}/{id}");
        verify_chain(&events).unwrap();
    }
}

#[test]
fn a_document_written_by_0_1_rehydrates_to_the_same_state() {
    let doc: Document = state_of("document", "invoice-42");
    assert_eq!(doc.category(), Some("invoice"));
    assert_eq!(doc.tags().collect::<Vec<_>>(), ["finance", "q4-2026"]);
    assert!(doc.is_archived());
}

#[test]
fn a_package_written_by_0_1_rehydrates_to_the_same_state() {
    let package: Package = state_of("package", "hello");
    assert_eq!(package.phase(), Phase::InContext);
}

#[test]
fn every_stored_payload_of_0_1_decodes_and_encodes_back_to_its_stored_bytes() {
    fn same<E: serde::Serialize + serde::de::DeserializeOwned>(ev: &RecordedEvent) {
        let decoded: E = EventCodec::decode(ev.name.as_str(), &ev.payload)
            .unwrap_or_else(|e| panic!("{} v{}: {e}", ev.entity, ev.version));
        let (name, payload) = EventCodec::encode(&decoded).unwrap();
        assert_eq!(name, ev.name, "{} v{}", ev.entity, ev.version);
        assert_eq!(
            String::from_utf8_lossy(&payload),
            String::from_utf8_lossy(&ev.payload),
            "{} v{}",
            ev.entity,
            ev.version
        );
    }
    for ev in fixture() {
        match ev.entity.kind.as_str() {
            "document" => same::<DocumentEvent>(&ev),
            "package" => same::<PackageEvent>(&ev),
            other => panic!("unexpected kind {other}"),
        }
    }
}
