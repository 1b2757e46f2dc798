//! Snapshots of an entity's state, so a command reads only the events after the last one.
//!
//! A [`Snapshot`] is what the event store keeps (`cim:ecs/eventstore.snapshot`): the version
//! and CID of the last event folded in, and opaque state bytes. Entity components fill those
//! bytes with a [`SnapshotBody`]: the aggregate's state as JSON, the schema the state was
//! written with ([`Aggregate::STATE_SCHEMA`]), and the ids of the entity's most recent
//! commands ([`RecentCommands`]), so a command sent again after a snapshot is still answered
//! with the events it produced rather than decided a second time.
//!
//! A snapshot is only ever an optimisation: one that cannot be read, was written for another
//! schema or kind, or names an event that is not in the stream is ignored (and reported), and
//! the entity is replayed from its first event.

use std::collections::VecDeque;

use cid::Cid;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::aggregate::Aggregate;
use crate::event::RecordedEvent;
use crate::ident::EntityRef;

/// The layout of [`SnapshotBody`]; bumped only when that envelope itself changes.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// How many of an entity's latest commands are remembered by id across snapshots.
///
/// A command sent again while its id is among the entity's last `RECENT_COMMANDS` commands is
/// answered with its stored events. One that comes back later than that, after a snapshot was
/// saved, is decided again as a new command. Retries come seconds after a lost answer, so this
/// bounds the snapshot (at most about 40 KiB of ids) without losing a real retry.
pub const RECENT_COMMANDS: usize = 256;

/// A saved fold of an entity's events, as the event store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The entity.
    pub entity: EntityRef,
    /// The version of the last event folded into the state.
    pub version: u64,
    /// The CID of that event.
    pub last_cid: Cid,
    /// A [`SnapshotBody`] as JSON.
    pub state: Vec<u8>,
}

/// Why a stored snapshot was not used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes are not a snapshot body of this format.
    #[error("snapshot cannot be read: {0}")]
    Unreadable(String),
    /// The body was written by another snapshot layout.
    #[error("snapshot format {found} is not {SNAPSHOT_FORMAT}")]
    Format {
        /// The format found.
        found: u32,
    },
    /// The snapshot was written for another entity or kind.
    #[error("snapshot belongs to {found}, not {expected}")]
    Foreign {
        /// The entity whose snapshot was asked for.
        expected: String,
        /// What the snapshot says it is.
        found: String,
    },
    /// The state was written under other rules or another state shape.
    #[error("snapshot state schema {found} is not the aggregate's {expected}")]
    Schema {
        /// [`Aggregate::STATE_SCHEMA`].
        expected: u32,
        /// The schema recorded in the snapshot.
        found: u32,
    },
    /// The snapshot names an event that is not in the entity's stream.
    #[error("snapshot names event {cid} at version {version}, which the stream does not hold")]
    NotInStream {
        /// The version named.
        version: u64,
        /// The CID named.
        cid: String,
    },
}

/// The events one command produced: `count` events from version `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEvents {
    /// The command id (the envelope id of the command).
    pub id: String,
    /// The version of its first event.
    pub from: u64,
    /// How many events it appended.
    pub count: u32,
}

/// The ids of an entity's latest commands and where their events are, oldest first; at most
/// [`RECENT_COMMANDS`] of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecentCommands(VecDeque<CommandEvents>);

impl RecentCommands {
    /// Records a folded event under the command that caused it (its id is
    /// `<command id>-<n>`); events of other origins are not recorded.
    pub fn record(&mut self, ev: &RecordedEvent) {
        let Some((command, n)) = command_of(&ev.meta.id) else {
            return;
        };
        if let Some(last) = self.0.back_mut() {
            if last.id == command && last.from + u64::from(last.count) == ev.version {
                if u64::from(last.count) + 1 == n {
                    last.count += 1;
                }
                return;
            }
        }
        if n != 1 {
            return;
        }
        self.0.push_back(CommandEvents {
            id: command.to_owned(),
            from: ev.version,
            count: 1,
        });
        while self.0.len() > RECENT_COMMANDS {
            self.0.pop_front();
        }
    }

    /// Where the events of `command_id` are, if it is among the recent commands.
    pub fn find(&self, command_id: &str) -> Option<&CommandEvents> {
        self.0.iter().rev().find(|c| c.id == command_id)
    }

    /// How many commands are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no command is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits an event id `<command id>-<n>` into the command id and `n` (from 1).
pub fn command_of(event_id: &str) -> Option<(&str, u64)> {
    let (command, n) = event_id.rsplit_once('-')?;
    if command.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((command, n.parse().ok().filter(|n| *n >= 1)?))
}

/// What an entity component keeps in a snapshot's state bytes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SnapshotBody<S> {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// The entity (`kind/id`) the state belongs to.
    pub entity: String,
    /// [`Aggregate::STATE_SCHEMA`] of the aggregate that wrote it.
    pub state_schema: u32,
    /// The aggregate's state.
    pub state: S,
    /// The entity's latest commands.
    pub commands: RecentCommands,
}

