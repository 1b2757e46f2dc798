//! One caller's view of an Ollama server: `chat`, `generate` and `embed` through ollama-rs,
//! each under a deadline, with Ollama's failures mapped to `cim:ecs` errors a caller can act
//! on (`not-found` for a model the server does not have, `unavailable` for a server that
//! does not answer, `invalid` for a request the server refuses).

use ollama_rs::error::OllamaError;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, MessageRole};
use ollama_rs::generation::completion::request::GenerationRequest;
use ollama_rs::generation::embeddings::request::GenerateEmbeddingsRequest;
use ollama_rs::Ollama;

use cim_domain::EcsError;

use crate::config::InferenceConfig;

/// Most inputs embedded in one call.
pub const MAX_EMBED_INPUTS: usize = 256;
/// Most messages in one chat.
pub const MAX_MESSAGES: usize = 1024;

/// Who spoke a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions framing the conversation.
    System,
    /// The asking side.
    User,
    /// The model's earlier answers.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who spoke.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The model that answered, as the server names it.
    pub model: String,
    /// The answer.
    pub content: String,
}

/// A client for one configuration (endpoint, default models, deadline).
#[derive(Debug, Clone)]
pub struct Client {
    ollama: Ollama,
    config: InferenceConfig,
}

fn invalid(what: impl std::fmt::Display) -> EcsError {
    EcsError::Invalid(what.to_string())
}

impl Client {
    /// A client for `config`.
    pub fn new(config: InferenceConfig) -> Self {
        Self {
            ollama: Ollama::from_url(config.endpoint.clone()),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InferenceConfig {
        &self.config
    }

    fn model<'a>(&'a self, requested: &'a str, default: &'a str) -> Result<&'a str, EcsError> {
        let model = if requested.is_empty() {
            default
        } else {
            requested
        };
        if model.len() > 200
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-/".contains(c))
        {
            return Err(invalid(format!("{model:?} is not a model name")));
        }
        Ok(model)
    }

    /// Runs `call` under the deadline and maps its failure.
    async fn within<T>(
        &self,
        model: &str,
        call: impl std::future::Future<Output = Result<T, OllamaError>>,
    ) -> Result<T, EcsError> {
        let endpoint = &self.config.endpoint;
        match tokio::time::timeout(self.config.timeout, call).await {
            Err(_) => Err(EcsError::Unavailable(format!(
                "no answer from the inference server at {endpoint} within {}s",
                self.config.timeout.as_secs()
            ))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(endpoint.as_str(), model, e)),
        }
    }

    /// Continues a chat (`messages` is the whole history, system prompt first).
    pub async fn chat(&self, model: &str, messages: Vec<Message>) -> Result<Completion, EcsError> {
        let model = self.model(model, &self.config.chat_model)?;
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            return Err(invalid(format!(
                "a chat needs 1 to {MAX_MESSAGES} messages, got {}",
                messages.len()
            )));
        }
        let messages = messages
            .into_iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => MessageRole::System,
                    Role::User => MessageRole::User,
                    Role::Assistant => MessageRole::Assistant,
                };
                ChatMessage::new(role, m.content)
            })
            .collect();
        let request = ChatMessageRequest::new(model.to_string(), messages);
        let answer = self
            .within(model, self.ollama.send_chat_messages(request))
            .await?;
        Ok(Completion {
            model: answer.model,
            content: answer.message.content,
        })
    }

    /// Completes one prompt, with an optional system prompt.
    pub async fn generate(
        &self,
        model: &str,
        prompt: &str,
        system: Option<&str>,
    ) -> Result<Completion, EcsError> {
        let model = self.model(model, &self.config.chat_model)?;
        let mut request = GenerationRequest::new(model.to_string(), prompt);
        if let Some(system) = system {
            request = request.system(system);
        }
        let answer = self.within(model, self.ollama.generate(request)).await?;
        Ok(Completion {
            model: answer.model,
            content: answer.response,
        })
    }

    /// Embeds each input; one vector per input, in order.
    pub async fn embed(&self, model: &str, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, EcsError> {
        let model = self.model(model, &self.config.embedding_model)?;
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        if inputs.len() > MAX_EMBED_INPUTS {
            return Err(invalid(format!(
                "at most {MAX_EMBED_INPUTS} inputs per call, got {}",
                inputs.len()
            )));
        }
        let n = inputs.len();
        let request = GenerateEmbeddingsRequest::new(model.to_string(), inputs.into());
        let answer = self
            .within(model, self.ollama.generate_embeddings(request))
            .await?;
        if answer.embeddings.len() != n {
            return Err(EcsError::Unavailable(format!(
                "the inference server returned {} embeddings for {n} inputs",
                answer.embeddings.len()
            )));
        }
        Ok(answer.embeddings)
    }
}

/// Maps an ollama-rs failure to what the caller should do next.
fn map_error(endpoint: &str, model: &str, e: OllamaError) -> EcsError {
    match e {
        OllamaError::Other(body) => {
            // Ollama answers errors as {"error": "..."} with a 4xx/5xx status.
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(body);
            if message.contains("not found") {
                EcsError::NotFound(format!(
                    "model {model:?} is not available at {endpoint} ({message}); pull it there with `ollama pull {model}`"
                ))
            } else if message.contains("does not support") || message.contains("invalid") {
                EcsError::Invalid(format!("{endpoint} refused the request: {message}"))
            } else {
                EcsError::Unavailable(format!("{endpoint} failed: {message}"))
            }
        }
        OllamaError::InternalError(inner) => {
            EcsError::Unavailable(format!("{endpoint} failed: {}", inner.message))
        }
        OllamaError::ReqwestError(e) => {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            EcsError::Unavailable(format!(
                "the inference server at {endpoint} is unreachable: {detail}"
            ))
        }
        OllamaError::JsonError(e) => {
            EcsError::Unavailable(format!("unexpected answer from {endpoint}: {e}"))
        }
        other => EcsError::Unavailable(format!("{endpoint}: {other}")),
    }
}
