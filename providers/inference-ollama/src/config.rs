//! Configuration of the inference provider.
//!
//! Provider config gives the defaults; each link *to* the provider (target config) may
//! override them for the component that uses it, so two systems can use different servers or
//! models through one provider.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `endpoint` | `http://127.0.0.1:11434` | the Ollama server (`http` or `https` URL) |
//! | `chat_model` | `llama3.2` | model for `chat` and `generate` when the call names none (empty `model`) |
//! | `embedding_model` | `all-minilm` | model for `embed` when the call names none |
//! | `timeout_secs` | `120` | deadline of one call (a model loading from disk counts) |

use std::collections::HashMap;
use std::time::Duration;

use url::Url;

/// Endpoint key.
pub const ENDPOINT: &str = "endpoint";
/// Chat model key.
pub const CHAT_MODEL: &str = "chat_model";
/// Embedding model key.
pub const EMBEDDING_MODEL: &str = "embedding_model";
/// Timeout key.
pub const TIMEOUT_SECS: &str = "timeout_secs";

/// A configuration value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {key} = {value:?}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// Where and how one caller's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceConfig {
    /// The Ollama server.
    pub endpoint: Url,
    /// Default model for `chat` and `generate`.
    pub chat_model: String,
    /// Default model for `embed`.
    pub embedding_model: String,
    /// Deadline of one call.
    pub timeout: Duration,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            endpoint: Url::parse("http://127.0.0.1:11434").expect("a valid URL"),
            chat_model: "llama3.2".into(),
            embedding_model: "all-minilm".into(),
            timeout: Duration::from_secs(120),
        }
    }
}

fn model(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.is_empty()
        || v.len() > 200
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-/".contains(c))
    {
        return Err(ConfigError {
            key,
            value: value.into(),
            reason: "a model name is 1-200 of A-Z a-z 0-9 . _ : - /",
        });
    }
    Ok(v.into())
}

impl InferenceConfig {
    /// `base` with the keys present in `config` applied.
    pub fn with(&self, config: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut out = self.clone();
        if let Some(raw) = config.get(ENDPOINT) {
            let url = Url::parse(raw.trim()).map_err(|_| ConfigError {
                key: ENDPOINT,
                value: raw.clone(),
                reason: "not a URL",
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError {
                    key: ENDPOINT,
                    value: raw.clone(),
                    reason: "expected an http(s) URL with a host",
                });
            }
            out.endpoint = url;
        }
        if let Some(raw) = config.get(CHAT_MODEL) {
            out.chat_model = model(CHAT_MODEL, raw)?;
        }
        if let Some(raw) = config.get(EMBEDDING_MODEL) {
            out.embedding_model = model(EMBEDDING_MODEL, raw)?;
        }
        if let Some(raw) = config.get(TIMEOUT_SECS) {
            let secs = raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(ConfigError {
                    key: TIMEOUT_SECS,
                    value: raw.clone(),
                    reason: "expected a whole number of seconds above 0",
                })?;
            out.timeout = Duration::from_secs(secs);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_provider::config_map as cfg;

    #[test]
    fn defaults_point_at_a_local_ollama() {
        let c = InferenceConfig::default();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:11434/");
        assert_eq!(c.embedding_model, "all-minilm");
        assert_eq!(c.timeout, Duration::from_secs(120));
    }

    #[test]
    fn links_override_defaults_and_bad_values_are_refused() {
        let base = InferenceConfig::default();
        let c = base
            .with(&cfg(&[
                (ENDPOINT, "http://gpu-1.internal:11434"),
                (CHAT_MODEL, "llama3.1:8b"),
                (TIMEOUT_SECS, "30"),
            ]))
            .unwrap();
        assert_eq!(c.endpoint.host_str(), Some("gpu-1.internal"));
        assert_eq!(c.chat_model, "llama3.1:8b");
        assert_eq!(c.embedding_model, "all-minilm");
        assert_eq!(c.timeout, Duration::from_secs(30));
        for bad in [
            (ENDPOINT, "not a url"),
            (ENDPOINT, "ftp://x"),
            (CHAT_MODEL, ""),
            (CHAT_MODEL, "a b"),
            (TIMEOUT_SECS, "0"),
            (TIMEOUT_SECS, "soon"),
        ] {
            assert!(base.with(&cfg(&[bad])).is_err(), "{bad:?}");
        }
    }
}
