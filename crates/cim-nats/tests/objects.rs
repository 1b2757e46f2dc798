//! The CID object store and payload offloading against a real nats-server.

use cim_domain::{object_cid, verify_chain, EcsError, EntityRef, Envelope, NewEvent, Token};
use cim_nats::names::header;
use cim_nats::{EventStore, NatsConfig, ObjectStore};
use cim_testkit::NatsServer;

async fn client(nats: &NatsServer) -> async_nats::Client {
    NatsConfig::new(nats.url(), None)
        .connect("objects-test")
        .await
        .unwrap()
}

#[tokio::test]
async fn objects_are_named_by_their_cid_stored_once_and_verified_on_read() {
    let nats = NatsServer::start().unwrap();
    let objects = ObjectStore::open(client(&nats).await).await.unwrap();
    let data = vec![7u8; 300 * 1024];
    let cid = objects
        .put(&data, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(cid, object_cid(&data));
    assert_eq!(objects.get(&cid).await.unwrap(), data);
    let stat = objects.stat(&cid).await.unwrap();
    assert_eq!(stat.size, data.len() as u64);
    assert_eq!(stat.media_type, "application/octet-stream");

    // Storing the same bytes again stores nothing new.
    let before = objects.bucket().info(cid.to_string()).await.unwrap().nuid;
    assert_eq!(objects.put(&data, "text/plain").await.unwrap(), cid);
    let after = objects.bucket().info(cid.to_string()).await.unwrap();
    assert_eq!(after.nuid, before, "not rewritten");
    assert_eq!(
        objects.stat(&cid).await.unwrap().media_type,
        "application/octet-stream"
    );

    // Someone writes other bytes under that CID's name: reads refuse them.
    let mut other: &[u8] = b"not the promised bytes";
    objects
        .bucket()
        .put(cid.to_string().as_str(), &mut other)
        .await
        .unwrap();
    let err = objects.get(&cid).await.unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("corrupt") && m.contains(&cid.to_string())),
        "{err:?}"
    );

    let missing = object_cid(b"never stored");
    assert!(matches!(
        objects.get(&missing).await,
        Err(EcsError::NotFound(_))
    ));
    assert!(matches!(
        objects.stat(&missing).await,
        Err(EcsError::NotFound(_))
    ));
    objects.delete(&cid).await.unwrap();
    assert!(matches!(
        objects.stat(&cid).await,
        Err(EcsError::NotFound(_))
    ));
    assert!(matches!(
        objects.delete(&cid).await,
        Err(EcsError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_empty_object_reads_back_empty() {
    let nats = NatsServer::start().unwrap();
    let objects = ObjectStore::open(client(&nats).await).await.unwrap();
    let cid = objects.put(b"", "text/plain").await.unwrap();
    assert_eq!(cid, object_cid(b""));
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), objects.get(&cid))
        .await
        .expect("reading an empty object does not hang");
    assert_eq!(read.unwrap(), Vec::<u8>::new());
    assert_eq!(objects.stat(&cid).await.unwrap().size, 0);
}

#[tokio::test]
async fn an_object_with_a_malformed_media_type_is_refused_and_not_stored() {
    let nats = NatsServer::start().unwrap();
    let objects = ObjectStore::open(client(&nats).await).await.unwrap();
    for bad in ["pdf", "not a media type", "text/plain\r\nX-Injected: 1", ""] {
        let put = objects.put(b"some bytes", bad).await;
        assert!(
            matches!(put, Err(cim_domain::EcsError::Invalid(ref m)) if m.contains("media type")),
            "{bad:?}: {put:?}"
        );
    }
    assert!(
        objects.stat(&object_cid(b"some bytes")).await.is_err(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn large_payloads_are_offloaded_and_resolved_transparently() {
    let nats = NatsServer::start().unwrap();
    let c = client(&nats).await;
    let store = EventStore::open(c.clone())
        .await
        .unwrap()
        .with_offload_above(1024);
    let entity = EntityRef::new("document", "big").unwrap();
    let big = format!(r#"{{"text":"{}"}}"#, "y".repeat(4000)).into_bytes();
    let event = |payload: Vec<u8>| NewEvent {
        name: Token::parse("event name", "TextAttached").unwrap(),
        schema_version: 1,
        payload,
        meta: Envelope::originating("cmd", 1),
    };
    let stored = store
        .append(
            &entity,
            0,
            vec![event(br#"{"small":true}"#.to_vec()), event(big.clone())],
        )
        .await
        .unwrap();
    // The append is one commit message; it names the large payload by its CID instead of
    // holding it.
    let raw = store
        .stream()
        .direct_get_last_for_subject("cim.evt.document.big")
        .await
        .unwrap();
    assert!(raw.payload.len() < 1024, "{} bytes", raw.payload.len());
    let count = raw.headers.get(header::EVENTS).unwrap().to_string();
    let entries = cim_nats::commit::decode(&entity, &count, &raw.payload).unwrap();
    assert_eq!(entries[0].offloaded, None);
    assert_eq!(entries[0].event.payload, br#"{"small":true}"#);
    let payload_cid = entries[1].offloaded.unwrap().to_string();
    assert_eq!(payload_cid, object_cid(&big).to_string());

    // A single large event is one message with the payload's CID in a header and no body.
    let single = EntityRef::new("document", "big-1").unwrap();
    store
        .append(&single, 0, vec![event(big.clone())])
        .await
        .unwrap();
    let raw = store
        .stream()
        .direct_get_last_for_subject("cim.evt.document.big-1")
        .await
        .unwrap();
    assert!(raw.payload.is_empty());
    assert_eq!(
        raw.headers.get(header::PAYLOAD_CID).unwrap().to_string(),
        payload_cid
    );
    assert_eq!(store.read(&single, 1, 1).await.unwrap()[0].payload, big);
    // Reads resolve it, and the event CID still covers the full payload.
    let read = store.read(&entity, 1, 10).await.unwrap();
    assert_eq!(read[1].payload, big);
    assert_eq!(read, stored);
    verify_chain(&read).unwrap();

    // A tampered offloaded payload is caught on read.
    let mut bad: &[u8] = b"{}";
    store
        .objects()
        .bucket()
        .put(payload_cid.as_str(), &mut bad)
        .await
        .unwrap();
    let err = store.read(&entity, 1, 10).await.unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("corrupt")),
        "{err:?}"
    );
}
