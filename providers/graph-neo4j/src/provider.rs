//! Provider state: the graph connection (opened lazily, so the provider starts even while the
//! database is still coming up), the projection task, and the `cim:ecs/graph` handler.

use std::sync::{Arc, OnceLock};

use cim_domain::EcsError as DomainError;
use cim_graph::{Edge, Graph, Node, Value};
use cim_nats::EventStore;
use cim_wrpc::{error_out, EcsError};
use tokio::sync::{Mutex, OnceCell};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wasmcloud_provider_sdk::{get_connection, Context, Provider, ProviderInitConfig};

use crate::bindings::exports::cim::ecs::graph::{self as wit, Handler};
use crate::config::ProviderConfig;
use crate::projection;

/// The provider's state.
#[derive(Clone, Default)]
pub struct GraphProvider {
    config: Arc<OnceLock<ProviderConfig>>,
    graph: Arc<OnceCell<Arc<Graph>>>,
    projection: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl GraphProvider {
    /// The graph, connected on first use.
    pub async fn graph(&self) -> Result<Arc<Graph>, DomainError> {
        let config = self
            .config
            .get()
            .ok_or_else(|| DomainError::Unavailable("the provider is not configured".into()))?;
        self.graph
            .get_or_try_init(|| async {
                let graph = Graph::connect(&config.graph).await?;
                info!(uri = %config.graph.uri, database = %config.graph.database, "connected to the graph");
                Ok::<_, DomainError>(Arc::new(graph))
            })
            .await
            .cloned()
    }
}

impl GraphProvider {
    /// Starts the projection (if configured). Call after the provider joined the lattice:
    /// the projection uses the lattice connection, which does not exist yet during `init`.
    pub async fn start_projection(&self) {
        let Some(cfg) = self.config.get().and_then(|c| c.projection.clone()) else {
            return;
        };
        let me = self.clone();
        let task = tokio::spawn(async move {
            let (store, graph) = loop {
                let nats = get_connection().nats.as_ref().clone();
                match (EventStore::open(nats).await, me.graph().await) {
                    (Ok(store), Ok(graph)) => break (store, graph),
                    (Err(e), _) | (_, Err(e)) => {
                        warn!(error = %e, "graph projection waiting for its store and graph");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                }
            };
            projection::run(store, graph, cfg).await;
        });
        if let Some(old) = self.projection.lock().await.replace(task) {
            old.abort();
        }
    }
}

impl Provider for GraphProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = ProviderConfig::from_config(init.get_config())?;
        info!(config = ?config.graph, projection = ?config.projection, "graph provider configured");
        let _ = self.config.set(config);
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        if let Some(task) = self.projection.lock().await.take() {
            task.abort();
        }
        Ok(())
    }
}

fn value_in(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Integer(i) => Value::Int(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Texts(v) => Value::Texts(v),
        wit::Value::Floats(v) => Value::Floats(v),
    }
}

fn value_out(v: Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::Bool(b) => wit::Value::Boolean(b),
        Value::Int(i) => wit::Value::Integer(i),
        Value::Float(f) => wit::Value::Float(f),
        Value::Text(s) => wit::Value::Text(s),
        Value::Texts(v) => wit::Value::Texts(v),
        Value::Floats(v) => wit::Value::Floats(v),
    }
}

fn props_in(props: Vec<wit::Property>) -> Vec<(String, Value)> {
    props
        .into_iter()
        .map(|p| (p.name, value_in(p.value)))
        .collect()
}

impl Handler<Option<Context>> for GraphProvider {
    async fn merge_nodes(
        &self,
        _cx: Option<Context>,
        nodes: Vec<wit::Node>,
    ) -> anyhow::Result<Result<u64, EcsError>> {
        let nodes: Vec<Node> = nodes
            .into_iter()
            .map(|n| Node {
                label: n.label,
                key: n.key,
                props: props_in(n.properties),
            })
            .collect();
        let result = async { Ok(self.graph().await?.merge_nodes(&nodes).await?) }.await;
        Ok(result.map_err(|e: DomainError| error_out(e)))
    }

    async fn merge_edges(
        &self,
        _cx: Option<Context>,
        edges: Vec<wit::Edge>,
    ) -> anyhow::Result<Result<u64, EcsError>> {
        let edges: Vec<Edge> = edges
            .into_iter()
            .map(|e| Edge {
                from_label: e.from_label,
                from_key: e.from_key,
                rel: e.rel,
                to_label: e.to_label,
                to_key: e.to_key,
                props: props_in(e.properties),
            })
            .collect();
        let result = async { Ok(self.graph().await?.merge_edges(&edges).await?) }.await;
        Ok(result.map_err(|e: DomainError| error_out(e)))
    }

    async fn query(
        &self,
        _cx: Option<Context>,
        cypher: String,
        params: Vec<wit::Property>,
    ) -> anyhow::Result<Result<Vec<wit::Row>, EcsError>> {
        let params = props_in(params);
        let result = async {
            let rows = self
                .graph()
                .await?
                .query_read_only(&cypher, &params)
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| wit::Row {
                    columns: r.columns,
                    values: r.values.into_iter().map(value_out).collect(),
                })
                .collect())
        }
        .await;
        Ok(result.map_err(|e: DomainError| error_out(e)))
    }
}
