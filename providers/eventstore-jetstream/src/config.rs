//! Link configuration keys of the event-store provider.
//!
//! | key | link | meaning |
//! |---|---|---|
//! | `subscription` | provider → reactor component (`cim:ecs/reactor`) | comma-separated subject filters of the events delivered, e.g. `cim.evt.document.*,cim.evt.package.*`; default `cim.evt.>` |
//! | `durable` | provider → reactor component | durable consumer name; default `reactor-<component id>-<link name>` |
//! | `max_deliver` | provider → reactor component | deliveries of one event before it is given up on: written to the dead letters (`cim dead-letters`) and the reactor moves on; at least 1; default 10 |
//! | `retry_delay_secs` | provider → reactor component | back-off before the first redelivery, doubled for each later one up to 60 s; default 2 |
//! | `ack_wait_secs` | provider → reactor component | JetStream ack wait; while a reactor call runs the provider reports progress every third of it, so only a dead provider lets it expire; default 30 |
//! | `call_timeout_secs` | provider → reactor component | how long one `on-event` call may take before it counts as failed and is redelivered; default 120 |
//!
//! Provider config (on the provider in the manifest):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `offload_above_bytes` | 65536 | event payloads larger than this are stored in the object store (`CIM_OBJECTS`) and the event message carries their CID; reads resolve them |
//! | `nats_creds_file` | none | a NATS `.creds` file on the host: the provider stores events through its own connection as that user (the events role, the only one allowed to publish to `cim.evt.>`) instead of the lattice's connection |
//!
//! Entity components linked to the provider (`cim:ecs/eventstore`) need no configuration.
//! Without `nats_creds_file` the provider stores events through the lattice's own NATS
//! connection (the credentials the host hands it). Either way no secret appears in a
//! manifest: the file's path does, and the file stays on the host.

use std::collections::HashMap;
use std::time::Duration;

use cim_domain::Subject;

/// Subject filter of a reactor subscription.
pub const SUBSCRIPTION: &str = "subscription";
/// Durable consumer name of a reactor subscription.
pub const DURABLE: &str = "durable";
/// Maximum deliveries of one event to a reactor.
pub const MAX_DELIVER: &str = "max_deliver";
/// Back-off before the first redelivery of a failed event, in seconds.
pub const RETRY_DELAY_SECS: &str = "retry_delay_secs";
/// JetStream ack wait of a reactor subscription, in seconds.
pub const ACK_WAIT_SECS: &str = "ack_wait_secs";
/// Deadline of one `on-event` call, in seconds.
pub const CALL_TIMEOUT_SECS: &str = "call_timeout_secs";

/// Provider config: payload size above which payloads are offloaded.
pub const OFFLOAD_ABOVE_BYTES: &str = "offload_above_bytes";

/// Provider config: the `.creds` file of the provider's own NATS connection.
pub const NATS_CREDS_FILE: &str = "nats_creds_file";

/// Reads [`NATS_CREDS_FILE`] from the provider config: the file must exist.
pub fn nats_creds_file(
    config: &HashMap<String, String>,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    match config.get(NATS_CREDS_FILE) {
        None => Ok(None),
        Some(v) => {
            let path = std::path::PathBuf::from(v);
            if path.is_absolute() && path.is_file() {
                Ok(Some(path))
            } else {
                Err(ConfigError::Value {
                    key: NATS_CREDS_FILE,
                    value: v.clone(),
                    reason: "must be the absolute path of an existing .creds file".into(),
                })
            }
        }
    }
}

/// Reads [`OFFLOAD_ABOVE_BYTES`] from the provider config.
pub fn offload_above(config: &HashMap<String, String>) -> Result<usize, ConfigError> {
    match config.get(OFFLOAD_ABOVE_BYTES) {
        None => Ok(cim_nats::store::DEFAULT_OFFLOAD_ABOVE),
        Some(v) => parse(OFFLOAD_ABOVE_BYTES, v),
    }
}

