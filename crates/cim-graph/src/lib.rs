//! The CIM knowledge graph on a Neo4j-compatible Bolt server, through `neo4rs`.
//!
//! - [`Graph::merge_nodes`] / [`Graph::merge_edges`]: batched `UNWIND $rows AS row MERGE …`,
//!   one statement per label (or label/type/label triple), values only as parameters; labels
//!   and relationship types pass [`cypher::identifier`] before they touch a statement.
//! - [`Graph::query_read_only`]: user Cypher, refused unless [`cypher::ensure_read_only`]
//!   accepts it, and run in a transaction that is rolled back.
//! - [`Graph::apply`]: writes a projection delta ([`cim_model::graph::GraphDelta`]) in one
//!   transaction.
//! - `key` uniqueness constraints are created idempotently per label, on first use.
//!
//! Production targets Neo4j 5; tests run against ArcadeDB's Bolt plugin (see the provider
//! README for what differs).

pub mod cypher;
mod value;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use neo4rs::{query, BoltMap, BoltType, ConfigBuilder, Query};
use tokio::sync::Mutex;
use tracing::debug;

pub use value::{bolt_to_json, Value};

/// Why a graph operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The input was refused before reaching the server (bad identifier, write in a query).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The server refused the statement (syntax, constraint).
    #[error("rejected by the graph: {0}")]
    Rejected(String),
    /// The server could not be reached, refused the credentials or timed out.
    #[error("graph unavailable: {0}")]
    Unavailable(String),
}

impl From<GraphError> for cim_domain::EcsError {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Invalid(m) => cim_domain::EcsError::Invalid(m),
            GraphError::Rejected(m) => cim_domain::EcsError::Rejected(m),
            GraphError::Unavailable(m) => cim_domain::EcsError::Unavailable(m),
        }
    }
}

fn server_error(what: &str, e: neo4rs::Error) -> GraphError {
    match e {
        neo4rs::Error::Neo4j(e) => {
            GraphError::Rejected(format!("{what}: {} ({})", e.message(), e.code()))
        }
        other => GraphError::Unavailable(format!("{what}: {other}")),
    }
}

/// How to reach the graph. The password is never logged (`Debug` hides it).
#[derive(Clone)]
pub struct GraphConfig {
    /// Bolt URI, e.g. `bolt://127.0.0.1:7687`.
    pub uri: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database name (`neo4j` by default on Neo4j).
    pub database: String,
    /// Deadline of each operation (neo4rs 0.8 retries refused connections for up to a minute).
    pub timeout: Duration,
}

impl std::fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConfig")
            .field("uri", &self.uri)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A node to merge by label and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Label.
    pub label: String,
    /// Value of the unique `key` property.
    pub key: String,
    /// Properties to set (not `key`).
    pub props: Vec<(String, Value)>,
}

/// An edge to merge; missing end nodes are created.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Start node label.
    pub from_label: String,
    /// Start node key.
    pub from_key: String,
    /// Relationship type.
    pub rel: String,
    /// End node label.
    pub to_label: String,
    /// End node key.
    pub to_key: String,
    /// Properties to set on the relationship.
    pub props: Vec<(String, Value)>,
}

/// One result row: columns (in `RETURN` order, else sorted by name) and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, in column order.
    pub values: Vec<Value>,
}

/// A connection pool to the graph.
pub struct Graph {
    inner: neo4rs::Graph,
    database: String,
    timeout: Duration,
    constrained: Mutex<HashSet<String>>,
}

fn props_map(props: &[(String, Value)]) -> Result<BoltType, GraphError> {
    let mut map = BoltMap::new();
    for (name, value) in props {
        cypher::identifier("property name", name)?;
        if name == "key" {
            return Err(GraphError::Invalid(
                "`key` identifies the node; it cannot be set as a property".into(),
            ));
        }
        map.put(name.as_str().into(), value.to_bolt());
    }
    Ok(BoltType::Map(map))
}

impl Graph {
    /// Connects and checks the server answers (within the configured timeout).
    pub async fn connect(config: &GraphConfig) -> Result<Self, GraphError> {
        let neo = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .db(config.database.as_str())
            .max_connections(8)
            .build()
            .map_err(|e| GraphError::Invalid(format!("graph connection settings: {e}")))?;
        let inner = tokio::time::timeout(config.timeout, neo4rs::Graph::connect(neo))
            .await
            .map_err(|_| GraphError::Unavailable(format!("{} did not answer", config.uri)))?
            .map_err(|e| GraphError::Unavailable(format!("connecting to {}: {e}", config.uri)))?;
        let graph = Self {
            inner,
            database: config.database.clone(),
            timeout: config.timeout,
            constrained: Mutex::new(HashSet::new()),
        };
        graph
            .run("checking the connection", query("RETURN 1"))
            .await?;
        Ok(graph)
    }

