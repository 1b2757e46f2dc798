//! The graph projection against real NATS JetStream and a real Bolt server (ArcadeDB):
//! answers the seed questions, is idempotent under replay, and resumes after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cim_domain::testing::{run_commands, MemoryLog};
use cim_domain::{Aggregate, EntityRef, NewEvent, RecordedEvent};
use cim_graph::{Graph, GraphConfig, Value};
use cim_model::document::Document;
use cim_model::package::Package;
use cim_nats::{EventStore, NatsConfig};
use cim_testkit::{GraphServer, NatsServer, GRAPH_DATABASE, GRAPH_USER};
use graph_neo4j::config::ProjectionConfig;
use graph_neo4j::projection;

const OUT: &str = "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0";
const CONTENT: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

/// Runs commands through the real aggregate and stores the resulting events in JetStream.
async fn drive<A: Aggregate>(
    store: &EventStore,
    kind: &str,
    id: &str,
    steps: &[(&str, String)],
) -> Vec<RecordedEvent> {
    let steps: Vec<(&str, &str)> = steps.iter().map(|(n, j)| (*n, j.as_str())).collect();
    // The aggregate decides against the store's own history, so ids and versions line up.
    let mut log = MemoryLog::new();
    for ev in store
        .read(&EntityRef::new(kind, id).unwrap(), 1, 4096)
        .await
        .unwrap()
    {
        log.events_mut(&ev.entity.clone()).push(ev);
    }
    let events = run_commands::<A>(&mut log, kind, id, &steps);
    let Some(first) = events.first() else {
        return events;
    };
    let stored = store
        .append(
            &first.entity,
            first.version - 1,
            events
                .iter()
                .map(|e| NewEvent {
                    name: e.name.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload.clone(),
                    meta: e.meta.clone(),
                })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(stored, events);
    stored
}

fn package_steps() -> Vec<(&'static str, String)> {
    cim_model::package::example_pipeline(OUT, CONTENT, "host-x", true)
}

fn document_steps() -> Vec<(&'static str, String)> {
    vec![
        (
            "Create",
            format!(
                r#"{{"title":"Invoice","content_cid":"{CONTENT}","media_type":"application/pdf","categories":["invoice","contract"]}}"#
            ),
        ),
        ("AttachText", r#"{"text":"Please pay 42 EUR"}"#.into()),
        ("Tag", r#"{"tag":"finance"}"#.into()),
        (
            "Classify",
            r#"{"category":"invoice","confidence":0.9,"classified_by":"operator"}"#.into(),
        ),
    ]
}

async fn texts(g: &Graph, cypher: &str, params: &[(&str, &str)]) -> Vec<String> {
    let params: Vec<(String, Value)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Text(v.to_string())))
        .collect();
    g.query_read_only(cypher, &params)
        .await
        .unwrap()
        .into_iter()
        .map(|r| match &r.values[0] {
            Value::Text(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// The whole graph as (label, key, properties) and (start, type, end) — element ids left out.
async fn snapshot(g: &Graph) -> (Vec<String>, Vec<String>) {
    let nodes = g
        .query_read_only("MATCH (n) RETURN n AS node", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{:?}", r.values[0]))
        .collect::<Vec<_>>();
    let mut nodes = nodes;
    nodes.sort();
    let mut edges = texts(
        g,
        "MATCH (a)-[r]->(b) RETURN a.key + ' -' + type(r) + '-> ' + b.key AS edge",
        &[],
    )
    .await;
    edges.sort();
    (nodes, edges)
}

async fn wait_drained(store: &EventStore, cfg: &ProjectionConfig) {
    let mut consumer = store
        .stream()
        .get_or_create_consumer(&cfg.durable, projection::consumer_config(cfg))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "projection never caught up: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cfg(durable: &str) -> ProjectionConfig {
    ProjectionConfig {
        subjects: vec!["cim.evt.document.*".into(), "cim.evt.package.*".into()],
        durable: durable.into(),
        batch: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_answers_replays_and_resumes() {
    let nats = NatsServer::start().unwrap();
    let graph_server = GraphServer::start().unwrap();
    let client = NatsConfig::new(nats.url(), None)
        .connect("projection-test")
        .await
        .unwrap();
    let store = EventStore::open(client.clone()).await.unwrap();
    let graph = Arc::new(
        Graph::connect(&GraphConfig {
            uri: graph_server.uri(),
            user: GRAPH_USER.into(),
            password: graph_server.password().into(),
            database: GRAPH_DATABASE.into(),
            timeout: Duration::from_secs(30),
        })
        .await
        .unwrap(),
    );
    let package = drive::<Package>(&store, "package", "hello", &package_steps()).await;
    let document = drive::<Document>(&store, "document", "d1", &document_steps()).await;

    // A message written around the store, whose CID does not match its content.
    let mut forged = document[0].clone();
    forged.entity = EntityRef::new("document", "forged").unwrap();
    let (headers, _) = cim_nats::store::encode(&forged);
    client
        .publish_with_headers("cim.evt.document.forged", headers, "{}".into())
        .await
        .unwrap();
    client.flush().await.unwrap();

    let first = cfg("graph-test");
    let task = tokio::spawn(projection::run(store.clone(), graph.clone(), first.clone()));
    wait_drained(&store, &first).await;

    // Which builds produced the package deployed to host X?
    let builds = texts(
        &graph,
        "MATCH (:Host {key: $host})<-[:ON_HOST]-(:Deployment)<-[:DEPLOYED_AS]-(p:Entity)-[:HAS_BUILD]->(b:Build)-[:PRODUCED]->(s:StorePath)<-[:PUBLISHED_AS]-(p) RETURN b.key AS build",
        &[("host", "host-x")],
    )
    .await;
    assert_eq!(builds, ["package/hello#2"]);
    let failed = texts(
        &graph,
        "MATCH (b:Build {key: $key}) RETURN b.status AS status",
        &[("key", "package/hello#1")],
    )
    .await;
    assert_eq!(failed, ["failed"]);
    // Which events were caused by command Y?
    let caused = texts(
        &graph,
        "MATCH (e:Event)-[:CAUSED_BY]->(:Command {key: $cmd}) RETURN e.name AS name",
        &[("cmd", "cmd-hello-6")],
    )
    .await;
    assert_eq!(caused, ["BuildSucceeded"]);
    let events = texts(&graph, "MATCH (e:Event) RETURN e.key AS key", &[]).await;
    assert_eq!(events.len(), package.len() + document.len());
    let tagged = texts(
        &graph,
        "MATCH (:Entity {key: $d})-[:TAGGED]->(t:Tag) RETURN t.key AS tag",
        &[("d", "document/d1")],
    )
    .await;
    assert_eq!(tagged, ["finance"]);
    let chain = texts(
        &graph,
        "MATCH (e:Event {key: $cid})-[:FOLLOWS]->(p:Event) RETURN p.key AS previous",
        &[("cid", &document[1].cid.to_string())],
    )
    .await;
    assert_eq!(chain, [document[0].cid.to_string()]);
    let forged_nodes = texts(
        &graph,
        "MATCH (n) WHERE n.key = $k RETURN n.key AS key",
        &[("k", "document/forged")],
    )
    .await;
    assert!(forged_nodes.is_empty(), "a forged event is not projected");
    let before = snapshot(&graph).await;

    // A replay of every event (a second projection from the start) changes nothing.
    let replay = cfg("graph-test-replay");
    let replayer = tokio::spawn(projection::run(
        store.clone(),
        graph.clone(),
        replay.clone(),
    ));
    wait_drained(&store, &replay).await;
    replayer.abort();
    assert_eq!(
        snapshot(&graph).await,
        before,
        "replaying leaves the same graph"
    );

    // Stop, write more, restart: the projection resumes after its last acknowledged batch.
    task.abort();
    let _ = task.await;
    let last_sequence = || async {
        store
            .stream()
            .clone()
            .info()
            .await
            .unwrap()
            .state
            .last_sequence
    };
    let stopped_at = last_sequence().await;
    let more = drive::<Document>(&store, "document", "d2", &document_steps()[..3]).await;
    let written = last_sequence().await - stopped_at;
    assert!(
        written > 0 && written < more.len() as u64,
        "a multi-event command is one message: {written} messages for {} events",
        more.len()
    );
    let mut consumer = store
        .stream()
        .get_or_create_consumer(&first.durable, projection::consumer_config(&first))
        .await
        .unwrap();
    assert_eq!(consumer.info().await.unwrap().num_pending, written);
    let task = tokio::spawn(projection::run(store.clone(), graph.clone(), first.clone()));
    wait_drained(&store, &first).await;
    task.abort();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_redelivered, 0, "nothing projected twice: {info:?}");
    let after = snapshot(&graph).await;
    let new_events: BTreeMap<String, ()> = more.iter().map(|e| (e.cid.to_string(), ())).collect();
    let events = texts(&graph, "MATCH (e:Event) RETURN e.key AS key", &[]).await;
    assert_eq!(events.len(), package.len() + document.len() + more.len());
    assert!(new_events.keys().all(|k| events.contains(k)));
    assert!(after.0.len() > before.0.len());
}
