//! Provider state and the `cim:ecs/inference` handler.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cim_wrpc::{error_out, EcsError};
use tracing::{debug, info};
use wasmcloud_provider_sdk::{Context, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig};

use crate::bindings::exports::cim::ecs::inference::{self as wit, Handler};
use crate::client::{Client, Completion, Message, Role};
use crate::config::InferenceConfig;

/// A linked caller: its component id and the link's name.
type Caller = (String, String);

/// The provider's state: the provider-config client, and one per link with its own config.
#[derive(Clone)]
pub struct InferenceProvider {
    base: Arc<RwLock<Client>>,
    links: Arc<RwLock<HashMap<Caller, Client>>>,
}

impl Default for InferenceProvider {
    fn default() -> Self {
        Self {
            base: Arc::new(RwLock::new(Client::new(InferenceConfig::default()))),
            links: Arc::default(),
        }
    }
}

impl InferenceProvider {
    /// The client for a caller: its link's, else the provider-config one (callers without a
    /// link, such as `cim ask`).
    fn client(&self, cx: Option<&Context>) -> Client {
        if let Some(cx) = cx {
            let caller = (
                cx.component.clone().unwrap_or_default(),
                cx.link_name().to_string(),
            );
            if let Some(c) = self
                .links
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&caller)
            {
                return c.clone();
            }
        }
        self.base.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Provider for InferenceProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = InferenceConfig::default().with(init.get_config())?;
        info!(endpoint = %config.endpoint, chat_model = %config.chat_model, embedding_model = %config.embedding_model, "inference configured");
        *self.base.write().unwrap_or_else(|e| e.into_inner()) = Client::new(config);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let base = self
            .base
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config()
            .clone();
        let config = base.with(link.config)?;
        info!(source = %link.source_id, link = %link.link_name, endpoint = %config.endpoint, chat_model = %config.chat_model, embedding_model = %config.embedding_model, "link configured");
        self.links
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (link.source_id.to_string(), link.link_name.to_string()),
                Client::new(config),
            );
        Ok(())
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        self.links
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(
                info.get_source_id().to_string(),
                info.get_link_name().to_string(),
            ));
        Ok(())
    }
}

fn completion_out(c: Completion) -> wit::Completion {
    wit::Completion {
        model: c.model,
        content: c.content,
    }
}

impl Handler<Option<Context>> for InferenceProvider {
    async fn chat(
        &self,
        cx: Option<Context>,
        model: String,
        messages: Vec<wit::Message>,
    ) -> anyhow::Result<Result<wit::Completion, EcsError>> {
        let messages = messages
            .into_iter()
            .map(|m| Message {
                role: match m.role {
                    wit::Role::System => Role::System,
                    wit::Role::User => Role::User,
                    wit::Role::Assistant => Role::Assistant,
                },
                content: m.content,
            })
            .collect();
        let answer = self.client(cx.as_ref()).chat(&model, messages).await;
        debug!(%model, ok = answer.is_ok(), "chat");
        Ok(answer.map(completion_out).map_err(error_out))
    }

    async fn generate(
        &self,
        cx: Option<Context>,
        model: String,
        prompt: String,
        system: Option<String>,
    ) -> anyhow::Result<Result<wit::Completion, EcsError>> {
        let answer = self
            .client(cx.as_ref())
            .generate(&model, &prompt, system.as_deref())
            .await;
        debug!(%model, ok = answer.is_ok(), "generate");
        Ok(answer.map(completion_out).map_err(error_out))
    }

    async fn embed(
        &self,
        cx: Option<Context>,
        model: String,
        inputs: Vec<String>,
    ) -> anyhow::Result<Result<Vec<Vec<f32>>, EcsError>> {
        let n = inputs.len();
        let answer = self.client(cx.as_ref()).embed(&model, inputs).await;
        debug!(%model, inputs = n, ok = answer.is_ok(), "embed");
        Ok(answer.map_err(error_out))
    }
}
