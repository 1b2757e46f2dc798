//! `cim status`: hosts, components, providers, links and the application's wadm status.

use crate::{lattice::LatticeFile, wadm, Cli};

/// Prints the lattice's inventory.
pub async fn status(ctx: &Cli) -> anyhow::Result<()> {
    let nats = ctx.connect().await?;
    let lattice = ctx.lattice();
    let ctl = wasmcloud_control_interface::ClientBuilder::new(nats.clone())
        .lattice(lattice)
        .build();
    let hosts = ctl
        .get_hosts()
        .await
        .map_err(|e| anyhow::anyhow!("cannot list hosts: {e}"))?;
    println!("lattice {lattice}: {} host(s)", hosts.len());
    for host in hosts.iter().filter_map(|h| h.data()) {
        println!(
            "host {} ({}) {}",
            host.friendly_name(),
            host.id(),
            host.version().unwrap_or_default()
        );
        let inv = ctl
            .get_host_inventory(host.id())
            .await
            .map_err(|e| anyhow::anyhow!("cannot read inventory: {e}"))?;
        if let Some(inv) = inv.data() {
            for c in inv.components() {
                println!(
                    "  component {:<22} {} (max {})",
                    c.id(),
                    c.image_ref(),
                    c.max_instances()
                );
            }
            for p in inv.providers() {
                println!(
                    "  provider  {:<22} {}",
                    p.id(),
                    p.image_ref().unwrap_or_default()
                );
            }
        }
    }
    let links = ctl
        .get_links()
        .await
        .map_err(|e| anyhow::anyhow!("cannot list links: {e}"))?;
    for l in links.data().into_iter().flatten() {
        println!(
            "link {} -> {} {}:{}/{{{}}} ({})",
            l.source_id(),
            l.target(),
            l.wit_namespace(),
            l.wit_package(),
            l.interfaces().join(","),
            l.name()
        );
    }
    if let Ok(info) = LatticeFile::load(&ctx.state_dir().join("lattice.json")) {
        if !info.app.is_empty() {
            let st = wadm::status(&nats, lattice, &info.app).await?;
            println!("application {}: {} {}", info.app, st.kind, st.message);
        }
    }
    Ok(())
}
