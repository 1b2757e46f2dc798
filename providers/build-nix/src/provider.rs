//! Provider state and the `cim:ecs/build` handler.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use cim_domain::EcsError as DomainError;
use cim_nats::ObjectStore;
use cim_wrpc::{error_out, EcsError};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{info, warn};
use wasmcloud_provider_sdk::{
    get_connection, Context, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig,
};

use crate::bindings::exports::cim::ecs::build::{BuildResult, Handler};
use crate::config::{allow_list, BuildConfig};
use crate::flakeref::{installable, AllowList, Attribute, FlakeRef};
use crate::nix::{self, BuildRun};

/// A linked caller: its component id and the link's name.
type Caller = (String, String);

/// The provider's state.
#[derive(Clone, Default)]
pub struct BuildProvider {
    config: Arc<OnceLock<BuildConfig>>,
    permits: Arc<OnceLock<Semaphore>>,
    store: Arc<OnceCell<ObjectStore>>,
    links: Arc<RwLock<HashMap<Caller, AllowList>>>,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    DomainError::Unavailable(e.to_string())
}

impl BuildProvider {
    fn config(&self) -> &BuildConfig {
        self.config.get_or_init(|| {
            BuildConfig::from_config(&Default::default()).expect("defaults are valid")
        })
    }

    fn permits(&self) -> &Semaphore {
        self.permits
            .get_or_init(|| Semaphore::new(self.config().max_concurrent_builds))
    }

    /// The object bucket for logs and NARs, opened (and created if missing) on first use.
    pub async fn store(&self) -> Result<&ObjectStore, DomainError> {
        self.store
            .get_or_try_init(|| async {
                let nats = get_connection().nats.as_ref().clone();
                ObjectStore::open_bucket(nats, &self.config().bucket).await
            })
            .await
    }

    /// The caller's allow-list: its link's when that names one, else the provider's.
    fn allowed(&self, caller: &Caller, flake: &FlakeRef) -> Result<(), DomainError> {
        let links = self.links.read().unwrap_or_else(|e| e.into_inner());
        let own = links.get(caller).filter(|l| !l.entries().is_empty());
        let provider = Some(&self.config().allowed).filter(|l| !l.entries().is_empty());
        let Some(list) = own.or(provider) else {
            if links.contains_key(caller) {
                return Err(DomainError::Invalid(format!(
                    "neither link {:?} from {:?} nor the provider config names allowed_flake_refs: nothing may be built",
                    caller.1, caller.0
                )));
            }
            // Links reach a provider asynchronously (wadm puts them, the host forwards them),
            // so a first call can arrive before its link: not a refusal, ask again later.
            return Err(DomainError::Unavailable(format!(
                "no link {:?} from component {:?} has reached this provider (yet), and the provider config allows nothing",
                caller.1, caller.0
            )));
        };
        let within = list.allows_resolved(flake).map_err(|e| {
            DomainError::Invalid(format!(
                "flake ref {flake} names no readable directory: {e}"
            ))
        })?;
        if !within {
            return Err(DomainError::Invalid(format!(
                "flake ref {flake} is outside the allow-list for link {:?} from {:?} (allowed_flake_refs: {:?})",
                caller.1,
                caller.0,
                list.entries().join(",")
            )));
        }
        Ok(())
    }

    /// Validates, checks the caller's allow-list, builds and stores the log and the NAR.
    async fn run(
        &self,
        caller: Caller,
        flake_ref: &str,
        attribute: &str,
    ) -> Result<BuildResult, DomainError> {
        let invalid = |e: crate::flakeref::RefError| DomainError::Invalid(e.to_string());
        let flake = FlakeRef::parse(flake_ref).map_err(invalid)?;
        let attribute = Attribute::parse(attribute).map_err(invalid)?;
        self.allowed(&caller, &flake)?;
        let target = installable(&flake, &attribute);
        let settings = &self.config().nix;

        let _permit = self.permits().acquire().await.map_err(unavailable)?;
        let started = Instant::now();
        let run = nix::build(settings, &target).await.map_err(unavailable)?;
        let store = self.store().await?;
        let (BuildRun::Succeeded { log, .. } | BuildRun::Failed { log, .. }) = &run;
        let log_cid = store
            .put(log, "text/plain; charset=utf-8")
            .await?
            .to_string();
        let result = match run {
            BuildRun::Failed { error, .. } => {
                warn!(%target, %log_cid, %error, secs = started.elapsed().as_secs(), "build failed");
                BuildResult {
                    success: false,
                    out_paths: Vec::new(),
                    nar_hash: None,
                    nar_cid: None,
                    log_cid: Some(log_cid),
                    error: Some(error),
                }
            }
            BuildRun::Succeeded { out_paths, .. } => {
                let main = &out_paths[0];
                let nar_hash = nix::nar_hash(settings, main).await.map_err(unavailable)?;
                let nar = nix::nar(settings, main, settings.nar_max_bytes)
                    .await
                    .map_err(unavailable)?;
                let nar_cid = store.put(&nar, "application/x-nix-nar").await?.to_string();
                info!(%target, out = %main, %nar_hash, %nar_cid, %log_cid, secs = started.elapsed().as_secs(), "built");
                BuildResult {
                    success: true,
                    out_paths,
                    nar_hash: Some(nar_hash),
                    nar_cid: Some(nar_cid),
                    log_cid: Some(log_cid),
                    error: None,
                }
            }
        };
        Ok(result)
    }
}

impl Provider for BuildProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = BuildConfig::from_config(init.get_config())?;
        info!(
            nix = %config.nix.nix_bin,
            sandbox = config.nix.sandbox,
            substituters = %config.nix.substituters,
            timeout_secs = config.nix.timeout.as_secs(),
            max_concurrent_builds = config.max_concurrent_builds,
            "nix builds configured"
        );
        let _ = self.config.set(config);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let caller = (link.source_id.to_string(), link.link_name.to_string());
        let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
        match allow_list(link.config) {
            Ok(list) => {
                info!(source = %caller.0, link = %caller.1, allowed = ?list.entries(), "link allows builds");
                links.insert(caller, list);
                Ok(())
            }
            Err(e) => {
                // A link whose policy does not parse allows nothing.
                links.remove(&caller);
                Err(e.into())
            }
        }
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let caller = (
            info.get_source_id().to_string(),
            info.get_link_name().to_string(),
        );
        self.links
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&caller);
        info!(source = %caller.0, link = %caller.1, "link removed");
        Ok(())
    }
}

impl Handler<Option<Context>> for BuildProvider {
    async fn build(
        &self,
        cx: Option<Context>,
        flake_ref: String,
        attribute: String,
    ) -> anyhow::Result<Result<BuildResult, EcsError>> {
        let caller = match &cx {
            Some(cx) => (
                cx.component.clone().unwrap_or_default(),
                cx.link_name().to_string(),
            ),
            None => (String::new(), String::new()),
        };
        Ok(self
            .run(caller, &flake_ref, &attribute)
            .await
            .map_err(error_out))
    }
}