    async fn run(&self, what: &str, q: Query) -> Result<(), GraphError> {
        tokio::time::timeout(self.timeout, self.inner.run_on(&self.database, q))
            .await
            .map_err(|_| GraphError::Unavailable(format!("{what}: timed out")))?
            .map_err(|e| server_error(what, e))
    }

    /// Creates the `key` uniqueness constraint of `label` if it does not exist (once per label
    /// and process).
    pub async fn ensure_key_constraint(&self, label: &str) -> Result<(), GraphError> {
        let label = cypher::identifier("label", label)?;
        if self.constrained.lock().await.contains(label) {
            return Ok(());
        }
        let statement = format!(
            "CREATE CONSTRAINT cim_{label}_key IF NOT EXISTS FOR (n:{label}) REQUIRE n.key IS UNIQUE"
        );
        self.run("creating a key constraint", query(&statement))
            .await?;
        self.constrained.lock().await.insert(label.to_owned());
        Ok(())
    }

    /// Merge statements for `nodes`, one per label.
    async fn node_statements(&self, nodes: &[Node]) -> Result<Vec<Query>, GraphError> {
        let mut by_label: BTreeMap<&str, Vec<BoltType>> = BTreeMap::new();
        for n in nodes {
            let label = cypher::identifier("label", &n.label)?;
            let mut row = BoltMap::new();
            row.put("key".into(), n.key.as_str().into());
            row.put("props".into(), props_map(&n.props)?);
            by_label.entry(label).or_default().push(BoltType::Map(row));
        }
        let mut out = Vec::new();
        for (label, rows) in by_label {
            self.ensure_key_constraint(label).await?;
            out.push(
                query(&format!(
                    "UNWIND $rows AS row MERGE (n:{label} {{key: row.key}}) SET n += row.props"
                ))
                .param("rows", rows),
            );
        }
        Ok(out)
    }

    /// Merge statements for `edges`, one per (start label, type, end label).
    async fn edge_statements(&self, edges: &[Edge]) -> Result<Vec<Query>, GraphError> {
        let mut by_shape: BTreeMap<(&str, &str, &str), Vec<BoltType>> = BTreeMap::new();
        for e in edges {
            let shape = (
                cypher::identifier("label", &e.from_label)?,
                cypher::identifier("relationship type", &e.rel)?,
                cypher::identifier("label", &e.to_label)?,
            );
            let mut row = BoltMap::new();
            row.put("from".into(), e.from_key.as_str().into());
            row.put("to".into(), e.to_key.as_str().into());
            row.put("props".into(), props_map(&e.props)?);
            by_shape.entry(shape).or_default().push(BoltType::Map(row));
        }
        let mut out = Vec::new();
        for ((from, rel, to), rows) in by_shape {
            self.ensure_key_constraint(from).await?;
            self.ensure_key_constraint(to).await?;
            out.push(
                query(&format!(
                    "UNWIND $rows AS row \
                     MERGE (a:{from} {{key: row.from}}) \
                     MERGE (b:{to} {{key: row.to}}) \
                     MERGE (a)-[r:{rel}]->(b) SET r += row.props"
                ))
                .param("rows", rows),
            );
        }
        Ok(out)
    }

    async fn in_transaction(&self, what: &str, statements: Vec<Query>) -> Result<(), GraphError> {
        let work = async {
            let mut txn = self
                .inner
                .start_txn_on(self.database.as_str())
                .await
                .map_err(|e| server_error(what, e))?;
            for q in statements {
                if let Err(e) = txn.run(q).await {
                    let _ = txn.rollback().await;
                    return Err(server_error(what, e));
                }
            }
            txn.commit().await.map_err(|e| server_error(what, e))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| GraphError::Unavailable(format!("{what}: timed out")))?
    }

    /// Merges `nodes` (batched per label) in one transaction; returns how many were given.
    pub async fn merge_nodes(&self, nodes: &[Node]) -> Result<u64, GraphError> {
        let statements = self.node_statements(nodes).await?;
        self.in_transaction("merging nodes", statements).await?;
        Ok(nodes.len() as u64)
    }

