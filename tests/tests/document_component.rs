//! The document component, loaded into wasmtime, through its whole lifecycle.

use cim_domain::{verify_chain, EntityRef as DomainRef};
use cim_tests::{command, EcsError, EntityHost, LogLevel, VersionConflict};

const CONTENT: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

fn create_json() -> String {
    format!(
        r#"{{"title":"Invoice 42","content_cid":"{CONTENT}","media_type":"application/pdf","categories":["invoice","contract"]}}"#
    )
}

fn doc(id: &str) -> DomainRef {
    DomainRef::new("document", id).unwrap()
}

fn host() -> EntityHost {
    EntityHost::load("document").expect("document component loads")
}

#[test]
fn a_document_lives_its_whole_life() {
    let mut h = host();
    let steps = [
        ("Create", create_json(), "DocumentCreated"),
        (
            "AttachText",
            r#"{"text":"Please pay 42 EUR by Friday"}"#.to_string(),
            "TextAttached",
        ),
        (
            "Classify",
            r#"{"category":"invoice","confidence":0.93,"classified_by":"llama3.2"}"#.to_string(),
            "DocumentClassified",
        ),
        ("Tag", r#"{"tag":"finance"}"#.to_string(), "DocumentTagged"),
        (
            "Archive",
            r#"{"reason":"paid"}"#.to_string(),
            "DocumentArchived",
        ),
    ];
    for (i, (name, payload, event)) in steps.iter().enumerate() {
        let version = i as u64;
        let cmd = command("document", "d1", name, payload, Some(version));
        let events = h
            .handle(&cmd)
            .unwrap()
            .unwrap_or_else(|e| panic!("{name} failed: {e:?}"));
        assert_eq!(events.len(), 1, "{name}");
        let ev = &events[0];
        assert_eq!(ev.name, *event);
        assert_eq!(ev.version, version + 1);
        assert_eq!(ev.entity.kind, "document");
        assert_eq!(ev.meta.correlation_id, "corr-d1");
        assert_eq!(ev.meta.causation_id.as_deref(), Some(cmd.meta.id.as_str()));
        let payload: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap();
        assert!(payload.is_object(), "{name}: payload is JSON: {payload}");
    }
    let stored = h.backend.log.events(&doc("d1"));
    assert_eq!(stored.len(), 5);
    verify_chain(stored).expect("the stored chain verifies");
    assert!(stored[0].previous.is_none());
    assert!(
        h.backend.logs.iter().any(|l| l.context == "document"),
        "the component logs through wasi:logging"
    );
}

#[test]
fn rejected_commands_return_typed_errors_and_store_nothing() {
    let mut h = host();
    // Before Create.
    let err = h
        .handle(&command("document", "d2", "Tag", r#"{"tag":"x"}"#, None))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("does not exist")),
        "{err:?}"
    );
    assert!(h.backend.log.is_empty());
    assert!(
        h.backend
            .logs
            .iter()
            .any(|l| l.level == LogLevel::Info && l.message.contains("rejected")),
        "refusals are logged: {:?}",
        h.backend.logs
    );

    h.handle(&command("document", "d2", "Create", &create_json(), None))
        .unwrap()
        .unwrap();
    // Classification needs text; a category outside the allowed ones is refused.
    let err = h
        .handle(&command(
            "document",
            "d2",
            "Classify",
            r#"{"category":"invoice","confidence":0.5,"classified_by":"m"}"#,
            None,
        ))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("AttachText")),
        "{err:?}"
    );
    h.handle(&command(
        "document",
        "d2",
        "AttachText",
        r#"{"text":"t"}"#,
        None,
    ))
    .unwrap()
    .unwrap();
    let err = h
        .handle(&command(
            "document",
            "d2",
            "Classify",
            r#"{"category":"poem","confidence":0.5,"classified_by":"m"}"#,
            None,
        ))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("not one of")),
        "{err:?}"
    );
    assert_eq!(
        h.backend.log.events(&doc("d2")).len(),
        2,
        "refusals stored nothing"
    );
}

#[test]
fn malformed_input_is_invalid_and_stores_nothing() {
    let mut h = host();
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300 * 1024));
    let cases = [
        command("document", "d3", "Create", "{not json", None),
        command("document", "d3", "Launch", "{}", None),
        command("document", "d3", "Create", r#"{"title":"t"}"#, None),
        command("document", "d.3", "Create", &create_json(), None),
        command("document", "d*", "Create", &create_json(), None),
        command("document", "d>", "Create", &create_json(), None),
        command("document", "d 3", "Create", &create_json(), None),
        command("package", "d3", "Create", &create_json(), None),
        command("document", "d3", "AttachText", &big, None),
    ];
    for cmd in cases {
        let err = h.handle(&cmd).unwrap().unwrap_err();
        assert!(
            matches!(err, EcsError::Invalid(_)),
            "{} {}: {err:?}",
            cmd.entity.id,
            cmd.name
        );
    }
    let mut bad_meta = command("document", "d3", "Create", &create_json(), None);
    bad_meta.meta.correlation_id = "a.b".into();
    assert!(matches!(
        h.handle(&bad_meta).unwrap(),
        Err(EcsError::Invalid(_))
    ));
    assert!(h.backend.log.is_empty(), "nothing stored");
}

