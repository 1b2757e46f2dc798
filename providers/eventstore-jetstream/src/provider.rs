//! Provider lifecycle: the lazily opened store and one subscription task per reactor link.

use std::collections::HashMap;
use std::sync::Arc;

use cim_domain::EcsError;
use cim_nats::EventStore;
use tokio::sync::{Mutex, OnceCell};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wasmcloud_provider_sdk::{
    get_connection, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig,
};

use crate::config::SubscriptionConfig;
use crate::subscription;

/// Running reactor subscriptions, keyed by (target component, link name).
type Subscriptions = HashMap<(String, String), JoinHandle<()>>;

/// The provider's state, shared by the wRPC handlers and the link callbacks.
#[derive(Clone, Default)]
pub struct EventStoreProvider {
    offload_above: Arc<std::sync::OnceLock<usize>>,
    /// The provider's own NATS connection, when its config names a creds file.
    own_nats: Arc<std::sync::OnceLock<async_nats::Client>>,
    store: Arc<OnceCell<EventStore>>,
    subscriptions: Arc<Mutex<Subscriptions>>,
}

impl EventStoreProvider {
    /// The event store on the lattice's NATS connection, opened on first use.
    pub async fn store(&self) -> Result<&EventStore, EcsError> {
        self.store
            .get_or_try_init(|| async {
                let nats = match self.own_nats.get() {
                    Some(own) => own.clone(),
                    None => get_connection().nats.as_ref().clone(),
                };
                let offload_above = *self
                    .offload_above
                    .get_or_init(|| cim_nats::store::DEFAULT_OFFLOAD_ABOVE);
                Ok(EventStore::open(nats)
                    .await?
                    .with_offload_above(offload_above))
            })
            .await
    }
}

impl Provider for EventStoreProvider {
    /// Reads the provider config (`offload_above_bytes`).
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let bytes = crate::config::offload_above(init.get_config())?;
        if let Some(creds) = crate::config::nats_creds_file(init.get_config())? {
            let url = match wasmcloud_provider_sdk::load_host_data()?
                .lattice_rpc_url
                .as_str()
            {
                "" => "127.0.0.1:4222".to_string(),
                url => url.to_string(),
            };
            let nats = cim_nats::NatsConfig::new(&url, Some(&creds))
                .connect("cim-eventstore")
                .await?;
            info!(%url, creds = %creds.display(), "event store connects as its own user");
            let _ = self.own_nats.set(nats);
        }
        info!(offload_above = bytes, "event store configured");
        let _ = self.offload_above.set(bytes);
        Ok(())
    }

    /// A link from this provider to a reactor component: start delivering events to it.
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let cfg = SubscriptionConfig::from_link(link.config, link.target_id, link.link_name)?;
        let store = self.store().await?.clone();
        let key = (link.target_id.to_string(), link.link_name.to_string());
        info!(target = %key.0, link = %key.1, filters = ?cfg.filters, durable = %cfg.durable, "subscribing reactor");
        let wrpc = get_connection()
            .get_wrpc_client_custom(link.target_id, Some(cfg.call_timeout))
            .await?;
        let task = tokio::spawn(subscription::deliver(store, key.0.clone(), cfg, wrpc));
        if let Some(old) = self.subscriptions.lock().await.insert(key, task) {
            old.abort();
        }
        Ok(())
    }

    /// The reactor link was removed: stop delivering (the durable consumer keeps its position,
    /// so linking again resumes where delivery stopped).
    async fn delete_link_as_source(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = (
            info.get_target_id().to_string(),
            info.get_link_name().to_string(),
        );
        if let Some(task) = self.subscriptions.lock().await.remove(&key) {
            task.abort();
            info!(target = %key.0, link = %key.1, "unsubscribed reactor");
        } else {
            warn!(target = %key.0, link = %key.1, "no subscription to remove");
        }
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        for (_, task) in self.subscriptions.lock().await.drain() {
            task.abort();
        }
        Ok(())
    }
}
