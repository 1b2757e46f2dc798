//! `cim graph`: read-only Cypher against the knowledge graph and an export of its structure,
//! over wRPC (`cim:ecs/graph` on the deployed `cim-graph` provider).

use std::time::Duration;

use anyhow::{bail, Context as _};
use cim_domain::EcsError;
use cim_wrpc::bindings::cim::ecs::graph::{self, Property, Row, Value};
use serde_json::json;

use crate::Cli;

/// The provider id the CIM manifests give the graph.
pub const GRAPH_ID: &str = "cim-graph";
/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses `name=value` into a typed parameter: integers, floats, `true`/`false` and `null`
/// are recognised, anything else is text.
pub fn parse_param(text: &str) -> anyhow::Result<Property> {
    let (name, raw) = text
        .split_once('=')
        .with_context(|| format!("--param {text:?} is not name=value"))?;
    let value = if let Ok(i) = raw.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        Value::Float(f)
    } else {
        match raw {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            "null" => Value::Null,
            _ => Value::Text(raw.to_owned()),
        }
    };
    Ok(Property {
        name: name.to_owned(),
        value,
    })
}

/// Runs a read-only query on the lattice's graph provider.
pub async fn graph_query(
    nats: &async_nats::Client,
    lattice: &str,
    cypher: &str,
    params: &[Property],
) -> anyhow::Result<Result<Vec<Row>, EcsError>> {
    let client =
        wrpc_transport_nats::Client::new(nats.clone(), format!("{lattice}.{GRAPH_ID}"), None)
            .await
            .context("cannot create a wRPC client")?;
    let answer = tokio::time::timeout(QUERY_TIMEOUT, graph::query(&client, None, cypher, params))
        .await
        .with_context(|| format!("no answer from {GRAPH_ID} in time"))?
        .with_context(|| {
            format!("wRPC call to {GRAPH_ID} failed (is the graph provider deployed?)")
        })?;
    Ok(answer.map_err(cim_wrpc::error_in))
}

/// A value as plain text.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Texts(v) => format!("{v:?}"),
        Value::Floats(v) => format!("{v:?}"),
    }
}

/// The value of `column` in `row` (columns are named, not ordered: ArcadeDB returns them in
/// its own order).
pub(crate) fn cell<'a>(row: &'a Row, column: &str) -> Option<&'a Value> {
    row.columns
        .iter()
        .position(|c| c == column)
        .and_then(|i| row.values.get(i))
}

async fn rows(ctx: &Cli, cypher: &str) -> anyhow::Result<Vec<Row>> {
    let nats = ctx.connect(crate::Role::Reader).await?;
    graph_query(&nats, ctx.lattice(), cypher, &[])
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `cim graph <cypher> [--param k=v]…`: prints the rows, tab-separated, with a header.
pub async fn print_query(ctx: &Cli, cypher: &str, params: &[String]) -> anyhow::Result<()> {
    let params = params
        .iter()
        .map(|p| parse_param(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let nats = ctx.connect(crate::Role::Reader).await?;
    let rows = graph_query(&nats, ctx.lattice(), cypher, &params)
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(first) = rows.first() {
        println!("{}", first.columns.join("\t"));
    }
    for r in &rows {
        println!(
            "{}",
            r.values.iter().map(show).collect::<Vec<_>>().join("\t")
        );
    }
    eprintln!("{} row(s)", rows.len());
    Ok(())
}

/// The whole graph: nodes as (key, labels), edges as (from, type, to), sorted.
pub async fn structure(ctx: &Cli) -> anyhow::Result<(Vec<(String, String)>, Vec<[String; 3]>)> {
    let mut nodes: Vec<(String, String)> =
        rows(ctx, "MATCH (n) RETURN n.key AS key, labels(n) AS labels")
            .await?
            .iter()
            .map(|r| {
                let label = match cell(r, "labels") {
                    Some(Value::Texts(l)) => l.join(":"),
                    Some(other) => show(other),
                    None => String::new(),
                };
                (cell(r, "key").map(show).unwrap_or_default(), label)
            })
            .collect();
    nodes.sort();
    let mut edges: Vec<[String; 3]> = rows(
        ctx,
        "MATCH (a)-[r]->(b) RETURN a.key AS from, type(r) AS rel, b.key AS to",
    )
    .await?
    .iter()
    .map(|r| ["from", "rel", "to"].map(|c| cell(r, c).map(show).unwrap_or_default()))
    .collect();
    edges.sort();
    Ok((nodes, edges))
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Renders the structure as Graphviz dot.
pub fn to_dot(nodes: &[(String, String)], edges: &[[String; 3]]) -> String {
    let mut out = String::from("digraph cim {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
    for (key, label) in nodes {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{}\"];\n",
            dot_escape(key),
            dot_escape(label),
            dot_escape(key)
        ));
    }
    for [from, rel, to] in edges {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
            dot_escape(from),
            dot_escape(to),
            dot_escape(rel)
        ));
    }
    out.push_str("}\n");
    out
}

/// Renders the structure as JSON.
pub fn to_json(nodes: &[(String, String)], edges: &[[String; 3]]) -> serde_json::Value {
    json!({
        "nodes": nodes.iter().map(|(k, l)| json!({"key": k, "labels": l.split(':').collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "edges": edges.iter().map(|[f, r, t]| json!({"from": f, "type": r, "to": t})).collect::<Vec<_>>(),
    })
}

/// `cim graph export --format dot|json`.
pub async fn export(ctx: &Cli, format: &str) -> anyhow::Result<()> {
    let (nodes, edges) = structure(ctx).await?;
    match format {
        "dot" => print!("{}", to_dot(&nodes, &edges)),
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&nodes, &edges))?
        ),
        other => bail!("unknown format {other:?}; use dot or json"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed() {
        let v = |t: &str| parse_param(t).unwrap().value;
        assert!(matches!(v("n=3"), Value::Integer(3)));
        assert!(matches!(v("x=0.5"), Value::Float(f) if f == 0.5));
        assert!(matches!(v("b=true"), Value::Boolean(true)));
        assert!(matches!(v("z=null"), Value::Null));
        assert!(matches!(v("host=host-x"), Value::Text(t) if t == "host-x"));
        assert!(matches!(v("q=a=b"), Value::Text(t) if t == "a=b"));
        assert_eq!(parse_param("n=3").unwrap().name, "n");
        assert!(parse_param("novalue").is_err());
    }

    #[test]
    fn a_row_shorter_than_its_columns_has_no_value_instead_of_a_panic() {
        let row = Row {
            columns: vec!["a".into(), "b".into()],
            values: vec![Value::Integer(1)],
        };
        assert!(matches!(cell(&row, "a"), Some(Value::Integer(1))));
        assert!(cell(&row, "b").is_none());
        assert!(cell(&row, "c").is_none());
    }

    #[test]
    fn dot_quotes_are_escaped() {
        let dot = to_dot(
            &[("a\"b".into(), "Tag".into())],
            &[["a\"b".into(), "R".into(), "c".into()]],
        );
        assert!(dot.contains("\"a\\\"b\" -> \"c\" [label=\"R\"]"));
        assert!(dot.starts_with("digraph cim {"));
    }
}
