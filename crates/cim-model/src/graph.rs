//! The knowledge-graph projection: what every event means as nodes and edges.
//!
//! Pure: [`project`] maps one stored event to a [`GraphDelta`] that a graph writer merges
//! (Neo4j `MERGE`, keyed by `key`), so projecting the same events twice leaves the same graph.
//!
//! | node label | key | from |
//! |---|---|---|
//! | `Entity` | `<kind>/<id>` | every event |
//! | `Event` | the event CID | every event |
//! | `Command` | the command id | `causation_id` of events a command produced |
//! | `Correlation` | the correlation id | every event |
//! | `Tag`, `Category` | the tag / category | document events |
//! | `Commit`, `Build`, `StorePath`, `Deployment`, `Host` | see [`package_delta`] | package events |
//!
//! | edge | meaning |
//! |---|---|
//! | `(Event)-[:OF]->(Entity)` | the event belongs to the entity's stream |
//! | `(Event)-[:FOLLOWS]->(Event)` | the CID chain |
//! | `(Event)-[:CAUSED_BY]->(Command or Event)` | the envelope's causation |
//! | `(Event)-[:CORRELATES]->(Correlation)` | the envelope's conversation |
//! | `(Entity)-[:TAGGED]->(Tag)`, `(Entity)-[:CLASSIFIED_AS]->(Category)` | documents |
//! | `(Entity)-[:FROM_COMMIT]->(Commit)`, `(Entity)-[:HAS_BUILD]->(Build)`, `(Build)-[:PRODUCED]->(StorePath)`, `(Entity)-[:PUBLISHED_AS]->(StorePath)`, `(Entity)-[:DEPLOYED_AS]->(Deployment)-[:ON_HOST]->(Host)` | packages |

use cim_domain::{parse_cid, RecordedEvent};
use serde_json::Value;

/// A property value (flat, as in Neo4j).
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// List of texts.
    Texts(Vec<String>),
}

/// A node to merge by `label` and `key`, setting `props`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMerge {
    /// Label.
    pub label: &'static str,
    /// Unique key within the label.
    pub key: String,
    /// Properties to set.
    pub props: Vec<(&'static str, Prop)>,
}

/// An edge to merge between two nodes given by label and key.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeMerge {
    /// Start node label.
    pub from_label: &'static str,
    /// Start node key.
    pub from_key: String,
    /// Relationship type.
    pub rel: &'static str,
    /// End node label.
    pub to_label: &'static str,
    /// End node key.
    pub to_key: String,
    /// Properties to set on the relationship.
    pub props: Vec<(&'static str, Prop)>,
}

/// What one event adds to the graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphDelta {
    /// Nodes to merge.
    pub nodes: Vec<NodeMerge>,
    /// Edges to merge (their end nodes are merged too).
    pub edges: Vec<EdgeMerge>,
}