/// Default [`MAX_DELIVER`].
pub const DEFAULT_MAX_DELIVER: u64 = 10;
/// Default [`RETRY_DELAY_SECS`].
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Default [`ACK_WAIT_SECS`].
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default [`CALL_TIMEOUT_SECS`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A reactor subscription, read from link config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// Subject filters (within `cim.evt.>`), at least one.
    pub filters: Vec<String>,
    /// Durable consumer name.
    pub durable: String,
    /// Deliveries of one event before it is dead-lettered (at least 1).
    pub max_deliver: u64,
    /// Back-off before the first redelivery (doubled for each later one, up to a minute).
    pub retry_delay: Duration,
    /// JetStream ack wait.
    pub ack_wait: Duration,
    /// Deadline of one reactor call.
    pub call_timeout: Duration,
}

/// Why a link's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A subscription filter is not within `cim.evt.>`.
    #[error(
        "subscription {0:?} must be a subject filter within cim.evt.> (e.g. cim.evt.document.*)"
    )]
    Filter(String),
    /// A value does not parse.
    #[error("link config {key} = {value:?}: {reason}")]
    Value {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
}

fn durable_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl SubscriptionConfig {
    /// Reads a reactor link's configuration.
    pub fn from_link(
        config: &HashMap<String, String>,
        target: &str,
        link_name: &str,
    ) -> Result<Self, ConfigError> {
        let filters: Vec<String> = config
            .get(SUBSCRIPTION)
            .map(|f| f.split(',').map(|t| t.trim().to_string()).collect())
            .unwrap_or_else(|| vec![Subject::all_events()]);
        if let Some(bad) = filters.iter().find(|f| !is_event_filter(f)) {
            return Err(ConfigError::Filter(bad.clone()));
        }
        let durable = config
            .get(DURABLE)
            .map(|d| durable_token(d))
            .unwrap_or_else(|| durable_token(&format!("reactor-{target}-{link_name}")));
        let max_deliver = match config.get(MAX_DELIVER) {
            None => DEFAULT_MAX_DELIVER,
            Some(v) => match parse::<u64>(MAX_DELIVER, v)? {
                0 => {
                    return Err(ConfigError::Value {
                        key: MAX_DELIVER,
                        value: v.clone(),
                        reason: "must be at least 1 (one event must never stop a reactor, so \
                                 deliveries are always bounded)"
                            .into(),
                    })
                }
                n => n,
            },
        };
        let seconds = |key: &'static str, default: Duration| match config.get(key) {
            None => Ok(default),
            Some(v) => match parse::<u64>(key, v)? {
                0 => Err(ConfigError::Value {
                    key,
                    value: v.clone(),
                    reason: "must be at least 1 second".into(),
                }),
                n => Ok(Duration::from_secs(n)),
            },
        };
        Ok(Self {
            filters,
            durable,
            max_deliver,
            retry_delay: seconds(RETRY_DELAY_SECS, DEFAULT_RETRY_DELAY)?,
            ack_wait: seconds(ACK_WAIT_SECS, DEFAULT_ACK_WAIT)?,
            call_timeout: seconds(CALL_TIMEOUT_SECS, DEFAULT_CALL_TIMEOUT)?,
        })
    }
}

