//! The JetStream event store against a real nats-server.

use std::sync::Arc;

use cim_domain::{verify_chain, EcsError, EntityRef, Envelope, NewEvent, Token};
use cim_nats::store::Snapshot;
use cim_nats::{EventStore, NatsConfig};
use cim_testkit::NatsServer;

fn new_event(name: &str, payload: &str) -> NewEvent {
    NewEvent {
        name: Token::parse("event name", name).unwrap(),
        schema_version: 1,
        payload: payload.as_bytes().to_vec(),
        meta: Envelope::originating("cmd-1", 42),
    }
}

async fn store(nats: &NatsServer) -> EventStore {
    let client = NatsConfig::new(nats.url(), None)
        .connect("store-test")
        .await
        .unwrap();
    EventStore::open(client).await.unwrap()
}

fn entity(id: &str) -> EntityRef {
    EntityRef::new("document", id).unwrap()
}

#[tokio::test]
async fn appends_and_reads_a_verified_chain() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("a");
    let first = s
        .append(&e, 0, vec![new_event("Created", r#"{"n":1}"#)])
        .await
        .unwrap();
    let more = s
        .append(
            &e,
            1,
            vec![
                new_event("Tagged", r#"{"n":2}"#),
                new_event("Tagged", r#"{"n":3}"#),
            ],
        )
        .await
        .unwrap();
    assert_eq!(first[0].version, 1);
    assert_eq!(
        more.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(more[0].previous, Some(first[0].cid));
    let all = s.read(&e, 1, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    verify_chain(&all).unwrap();
    assert_eq!(all[2].payload, br#"{"n":3}"#);
    assert_eq!(all[0].meta.occurred_at_ms, 42);
    let tail = s.read(&e, 2, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 2);
    assert!(s.read(&entity("nobody"), 1, 10).await.unwrap().is_empty());
    assert!(s.read(&e, 4, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_version_conflicts_and_stores_nothing() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("b");
    s.append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    let err = s
        .append(&e, 0, vec![new_event("Other", r#"{"x":1}"#)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 0,
            actual: 1
        }
    );
    let err = s
        .append(&e, 5, vec![new_event("Other", "{}")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 5,
            actual: 1
        }
    );
    assert_eq!(s.read(&e, 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_append_is_idempotent() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("c");
    let batch = || {
        vec![
            new_event("Created", r#"{"a":1}"#),
            new_event("Tagged", r#"{"t":"x"}"#),
        ]
    };
    let first = s.append(&e, 0, batch()).await.unwrap();
    let retry = s.append(&e, 0, batch()).await.unwrap();
    assert_eq!(first, retry, "the retry returns the stored events");
    assert_eq!(s.read(&e, 1, 10).await.unwrap().len(), 2);
    let err = s
        .append(&e, 0, vec![new_event("Created", r#"{"a":2}"#)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, EcsError::Conflict { .. }),
        "different content is a conflict: {err:?}"
    );
}

#[tokio::test]
async fn oversized_events_are_invalid_and_store_nothing() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("d");
    let big = format!(
        r#"{{"blob":"{}"}}"#,
        "x".repeat(cim_nats::store::MAX_EVENT_PAYLOAD)
    );
    let err = s
        .append(&e, 0, vec![new_event("Created", &big)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EcsError::Invalid(m) if m.contains("at most")),
        "{err:?}"
    );
    assert!(s.head(&e).await.unwrap().is_none());
    let too_many = (0..cim_nats::store::MAX_APPEND + 1)
        .map(|i| new_event("Created", &format!("{{\"i\":{i}}}")))
        .collect();
    let err = s.append(&e, 0, too_many).await.unwrap_err();
    assert!(
        matches!(&err, EcsError::Invalid(m) if m.contains("atomically")),
        "{err:?}"
    );
    assert!(s.head(&e).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_and_duplicate_nothing() {
    let nats = NatsServer::start().unwrap();
    let s = Arc::new(store(&nats).await);
    let e = entity("hot");
    const WRITERS: usize = 8;
    const EACH: usize = 10;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = Arc::clone(&s);
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                loop {
                    let version = s.head(&e).await.unwrap().map_or(0, |h| h.event.version);
                    let ev = new_event("Counted", &format!(r#"{{"writer":{w},"i":{i}}}"#));
                    match s.append(&e, version, vec![ev]).await {
                        Ok(_) => break,
                        Err(EcsError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("writer {w}: {other:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let all = s.read(&e, 1, 10_000).await.unwrap();
    assert_eq!(
        all.len(),
        WRITERS * EACH,
        "every acknowledged write is stored exactly once"
    );
    verify_chain(&all).unwrap();
    let mut seen: Vec<&[u8]> = all.iter().map(|e| e.payload.as_slice()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), WRITERS * EACH, "no duplicates");
    eprintln!("{conflicts} conflicts resolved by retrying");
}

#[tokio::test]
async fn snapshots_must_name_a_real_event() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("s");
    let evs = s
        .append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    let snap = Snapshot {
        entity: e.clone(),
        version: 1,
        last_cid: evs[0].cid.to_string(),
        state: br#"{"created":true}"#.to_vec(),
    };
    s.save_snapshot(snap.clone()).await.unwrap();
    assert_eq!(s.load_snapshot(&e).await.unwrap(), Some(snap.clone()));
    let forged = Snapshot {
        last_cid: cim_domain::object_cid(b"x").to_string(),
        ..snap
    };
    assert!(matches!(
        s.save_snapshot(forged).await,
        Err(EcsError::NotFound(_))
    ));
    assert!(s.load_snapshot(&entity("none")).await.unwrap().is_none());
}

#[tokio::test]
async fn reads_start_exactly_at_the_requested_version_among_other_entities() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let (a, b) = (entity("paged"), entity("neighbour"));
    // Interleave two entities so the stream sequences of `a` are not contiguous.
    for round in 0..30u64 {
        let events = (0..10)
            .map(|i| new_event("Tagged", &format!(r#"{{"n":{}}}"#, round * 10 + i)))
            .collect();
        s.append(&a, round * 10, events).await.unwrap();
        s.append(&b, round, vec![new_event("Tagged", r#"{"n":0}"#)])
            .await
            .unwrap();
    }
    let all = s.read(&a, 1, 1000).await.unwrap();
    assert_eq!(all.len(), 300);
    for from in [1, 2, 32, 33, 34, 150, 151, 299, 300] {
        let page = s.read(&a, from, 7).await.unwrap();
        let want = (300 - from + 1).min(7) as usize;
        assert_eq!(page.len(), want, "from {from}");
        assert_eq!(page[0].version, from, "from {from}");
        assert_eq!(page[0].cid, all[from as usize - 1].cid, "from {from}");
    }
    assert!(s.read(&a, 301, 10).await.unwrap().is_empty());
    // Paging through the whole stream yields the same verified chain.
    let mut paged = Vec::new();
    while paged.len() < 300 {
        paged.extend(s.read(&a, paged.len() as u64 + 1, 64).await.unwrap());
    }
    verify_chain(&paged).unwrap();
    assert_eq!(paged, all);
}

#[tokio::test]
async fn a_multi_event_append_is_one_message_deduplicated_by_the_server() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("commit");
    s.append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    let stored = s
        .append(
            &e,
            1,
            (0..3)
                .map(|i| new_event("Tagged", &format!(r#"{{"i":{i}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    let messages = || async { s.stream().clone().info().await.unwrap().state.messages };
    assert_eq!(messages().await, 2, "two appends, two messages");
    let raw = s
        .stream()
        .direct_get_last_for_subject("cim.evt.document.commit")
        .await
        .unwrap();
    let h = |name: &str| {
        let name: async_nats::header::HeaderName = name.parse().unwrap();
        raw.headers.get(name).unwrap().to_string()
    };
    assert_eq!(h(cim_nats::names::header::EVENTS), "3");
    assert_eq!(h(cim_nats::names::header::VERSION), "4");
    assert_eq!(h(cim_nats::names::header::CID), stored[2].cid.to_string());
    assert_eq!(h("Nats-Msg-Id"), stored[2].cid.to_string());

    // The same message published again (a retry after a lost acknowledgement) is recognised
    // by the server and stored once.
    let js = async_nats::jetstream::new(
        NatsConfig::new(nats.url(), None)
            .connect("retry")
            .await
            .unwrap(),
    );
    let mut headers = async_nats::HeaderMap::new();
    for name in [
        cim_nats::names::header::EVENTS,
        cim_nats::names::header::VERSION,
        cim_nats::names::header::CID,
        "Nats-Msg-Id",
    ] {
        headers.insert(name, h(name).as_str());
    }
    let ack = js
        .publish_with_headers("cim.evt.document.commit", headers, raw.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(messages().await, 2);
    let all = s.read(&e, 1, 10).await.unwrap();
    verify_chain(&all).unwrap();
    assert_eq!(all[1..], stored[..]);
}

#[tokio::test]
async fn a_commit_beyond_one_message_is_an_atomic_batch() {
    let nats = NatsServer::start().unwrap();
    // Payloads stay inline, so three of them cannot share one message (1 MiB at most).
    let s = store(&nats).await.with_offload_above(600 * 1024);
    let e = entity("large");
    let big = |i: usize| {
        new_event(
            "Tagged",
            &format!(r#"{{"i":{i},"blob":"{}"}}"#, "z".repeat(400 * 1024)),
        )
    };
    let stored = s.append(&e, 0, (0..3).map(big).collect()).await.unwrap();
    let messages = s.stream().clone().info().await.unwrap().state.messages;
    assert_eq!(messages, 3, "one message per event");
    let all = s.read(&e, 1, 10).await.unwrap();
    verify_chain(&all).unwrap();
    assert_eq!(all, stored);
    // Still all or nothing: a stale batch stores nothing.
    let err = s
        .append(&e, 1, (3..6).map(big).collect())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 1,
            actual: 3
        }
    );
    assert_eq!(s.stream().clone().info().await.unwrap().state.messages, 3);
}

#[tokio::test]
async fn reads_leave_no_consumer_behind() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("no-consumers");
    s.append(&e, 0, vec![new_event("Created", r#"{"n":1}"#)])
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(s.read(&e, 1, 100).await.unwrap().len(), 1);
        assert_eq!(s.read_messages(&e).await.unwrap().len(), 1);
    }
    let mut stream = s.stream().clone();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}

#[tokio::test]
async fn a_long_stream_reads_across_batches_in_order() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("long");
    for v in 0..600u64 {
        s.append(&e, v, vec![new_event("Tagged", &format!(r#"{{"n":{v}}}"#))])
            .await
            .unwrap();
        if v % 7 == 0 {
            // Another entity's messages in between.
            let other = entity("other");
            let at = s.head(&other).await.unwrap().map_or(0, |h| h.event.version);
            s.append(&other, at, vec![new_event("Tagged", "{}")])
                .await
                .unwrap();
        }
    }
    let all = s.read(&e, 1, 1000).await.unwrap();
    assert_eq!(all.len(), 600);
    verify_chain(&all).unwrap();
    let tail = s.read(&e, 590, 1000).await.unwrap();
    assert_eq!(tail.first().map(|e| e.version), Some(590));
    assert_eq!(tail.len(), 11);
}

#[tokio::test]
async fn a_message_that_is_not_an_event_is_skipped_by_reads_heads_and_appends() {
    let nats = NatsServer::start().unwrap();
    let c = NatsConfig::new(nats.url(), None)
        .connect("t")
        .await
        .unwrap();
    let s = EventStore::open(c.clone()).await.unwrap();
    let e = entity("with-garbage");
    s.append(&e, 0, vec![new_event("Created", r#"{"n":1}"#)])
        .await
        .unwrap();
    let js = async_nats::jetstream::new(c.clone());
    js.publish("cim.evt.document.with-garbage", "garbage".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let head = s.head(&e).await.unwrap().unwrap();
    assert_eq!(
        head.event.version, 1,
        "the head is the last event, not the garbage"
    );
    let next = s
        .append(&e, 1, vec![new_event("Tagged", r#"{"n":2}"#)])
        .await
        .expect("an append after the garbage");
    assert_eq!(next[0].version, 2);
    let all = s.read(&e, 1, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    verify_chain(&all).unwrap();
    let messages = s.read_messages(&e).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert!(matches!(
        &messages[1],
        cim_nats::store::StoredMessage::NotAnEvent { sequence: 2, .. }
    ));
}

/// `n` one-event appends to `e`, each followed by one to `other` (so stream sequences and
/// versions differ); returns `e`'s events.
async fn interleaved(
    s: &EventStore,
    e: &EntityRef,
    other: &EntityRef,
    n: u64,
) -> Vec<cim_domain::RecordedEvent> {
    let mut out = Vec::new();
    for v in 0..n {
        let ev = format!(r#"{{"n":{v}}}"#);
        out.extend(
            s.append(e, v, vec![new_event("Tagged", &ev)])
                .await
                .unwrap(),
        );
        s.append(other, v, vec![new_event("Tagged", &ev)])
            .await
            .unwrap();
    }
    out
}

#[tokio::test]
async fn a_load_returns_the_snapshot_and_the_events_from_its_version_on() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let (e, other) = (entity("loaded"), entity("loaded-other"));
    let events = interleaved(&s, &e, &other, 80).await;
    let (none, from_start) = s.load(&e, 10).await.unwrap();
    assert!(none.is_none());
    assert_eq!(
        from_start,
        events[..10].to_vec(),
        "no snapshot: from version 1"
    );
    let snap = Snapshot {
        entity: e.clone(),
        version: 70,
        last_cid: events[69].cid.to_string(),
        state: b"{}".to_vec(),
    };
    s.save_snapshot(snap.clone()).await.unwrap();
    let (loaded, tail) = s.load(&e, 100).await.unwrap();
    assert_eq!(loaded, Some(snap));
    assert_eq!(
        tail,
        events[69..].to_vec(),
        "the snapshot's own event and the rest"
    );
    let (_, page) = s.load(&e, 3).await.unwrap();
    assert_eq!(page, events[69..72].to_vec(), "at most max");
    assert!(s.load(&entity("nobody"), 10).await.unwrap().1.is_empty());
}

#[tokio::test]
async fn a_load_whose_saved_start_is_wrong_still_reads_from_the_snapshot() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let (e, other) = (entity("hinted"), entity("hinted-other"));
    let events = interleaved(&s, &e, &other, 60).await;
    let snapshot = serde_json::json!({
        "entity": { "kind": "document", "id": "hinted" },
        "version": 50,
        "last_cid": events[49].cid.to_string(),
        "state": "{}",
    });
    let bucket = async_nats::jetstream::new(s.client().clone())
        .get_key_value(cim_nats::names::SNAPSHOTS_BUCKET)
        .await
        .unwrap();
    // Past the event (the head), before it (the start), beyond the stream, none at all.
    for sequence in [Some(120), Some(1), Some(10_000), None] {
        let mut kept = snapshot.clone();
        if let Some(sq) = sequence {
            kept["sequence"] = sq.into();
        }
        bucket
            .put("document.hinted", kept.to_string().into())
            .await
            .unwrap();
        let (loaded, tail) = s.load(&e, 5).await.unwrap();
        assert_eq!(loaded.map(|l| l.version), Some(50), "{sequence:?}");
        assert_eq!(tail, events[49..54].to_vec(), "{sequence:?}");
    }
}

#[tokio::test]
async fn a_position_another_store_moved_on_yields_a_conflict_not_a_fork() {
    let nats = NatsServer::start().unwrap();
    let (one, other) = (store(&nats).await, store(&nats).await);
    let e = entity("two-writers");
    let first = one
        .append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    other
        .append(&e, 1, vec![new_event("Tagged", r#"{"by":"other"}"#)])
        .await
        .unwrap();
    // `one` last saw version 1; the stream is at 2.
    let err = one
        .append(&e, 1, vec![new_event("Tagged", r#"{"by":"one"}"#)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 1,
            actual: 2
        }
    );
    let third = one
        .append(&e, 2, vec![new_event("Tagged", r#"{"by":"one"}"#)])
        .await
        .unwrap();
    let all = one.read(&e, 1, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    verify_chain(&all).unwrap();
    assert_eq!(all[0], first[0]);
    assert_eq!(all[2], third[0]);
}

#[tokio::test]
async fn an_append_right_after_a_message_that_is_not_an_event_still_succeeds() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("garbage-after");
    s.append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    async_nats::jetstream::new(s.client().clone())
        .publish("cim.evt.document.garbage-after", "not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let next = s
        .append(&e, 1, vec![new_event("Tagged", "{}")])
        .await
        .unwrap();
    assert_eq!(next[0].version, 2);
    let all = s.read(&e, 1, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    verify_chain(&all).unwrap();
}

#[tokio::test]
async fn a_stream_read_page_by_page_returns_every_event_once_in_order() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let (e, other) = (entity("paged"), entity("paged-other"));
    let mut events = interleaved(&s, &e, &other, 60).await;
    // A commit of three in the middle of the stream, so a page can end inside a message.
    events.extend(
        s.append(
            &e,
            60,
            vec![
                new_event("Tagged", r#"{"c":1}"#),
                new_event("Tagged", r#"{"c":2}"#),
                new_event("Tagged", r#"{"c":3}"#),
            ],
        )
        .await
        .unwrap(),
    );
    for v in 63..100u64 {
        events.extend(
            s.append(&e, v, vec![new_event("Tagged", &format!(r#"{{"n":{v}}}"#))])
                .await
                .unwrap(),
        );
    }
    let store2 = store(&nats).await;
    for (reader, page) in [(&s, 7u32), (&store2, 2), (&s, 61)] {
        let mut read = Vec::new();
        while let Some(next) = Some(reader.read(&e, read.len() as u64 + 1, page).await.unwrap())
            .filter(|p| !p.is_empty())
        {
            read.extend(next);
        }
        assert_eq!(read, events, "pages of {page}");
    }
    // A read elsewhere than where the last one ended still starts where it is asked to.
    assert_eq!(s.read(&e, 50, 3).await.unwrap(), events[49..52].to_vec());
}

#[tokio::test]
async fn the_same_fact_decided_by_another_command_is_a_conflict_not_its_answer() {
    let nats = NatsServer::start().unwrap();
    let (one, other) = (store(&nats).await, store(&nats).await);
    let e = entity("same-fact");
    one.append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    let tag = |command: &str| NewEvent {
        meta: Envelope::originating(format!("{command}-1"), 42),
        ..new_event("Tagged", r#"{"tag":"finance"}"#)
    };
    let first = one.append(&e, 1, vec![tag("cmd-a")]).await.unwrap();
    // Same fact, same version, same previous: the same CID, but another command.
    let err = other.append(&e, 1, vec![tag("cmd-b")]).await.unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 1,
            actual: 2
        }
    );
    // The command that stored it, sent again, is answered with what it stored.
    assert_eq!(
        other.append(&e, 1, vec![tag("cmd-a")]).await.unwrap(),
        first
    );
    assert_eq!(one.read(&e, 1, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_head_behind_a_message_that_is_not_an_event_is_found_without_fetching_payloads() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let e = entity("offloaded-head");
    let first = s
        .append(&e, 0, vec![new_event("Created", "{}")])
        .await
        .unwrap();
    // Version 2 offloaded to an object the object store does not hold (cannot be fetched
    // now), then a message that is not an event.
    let payload = br#"{"big":"not stored"}"#.to_vec();
    let second = cim_domain::RecordedEvent::seal(
        &e,
        2,
        Some(first[0].cid),
        NewEvent {
            payload: payload.clone(),
            ..new_event("Tagged", "")
        },
    )
    .unwrap();
    let (mut headers, _) = cim_nats::store::encode(&second);
    headers.insert(
        cim_nats::names::header::PAYLOAD_CID,
        cim_domain::object_cid(&payload).to_string().as_str(),
    );
    let js = async_nats::jetstream::new(s.client().clone());
    let subject = "cim.evt.document.offloaded-head";
    js.publish_with_headers(subject, headers, Vec::new().into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish(subject, "not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let head = s.head(&e).await.unwrap().unwrap();
    assert_eq!((head.event.version, head.event.cid), (2, second.cid));
    // An append chains to version 2, never forks at it.
    let third = s
        .append(&e, 2, vec![new_event("Tagged", r#"{"n":3}"#)])
        .await
        .unwrap();
    assert_eq!((third[0].version, third[0].previous), (3, Some(second.cid)));
}

#[tokio::test]
async fn a_snapshot_whose_state_is_not_text_is_no_snapshot_and_the_load_starts_at_one() {
    let nats = NatsServer::start().unwrap();
    let s = store(&nats).await;
    let (e, other) = (entity("binary-state"), entity("binary-state-other"));
    let events = interleaved(&s, &e, &other, 40).await;
    s.save_snapshot(Snapshot {
        entity: e.clone(),
        version: 35,
        last_cid: events[34].cid.to_string(),
        state: vec![0xff, 0xfe, 0x00],
    })
    .await
    .unwrap();
    let (snapshot, loaded) = s.load(&e, 100).await.unwrap();
    assert!(snapshot.is_none(), "ignored");
    assert_eq!(loaded, events, "every event, from version 1");
}
