//! Link configuration keys of the event-store provider.
//!
//! | key | link | meaning |
//! |---|---|---|
//! | `subscription` | provider → reactor component (`cim:ecs/reactor`) | subject filter of the events delivered, e.g. `cim.evt.document.*`; default `cim.evt.>` |
//! | `durable` | provider → reactor component | durable consumer name; default `reactor-<component id>-<link name>` |
//! | `max_deliver` | provider → reactor component | deliveries before an event is given up on (logged); default unlimited |
//!
//! Entity components linked to the provider (`cim:ecs/eventstore`) need no configuration.
//! The provider stores events through the lattice's own NATS connection (the credentials the
//! host hands it), so no secret ever appears in a manifest.

use std::collections::HashMap;

use cim_domain::Subject;

/// Subject filter of a reactor subscription.
pub const SUBSCRIPTION: &str = "subscription";
/// Durable consumer name of a reactor subscription.
pub const DURABLE: &str = "durable";
/// Maximum deliveries of one event to a reactor.
pub const MAX_DELIVER: &str = "max_deliver";

/// A reactor subscription, read from link config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// Subject filter (within `cim.evt.>`).
    pub filter: String,
    /// Durable consumer name.
    pub durable: String,
    /// Maximum deliveries (-1 = unlimited).
    pub max_deliver: i64,
}

/// Why a link's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The subscription filter is not within `cim.evt.>`.
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
        let filter = config
            .get(SUBSCRIPTION)
            .cloned()
            .unwrap_or_else(Subject::all_events);
        let tokens: Vec<&str> = filter.split('.').collect();
        let ok = tokens.len() >= 3
            && tokens[0] == "cim"
            && tokens[1] == "evt"
            && tokens.iter().enumerate().all(|(i, t)| {
                !t.is_empty()
                    && (*t == "*"
                        || (*t == ">" && i == tokens.len() - 1)
                        || t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            });
        if !ok {
            return Err(ConfigError::Filter(filter));
        }
        let durable = config
            .get(DURABLE)
            .map(|d| durable_token(d))
            .unwrap_or_else(|| durable_token(&format!("reactor-{target}-{link_name}")));
        let max_deliver = match config.get(MAX_DELIVER) {
            None => -1,
            Some(v) => v.parse::<i64>().map_err(|e| ConfigError::Value {
                key: MAX_DELIVER,
                value: v.clone(),
                reason: e.to_string(),
            })?,
        };
        Ok(Self {
            filter,
            durable,
            max_deliver,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_subscribe_to_everything_with_a_stable_durable() {
        let c = SubscriptionConfig::from_link(&cfg(&[]), "cim-agent", "default").unwrap();
        assert_eq!(c.filter, "cim.evt.>");
        assert_eq!(c.durable, "reactor-cim-agent-default");
        assert_eq!(c.max_deliver, -1);
    }

    #[test]
    fn filters_outside_the_event_space_are_refused() {
        for bad in [
            "wasmbus.>",
            "cim.cmd.document.*",
            "cim.evt.>.x",
            "cim.evt..x",
            "cim.evt.a b",
        ] {
            let r = SubscriptionConfig::from_link(&cfg(&[(SUBSCRIPTION, bad)]), "t", "l");
            assert!(matches!(r, Err(ConfigError::Filter(_))), "{bad}");
        }
        let ok =
            SubscriptionConfig::from_link(&cfg(&[(SUBSCRIPTION, "cim.evt.document.*")]), "t", "l")
                .unwrap();
        assert_eq!(ok.filter, "cim.evt.document.*");
        assert!(SubscriptionConfig::from_link(&cfg(&[(MAX_DELIVER, "x")]), "t", "l").is_err());
    }
}
