//! `cim status`: hosts, components, providers, links and the application's wadm status.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::{lattice::LatticeFile, wadm, Cli};

/// What the lattice runs, as its hosts and wadm report it.
#[derive(Debug, Clone, Serialize)]
pub struct LatticeStatus {
    /// The lattice name.
    pub lattice: String,
    /// The hosts with their inventories.
    pub hosts: Vec<HostStatus>,
    /// Every link definition.
    pub links: Vec<LinkStatus>,
    /// wadm's status of the deployed application, when one was deployed from here.
    pub application: Option<AppStatus>,
}

/// One host and what runs on it.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The host's public key.
    pub id: String,
    /// Its friendly name.
    pub name: String,
    /// The wasmCloud version it reports.
    pub version: String,
    /// Components: (id, image reference, maximum instances).
    pub components: Vec<ComponentStatus>,
    /// Providers: (id, image reference).
    pub providers: Vec<ProviderStatus>,
}

/// A component on a host.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    /// Component id.
    pub id: String,
    /// Image reference.
    pub image: String,
    /// Maximum concurrent instances.
    pub max_instances: u32,
}

/// A provider on a host.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    /// Provider id.
    pub id: String,
    /// Image reference.
    pub image: String,
}

/// A link definition.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    /// The source (caller).
    pub source: String,
    /// The target (callee).
    pub target: String,
    /// `namespace:package/{interfaces}`.
    pub interface: String,
    /// The link name.
    pub name: String,
}

/// wadm's view of the application.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// deployed, reconciling, failed, …
    pub status: String,
    /// wadm's message.
    pub message: String,
}

/// How long to wait for the first host to answer a ping.
const FIRST_HOST: Duration = Duration::from_secs(3);
/// After an answer, how long to wait for another host before the list is complete.
const MORE_HOSTS: Duration = Duration::from_millis(300);

