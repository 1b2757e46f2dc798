//! Configuration of the nix-build provider.
//!
//! **Provider config** (how Nix runs on this host; nothing secret):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `nix_bin` | `nix` | the `nix` executable (PATH lookup unless absolute) |
//! | `substituters` | empty | binary caches (`--option substituters`); empty builds offline from sources already in the store |
//! | `sandbox` | `true` | build in the Nix sandbox (`--option sandbox`) |
//! | `extra_sandbox_paths` | empty | space-separated `target=source` paths made visible in the sandbox (e.g. `/bin/sh=/bin/busybox` where the host has no Nix-provided shell) |
//! | `timeout_secs` | `900` | a build still running after this is killed (with its process group) and reported failed |
//! | `max_concurrent_builds` | `1` | builds running at once; further requests wait |
//! | `log_max_bytes` | `4194304` | the stored log keeps at most this many bytes (the end of the log) |
//! | `nar_max_bytes` | `268435456` | largest output NAR stored as the published artifact |
//! | `bucket` | `CIM_OBJECTS` | object-store bucket for logs and NARs |
//! | `allowed_flake_refs` | empty (nothing) | flake locations every caller may build, unless its link names its own |
//!
//! **Link config** (target config on each link *to* the provider, so the operator decides per
//! calling component what it may build):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `allowed_flake_refs` | the provider's | comma-separated flake locations the linked component may build; an entry allows itself and everything below it |

use std::collections::HashMap;
use std::time::Duration;

use crate::flakeref::{AllowList, RefError};

/// `nix` executable key.
pub const NIX_BIN: &str = "nix";
/// Binary caches key.
pub const SUBSTITUTERS: &str = "substituters";
/// Sandbox switch key.
pub const SANDBOX: &str = "sandbox";
/// Extra sandbox paths key.
pub const EXTRA_SANDBOX_PATHS: &str = "extra_sandbox_paths";
/// Build timeout key.
pub const TIMEOUT_SECS: &str = "timeout_secs";
/// Concurrency limit key.
pub const MAX_CONCURRENT_BUILDS: &str = "max_concurrent_builds";
/// Log size limit key.
pub const LOG_MAX_BYTES: &str = "log_max_bytes";
/// NAR size limit key.
pub const NAR_MAX_BYTES: &str = "nar_max_bytes";
/// Object bucket key.
pub const BUCKET: &str = "bucket";
/// Allow-list key (link config).
pub const ALLOWED_FLAKE_REFS: &str = "allowed_flake_refs";

/// A configuration value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {key} = {value:?}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// How Nix runs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixSettings {
    /// The `nix` executable.
    pub nix_bin: String,
    /// `--option substituters`.
    pub substituters: String,
    /// `--option sandbox`.
    pub sandbox: bool,
    /// `--option extra-sandbox-paths`, when not empty.
    pub extra_sandbox_paths: String,
    /// Build deadline.
    pub timeout: Duration,
    /// Bytes of log kept.
    pub log_max_bytes: usize,
    /// Largest NAR stored.
    pub nar_max_bytes: usize,
}

/// The provider config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// How Nix runs.
    pub nix: NixSettings,
    /// Builds running at once.
    pub max_concurrent_builds: usize,
    /// Object bucket.
    pub bucket: String,
    /// What callers may build when their link names nothing.
    pub allowed: AllowList,
}

fn number<T>(
    config: &HashMap<String, String>,
    key: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = config.get(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(ConfigError {
            key,
            value: raw.clone(),
            reason: format!("expected a whole number of at least {min}"),
        }),
    }
}

