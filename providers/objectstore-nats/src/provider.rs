//! Provider state and the `cim:ecs/objectstore` handler.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use cim_domain::{parse_cid, EcsError as DomainError};
use cim_nats::ObjectStore;
use cim_wrpc::{error_out, EcsError};
use tokio::sync::OnceCell;
use tracing::{debug, info};
use wasmcloud_provider_sdk::{get_connection, Context, Provider, ProviderInitConfig};

use crate::bindings::exports::cim::ecs::objectstore::{Handler, ObjectInfo};
use crate::config::ObjectStoreConfig;

/// The provider's state.
#[derive(Clone, Default)]
pub struct ObjectStoreProvider {
    config: Arc<OnceLock<ObjectStoreConfig>>,
    store: Arc<OnceCell<ObjectStore>>,
}

impl ObjectStoreProvider {
    fn config(&self) -> &ObjectStoreConfig {
        self.config.get_or_init(|| {
            ObjectStoreConfig::from_config(&Default::default()).expect("defaults are valid")
        })
    }

    /// The bucket, opened (and created if missing) on first use.
    pub async fn store(&self) -> Result<&ObjectStore, DomainError> {
        self.store
            .get_or_try_init(|| async {
                let nats = get_connection().nats.as_ref().clone();
                ObjectStore::open_bucket(nats, &self.config().bucket).await
            })
            .await
    }
}

impl Provider for ObjectStoreProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = ObjectStoreConfig::from_config(init.get_config())?;
        info!(bucket = %config.bucket, allow_delete = config.allow_delete, "object store configured");
        let _ = self.config.set(config);
        Ok(())
    }
}

fn cid_in(text: &str) -> Result<cid::Cid, DomainError> {
    parse_cid(text).map_err(|e| DomainError::Invalid(format!("{text:?} is not a CID: {e}")))
}

impl Handler<Option<Context>> for ObjectStoreProvider {
    async fn put(
        &self,
        _cx: Option<Context>,
        data: Bytes,
        media_type: String,
    ) -> anyhow::Result<Result<String, EcsError>> {
        let result = async {
            let cid = self.store().await?.put(&data, &media_type).await?;
            debug!(%cid, size = data.len(), "put");
            Ok(cid.to_string())
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn get(
        &self,
        _cx: Option<Context>,
        id: String,
    ) -> anyhow::Result<Result<Bytes, EcsError>> {
        let result = async {
            let cid = cid_in(&id)?;
            Ok(Bytes::from(self.store().await?.get(&cid).await?))
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn stat(
        &self,
        _cx: Option<Context>,
        id: String,
    ) -> anyhow::Result<Result<ObjectInfo, EcsError>> {
        let result = async {
            let cid = cid_in(&id)?;
            let stat = self.store().await?.stat(&cid).await?;
            Ok(ObjectInfo {
                cid: stat.cid.to_string(),
                size: stat.size,
                media_type: stat.media_type,
            })
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn delete(
        &self,
        _cx: Option<Context>,
        id: String,
    ) -> anyhow::Result<Result<(), EcsError>> {
        let result = async {
            let cid = cid_in(&id)?;
            if !self.config().allow_delete {
                return Err(DomainError::Rejected(format!(
                    "deleting {cid}: objects are immutable here (provider config allow_delete=false)"
                )));
            }
            self.store().await?.delete(&cid).await?;
            info!(%cid, "deleted");
            Ok(())
        }
        .await;
        Ok(result.map_err(error_out))
    }
}
