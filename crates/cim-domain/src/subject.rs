//! The subject language of the CIM.
//!
//! | subject | meaning |
//! |---|---|
//! | `cim.evt.<kind>.<id>` | the event stream of one entity |
//! | `cim.cmd.<kind>.<action>` | a command to an entity type |
//!
//! Event names stay out of event subjects on purpose: per-entity optimistic concurrency uses
//! JetStream's `Nats-Expected-Last-Subject-Sequence`, which compares against the last message
//! on the exact subject, so one subject per entity makes it a per-entity check.
//! Every token is a validated [`Token`], so parsing a built subject always round-trips.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::ident::{EntityRef, IdentError, Token};

/// The root token of every CIM subject.
pub const ROOT: &str = "cim";
/// The second token of event subjects.
pub const EVENTS: &str = "evt";
/// The second token of command subjects.
pub const COMMANDS: &str = "cmd";

/// Why a string is not a CIM subject.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubjectError {
    /// The subject does not have the `cim.<evt|cmd>.<a>.<b>` shape.
    #[error("subject {0:?} is not of the form cim.evt.<kind>.<id> or cim.cmd.<kind>.<action>")]
    Shape(String),
    /// One token of the subject is not a valid identifier.
    #[error(transparent)]
    Token(#[from] IdentError),
}

/// A concrete (wildcard-free) CIM subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The event stream of one entity.
    Event(EntityRef),
    /// A command addressed to an entity type.
    Command {
        /// The entity type.
        kind: Token,
        /// The command action.
        action: Token,
    },
}

impl Subject {
    /// The event subject of `entity`.
    pub fn event(entity: &EntityRef) -> Self {
        Subject::Event(entity.clone())
    }

    /// The filter matching every CIM event: `cim.evt.>`.
    pub fn all_events() -> String {
        format!("{ROOT}.{EVENTS}.>")
    }

    /// The filter matching every event of one entity type: `cim.evt.<kind>.*`.
    pub fn events_of_kind(kind: &Token) -> String {
        format!("{ROOT}.{EVENTS}.{kind}.*")
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Event(e) => write!(f, "{ROOT}.{EVENTS}.{}.{}", e.kind, e.id),
            Subject::Command { kind, action } => write!(f, "{ROOT}.{COMMANDS}.{kind}.{action}"),
        }
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let [root, class, a, b] = parts.as_slice() else {
            return Err(SubjectError::Shape(s.to_owned()));
        };
        if *root != ROOT {
            return Err(SubjectError::Shape(s.to_owned()));
        }
        match *class {
            EVENTS => Ok(Subject::Event(EntityRef::new(a, b)?)),
            COMMANDS => Ok(Subject::Command {
                kind: Token::parse("entity kind", a)?,
                action: Token::parse("command action", b)?,
            }),
            _ => Err(SubjectError::Shape(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_event_and_command_subjects() {
        let e = EntityRef::new("document", "d1").unwrap();
        assert_eq!(Subject::event(&e).to_string(), "cim.evt.document.d1");
        let c = Subject::Command {
            kind: e.kind.clone(),
            action: Token::parse("command action", "Archive").unwrap(),
        };
        assert_eq!(c.to_string(), "cim.cmd.document.Archive");
        assert_eq!(Subject::all_events(), "cim.evt.>");
        assert_eq!(Subject::events_of_kind(&e.kind), "cim.evt.document.*");
    }

    #[test]
    fn rejects_wildcards_and_bad_shapes() {
        for bad in [
            "cim.evt.document.*",
            "cim.evt.document.>",
            "cim.evt.>",
            "cim.evt.document",
            "cim.evt.document.a.b",
            "nats.evt.document.a",
            "cim.log.document.a",
            "cim.evt..a",
            "",
        ] {
            assert!(bad.parse::<Subject>().is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn event_subjects_round_trip(kind in "[a-z][a-z0-9_-]{0,20}", id in "[A-Za-z0-9_-]{1,40}") {
            let e = EntityRef::new(&kind, &id).unwrap();
            let s = Subject::event(&e);
            prop_assert_eq!(s.to_string().parse::<Subject>().unwrap(), s);
        }

        #[test]
        fn command_subjects_round_trip(kind in "[a-z][a-z0-9_-]{0,20}", action in "[A-Za-z][A-Za-z0-9]{0,30}") {
            let s = Subject::Command {
                kind: Token::parse("entity kind", &kind).unwrap(),
                action: Token::parse("command action", &action).unwrap(),
            };
            prop_assert_eq!(s.to_string().parse::<Subject>().unwrap(), s);
        }

        #[test]
        fn ids_with_metacharacters_never_validate(prefix in "[a-z]{0,5}", bad in "[.*> \t\n]", suffix in "[a-z]{0,5}") {
            let id = format!("{prefix}{bad}{suffix}");
            prop_assert!(EntityRef::new("document", &id).is_err());
        }
    }
}