fn text_without_controls(
    config: &HashMap<String, String>,
    key: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = config
        .get(key)
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| default.to_string());
    if value.chars().any(char::is_control) {
        return Err(ConfigError {
            key,
            value,
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(value)
}

impl BuildConfig {
    /// Reads the provider config.
    pub fn from_config(config: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let nix_bin = text_without_controls(config, NIX_BIN, "nix")?;
        if nix_bin.is_empty() || nix_bin.starts_with('-') {
            return Err(ConfigError {
                key: NIX_BIN,
                value: nix_bin,
                reason: "must name an executable".into(),
            });
        }
        let sandbox = match config.get(SANDBOX).map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(ConfigError {
                    key: SANDBOX,
                    value: v,
                    reason: "expected true or false".into(),
                })
            }
        };
        let bucket = text_without_controls(config, BUCKET, cim_nats::names::OBJECTS_BUCKET)?;
        if !cim_nats::names::is_bucket_name(&bucket) {
            return Err(ConfigError {
                key: BUCKET,
                value: bucket,
                reason: "bucket names are A-Z, a-z, 0-9, '_' and '-'".into(),
            });
        }
        Ok(Self {
            nix: NixSettings {
                nix_bin,
                substituters: text_without_controls(config, SUBSTITUTERS, "")?,
                sandbox,
                extra_sandbox_paths: text_without_controls(config, EXTRA_SANDBOX_PATHS, "")?,
                timeout: Duration::from_secs(number(config, TIMEOUT_SECS, 900, 1)?),
                log_max_bytes: number(config, LOG_MAX_BYTES, 4 << 20, 1024)?,
                nar_max_bytes: number(config, NAR_MAX_BYTES, 256 << 20, 1024)?,
            },
            max_concurrent_builds: number(config, MAX_CONCURRENT_BUILDS, 1, 1)?,
            bucket,
            allowed: allow_list(config)?,
        })
    }
}

/// Reads a link's allow-list.
pub fn allow_list(config: &HashMap<String, String>) -> Result<AllowList, ConfigError> {
    let raw = config
        .get(ALLOWED_FLAKE_REFS)
        .map(String::as_str)
        .unwrap_or("");
    AllowList::parse(raw).map_err(|e: RefError| ConfigError {
        key: ALLOWED_FLAKE_REFS,
        value: raw.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_provider::config_map as cfg;

    #[test]
    fn defaults_build_offline_in_the_sandbox_one_at_a_time() {
        let c = BuildConfig::from_config(&cfg(&[])).unwrap();
        assert_eq!(c.nix.nix_bin, "nix");
        assert_eq!(c.nix.substituters, "");
        assert!(c.nix.sandbox);
        assert_eq!(c.nix.timeout, Duration::from_secs(900));
        assert_eq!(c.max_concurrent_builds, 1);
        assert_eq!(c.bucket, "CIM_OBJECTS");
        assert!(allow_list(&cfg(&[])).unwrap().entries().is_empty());
    }

    #[test]
    fn values_are_read_and_bad_ones_refused() {
        let c = BuildConfig::from_config(&cfg(&[
            (TIMEOUT_SECS, "30"),
            (MAX_CONCURRENT_BUILDS, "2"),
            (SANDBOX, "FALSE"),
            (EXTRA_SANDBOX_PATHS, "/bin/sh=/bin/busybox"),
            (SUBSTITUTERS, "https://cache.example"),
        ]))
        .unwrap();
        assert_eq!(c.nix.timeout, Duration::from_secs(30));
        assert_eq!(c.max_concurrent_builds, 2);
        assert!(!c.nix.sandbox);
        assert_eq!(c.nix.extra_sandbox_paths, "/bin/sh=/bin/busybox");
        for bad in [
            (TIMEOUT_SECS, "0"),
            (TIMEOUT_SECS, "soon"),
            (MAX_CONCURRENT_BUILDS, "0"),
            (SANDBOX, "maybe"),
            (NIX_BIN, "--option"),
            (SUBSTITUTERS, "a\nb"),
            (BUCKET, "a.b"),
            (LOG_MAX_BYTES, "10"),
        ] {
            assert!(BuildConfig::from_config(&cfg(&[bad])).is_err(), "{bad:?}");
        }
        assert!(allow_list(&cfg(&[(ALLOWED_FLAKE_REFS, "path:/a, not a ref")])).is_err());
        assert!(BuildConfig::from_config(&cfg(&[(ALLOWED_FLAKE_REFS, "not a ref")])).is_err());
        assert_eq!(
            BuildConfig::from_config(&cfg(&[(ALLOWED_FLAKE_REFS, "path:/a")]))
                .unwrap()
                .allowed
                .entries(),
            ["path:/a"]
        );
        assert_eq!(
            allow_list(&cfg(&[(ALLOWED_FLAKE_REFS, "path:/a,git+file:///b")]))
                .unwrap()
                .entries(),
            ["path:/a", "git+file:///b"]
        );
    }
}