impl GraphDelta {
    fn node(
        &mut self,
        label: &'static str,
        key: impl Into<String>,
        props: Vec<(&'static str, Prop)>,
    ) {
        self.nodes.push(NodeMerge {
            label,
            key: key.into(),
            props,
        });
    }

    fn edge(
        &mut self,
        from_label: &'static str,
        from_key: impl Into<String>,
        rel: &'static str,
        to_label: &'static str,
        to_key: impl Into<String>,
    ) {
        self.edges.push(EdgeMerge {
            from_label,
            from_key: from_key.into(),
            rel,
            to_label,
            to_key: to_key.into(),
            props: Vec::new(),
        });
    }

    /// Appends another delta.
    pub fn extend(&mut self, other: GraphDelta) {
        self.nodes.extend(other.nodes);
        self.edges.extend(other.edges);
    }
}

/// Every label the projection writes (for constraints on `key`).
pub const LABELS: [&str; 12] = [
    "Entity",
    "Event",
    "Command",
    "Correlation",
    "Tag",
    "Category",
    "Commit",
    "Build",
    "StorePath",
    "Deployment",
    "Host",
    "Object",
];

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// The graph delta of one stored event.
pub fn project(ev: &RecordedEvent) -> GraphDelta {
    let mut d = GraphDelta::default();
    let entity = format!("{}/{}", ev.entity.kind, ev.entity.id);
    let cid = ev.cid.to_string();
    d.node(
        "Entity",
        &entity,
        vec![
            ("kind", Prop::Text(ev.entity.kind.to_string())),
            ("id", Prop::Text(ev.entity.id.to_string())),
        ],
    );
    d.node(
        "Event",
        &cid,
        vec![
            ("name", Prop::Text(ev.name.to_string())),
            ("entity", Prop::Text(entity.clone())),
            (
                "version",
                Prop::Int(i64::try_from(ev.version).unwrap_or(i64::MAX)),
            ),
            (
                "occurred_at_ms",
                Prop::Int(i64::try_from(ev.meta.occurred_at_ms).unwrap_or(i64::MAX)),
            ),
            ("correlation_id", Prop::Text(ev.meta.correlation_id.clone())),
        ],
    );
    d.edge("Event", &cid, "OF", "Entity", &entity);
    if let Some(previous) = &ev.previous {
        d.edge("Event", &cid, "FOLLOWS", "Event", previous.to_string());
    }
    if let Some(cause) = &ev.meta.causation_id {
        let label = if parse_cid(cause).is_ok() {
            "Event"
        } else {
            "Command"
        };
        d.edge("Event", &cid, "CAUSED_BY", label, cause);
    }
    d.edge(
        "Event",
        &cid,
        "CORRELATES",
        "Correlation",
        &ev.meta.correlation_id,
    );
    let payload: Value = serde_json::from_slice(&ev.payload).unwrap_or(Value::Null);
    match ev.entity.kind.as_str() {
        "document" => d.extend(document_delta(&entity, ev.name.as_str(), &payload)),
        "package" => d.extend(package_delta(&entity, &cid, ev.name.as_str(), &payload)),
        _ => {}
    }
    d
}

/// Document relations: tags, classification, content object.
pub fn document_delta(entity: &str, name: &str, p: &Value) -> GraphDelta {
    let mut d = GraphDelta::default();
    match name {
        "DocumentCreated" => {
            if let Some(title) = text(p, "title") {
                d.node("Entity", entity, vec![("title", Prop::Text(title))]);
            }
            if let Some(content) = text(p, "content_cid") {
                d.edge("Entity", entity, "HAS_CONTENT", "Object", content);
            }
        }
        "DocumentTagged" => {
            if let Some(tag) = text(p, "tag") {
                d.edge("Entity", entity, "TAGGED", "Tag", tag);
            }
        }
        "DocumentClassified" => {
            if let Some(category) = text(p, "category") {
                d.edge("Entity", entity, "CLASSIFIED_AS", "Category", category);
            }
        }
        _ => {}
    }
    d
}

/// Package relations: commit, builds (keyed `<package>#<attempt>`: the request and its outcome
/// name the same attempt), store paths, deployments, hosts.
pub fn package_delta(entity: &str, cid: &str, name: &str, p: &Value) -> GraphDelta {
    let mut d = GraphDelta::default();
    match name {
        "CommitSubmitted" => {
            if let Some(commit) = text(p, "commit") {
                d.node(
                    "Commit",
                    &commit,
                    vec![(
                        "repository",
                        Prop::Text(text(p, "repository").unwrap_or_default()),
                    )],
                );
                d.edge("Entity", entity, "FROM_COMMIT", "Commit", commit);
            }
        }
        "BuildRequested" => {
            let attempt = p.get("attempt").and_then(Value::as_i64).unwrap_or(1);
            let build = build_key(entity, attempt);
            d.node(
                "Build",
                &build,
                vec![
                    ("attempt", Prop::Int(attempt)),
                    (
                        "flake_ref",
                        Prop::Text(text(p, "flake_ref").unwrap_or_default()),
                    ),
                    (
                        "attribute",
                        Prop::Text(text(p, "attribute").unwrap_or_default()),
                    ),
                    ("status", Prop::Text("requested".into())),
                    ("requested_by", Prop::Text(cid.to_owned())),
                ],
            );
            d.edge("Entity", entity, "HAS_BUILD", "Build", build);
        }
        "BuildSucceeded" | "BuildFailed" => {
            let attempt = p.get("attempt").and_then(Value::as_i64).unwrap_or(1);
            let status = if name == "BuildSucceeded" {
                "succeeded"
            } else {
                "failed"
            };
            let out_paths: Vec<String> = p
                .get("out_paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut props = vec![
                ("status", Prop::Text(status.into())),
                ("outcome_event", Prop::Text(cid.to_owned())),
            ];
            if !out_paths.is_empty() {
                props.push(("out_paths", Prop::Texts(out_paths.clone())));
            }
            if let Some(log) = text(p, "log_cid") {
                props.push(("log_cid", Prop::Text(log)));
            }
            let build = build_key(entity, attempt);
            d.node("Build", &build, props);
            d.edge("Entity", entity, "HAS_BUILD", "Build", &build);
            for path in out_paths {
                d.edge("Build", &build, "PRODUCED", "StorePath", path);
            }
        }
        "PackagePublished" => {
            if let Some(path) = text(p, "store_path") {
                d.edge("Entity", entity, "PUBLISHED_AS", "StorePath", path);
            }
        }
        "ContainerDeployed" => {
            let host = text(p, "host").unwrap_or_default();
            d.node(
                "Deployment",
                cid,
                vec![
                    (
                        "container",
                        Prop::Text(text(p, "container").unwrap_or_default()),
                    ),
                    ("host", Prop::Text(host.clone())),
                ],
            );
            d.edge("Entity", entity, "DEPLOYED_AS", "Deployment", cid);
            d.edge("Deployment", cid, "ON_HOST", "Host", host);
        }
        _ => {}
    }
    d
}

/// The key of a package's build attempt.
pub fn build_key(entity: &str, attempt: i64) -> String {
    format!("{entity}#{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use crate::package::Package;
    use cim_domain::testing::{run_commands, MemoryLog};

    fn has_edge(d: &GraphDelta, from: &str, rel: &str, to_label: &str, to: &str) -> bool {
        d.edges
            .iter()
            .any(|e| e.from_key == from && e.rel == rel && e.to_label == to_label && e.to_key == to)
    }

    #[test]
    fn every_event_is_a_node_in_its_chain_with_its_causes() {
        let mut log = MemoryLog::new();
        let events = run_commands::<Document>(
            &mut log,
            "document",
            "d1",
            &[
                (
                    "Create",
                    r#"{"title":"T","content_cid":"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e","media_type":"a/b","categories":["invoice"]}"#,
                ),
                ("Tag", r#"{"tag":"finance"}"#),
                ("AttachText", r#"{"text":"pay 42"}"#),
                (
                    "Classify",
                    r#"{"category":"invoice","confidence":0.9,"classified_by":"op"}"#,
                ),
            ],
        );
        let first = project(&events[0]);
        assert!(first
            .nodes
            .iter()
            .any(|n| n.label == "Event" && n.key == events[0].cid.to_string()));
        assert!(has_edge(
            &first,
            &events[0].cid.to_string(),
            "OF",
            "Entity",
            "document/d1"
        ));
        assert!(has_edge(
            &first,
            &events[0].cid.to_string(),
            "CAUSED_BY",
            "Command",
            "cmd-d1-0"
        ));
        assert!(has_edge(
            &first,
            "document/d1",
            "HAS_CONTENT",
            "Object",
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        ));
        let tagged = project(&events[1]);
        assert!(has_edge(
            &tagged,
            &events[1].cid.to_string(),
            "FOLLOWS",
            "Event",
            &events[0].cid.to_string()
        ));
        assert!(has_edge(&tagged, "document/d1", "TAGGED", "Tag", "finance"));
        assert!(has_edge(
            &project(&events[3]),
            "document/d1",
            "CLASSIFIED_AS",
            "Category",
            "invoice"
        ));
        // Deterministic: the same event always yields the same delta.
        assert_eq!(project(&events[1]), tagged);
    }

    #[test]
    fn packages_link_builds_store_paths_and_deployments() {
        let out = "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0";
        let mut log = MemoryLog::new();
        let steps = crate::package::example_pipeline(
            out,
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            "host-x",
            true,
        );
        let steps: Vec<(&str, &str)> = steps.iter().map(|(n, j)| (*n, j.as_str())).collect();
        let events = run_commands::<Package>(&mut log, "package", "hello", &steps);
        let mut all = GraphDelta::default();
        events.iter().for_each(|e| all.extend(project(e)));
        let p = "package/hello";
        assert!(has_edge(
            &all,
            p,
            "FROM_COMMIT",
            "Commit",
            "0123456789abcdef0123456789abcdef01234567"
        ));
        assert!(has_edge(&all, p, "HAS_BUILD", "Build", "package/hello#1"));
        assert!(has_edge(&all, p, "HAS_BUILD", "Build", "package/hello#2"));
        let status = |key: &str| {
            all.nodes
                .iter()
                .filter(|n| n.key == key)
                .flat_map(|n| n.props.iter())
                .filter(|(k, _)| *k == "status")
                .map(|(_, v)| v.clone())
                .next_back()
        };
        assert_eq!(status("package/hello#1"), Some(Prop::Text("failed".into())));
        assert_eq!(
            status("package/hello#2"),
            Some(Prop::Text("succeeded".into()))
        );
        assert!(has_edge(
            &all,
            "package/hello#2",
            "PRODUCED",
            "StorePath",
            out
        ));
        assert!(has_edge(&all, p, "PUBLISHED_AS", "StorePath", out));
        let deployed = events.last().unwrap().cid.to_string();
        assert!(has_edge(&all, p, "DEPLOYED_AS", "Deployment", &deployed));
        assert!(has_edge(&all, &deployed, "ON_HOST", "Host", "host-x"));
        for n in &all.nodes {
            assert!(LABELS.contains(&n.label), "{} is a known label", n.label);
        }
        for e in &all.edges {
            assert!(LABELS.contains(&e.from_label) && LABELS.contains(&e.to_label));
        }
    }
}
