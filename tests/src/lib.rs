//! Host-side test harness of the CIM.
//!
//! [`EntityHost`] loads an entity component (`components/<name>`, built fresh by
//! [`cim_testkit::build_components`]) into wasmtime with the component model, implements its
//! imports in-process (the `cim:ecs/eventstore` interface over [`MemoryLog`], `wasi:logging`,
//! `wasi:config/store`, WASI p2) and calls its `cim:ecs/entity.handle` export, instantiating the component per call
//! exactly as the wasmCloud host does.

pub mod browser;
pub mod lattice;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use cim_domain::testing::MemoryLog;
use cim_domain::EventLog as _;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod generated {
    wasmtime::component::bindgen!({
        world: "entity-component",
        path: "../wit",
        additional_derives: [PartialEq],
    });
}

pub use generated::cim::ecs::eventstore::{Loaded, Snapshot};
pub use generated::cim::ecs::types::{
    Command, EcsError, EntityRef, Envelope, Event, NewEvent, VersionConflict,
};
use generated::EntityComponent;

/// A `wasi:logging` level, lifted from the guest's `log` calls.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, wasmtime::component::ComponentType, wasmtime::component::Lift,
)]
#[component(enum)]
#[repr(u8)]
pub enum LogLevel {
    /// `trace`
    #[component(name = "trace")]
    Trace,
    /// `debug`
    #[component(name = "debug")]
    Debug,
    /// `info`
    #[component(name = "info")]
    Info,
    /// `warn`
    #[component(name = "warn")]
    Warn,
    /// `error`
    #[component(name = "error")]
    Error,
    /// `critical`
    #[component(name = "critical")]
    Critical,
}

/// The error variant of `wasi:config/store@0.2.0-draft`.
#[derive(
    Debug,
    Clone,
    wasmtime::component::ComponentType,
    wasmtime::component::Lift,
    wasmtime::component::Lower,
)]
#[component(variant)]
pub enum ConfigError {
    /// `upstream`
    #[component(name = "upstream")]
    Upstream(String),
    /// `io`
    #[component(name = "io")]
    Io(String),
}

/// One line a guest logged through `wasi:logging`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Context (the entity kind, for our components).
    pub context: String,
    /// Message.
    pub message: String,
}

/// The in-process event store and everything else a component's imports reach.
#[derive(Default)]
pub struct Backend {
    /// The events appended so far.
    pub log: MemoryLog,
    /// Saved snapshots by entity (`kind/id`).
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Lines the guests logged.
    pub logs: Vec<LogLine>,
    /// When set, `append` fails with this error (to test how components report backend failures).
    pub fail_appends: Option<EcsError>,
    /// The component's config, as `wasi:config/store` serves it (wadm's `config` in the
    /// wasmCloud host).
    pub config: BTreeMap<String, String>,
    /// How many events `read` and `load` returned so far.
    pub events_read: u64,
    /// How many times `load` was called.
    pub loads: u64,
}

struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    backend: Backend,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

cim_domain::wit_conversions!();

/// Validates an entity reference arriving at the test host.
fn entity_arg(e: &EntityRef) -> Result<cim_domain::EntityRef, EcsError> {
    entity_in(e).map_err(error_out)
}

impl generated::cim::ecs::types::Host for HostState {}

