//! Events written by CIM 0.1 (before the rules' types are generated from WIT, issue 16) still
//! read: `fixtures/events-0.1.jsonl` was written once by `examples/event_fixture.rs` with the
//! rules of that version and is never rewritten. Whatever the rules' types become, these
//! stored events must verify, decode and rehydrate to the same states.

use cim_domain::handler::rehydrate;
use cim_domain::testing::MemoryLog;
use cim_domain::{verify_chain, Aggregate, EntityRef, EventCodec, RecordedEvent};
use cim_model::document::Document;
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

/// What 0.1 stored, minus the `"field":null` entries it wrote for some absent options: the
/// encoding of ADR 0012 leaves an absent option out.
fn without_nulls(payload: &[u8]) -> serde_json::Value {
    let mut value: serde_json::Value = serde_json::from_slice(payload).unwrap();
    if let serde_json::Value::Object(fields) = &mut value {
        fields.retain(|_, v| !v.is_null());
    }
    value
}

fn reencodes<A: Aggregate>(ev: &RecordedEvent) -> usize {
    let at = format!("{} v{}", ev.entity, ev.version);
    let decoded = A::decode_event(ev.name.as_str(), ev.schema_version, &ev.payload)
        .unwrap_or_else(|e| panic!("{at}: {e}"));
    let (name, payload) = EventCodec::encode(&decoded).unwrap();
    assert_eq!(name, ev.name, "{at}");
    let stored = String::from_utf8_lossy(&ev.payload);
    if stored.contains(":null") {
        assert_eq!(without_nulls(&payload), without_nulls(&ev.payload), "{at}");
        assert!(!String::from_utf8_lossy(&payload).contains("null"), "{at}");
        1
    } else {
        assert_eq!(String::from_utf8_lossy(&payload), stored, "{at}");
        0
    }
}

#[test]
fn every_stored_payload_of_0_1_decodes_and_encodes_back_to_its_stored_bytes_or_without_its_nulls() {
    let mut with_nulls = 0;
    for ev in fixture() {
        with_nulls += match ev.entity.kind.as_str() {
            "document" => reencodes::<Document>(&ev),
            "package" => reencodes::<Package>(&ev),
            other => panic!("unexpected kind {other}"),
        };
    }
    // BuildFailed, BuildSucceeded and ClassificationFailed of 0.1 wrote `"log_cid":null`-style
    // entries; every other payload re-encodes byte for byte.
    assert!(
        with_nulls > 0 && with_nulls < fixture().len(),
        "{with_nulls}"
    );
}

#[test]
fn a_build_outcome_stored_before_attempts_were_counted_concludes_attempt_0() {
    for (name, payload) in [
        (
            "BuildSucceeded",
            &br#"{"out_paths":["/nix/store/abc-hello"],"nar_hash":"sha256-x","log_cid":null}"#[..],
        ),
        ("BuildFailed", &br#"{"error":"boom","log_cid":null}"#[..]),
    ] {
        let event = Package::decode_event(name, 1, payload).unwrap();
        let attempt = match event {
            PackageEvent::BuildSucceeded { attempt, .. }
            | PackageEvent::BuildFailed { attempt, .. } => attempt,
            other => panic!("{other:?}"),
        };
        assert_eq!(attempt, 0, "{name}");
        assert!(
            EventCodec::decode::<PackageEvent>(name, payload).is_err(),
            "only through the upcaster"
        );
    }
}
