//! Configuration of the graph provider: provider config (set on the provider in the manifest),
//! because the graph is one database per lattice and the projection runs without any link.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `uri` | required | Bolt URI, e.g. `bolt://neo4j.internal:7687` |
//! | `user` | `neo4j` | user name |
//! | `password_file` | — | file holding the password (preferred: a systemd credential, a 0600 file); trailing newline ignored |
//! | `password` | — | the password inline (discouraged: it is then part of the manifest) |
//! | `database` | `neo4j` | database name |
//! | `timeout_secs` | `30` | deadline of each graph operation |
//! | `projection` | `true` | run the event → graph projection inside this provider |
//! | `projection_subjects` | `cim.evt.>` | comma-separated event subjects projected |
//! | `projection_durable` | `graph-projection` | durable consumer name (keep it stable to resume) |
//! | `projection_batch` | `256` | events written per transaction |
//!
//! The password is never logged: [`cim_graph::GraphConfig`]'s `Debug` redacts it.

use std::collections::HashMap;
use std::time::Duration;

use cim_graph::GraphConfig;

/// Bolt URI key.
pub const URI: &str = "uri";
/// User key.
pub const USER: &str = "user";
/// Password file key.
pub const PASSWORD_FILE: &str = "password_file";
/// Inline password key.
pub const PASSWORD: &str = "password";
/// Database key.
pub const DATABASE: &str = "database";
/// Timeout key.
pub const TIMEOUT_SECS: &str = "timeout_secs";
/// Projection switch key.
pub const PROJECTION: &str = "projection";
/// Projected subjects key.
pub const PROJECTION_SUBJECTS: &str = "projection_subjects";
/// Projection durable consumer key.
pub const PROJECTION_DURABLE: &str = "projection_durable";
/// Projection batch size key.
pub const PROJECTION_BATCH: &str = "projection_batch";

/// The projection's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// Event subject filters.
    pub subjects: Vec<String>,
    /// Durable consumer name.
    pub durable: String,
    /// Events per transaction.
    pub batch: usize,
}

/// Everything the provider reads from its config.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The graph connection.
    pub graph: GraphConfig,
    /// The projection, if enabled.
    pub projection: Option<ProjectionConfig>,
}

/// Why the configuration was refused (never contains the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required key is missing.
    #[error("provider config needs {0}")]
    Missing(&'static str),
    /// A value does not parse.
    #[error("provider config {key}: {reason}")]
    Value {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

fn bad(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        reason: reason.into(),
    }
}

impl ProviderConfig {
    /// Reads the provider config (reading the password file if one is named).
    pub fn from_config(config: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| config.get(k).map(|v| v.trim().to_string());
        let uri = get(URI).ok_or(ConfigError::Missing(URI))?;
        if ![
            "bolt://",
            "bolt+s://",
            "bolt+ssc://",
            "neo4j://",
            "neo4j+s://",
            "neo4j+ssc://",
        ]
        .iter()
        .any(|s| uri.starts_with(s))
        {
            return Err(bad(
                URI,
                format!("{uri:?} is not a bolt:// or neo4j:// URI"),
            ));
        }
        let password = match (get(PASSWORD_FILE), config.get(PASSWORD)) {
            (Some(path), _) => std::fs::read_to_string(&path)
                .map(|p| p.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| bad(PASSWORD_FILE, format!("cannot read {path}: {e}")))?,
            (None, Some(p)) => p.clone(),
            (None, None) => return Err(ConfigError::Missing("password_file (or password)")),
        };
        let timeout = match get(TIMEOUT_SECS) {
            None => Duration::from_secs(30),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(bad(
                        TIMEOUT_SECS,
                        format!("{v:?} is not a positive integer"),
                    ))
                }
            },
        };
        let projection = match get(PROJECTION).as_deref() {
            None | Some("true") => Some(ProjectionConfig {
                subjects: get(PROJECTION_SUBJECTS)
                    .map(|s| s.split(',').map(|t| t.trim().to_string()).collect())
                    .unwrap_or_else(|| vec![cim_domain::Subject::all_events()]),
                durable: get(PROJECTION_DURABLE).unwrap_or_else(|| "graph-projection".into()),
                batch: match get(PROJECTION_BATCH) {
                    None => 256,
                    Some(v) => match v.parse::<usize>() {
                        Ok(n) if (1..=10_000).contains(&n) => n,
                        _ => return Err(bad(PROJECTION_BATCH, format!("{v:?} is not 1..=10000"))),
                    },
                },
            }),
            Some("false") => None,
            Some(v) => return Err(bad(PROJECTION, format!("{v:?} is not true or false"))),
        };
        if let Some(p) = &projection {
            if let Some(s) = p.subjects.iter().find(|s| !s.starts_with("cim.evt.")) {
                return Err(bad(
                    PROJECTION_SUBJECTS,
                    format!("{s:?} is not within cim.evt.>"),
                ));
            }
        }
        Ok(Self {
            graph: GraphConfig {
                uri,
                user: get(USER).unwrap_or_else(|| "neo4j".into()),
                password,
                database: get(DATABASE).unwrap_or_else(|| "neo4j".into()),
                timeout,
            },
            projection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_provider::config_map as cfg;

    #[test]
    fn reads_the_password_from_a_file_and_never_shows_it() {
        let dir = std::env::temp_dir().join(format!("graph-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = ProviderConfig::from_config(&cfg(&[
            (URI, "bolt://127.0.0.1:7687"),
            (PASSWORD_FILE, file.to_str().unwrap()),
            (DATABASE, "cim"),
        ]))
        .unwrap();
        assert_eq!(c.graph.password, "s3cret");
        assert_eq!(c.graph.database, "cim");
        assert!(!format!("{c:?}").contains("s3cret"));
        let p = c.projection.unwrap();
        assert_eq!(p.subjects, ["cim.evt.>"]);
        assert_eq!(p.batch, 256);
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = [(URI, "bolt://x:1"), (PASSWORD, "p")];
        let with = |extra: &[(&str, &str)]| {
            let mut all: Vec<(&str, &str)> = base.to_vec();
            all.extend_from_slice(extra);
            ProviderConfig::from_config(&cfg(&all))
        };
        assert!(with(&[]).is_ok());
        assert!(ProviderConfig::from_config(&cfg(&[(PASSWORD, "p")])).is_err());
        assert!(ProviderConfig::from_config(&cfg(&[(URI, "bolt://x:1")])).is_err());
        assert!(with(&[(URI, "http://x")]).is_err());
        assert!(with(&[(TIMEOUT_SECS, "0")]).is_err());
        assert!(with(&[(PROJECTION, "maybe")]).is_err());
        assert!(with(&[(PROJECTION_BATCH, "0")]).is_err());
        assert!(with(&[(PROJECTION_SUBJECTS, "wasmbus.>")]).is_err());
        assert!(with(&[(PROJECTION, "false")]).unwrap().projection.is_none());
        let err = with(&[(PASSWORD_FILE, "/nonexistent/pw")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pw"));
    }
}
