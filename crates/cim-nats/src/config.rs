//! How every CIM process connects to NATS: one URL and one credentials file.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Environment variable naming the NATS URL.
pub const ENV_URL: &str = "CIM_NATS_URL";
/// Environment variable naming a `.creds` file (user JWT + seed).
pub const ENV_CREDS: &str = "CIM_NATS_CREDS";

/// Errors connecting to NATS.
#[derive(Debug, Error)]
pub enum NatsError {
    /// The credentials file could not be read.
    #[error("cannot read NATS credentials {path}: {source}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// A `.creds` file; `None` connects anonymously.
    pub creds: Option<PathBuf>,
    /// The prefix of the connection's reply subjects (async-nats' default `_INBOX` when
    /// `None`); a [`crate::auth::Role::Reader`] may only receive on
    /// [`crate::auth::READER_INBOX_PREFIX`].
    pub inbox_prefix: Option<String>,
}

impl NatsConfig {
    /// A config for `url` with optional credentials.
    pub fn new(url: impl Into<String>, creds: Option<&Path>) -> Self {
        Self {
            url: url.into(),
            creds: creds.map(Path::to_path_buf),
            inbox_prefix: None,
        }
    }

    /// A config for `url` with the `.creds` file of a user of `role`: sets the reply-subject
    /// prefix the role's permissions allow.
    pub fn for_role(url: impl Into<String>, creds: &Path, role: crate::auth::Role) -> Self {
        Self {
            inbox_prefix: (role == crate::auth::Role::Reader)
                .then(|| crate::auth::READER_INBOX_PREFIX.to_string()),
            ..Self::new(url, Some(creds))
        }
    }

    /// Reads [`ENV_URL`] (default `nats://127.0.0.1:4222`) and [`ENV_CREDS`].
    pub fn from_env() -> Self {
        Self {
            url: std::env::var(ENV_URL).unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            creds: std::env::var_os(ENV_CREDS).map(PathBuf::from),
            inbox_prefix: None,
        }
    }

    /// Connects, naming the connection `name` (visible in the server's connection list).
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, NatsError> {
        let mut opts = async_nats::ConnectOptions::new().name(name);
        if let Some(prefix) = &self.inbox_prefix {
            opts = opts.custom_inbox_prefix(prefix);
        }
        if let Some(path) = &self.creds {
            opts = opts
                .credentials_file(path)
                .await
                .map_err(|source| NatsError::Creds {
                    path: path.clone(),
                    source,
                })?;
        }
        opts.connect(&self.url)
            .await
            .map_err(|source| NatsError::Connect {
                url: self.url.clone(),
                source,
            })
    }
}
