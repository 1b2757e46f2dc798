//! Configuration of the object-store provider (provider config, set on the provider in the
//! manifest; nothing secret: the provider uses the lattice's own NATS connection).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `bucket` | `CIM_OBJECTS` | NATS Object Store bucket (created with file storage if missing) |
//! | `allow_delete` | `false` | whether `delete` is allowed; objects are immutable facts by default |

use std::collections::HashMap;

/// Bucket name key.
pub const BUCKET: &str = "bucket";
/// Delete policy key.
pub const ALLOW_DELETE: &str = "allow_delete";

/// The provider's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    /// Bucket name.
    pub bucket: String,
    /// Whether `delete` is allowed.
    pub allow_delete: bool,
}

/// A configuration value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider config {key} = {value:?}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl ObjectStoreConfig {
    /// Reads the provider config.
    pub fn from_config(config: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let bucket = config
            .get(BUCKET)
            .cloned()
            .unwrap_or_else(|| cim_nats::names::OBJECTS_BUCKET.to_string());
        if !cim_nats::names::is_bucket_name(&bucket) {
            return Err(ConfigError {
                key: BUCKET,
                value: bucket,
                reason: "bucket names are A-Z, a-z, 0-9, '_' and '-'",
            });
        }
        let allow_delete = match config
            .get(ALLOW_DELETE)
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(ConfigError {
                    key: ALLOW_DELETE,
                    value: v,
                    reason: "expected true or false",
                })
            }
        };
        Ok(Self {
            bucket,
            allow_delete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_provider::config_map as cfg;

    #[test]
    fn defaults_keep_objects_immutable() {
        let c = ObjectStoreConfig::from_config(&cfg(&[])).unwrap();
        assert_eq!(c.bucket, "CIM_OBJECTS");
        assert!(!c.allow_delete);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ObjectStoreConfig::from_config(&cfg(&[(ALLOW_DELETE, "yes")])).is_err());
        assert!(ObjectStoreConfig::from_config(&cfg(&[(BUCKET, "a.b")])).is_err());
        assert!(ObjectStoreConfig::from_config(&cfg(&[(BUCKET, "")])).is_err());
        let c = ObjectStoreConfig::from_config(&cfg(&[(ALLOW_DELETE, "TRUE"), (BUCKET, "b-1")]))
            .unwrap();
        assert!(c.allow_delete);
        assert_eq!(c.bucket, "b-1");
    }
}