fn parse<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| ConfigError::Value {
        key,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// Whether `filter` is a subject filter within `cim.evt.>`.
fn is_event_filter(filter: &str) -> bool {
    let tokens: Vec<&str> = filter.split('.').collect();
    tokens.len() >= 3
        && tokens[0] == "cim"
        && tokens[1] == "evt"
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && (*t == "*"
                    || (*t == ">" && i == tokens.len() - 1)
                    || t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use cim_provider::config_map as cfg;

    #[test]
    fn defaults_subscribe_to_everything_with_a_stable_durable() {
        let c = SubscriptionConfig::from_link(&cfg(&[]), "cim-agent", "default").unwrap();
        assert_eq!(c.filters, ["cim.evt.>"]);
        assert_eq!(c.durable, "reactor-cim-agent-default");
        assert_eq!(c.max_deliver, DEFAULT_MAX_DELIVER);
        assert_eq!(c.retry_delay, DEFAULT_RETRY_DELAY);
        assert_eq!(c.ack_wait, DEFAULT_ACK_WAIT);
        assert_eq!(c.call_timeout, DEFAULT_CALL_TIMEOUT);
    }

    #[test]
    fn filters_outside_the_event_space_are_refused() {
        for bad in [
            "wasmbus.>",
            "cim.cmd.document.*",
            "cim.evt.>.x",
            "cim.evt..x",
            "cim.evt.a b",
            "cim.evt.document.*,wasmbus.>",
            "",
        ] {
            let r = SubscriptionConfig::from_link(&cfg(&[(SUBSCRIPTION, bad)]), "t", "l");
            assert!(matches!(r, Err(ConfigError::Filter(_))), "{bad}");
        }
        let ok =
            SubscriptionConfig::from_link(&cfg(&[(SUBSCRIPTION, "cim.evt.document.*")]), "t", "l")
                .unwrap();
        assert_eq!(ok.filters, ["cim.evt.document.*"]);
        let two = SubscriptionConfig::from_link(
            &cfg(&[(SUBSCRIPTION, "cim.evt.document.*, cim.evt.package.*")]),
            "t",
            "l",
        )
        .unwrap();
        assert_eq!(two.filters, ["cim.evt.document.*", "cim.evt.package.*"]);
        for (key, bad) in [
            (MAX_DELIVER, "x"),
            (ACK_WAIT_SECS, "0"),
            (ACK_WAIT_SECS, "-1"),
            (CALL_TIMEOUT_SECS, "soon"),
        ] {
            let r = SubscriptionConfig::from_link(&cfg(&[(key, bad)]), "t", "l");
            assert!(matches!(r, Err(ConfigError::Value { .. })), "{key}={bad}");
        }
        let timed = SubscriptionConfig::from_link(
            &cfg(&[(ACK_WAIT_SECS, "5"), (CALL_TIMEOUT_SECS, "9")]),
            "t",
            "l",
        )
        .unwrap();
        assert_eq!(timed.ack_wait, Duration::from_secs(5));
        assert_eq!(timed.call_timeout, Duration::from_secs(9));
        assert_eq!(offload_above(&cfg(&[])).unwrap(), 65536);
        assert_eq!(
            offload_above(&cfg(&[(OFFLOAD_ABOVE_BYTES, "10")])).unwrap(),
            10
        );
        assert!(offload_above(&cfg(&[(OFFLOAD_ABOVE_BYTES, "-1")])).is_err());
    }

    #[test]
    fn unbounded_or_zero_deliveries_are_refused() {
        for bad in ["-1", "0"] {
            let r = SubscriptionConfig::from_link(&cfg(&[(MAX_DELIVER, bad)]), "t", "l");
            assert!(
                matches!(
                    r,
                    Err(ConfigError::Value {
                        key: MAX_DELIVER,
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let three = SubscriptionConfig::from_link(&cfg(&[(MAX_DELIVER, "3")]), "t", "l").unwrap();
        assert_eq!(three.max_deliver, 3);
    }

    #[test]
    fn a_creds_file_must_exist_and_be_absolute() {
        assert_eq!(nats_creds_file(&cfg(&[])).unwrap(), None);
        for bad in ["relative.creds", "/nonexistent/cim/events.creds"] {
            assert!(
                nats_creds_file(&cfg(&[(NATS_CREDS_FILE, bad)])).is_err(),
                "{bad}"
            );
        }
        let file = std::env::temp_dir().join(format!("cim-creds-{}.creds", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        let path = file.display().to_string();
        assert_eq!(
            nats_creds_file(&cfg(&[(NATS_CREDS_FILE, path.as_str())])).unwrap(),
            Some(file.clone())
        );
        let _ = std::fs::remove_file(file);
    }
}