#[test]
fn a_stale_expected_version_is_a_conflict() {
    let mut h = host();
    h.handle(&command(
        "document",
        "d4",
        "Create",
        &create_json(),
        Some(0),
    ))
    .unwrap()
    .unwrap();
    let err = h
        .handle(&command("document", "d4", "Tag", r#"{"tag":"a"}"#, Some(0)))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict(VersionConflict {
            expected: 0,
            actual: 1
        })
    );
    assert_eq!(h.backend.log.events(&doc("d4")).len(), 1);

    // A writer that lost the race inside the store gets the store's conflict, unchanged.
    h.backend.fail_appends = Some(EcsError::Conflict(VersionConflict {
        expected: 1,
        actual: 2,
    }));
    let err = h
        .handle(&command("document", "d4", "Tag", r#"{"tag":"a"}"#, None))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict(VersionConflict {
            expected: 1,
            actual: 2
        })
    );
    h.backend.fail_appends = None;
    assert_eq!(h.backend.log.events(&doc("d4")).len(), 1);
}

#[test]
fn repeated_tags_are_idempotent() {
    let mut h = host();
    h.handle(&command("document", "d5", "Create", &create_json(), None))
        .unwrap()
        .unwrap();
    let first = h
        .handle(&command("document", "d5", "Tag", r#"{"tag":"a"}"#, None))
        .unwrap()
        .unwrap();
    assert_eq!(first.len(), 1);
    let again = h
        .handle(&command("document", "d5", "Tag", r#"{"tag":"a"}"#, None))
        .unwrap()
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(h.backend.log.events(&doc("d5")).len(), 2);
}

#[test]
fn a_command_sent_again_with_its_id_is_answered_with_its_events_in_the_component() {
    let mut h = host();
    h.handle(&command("document", "d9", "Create", &create_json(), None))
        .unwrap()
        .unwrap();
    let tag = command("document", "d9", "Tag", r#"{"tag":"a"}"#, Some(1));
    let first = h.handle(&tag).unwrap().unwrap();
    let again = h.handle(&tag).unwrap().unwrap();
    assert_eq!(
        again.iter().map(|e| &e.cid).collect::<Vec<_>>(),
        first.iter().map(|e| &e.cid).collect::<Vec<_>>(),
        "the same events, although the entity is past the expected version now"
    );
    assert_eq!(h.backend.log.events(&doc("d9")).len(), 2);
}

#[test]
fn a_tampered_history_is_detected_on_rehydration() {
    let mut h = host();
    h.handle(&command("document", "d6", "Create", &create_json(), None))
        .unwrap()
        .unwrap();
    h.handle(&command("document", "d6", "Tag", r#"{"tag":"a"}"#, None))
        .unwrap()
        .unwrap();
    h.backend.log.events_mut(&doc("d6"))[0].payload = br#"{"title":"forged"}"#.to_vec();
    let err = h
        .handle(&command("document", "d6", "Tag", r#"{"tag":"b"}"#, None))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("corrupt")),
        "{err:?}"
    );
    assert_eq!(
        h.backend.log.events(&doc("d6")).len(),
        2,
        "nothing appended to a corrupt chain"
    );
}

/// A document with `tags` tags, created on a host whose component config is `config`.
fn tagged(config: &[(&str, &str)], id: &str, tags: usize) -> EntityHost {
    let mut h = host();
    for (k, v) in config {
        h.backend.config.insert((*k).into(), (*v).into());
    }
    h.handle(&command("document", id, "Create", &create_json(), None))
        .unwrap()
        .unwrap();
    for i in 0..tags {
        let tag = format!(r#"{{"tag":"t{i}"}}"#);
        h.handle(&command("document", id, "Tag", &tag, None))
            .unwrap()
            .unwrap();
    }
    h
}

#[test]
fn the_component_saves_a_snapshot_every_configured_number_of_events_and_reads_only_after_it() {
    let mut h = tagged(&[("snapshot-every", "5")], "s1", 11);
    let snapshot = h.backend.snapshots.get("document/s1").expect("a snapshot");
    assert_eq!(snapshot.version, 10, "saved at 5 and 10 of 12 events");
    let stored = h.backend.log.events(&doc("s1"));
    assert_eq!(snapshot.last_cid, stored[9].cid.to_string());
    let (before, loads) = (h.backend.events_read, h.backend.loads);
    let events = h
        .handle(&command("document", "s1", "Tag", r#"{"tag":"t99"}"#, None))
        .unwrap()
        .unwrap();
    assert_eq!(events[0].version, 13);
    assert_eq!(
        h.backend.events_read - before,
        3,
        "the snapshot's own event (to check its CID) and the two after it"
    );
    assert_eq!(
        h.backend.loads - loads,
        1,
        "the snapshot and the events after it come in one `load`"
    );
    // A tag the document already has, known only from the snapshot's state: nothing new.
    let again = h
        .handle(&command("document", "s1", "Tag", r#"{"tag":"t0"}"#, None))
        .unwrap()
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_snapshot_setting_that_is_not_a_number_is_refused_and_stores_nothing() {
    let mut h = host();
    h.backend
        .config
        .insert("snapshot-every".into(), "often".into());
    let err = h
        .handle(&command("document", "s2", "Create", &create_json(), None))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("snapshot-every") && m.contains("often")),
        "{err:?}"
    );
    assert!(h.backend.log.is_empty());
}

#[test]
fn an_unusable_snapshot_is_logged_and_the_command_decides_on_the_whole_history() {
    let mut h = tagged(&[("snapshot-every", "4")], "s3", 5);
    let snapshot = h
        .backend
        .snapshots
        .get_mut("document/s3")
        .expect("a snapshot");
    snapshot.state = "not a snapshot".into();
    let before = h.backend.events_read;
    // t1 was tagged before the snapshot: deciding on the whole history knows it.
    let events = h
        .handle(&command("document", "s3", "Tag", r#"{"tag":"t1"}"#, None))
        .unwrap()
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert!(h.backend.events_read - before >= 6, "every event was read");
    assert!(
        h.backend
            .logs
            .iter()
            .any(|l| l.level == LogLevel::Warn && l.message.contains("ignored")),
        "{:?}",
        h.backend.logs
    );
}
