//! Runs a document (seed 004) and a package (seed 002) through their lifecycles in the
//! wasmtime component host and prints every event with its CID chain.
//!
//! `cargo run -p cim-tests --example lifecycle` (or `scripts/run`).

use anyhow::{bail, Context};
use cim_domain::{verify_chain, EntityRef};
use cim_tests::{command, EntityHost};

fn drive(component: &str, id: &str, steps: &[(&str, String)]) -> anyhow::Result<()> {
    let mut host = EntityHost::load(component).with_context(|| format!("loading {component}"))?;
    println!("\n{component}/{id}");
    for (name, payload) in steps {
        match host.handle(&command(component, id, name, payload, None))? {
            Ok(events) => {
                for e in events {
                    println!("  v{:<2} {:<22} {}  <- {}", e.version, e.name, e.cid, name);
                }
            }
            Err(e) => bail!("{component}/{id} refused {name}: {e:?}"),
        }
    }
    let entity = EntityRef::new(component, id)?;
    let events = host.backend.log.events(&entity);
    verify_chain(events).context("chain verification")?;
    println!("  chain of {} events verified", events.len());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let content = cim_domain::object_cid(b"%PDF-1.7 invoice 42").to_string();
    drive(
        "document",
        "invoice-42",
        &[
            (
                "Create",
                format!(
                    r#"{{"title":"Invoice 42","content_cid":"{content}","media_type":"application/pdf","categories":["invoice","contract"]}}"#
                ),
            ),
            (
                "AttachText",
                r#"{"text":"Please pay 42 EUR by Friday."}"#.into(),
            ),
            (
                "Classify",
                r#"{"category":"invoice","confidence":0.93,"classified_by":"operator"}"#.into(),
            ),
            ("Tag", r#"{"tag":"finance"}"#.into()),
            ("Archive", r#"{"reason":"paid"}"#.into()),
        ],
    )?;
    let out = "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0";
    let steps = cim_model::package::example_pipeline(out, &content, "host-x", false);
    drive("package", "hello", &steps)?;
    Ok(())
}
