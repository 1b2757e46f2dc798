//! `cim demo`: both seed scenarios on the local lattice, then a summary.
//!
//! 1. Seed 004: three documents (two invoices, a recipe) are stored by CID and their text
//!    attached; the agent embeds and classifies each, links the similar ones, and `cim ask`
//!    finds them by meaning.
//! 2. Seed 002: a throwaway git repository's commit goes through review, a Nix build by the
//!    lattice's pipeline, publication and deployment.
//!
//! Every entity's chain is verified at the end; the summary counts events and graph size.

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use cim_domain::{EntityRef, RecordedEvent};
use cim_model::document::DocumentEvent;
use cim_model::package::PackageEvent;

use crate::call::{call_answered, command_for};
use crate::events::read_events;
use crate::graph::{graph_query, show};
use crate::pipeline::{submit, Submission};
use crate::{ask, objects, Cli, UpOptions};

/// The flake the demo's package builds (no inputs: it builds offline).
const HELLO_FLAKE: &str = include_str!("../../../tests/flakes/hello/flake.nix");

const DOCUMENTS: [(&str, &str); 3] = [
    (
        "consulting-march",
        "Invoice 1001: please pay 250 EUR for consulting services by March 31.",
    ),
    (
        "consulting-april",
        "Invoice 1002: payment of 300 EUR for consulting services is due by April 30.",
    ),
    (
        "bread",
        "Recipe: mix flour, water and yeast, let the dough rise, then bake the bread for 40 minutes.",
    ),
];

async fn send(
    nats: &async_nats::Client,
    lattice: &str,
    id: &str,
    name: &str,
    json: &str,
) -> anyhow::Result<()> {
    call_answered(
        nats,
        lattice,
        &command_for("document", id, name, json, None),
        crate::call::FIRST_DEADLINE,
        Duration::from_secs(60),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("document/{id} {name}: {e}"))?;
    Ok(())
}