    /// Merges `edges` (batched per shape) in one transaction; returns how many were given.
    pub async fn merge_edges(&self, edges: &[Edge]) -> Result<u64, GraphError> {
        let statements = self.edge_statements(edges).await?;
        self.in_transaction("merging edges", statements).await?;
        Ok(edges.len() as u64)
    }

    /// Writes nodes and edges in one transaction.
    pub async fn apply(&self, nodes: &[Node], edges: &[Edge]) -> Result<(), GraphError> {
        let mut statements = self.node_statements(nodes).await?;
        statements.extend(self.edge_statements(edges).await?);
        debug!(
            statements = statements.len(),
            nodes = nodes.len(),
            edges = edges.len(),
            "applying"
        );
        self.in_transaction("applying a projection batch", statements)
            .await
    }

    /// Runs a read-only query with parameters; the transaction is always rolled back.
    pub async fn query_read_only(
        &self,
        cypher_text: &str,
        params: &[(String, Value)],
    ) -> Result<Vec<Row>, GraphError> {
        cypher::ensure_read_only(cypher_text)?;
        let order = cypher::return_columns(cypher_text);
        let mut q = query(cypher_text);
        for (name, value) in params {
            q = q.param(cypher::identifier("parameter name", name)?, value.to_bolt());
        }
        let work = async {
            let mut txn = self
                .inner
                .start_txn_on(self.database.as_str())
                .await
                .map_err(|e| server_error("query", e))?;
            let mut rows = Vec::new();
            let outcome = async {
                let mut stream = txn.execute(q).await.map_err(|e| server_error("query", e))?;
                while let Some(row) = stream
                    .next(txn.handle())
                    .await
                    .map_err(|e| server_error("query", e))?
                {
                    let mut cells: BTreeMap<String, BoltType> = row
                        .to()
                        .map_err(|e| GraphError::Unavailable(format!("reading a row: {e}")))?;
                    // The Bolt client keeps no column order: take RETURN's when it names
                    // exactly these columns, else sort them by name.
                    let columns: Vec<String> = match &order {
                        Some(order)
                            if order.len() == cells.len()
                                && order.iter().all(|c| cells.contains_key(c)) =>
                        {
                            order.clone()
                        }
                        _ => cells.keys().cloned().collect(),
                    };
                    let values = columns
                        .iter()
                        .map(|c| {
                            cells
                                .remove(c)
                                .map_or(Value::Null, |v| Value::from_bolt(&v))
                        })
                        .collect();
                    rows.push(Row { columns, values });
                }
                Ok::<_, GraphError>(())
            }
            .await;
            let _ = txn.rollback().await;
            outcome.map(|()| rows)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| GraphError::Unavailable("query: timed out".into()))?
    }
}

/// The writes of a projection delta, deduplicated: one node per (label, key) with its
/// properties merged in order (later values win, as sequential `SET`s would), one edge per
/// (start, type, end).
pub fn delta_writes(delta: &cim_model::graph::GraphDelta) -> (Vec<Node>, Vec<Edge>) {
    use cim_model::graph::Prop;
    let value = |p: &Prop| match p {
        Prop::Text(s) => Value::Text(s.clone()),
        Prop::Int(i) => Value::Int(*i),
        Prop::Float(f) => Value::Float(*f),
        Prop::Bool(b) => Value::Bool(*b),
        Prop::Texts(v) => Value::Texts(v.clone()),
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for n in &delta.nodes {
        let at = *index.entry((n.label, n.key.as_str())).or_insert_with(|| {
            nodes.push(Node {
                label: n.label.to_owned(),
                key: n.key.clone(),
                props: Vec::new(),
            });
            nodes.len() - 1
        });
        for (name, p) in &n.props {
            let props = &mut nodes[at].props;
            match props.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value(p),
                None => props.push(((*name).to_owned(), value(p))),
            }
        }
    }
    let mut seen = HashSet::new();
    let edges = delta
        .edges
        .iter()
        .filter(|e| {
            seen.insert((
                e.from_label,
                e.from_key.as_str(),
                e.rel,
                e.to_label,
                e.to_key.as_str(),
            ))
        })
        .map(|e| Edge {
            from_label: e.from_label.to_owned(),
            from_key: e.from_key.clone(),
            rel: e.rel.to_owned(),
            to_label: e.to_label.to_owned(),
            to_key: e.to_key.clone(),
            props: e
                .props
                .iter()
                .map(|(k, p)| ((*k).to_owned(), value(p)))
                .collect(),
        })
        .collect();
    (nodes, edges)
}
