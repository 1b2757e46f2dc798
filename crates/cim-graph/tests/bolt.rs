//! The graph client against a real Bolt server (ArcadeDB's Neo4j-compatible plugin).

use std::time::Duration;

use cim_graph::{Edge, Graph, GraphConfig, GraphError, Node, Value};
use cim_testkit::{GraphServer, GRAPH_DATABASE, GRAPH_USER};

async fn connect(server: &GraphServer) -> Graph {
    Graph::connect(&GraphConfig {
        uri: server.uri(),
        user: GRAPH_USER.into(),
        password: server.password().into(),
        database: GRAPH_DATABASE.into(),
        timeout: Duration::from_secs(30),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; server log:\n{}", server.output()))
}

async fn count(g: &Graph, cypher: &str) -> i64 {
    let rows = g.query_read_only(cypher, &[]).await.unwrap();
    match rows[0].values[0] {
        Value::Int(n) => n,
        ref other => panic!("not a count: {other:?}"),
    }
}

fn node(label: &str, key: &str, props: Vec<(&str, Value)>) -> Node {
    Node {
        label: label.into(),
        key: key.into(),
        props: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

fn edge(from: (&str, &str), rel: &str, to: (&str, &str)) -> Edge {
    Edge {
        from_label: from.0.into(),
        from_key: from.1.into(),
        rel: rel.into(),
        to_label: to.0.into(),
        to_key: to.1.into(),
        props: vec![("since".into(), Value::Int(1))],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_are_batched_idempotent_and_injection_is_inert() {
    let server = GraphServer::start().unwrap();
    let g = connect(&server).await;

    let nodes = vec![
        node("Tag", "finance", vec![("weight", Value::Float(0.5))]),
        node("Tag", "legal", vec![]),
        node(
            "Entity",
            "document/d1",
            vec![
                ("title", Value::Text("Invoice".into())),
                ("tags", Value::Texts(vec!["a".into(), "b".into()])),
            ],
        ),
    ];
    let edges = vec![
        edge(("Entity", "document/d1"), "TAGGED", ("Tag", "finance")),
        edge(("Entity", "document/d1"), "TAGGED", ("Tag", "legal")),
    ];
    for _ in 0..2 {
        assert_eq!(g.merge_nodes(&nodes).await.unwrap(), 3);
        assert_eq!(g.merge_edges(&edges).await.unwrap(), 2);
    }
    assert_eq!(count(&g, "MATCH (n:Tag) RETURN count(n) AS n").await, 2);
    assert_eq!(
        count(&g, "MATCH ()-[r:TAGGED]->() RETURN count(r) AS n").await,
        2
    );
    let rows = g
        .query_read_only(
            "MATCH (d:Entity {key: $key})-[:TAGGED]->(t:Tag) RETURN t.key AS tag ORDER BY tag",
            &[("key".into(), Value::Text("document/d1".into()))],
        )
        .await
        .unwrap();
    let tags: Vec<&Value> = rows.iter().map(|r| &r.values[0]).collect();
    assert_eq!(
        tags,
        [&Value::Text("finance".into()), &Value::Text("legal".into())]
    );

    // Injection attempts: values are data, identifiers are refused, writes are refused.
    let evil = "x'}) DETACH DELETE n //";
    g.merge_nodes(&[node(
        "Tag",
        evil,
        vec![("note", Value::Text("MATCH (n) DETACH DELETE n".into()))],
    )])
    .await
    .unwrap();
    let stored = g
        .query_read_only(
            "MATCH (t:Tag {key: $k}) RETURN t.note AS note",
            &[("k".into(), Value::Text(evil.into()))],
        )
        .await
        .unwrap();
    assert_eq!(
        stored[0].values[0],
        Value::Text("MATCH (n) DETACH DELETE n".into())
    );
    // Columns come in RETURN order, not sorted by name.
    let ordered = g
        .query_read_only(
            "MATCH (t:Tag {key: $k}) RETURN t.note AS note, t.key AS key",
            &[("k".into(), Value::Text(evil.into()))],
        )
        .await
        .unwrap();
    assert_eq!(ordered[0].columns, ["note", "key"]);
    assert_eq!(ordered[0].values[1], Value::Text(evil.into()));
    for bad_label in ["Tag) DETACH DELETE (n", "Tag:Admin", "Tag`"] {
        let err = g
            .merge_nodes(&[node(bad_label, "k", vec![])])
            .await
            .unwrap_err();
        assert!(
            matches!(err, GraphError::Invalid(_)),
            "{bad_label}: {err:?}"
        );
    }
    let err = g
        .merge_edges(&[edge(("Tag", "a"), "R]->() DELETE r//", ("Tag", "b"))])
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Invalid(_)));
    let err = g
        .merge_nodes(&[node("Tag", "k", vec![("a b", Value::Null)])])
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Invalid(_)));
    for write in [
        "MATCH (n) DETACH DELETE n",
        "MATCH (n:Tag) SET n.hacked = true RETURN n",
        "CREATE (n:Tag {key: 'new'})",
    ] {
        let err = g.query_read_only(write, &[]).await.unwrap_err();
        assert!(matches!(err, GraphError::Invalid(_)), "{write}: {err:?}");
    }
    let err = g
        .query_read_only("MATCH (n RETURN n", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Rejected(_)), "{err:?}");
    // Nothing of the above changed the graph.
    assert_eq!(count(&g, "MATCH (n:Tag) RETURN count(n) AS n").await, 3);
    assert_eq!(count(&g, "MATCH ()-[r]->() RETURN count(r) AS n").await, 2);
    assert_eq!(
        count(
            &g,
            "MATCH (n) WHERE n.hacked IS NOT NULL RETURN count(n) AS n"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_deadline() {
    let port = cim_testkit::free_port().unwrap();
    let started = std::time::Instant::now();
    let err = Graph::connect(&GraphConfig {
        uri: format!("bolt://127.0.0.1:{port}"),
        user: "root".into(),
        password: "secret".into(),
        database: "cim".into(),
        timeout: Duration::from_secs(3),
    })
    .await
    .err()
    .expect("nothing listens there");
    assert!(matches!(err, GraphError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err}").contains("secret"));
    assert!(started.elapsed() < Duration::from_secs(20));
}