/// The hosts that answer a control-interface ping. The control client waits its whole auction
/// timeout (5 s) for answers, however fast they come; here the list is complete once no
/// further host answered for [`MORE_HOSTS`] after the last one (hosts answer pings from
/// memory, within milliseconds), and empty when none answered within [`FIRST_HOST`].
async fn ping_hosts(
    nats: &async_nats::Client,
    lattice: &str,
) -> anyhow::Result<Vec<wasmcloud_control_interface::Host>> {
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await?;
    nats.publish_with_reply(
        format!("wasmbus.ctl.v1.{lattice}.host.ping"),
        inbox,
        bytes::Bytes::new(),
    )
    .await?;
    let mut hosts = Vec::new();
    let until = tokio::time::Instant::now() + FIRST_HOST;
    loop {
        let wait = if hosts.is_empty() {
            until.saturating_duration_since(tokio::time::Instant::now())
        } else {
            MORE_HOSTS
        };
        let Ok(Some(msg)) =
            tokio::time::timeout(wait, futures::StreamExt::next(&mut answers)).await
        else {
            break;
        };
        let answer: wasmcloud_control_interface::CtlResponse<wasmcloud_control_interface::Host> =
            serde_json::from_slice(&msg.payload).context("a malformed host ping answer")?;
        if let Some(host) = answer.into_data() {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// Whether some host of the lattice runs the component or provider `id`. `Err` when no host
/// answered (the lattice is unreachable or slow; nothing can be concluded).
pub(crate) async fn runs(
    nats: &async_nats::Client,
    lattice: &str,
    id: &str,
) -> anyhow::Result<bool> {
    let ctl = wasmcloud_control_interface::ClientBuilder::new(nats.clone())
        .lattice(lattice)
        .build();
    let hosts = hosts(nats, &ctl).await?;
    anyhow::ensure!(!hosts.is_empty(), "no host answered");
    Ok(hosts
        .iter()
        .any(|h| h.components.iter().any(|c| c.id == id) || h.providers.iter().any(|p| p.id == id)))
}

/// Every host of the lattice with what runs on it (control interface).
pub(crate) async fn hosts(
    nats: &async_nats::Client,
    ctl: &wasmcloud_control_interface::Client,
) -> anyhow::Result<Vec<HostStatus>> {
    let found = ping_hosts(nats, ctl.lattice()).await?;
    let mut hosts = Vec::new();
    for host in &found {
        let inv = ctl
            .get_host_inventory(host.id())
            .await
            .map_err(|e| anyhow::anyhow!("cannot read inventory: {e}"))?;
        let (mut components, mut providers) = (Vec::new(), Vec::new());
        if let Some(inv) = inv.data() {
            components = inv
                .components()
                .iter()
                .map(|c| ComponentStatus {
                    id: c.id().to_string(),
                    image: c.image_ref().to_string(),
                    max_instances: c.max_instances(),
                })
                .collect();
            providers = inv
                .providers()
                .iter()
                .map(|p| ProviderStatus {
                    id: p.id().to_string(),
                    image: p.image_ref().unwrap_or_default().to_string(),
                })
                .collect();
        }
        components.sort_by(|a, b| a.id.cmp(&b.id));
        providers.sort_by(|a, b| a.id.cmp(&b.id));
        hosts.push(HostStatus {
            id: host.id().to_string(),
            name: host.friendly_name().to_string(),
            version: host.version().unwrap_or_default().to_string(),
            components,
            providers,
        });
    }
    Ok(hosts)
}

/// Reads the lattice's inventory over the control interface and wadm.
pub async fn lattice_status(ctx: &Cli, nats: &async_nats::Client) -> anyhow::Result<LatticeStatus> {
    let lattice = ctx.lattice();
    let ctl = wasmcloud_control_interface::ClientBuilder::new(nats.clone())
        .lattice(lattice)
        .build();
    let hosts = hosts(nats, &ctl).await?;
    let found = ctl
        .get_links()
        .await
        .map_err(|e| anyhow::anyhow!("cannot list links: {e}"))?;
    let mut links: Vec<LinkStatus> = found
        .data()
        .into_iter()
        .flatten()
        .map(|l| LinkStatus {
            source: l.source_id().to_string(),
            target: l.target().to_string(),
            interface: format!(
                "{}:{}/{{{}}}",
                l.wit_namespace(),
                l.wit_package(),
                l.interfaces().join(",")
            ),
            name: l.name().to_string(),
        })
        .collect();
    links.sort_by(|a, b| (&a.source, &a.target, &a.name).cmp(&(&b.source, &b.target, &b.name)));
    let mut application = None;
    if let Ok(info) = LatticeFile::load(&ctx.state_dir().join("lattice.json")) {
        if !info.app.is_empty() {
            let st = wadm::status(nats, lattice, &info.app).await?;
            application = Some(AppStatus {
                name: info.app,
                status: st.kind,
                message: st.message,
            });
        }
    }
    Ok(LatticeStatus {
        lattice: lattice.to_string(),
        hosts,
        links,
        application,
    })
}

/// Prints the lattice's inventory.
pub async fn status(ctx: &Cli) -> anyhow::Result<()> {
    let nats = ctx.connect(crate::Role::Reader).await?;
    let st = lattice_status(ctx, &nats).await?;
    println!("lattice {}: {} host(s)", st.lattice, st.hosts.len());
    for host in &st.hosts {
        println!("host {} ({}) {}", host.name, host.id, host.version);
        for c in &host.components {
            println!(
                "  component {:<22} {} (max {})",
                c.id, c.image, c.max_instances
            );
        }
        for p in &host.providers {
            println!("  provider  {:<22} {}", p.id, p.image);
        }
    }
    for l in &st.links {
        println!(
            "link {} -> {} {} ({})",
            l.source, l.target, l.interface, l.name
        );
    }
    if let Some(app) = &st.application {
        println!("application {}: {} {}", app.name, app.status, app.message);
    }
    Ok(())
}
