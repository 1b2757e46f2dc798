//! `cim ask`: the documents nearest to a question in the agent's conceptual space.
//!
//! The question is embedded by the inference provider with the model the agent uses, and
//! compared (cosine) with the embeddings the agent stored on document nodes in the graph.

use std::time::Duration;

use anyhow::Context as _;
use cim_wrpc::bindings::cim::ecs::graph::{Property, Value};
use cim_wrpc::bindings::cim::ecs::inference;

use crate::graph::{cell, graph_query};
use crate::Cli;

/// The component id of the inference provider in the CIM manifests.
pub const INFERENCE_ID: &str = "cim-inference";

const EMBED_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a question is not asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// Nothing to embed.
    #[error("the question is empty")]
    EmptyQuestion,
    /// `--top 0` would show nothing whatever the lattice holds.
    #[error("--top must be at least 1")]
    NoneWanted,
}

/// Checks a question before anything is sent.
pub fn check_question(question: &str, top: usize) -> Result<(), AskError> {
    if question.trim().is_empty() {
        return Err(AskError::EmptyQuestion);
    }
    if top == 0 {
        return Err(AskError::NoneWanted);
    }
    Ok(())
}

/// The `top` documents most similar to `question`, with their cosine similarity, best first.
/// An empty question or `top` 0 is refused before anything is sent ([`check_question`]).
pub async fn nearest(
    nats: &async_nats::Client,
    lattice: &str,
    question: &str,
    model: &str,
    top: usize,
) -> anyhow::Result<Vec<(String, f64)>> {
    check_question(question, top)?;
    let prefix = format!("{lattice}.{INFERENCE_ID}");
    let client = wrpc_transport_nats::Client::new(nats.clone(), prefix.clone(), None)
        .await
        .context("cannot create a wRPC client")?;
    let vectors = tokio::time::timeout(
        EMBED_TIMEOUT,
        inference::embed(&client, None, model, &[question]),
    )
    .await
    .with_context(|| format!("no answer from {prefix} in time"))?
    .with_context(|| format!("wRPC call to {prefix} failed (is the inference provider deployed?)"))?
    .map_err(|e| anyhow::anyhow!("embedding the question: {}", cim_wrpc::error_in(e)))?;
    let query = vectors
        .into_iter()
        .next()
        .context("the inference provider returned no embedding")?;
    let rows = graph_query(
        nats,
        lattice,
        cim_model::agent::EMBEDDINGS_QUERY,
        &[Property {
            name: "model".into(),
            value: Value::Text(model.into()),
        }],
    )
    .await?
    .map_err(|e| anyhow::anyhow!("reading embeddings from the graph: {e}"))?;
    let mut scored: Vec<(String, f64)> = rows
        .into_iter()
        .filter_map(|row| match (cell(&row, "key"), cell(&row, "embedding")) {
            (Some(Value::Text(key)), Some(Value::Floats(v))) => {
                let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
                Some((key.clone(), cim_model::agent::cosine(&query, &v)))
            }
            _ => None,
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(top);
    Ok(scored)
}

/// `cim ask "<question>"`: prints the nearest documents with their scores.
pub async fn print_nearest(
    ctx: &Cli,
    question: &str,
    model: &str,
    top: usize,
) -> anyhow::Result<()> {
    check_question(question, top)?;
    let nats = ctx.connect(crate::Role::Client).await?;
    let found = nearest(&nats, ctx.lattice(), question, model, top).await?;
    if found.is_empty() {
        println!("no document has an embedding yet (the agent embeds a document's text when it is attached)");
    }
    for (key, score) in found {
        println!("{score:.3}  {key}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_blank_question_is_refused() {
        assert_eq!(check_question("", 5), Err(AskError::EmptyQuestion));
        assert_eq!(check_question(" \t\n", 5), Err(AskError::EmptyQuestion));
    }

    #[test]
    fn asking_for_no_documents_is_refused() {
        assert_eq!(check_question("invoices?", 0), Err(AskError::NoneWanted));
        assert_eq!(check_question("invoices?", 1), Ok(()));
    }
}