/// Waits for the agent's outcome on a document's text.
async fn agent_outcome(nats: &async_nats::Client, entity: &EntityRef) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let events = read_events(nats.clone(), entity).await?;
        for e in &events {
            match <cim_model::document::Document as cim_domain::Aggregate>::decode_event(
                e.name.as_str(),
                e.schema_version,
                &e.payload,
            )? {
                DocumentEvent::DocumentClassified {
                    category,
                    confidence,
                    model,
                    prompt_cid,
                    ..
                } => {
                    return Ok(format!(
                        "{category} ({confidence:.2}) by {}, prompt {}",
                        model.unwrap_or_else(|| "?".into()),
                        prompt_cid.unwrap_or_else(|| "-".into())
                    ))
                }
                DocumentEvent::ClassificationFailed { reason, .. } => {
                    return Ok(format!("classification failed: {reason}"))
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("the agent recorded nothing for {entity} in 300 s (is a model server reachable? see `cim status` and .cim/host.log)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Process::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=cim-demo",
            "-c",
            "user.email=demo@cim.local",
        ])
        .args(args)
        .status()
        .context("cannot run git")?;
    anyhow::ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

async fn count(nats: &async_nats::Client, lattice: &str, cypher: &str) -> anyhow::Result<String> {
    let rows = graph_query(nats, lattice, cypher, &[])
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(rows
        .first()
        .and_then(|r| r.values.first())
        .map(show)
        .unwrap_or_else(|| "0".into()))
}

/// `cim demo`: brings the lattice up (as `cim up` with `opts`) and runs both scenarios.
pub async fn demo(ctx: &Cli, opts: &UpOptions) -> anyhow::Result<()> {
    crate::up(ctx, opts).await?;
    let ctx = Cli::new(ctx.state_dir().canonicalize()?, ctx.lattice().to_owned());
    let nats = ctx.connect(crate::Role::Client).await?;
    let lattice = ctx.lattice().to_owned();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut entities: Vec<EntityRef> = Vec::new();

    println!("\n== seed 004: documents, the agent, the conceptual space");
    for (name, text) in DOCUMENTS {
        let id = format!("{name}-{run}");
        let content = objects::put_object(&nats, &lattice, text.as_bytes().to_vec(), "text/plain")
            .await?
            .map_err(|e| anyhow::anyhow!("storing {id}'s content: {e}"))?;
        send(
            &nats,
            &lattice,
            &id,
            "Create",
            &serde_json::json!({
                "title": name, "content_cid": content, "media_type": "text/plain",
                "categories": ["invoice", "recipe", "contract"],
            })
            .to_string(),
        )
        .await?;
        send(
            &nats,
            &lattice,
            &id,
            "AttachText",
            &serde_json::json!({ "text": text }).to_string(),
        )
        .await?;
        println!("document/{id}: content {content}, text attached");
        entities.push(EntityRef::new("document", &id)?);
    }
    let mut classifications = Vec::new();
    for entity in &entities {
        let outcome = agent_outcome(&nats, entity).await?;
        println!("{entity} → {outcome}");
        classifications.push(format!("{entity} → {outcome}"));
    }
    let refused = call_answered(
        &nats,
        &lattice,
        &command_for(
            "document",
            entities[0].id.as_str(),
            "AttachText",
            r#"{"text":"again"}"#,
            None,
        ),
        crate::call::FIRST_DEADLINE,
        Duration::from_secs(60),
    )
    .await?;
    if let Err(e) = refused {
        println!("a refused command is a typed error and stores nothing: {e}");
    }
    let similar = graph_query(
        &nats,
        &lattice,
        "MATCH (a:Entity)-[r:SIMILAR_TO]->(b:Entity) RETURN a.key AS a, b.key AS b, r.score AS score",
        &[],
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run_tag = format!("-{run}");
    for row in similar.iter().filter(|r| {
        r.values
            .iter()
            .any(|v| matches!(v, cim_wrpc::bindings::cim::ecs::graph::Value::Text(t) if t.ends_with(&run_tag)))
    }) {
        let cells: Vec<String> = row
            .columns
            .iter()
            .zip(&row.values)
            .map(|(c, v)| format!("{c}={}", show(v)))
            .collect();
        println!("SIMILAR_TO {}", cells.join(" "));
    }
    let question = "what do I owe for consulting?";
    println!("cim ask {question:?}:");
    for (key, score) in ask::nearest(&nats, &lattice, question, "all-minilm", 3).await? {
        println!("  {score:.3}  {key}");
    }

    println!("\n== seed 002: a commit through review, a Nix build, publication and deployment");
    let repo = crate::lattice::repos_dir(ctx.state_dir()).join(format!("hello-{run}"));
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("flake.nix"), HELLO_FLAKE)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "flake.nix"])?;
    git(&repo, &["commit", "-q", "-m", "hello-cim: first version"])?;
    let package = format!("hello-{run}");
    submit(
        &ctx,
        &Submission {
            repo: repo.clone(),
            id: Some(package.clone()),
            attribute: "packages.x86_64-linux.default".into(),
            reviewer: "cim-reviewer".into(),
            context: "production".into(),
            host: "host-1".into(),
            build_timeout: Duration::from_secs(900),
        },
    )
    .await?;
    let package = EntityRef::new("package", &package)?;
    entities.push(package.clone());

    println!("\n== summary");
    let mut written = 0;
    let mut store_path = String::from("-");
    for entity in &entities {
        let events: Vec<RecordedEvent> = read_events(nats.clone(), entity).await?;
        written += events.len();
        for e in &events {
            if let Ok(PackageEvent::PackagePublished { store_path: p, .. }) =
                <cim_model::package::Package as cim_domain::Aggregate>::decode_event(
                    e.name.as_str(),
                    e.schema_version,
                    &e.payload,
                )
            {
                store_path = p;
            }
        }
    }
    println!(
        "events written: {written} across {} entities; every CID chain verified",
        entities.len()
    );
    for c in &classifications {
        println!("classified: {c}");
    }
    println!("build: {package} published {store_path}");
    println!(
        "graph: {} nodes, {} relationships (projection is asynchronous; `cim graph export` shows it all)",
        count(&nats, &lattice, "MATCH (n) RETURN count(n) AS n").await?,
        count(&nats, &lattice, "MATCH ()-[r]->() RETURN count(r) AS n").await?
    );
    // A repository of one's own to submit (the README's `cim pipeline submit .cim/repos/hello`):
    // made once, never submitted by the demo.
    let hello = crate::lattice::repos_dir(ctx.state_dir()).join("hello");
    if !hello.join(".git").exists() {
        std::fs::create_dir_all(&hello)?;
        std::fs::write(hello.join("flake.nix"), HELLO_FLAKE)?;
        git(&hello, &["init", "-q", "-b", "main"])?;
        git(&hello, &["add", "flake.nix"])?;
        git(&hello, &["commit", "-q", "-m", "hello: first version"])?;
    }
    println!(
        "a repository to submit yourself: `cim pipeline submit {}`",
        hello.display()
    );
    println!("the lattice keeps running: `cim status`, `cim events <kind>/<id>`, `cim down`");
    println!("see it in a browser: `cim ui`, then open http://127.0.0.1:8480/");
    Ok(())
}