/// The part of a body read before its state: checked first, so a state of another shape is
/// reported as a schema change rather than as unreadable JSON.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct BodyHeader {
    format: u32,
    entity: String,
    state_schema: u32,
}

/// Encodes the state of `A` at the end of a fold.
pub fn encode_body<A: Aggregate>(
    entity: &EntityRef,
    state: &A,
    commands: &RecentCommands,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&SnapshotBody {
        format: SNAPSHOT_FORMAT,
        entity: entity.to_string(),
        state_schema: A::STATE_SCHEMA,
        state,
        commands: commands.clone(),
    })
}

/// Decodes a snapshot body of `entity` written for `A`'s current state schema.
pub fn decode_body<A: Aggregate>(
    entity: &EntityRef,
    bytes: &[u8],
) -> Result<(A, RecentCommands), SnapshotError> {
    let unreadable = |e: serde_json::Error| SnapshotError::Unreadable(e.to_string());
    let header: BodyHeader = serde_json::from_slice(bytes).map_err(unreadable)?;
    if header.format != SNAPSHOT_FORMAT {
        return Err(SnapshotError::Format {
            found: header.format,
        });
    }
    if header.entity != entity.to_string() {
        return Err(SnapshotError::Foreign {
            expected: entity.to_string(),
            found: header.entity,
        });
    }
    if header.state_schema != A::STATE_SCHEMA {
        return Err(SnapshotError::Schema {
            expected: A::STATE_SCHEMA,
            found: header.state_schema,
        });
    }
    let mut body: SnapshotBody<A> = serde_json::from_slice(bytes).map_err(unreadable)?;
    // Written by us, the list is never longer; a longer one is kept to the same bound.
    let excess = body.commands.0.len().saturating_sub(RECENT_COMMANDS);
    body.commands.0.drain(..excess);
    Ok((body.state, body.commands))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::event::NewEvent;
    use crate::ident::Token;

    fn event(version: u64, id: &str) -> RecordedEvent {
        RecordedEvent::seal(
            &EntityRef::new("counter", "a").unwrap(),
            version,
            None,
            NewEvent {
                name: Token::parse("event name", "Added").unwrap(),
                schema_version: 1,
                payload: b"{}".to_vec(),
                meta: Envelope::originating(id, 1),
            },
        )
        .unwrap()
    }

    #[test]
    fn event_ids_name_their_command_and_position() {
        assert_eq!(command_of("cmd-7-2"), Some(("cmd-7", 2)));
        assert_eq!(command_of("x-1"), Some(("x", 1)));
        for not_one in ["x", "x-", "-1", "x-0", "x-1a", "x-+1"] {
            assert_eq!(command_of(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn consecutive_events_of_one_command_are_one_entry() {
        let mut recent = RecentCommands::default();
        for (v, id) in [(1, "a-1"), (2, "a-2"), (3, "b-1"), (4, "a-1")] {
            recent.record(&event(v, id));
        }
        assert_eq!(
            recent.find("a"),
            Some(&CommandEvents {
                id: "a".into(),
                from: 4,
                count: 1
            }),
            "the latest command of an id wins"
        );
        assert_eq!(recent.find("b").map(|c| (c.from, c.count)), Some((3, 1)));
        assert_eq!(recent.len(), 3);
    }

    #[test]
    fn a_stored_list_longer_than_the_bound_is_cut_to_its_latest_commands() {
        #[derive(Default, Serialize, Deserialize)]
        struct Unit;
        impl Aggregate for Unit {
            const KIND: &'static str = "counter";
            type Command = ();
            type Event = ();
            type Error = String;
            fn decide(&self, _: &()) -> Result<Vec<()>, String> {
                Ok(vec![])
            }
            fn apply(&mut self, _: &()) {}
        }
        let entity = EntityRef::new("counter", "a").unwrap();
        let long = RecentCommands(
            (1..=RECENT_COMMANDS as u64 + 5)
                .map(|v| CommandEvents {
                    id: format!("c{v}"),
                    from: v,
                    count: 1,
                })
                .collect(),
        );
        let body = encode_body(&entity, &Unit, &long).unwrap();
        let (_, commands) = decode_body::<Unit>(&entity, &body).unwrap();
        assert_eq!(commands.len(), RECENT_COMMANDS);
        assert!(commands.find("c5").is_none());
        assert!(commands.find("c6").is_some());
    }

    #[test]
    fn only_the_latest_commands_are_remembered() {
        let mut recent = RecentCommands::default();
        for v in 1..=(RECENT_COMMANDS as u64 + 10) {
            recent.record(&event(v, &format!("c{v}-1")));
        }
        assert_eq!(recent.len(), RECENT_COMMANDS);
        assert!(recent.find("c10").is_none());
        assert!(recent.find("c11").is_some());
    }
}