impl generated::cim::ecs::eventstore::Host for HostState {
    fn append(
        &mut self,
        entity: EntityRef,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Event>, EcsError> {
        if let Some(e) = &self.backend.fail_appends {
            return Err(e.clone());
        }
        let entity = entity_arg(&entity)?;
        let events = events
            .into_iter()
            .map(|e| {
                Ok(cim_domain::NewEvent {
                    name: cim_domain::Token::parse("event name", &e.name)
                        .map_err(|x| EcsError::Invalid(x.to_string()))?,
                    schema_version: e.schema_version,
                    payload: e.payload,
                    meta: cim_domain::Envelope {
                        id: e.meta.id,
                        correlation_id: e.meta.correlation_id,
                        causation_id: e.meta.causation_id,
                        occurred_at_ms: e.meta.occurred_at_ms,
                    },
                })
            })
            .collect::<Result<Vec<_>, EcsError>>()?;
        let stored = self
            .backend
            .log
            .append(&entity, expected_version, events)
            .map_err(error_out)?;
        Ok(stored.into_iter().map(event_out).collect())
    }

    fn read(&mut self, entity: EntityRef, from: u64, max: u32) -> Result<Vec<Event>, EcsError> {
        let entity = entity_arg(&entity)?;
        let events = self
            .backend
            .log
            .read(&entity, from, max)
            .map_err(error_out)?;
        self.backend.events_read += events.len() as u64;
        Ok(events.into_iter().map(event_out).collect())
    }

    fn load_snapshot(&mut self, entity: EntityRef) -> Result<Option<Snapshot>, EcsError> {
        let entity = entity_arg(&entity)?;
        Ok(self.backend.snapshots.get(&entity.to_string()).cloned())
    }

    fn load(&mut self, entity: EntityRef, max: u32) -> Result<Loaded, EcsError> {
        self.backend.loads += 1;
        let snapshot = self.load_snapshot(entity.clone())?;
        let from = snapshot.as_ref().map_or(1, |s| s.version.max(1));
        let events = self.read(entity, from, max)?;
        Ok(Loaded { snapshot, events })
    }

    fn save_snapshot(&mut self, snap: Snapshot) -> Result<(), EcsError> {
        let entity = entity_arg(&snap.entity)?;
        let known = self
            .backend
            .log
            .events(&entity)
            .iter()
            .any(|e| e.version == snap.version && e.cid.to_string() == snap.last_cid);
        if !known {
            return Err(EcsError::NotFound(format!(
                "{entity} has no event {} at version {}",
                snap.last_cid, snap.version
            )));
        }
        self.backend.snapshots.insert(entity.to_string(), snap);
        Ok(())
    }
}

/// An entity component loaded into wasmtime, with its in-process backend.
pub struct EntityHost {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
    /// The backend the component's imports reach; persists across calls.
    pub backend: Backend,
}

impl EntityHost {
    /// Builds the components and loads `components/<name>`.
    pub fn load(name: &str) -> anyhow::Result<Self> {
        let dir = cim_testkit::build_components().context("building components")?;
        Self::from_file(&dir.join(format!("{name}.wasm")))
    }

    /// Loads a component from a `.wasm` file; fails unless it is a valid component whose
    /// imports this host satisfies.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)
            .with_context(|| format!("{} is not a loadable Wasm component", path.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        EntityComponent::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        linker
            .instance("wasi:logging/logging@0.1.0-draft")?
            .func_wrap(
                "log",
                |mut store: wasmtime::StoreContextMut<'_, HostState>,
                 (level, context, message): (LogLevel, String, String)| {
                    store.data_mut().backend.logs.push(LogLine {
                        level,
                        context,
                        message,
                    });
                    Ok(())
                },
            )?;
        let mut config = linker.instance("wasi:config/store@0.2.0-draft")?;
        config.func_wrap(
            "get",
            |store: wasmtime::StoreContextMut<'_, HostState>, (key,): (String,)| {
                let value = store.data().backend.config.get(&key).cloned();
                Ok((Ok::<_, ConfigError>(value),))
            },
        )?;
        config.func_wrap(
            "get-all",
            |store: wasmtime::StoreContextMut<'_, HostState>, (): ()| {
                let all: Vec<(String, String)> =
                    store.data().backend.config.clone().into_iter().collect();
                Ok((Ok::<_, ConfigError>(all),))
            },
        )?;
        // Instantiate once up front so a component with unsatisfied imports fails here.
        linker
            .instantiate_pre(&component)
            .context("component imports are not satisfied by the test host")?;
        Ok(Self {
            engine,
            component,
            linker,
            backend: Backend::default(),
        })
    }

    /// Calls `cim:ecs/entity.handle` on a fresh instance, as the wasmCloud host does.
    pub fn handle(&mut self, cmd: &Command) -> anyhow::Result<Result<Vec<Event>, EcsError>> {
        let state = HostState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            backend: std::mem::take(&mut self.backend),
        };
        let mut store = Store::new(&self.engine, state);
        let result = EntityComponent::instantiate(&mut store, &self.component, &self.linker)
            .and_then(|bindings| bindings.cim_ecs_entity().call_handle(&mut store, cmd));
        self.backend = std::mem::take(&mut store.data_mut().backend);
        result.context("calling cim:ecs/entity.handle")
    }
}

/// Builds a command for `kind/id` with a JSON payload and a fresh envelope: every command
/// gets its own id (`cmd-<name>-<id>-<n>`), since a command id sent again is answered with
/// the events it caused the first time.
pub fn command(
    kind: &str,
    id: &str,
    name: &str,
    payload: &str,
    expected_version: Option<u64>,
) -> Command {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Command {
        entity: EntityRef {
            kind: kind.into(),
            id: id.into(),
        },
        name: name.into(),
        payload: payload.as_bytes().to_vec(),
        expected_version,
        meta: Envelope {
            id: format!("cmd-{name}-{id}-{n}"),
            correlation_id: format!("corr-{id}"),
            causation_id: None,
            occurred_at_ms: 1_700_000_000_000,
        },
    }
}
