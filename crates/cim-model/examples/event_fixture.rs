//! Writes `tests/fixtures/events-0.1.jsonl`: a document's and a package's histories as the
//! event store keeps them (one `RecordedEvent` per line, payloads as the rules encode them), by
//! the rules of this version. The fixture is committed; `tests/events_of_0_1.rs` reads it, so
//! events written before a change of the rules' types (issue 16: types generated from WIT)
//! must still rehydrate after it.
//!
//! `cargo run -p cim-model --example event_fixture` (only to write a fixture for a new
//! version; never to refresh this one, which would defeat its purpose).

use std::io::Write;

use cim_domain::testing::{run_commands, MemoryLog};
use cim_model::document::Document;
use cim_model::package::Package;

const CONTENT: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut log = MemoryLog::new();
    let create = format!(
        r#"{{"title":"Invoice 42","content_cid":"{CONTENT}","media_type":"application/pdf","categories":["invoice","receipt"]}}"#
    );
    let failure = format!(
        r#"{{"reason":"no category in the answer","model":"llama3.2","prompt_cid":"{CONTENT}","answer":"maybe"}}"#
    );
    let classify = format!(
        r#"{{"category":"invoice","confidence":0.875,"classified_by":"agent","model":"llama3.2","prompt_cid":"{CONTENT}"}}"#
    );
    let mut events = run_commands::<Document>(
        &mut log,
        "document",
        "invoice-42",
        &[
            ("Create", &create),
            ("AttachText", r#"{"text":"Pay 42 EUR by Friday"}"#),
            ("RecordClassificationFailure", &failure),
            ("Classify", &classify),
            ("Tag", r#"{"tag":"finance"}"#),
            ("Tag", r#"{"tag":"q4-2026"}"#),
            ("Archive", r#"{"reason":"paid"}"#),
        ],
    );
    let steps = cim_model::package::example_pipeline(
        "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0",
        CONTENT,
        "host-a",
        true,
    );
    let steps: Vec<(&str, &str)> = steps.iter().map(|(n, j)| (*n, j.as_str())).collect();
    events.extend(run_commands::<Package>(
        &mut log, "package", "hello", &steps,
    ));
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events-0.1.jsonl");
    if path.exists() {
        return Err(format!(
            "{} exists: a fixture is written once, by the version it records",
            path.display()
        )
        .into());
    }
    let mut out = std::fs::File::create(&path)?;
    for ev in &events {
        writeln!(out, "{}", serde_json::to_string(ev)?)?;
    }
    println!("{} events written to {}", events.len(), path.display());
    Ok(())
}
