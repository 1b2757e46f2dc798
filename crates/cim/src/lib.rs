//! The `cim` CLI as a library, so end-to-end tests drive exactly what users run.
//!
//! - [`up`] / [`down`]: a local lattice from registries alone (nats-server 2.15.1 from PyPI,
//!   the `cim-host` wasmCloud 1.9.x launcher, `wadm` 0.21.1), NATS auth on, loopback only.
//! - [`status`]: hosts, components, providers, links and wadm's view of the application.
//! - [`call`]: a typed wRPC call of `cim:ecs/entity.handle` on a deployed entity component.
//! - [`events`]: an entity's stream with its CID chain verified.
//! - [`deadletters`]: the events reactors gave up on, and retrying them.
//! - [`graph`]: read-only Cypher and an export of the knowledge graph over wRPC.
//! - `cim object put|get|stat`: the content-addressed object store over wRPC.
//! - [`demo`]: both seed scenarios on the local lattice, with a summary.
//! - [`ask`]: the documents nearest to a question in the agent's conceptual space.
//! - [`pipeline`]: a commit of a local git repository through the package pipeline.
//! - [`ui`]: a browser view of the lattice (status, event streams with chain status, the
//!   knowledge graph), live over NATS.

mod archive;
pub mod ask;
mod call;
mod daemon;
pub mod deadletters;
pub mod demo;
pub mod describe;
mod events;
pub mod graph;
mod graphdb;
mod lattice;
mod models;
pub mod objects;
pub mod pipeline;
pub mod scaffold;
pub mod status;
pub mod typed_call;
pub mod ui;
mod wadm;

pub use archive::pack as pack_provider;
pub use call::{
    call, call_and_print, call_answered, command_for, resend_until_answered, CallArgs,
    FIRST_DEADLINE,
};
pub use events::{print_events, read_events};
pub use graph::graph_query;
pub use lattice::{
    down, restart_graph, restart_host, restart_nats, sibling, up, Lattice, UpOptions, PROVIDERS,
};
pub use objects::{get_object, put_object, OBJECTSTORE_ID};
pub use status::status;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
pub use cim_nats::auth::Role;
use cim_nats::NatsConfig;

/// Where the lattice keeps its state, and its name.
#[derive(Debug, Clone)]
pub struct Cli {
    state_dir: PathBuf,
    lattice: String,
}

impl Cli {
    /// A context for the lattice `lattice` whose state lives in `state_dir`.
    pub fn new(state_dir: PathBuf, lattice: String) -> Self {
        Self { state_dir, lattice }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The lattice name.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    fn path(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// The credentials file of the lattice's user of `role` (`<role>.creds`).
    pub fn creds(&self, role: Role) -> PathBuf {
        self.path(&format!("{}.creds", role.name()))
    }

    /// The NATS connection settings of a running lattice (from `lattice.json`) for `role`.
    pub fn nats(&self, role: Role) -> anyhow::Result<NatsConfig> {
        let info = lattice::LatticeFile::load(&self.path("lattice.json"))
            .context("no lattice here; run `cim up` first")?;
        Ok(NatsConfig::for_role(
            format!("nats://127.0.0.1:{}", info.nats_port),
            &self.creds(role),
            role,
        ))
    }

    /// Connects to the running lattice's NATS as a user of `role`.
    pub async fn connect(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        Ok(self
            .nats(role)?
            .connect(&format!("cim-cli-{}", role.name()))
            .await?)
    }
}
