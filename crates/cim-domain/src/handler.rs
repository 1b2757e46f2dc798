//! The command pipeline of an entity component: validate, rehydrate, decide, append.
//!
//! [`handle_command`] is the whole body of an entity component's `handle` export; the
//! component only adapts WIT types and supplies an [`EventLog`] backed by its `eventstore`
//! import. Native tests supply [`crate::testing::MemoryLog`] instead.

use crate::aggregate::{Aggregate, EventCodec};
use crate::chain::ChainVerifier;
use crate::envelope::Envelope;
use crate::error::EcsError;
use crate::event::{NewEvent, RecordedEvent};
use crate::ident::{EntityRef, Token};

/// Largest command payload accepted, in bytes. Larger content belongs in the object store,
/// referenced by CID.
pub const MAX_COMMAND_PAYLOAD: usize = 256 * 1024;

/// How many events are read per page while rehydrating.
pub const READ_PAGE: u32 = 512;

/// An entity's event stream, as seen by an entity component.
pub trait EventLog {
    /// Reads at most `max` events of `entity` from version `from` (1-based), in order.
    fn read(
        &mut self,
        entity: &EntityRef,
        from: u64,
        max: u32,
    ) -> Result<Vec<RecordedEvent>, EcsError>;

    /// Appends `events` if `entity` is at `expected_version`; returns them chained and stored.
    fn append(
        &mut self,
        entity: &EntityRef,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, EcsError>;
}

/// A command as it arrives, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// Entity kind, unvalidated.
    pub kind: String,
    /// Entity id, unvalidated.
    pub id: String,
    /// Command name.
    pub name: String,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// Optional optimistic-concurrency check.
    pub expected_version: Option<u64>,
    /// Correlation and causation.
    pub meta: Envelope,
}

fn invalid(e: impl std::fmt::Display) -> EcsError {
    EcsError::Invalid(e.to_string())
}

fn validate_meta(meta: &Envelope) -> Result<(), EcsError> {
    Token::parse("command id", &meta.id).map_err(invalid)?;
    Token::parse("correlation id", &meta.correlation_id).map_err(invalid)?;
    if let Some(c) = &meta.causation_id {
        Token::parse("causation id", c).map_err(invalid)?;
    }
    Ok(())
}

/// Rehydrates `A` from the log, verifying the chain; returns the state and its version.
pub fn rehydrate<A: Aggregate>(
    log: &mut impl EventLog,
    entity: &EntityRef,
) -> Result<(A, u64), EcsError> {
    rehydrate_seeing::<A>(log, entity, |_| {})
}

/// Whether `event` was caused by the command `command_id` (its id is `<command id>-<n>`).
pub fn caused_by(event: &RecordedEvent, command_id: &str) -> bool {
    event
        .meta
        .id
        .strip_prefix(command_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// [`rehydrate`], showing every event read to `seen`.
pub fn rehydrate_seeing<A: Aggregate>(
    log: &mut impl EventLog,
    entity: &EntityRef,
    mut seen: impl FnMut(&RecordedEvent),
) -> Result<(A, u64), EcsError> {
    let mut state = A::default();
    let mut verifier = ChainVerifier::new();
    loop {
        let page = log.read(entity, verifier.version() + 1, READ_PAGE)?;
        let n = page.len();
        for ev in &page {
            verifier
                .push(ev)
                .map_err(|e| EcsError::Unavailable(format!("event chain is corrupt: {e}")))?;
            let domain: A::Event =
                EventCodec::decode(ev.name.as_str(), &ev.payload).map_err(|e| {
                    EcsError::Unavailable(format!("stored event cannot be decoded: {e}"))
                })?;
            state.apply(&domain);
            seen(ev);
        }
        if n < READ_PAGE as usize {
            return Ok((state, verifier.version()));
        }
    }
}

/// Handles one command for aggregate `A`: the complete behaviour of an entity component.
///
/// Nothing is appended unless the command is valid, the entity accepts it and the log's
/// optimistic-concurrency check passes.
pub fn handle_command<A: Aggregate>(
    log: &mut impl EventLog,
    req: CommandRequest,
) -> Result<Vec<RecordedEvent>, EcsError> {
    let entity = EntityRef::new(&req.kind, &req.id).map_err(invalid)?;
    if entity.kind.as_str() != A::KIND {
        return Err(EcsError::Invalid(format!(
            "this component serves `{}` entities, not `{}`",
            A::KIND,
            entity.kind
        )));
    }
    Token::parse("command name", &req.name).map_err(invalid)?;
    validate_meta(&req.meta)?;
    if req.payload.len() > MAX_COMMAND_PAYLOAD {
        return Err(EcsError::Invalid(format!(
            "command payload is {} bytes; at most {MAX_COMMAND_PAYLOAD} are accepted (store large content in the object store and pass its CID)",
            req.payload.len()
        )));
    }
    let command: A::Command = EventCodec::decode(&req.name, &req.payload).map_err(invalid)?;

    // A caller who named no expected version asked for no version check: when another
    // command appended meanwhile, read again and decide again (the rules see the newer
    // state), a bounded number of times. Only an explicit expected version yields `conflict`.
    let mut attempt = 1;
    loop {
        match decide_and_append::<A>(log, &entity, &req, &command) {
            Err(EcsError::Conflict { .. })
                if req.expected_version.is_none() && attempt < MAX_DECISIONS =>
            {
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// How many times a command without an expected version is decided before a conflict is
/// given up on. A decision only loses to another command's append, so every lost decision
/// is progress for the entity; 16 was exhausted once by 8 writers of 5 commands each on one
/// entity (a slow decision can lose to every other append), 64 bounds the work well above
/// that.
pub const MAX_DECISIONS: u32 = 64;

/// One decision: rehydrate, check the expected version, decide, append at the version read.
///
/// A command is answered once: when the history already holds events of this command id (a
/// retry after a lost answer, or the same command sent twice), those events are the answer —
/// the same CIDs, nothing appended, whatever the expected version says. A command that was
/// refused stored nothing and is decided again.
fn decide_and_append<A: Aggregate>(
    log: &mut impl EventLog,
    entity: &EntityRef,
    req: &CommandRequest,
    command: &A::Command,
) -> Result<Vec<RecordedEvent>, EcsError> {
    let mut earlier = Vec::new();
    let (state, version) = rehydrate_seeing::<A>(log, entity, |ev| {
        if caused_by(ev, &req.meta.id) {
            earlier.push(ev.clone());
        }
    })?;
    if !earlier.is_empty() {
        return Ok(earlier);
    }
    if let Some(expected) = req.expected_version {
        if expected != version {
            return Err(EcsError::Conflict {
                expected,
                actual: version,
            });
        }
    }
    let decided = state
        .decide(command)
        .map_err(|e| EcsError::Rejected(e.to_string()))?;
    if decided.is_empty() {
        return Ok(Vec::new());
    }
    let new_events = decided
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            let (name, payload) = EventCodec::encode(ev).map_err(invalid)?;
            Ok(NewEvent {
                name,
                schema_version: A::schema_version(ev),
                payload,
                // Commands are not stored, so an event names what caused its command: the
                // event a system reacted to (the command's causation, an event CID), or the
                // command itself when it came from outside. The event's id keeps the
                // command id either way (`<command id>-<n>`).
                meta: Envelope {
                    id: format!("{}-{}", req.meta.id, i + 1),
                    correlation_id: req.meta.correlation_id.clone(),
                    causation_id: Some(
                        req.meta
                            .causation_id
                            .clone()
                            .unwrap_or_else(|| req.meta.id.clone()),
                    ),
                    occurred_at_ms: req.meta.occurred_at_ms,
                },
            })
        })
        .collect::<Result<Vec<_>, EcsError>>()?;
    log.append(entity, version, new_events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryLog;
    use serde::{Deserialize, Serialize};

    /// A counter that refuses to go above its limit.
    #[derive(Default)]
    struct Counter(u64);

    #[derive(Deserialize)]
    enum CounterCommand {
        Add { by: u64 },
        Noop,
    }

    #[derive(Serialize, Deserialize)]
    enum CounterEvent {
        Added { by: u64 },
    }

    impl Aggregate for Counter {
        const KIND: &'static str = "counter";
        type Command = CounterCommand;
        type Event = CounterEvent;
        type Error = String;

        fn decide(&self, cmd: &CounterCommand) -> Result<Vec<CounterEvent>, String> {
            match cmd {
                CounterCommand::Add { by } if self.0 + by > 1000 => Err("limit is 1000".into()),
                CounterCommand::Add { by } => Ok(vec![CounterEvent::Added { by: *by }]),
                CounterCommand::Noop => Ok(vec![]),
            }
        }

        fn apply(&mut self, ev: &CounterEvent) {
            let CounterEvent::Added { by } = ev;
            self.0 += by;
        }
    }

    /// A request with its own command id (`c<n>`, counting up), unless the test sets one.
    fn req(id: &str, name: &str, payload: &str, expected: Option<u64>) -> CommandRequest {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CommandRequest {
            kind: "counter".into(),
            id: id.into(),
            name: name.into(),
            payload: payload.as_bytes().to_vec(),
            expected_version: expected,
            meta: Envelope::originating(format!("c{n}"), 1),
        }
    }

    /// A request with the command id `command_id`.
    fn req_id(command_id: &str, payload: &str, expected: Option<u64>) -> CommandRequest {
        CommandRequest {
            meta: Envelope::originating(command_id, 1),
            ..req("a", "Add", payload, expected)
        }
    }

    fn entity(id: &str) -> EntityRef {
        EntityRef::new("counter", id).unwrap()
    }

    #[test]
    fn appends_chained_events_with_causation() {
        let mut log = MemoryLog::new();
        let first =
            handle_command::<Counter>(&mut log, req("a", "Add", r#"{"by":2}"#, Some(0))).unwrap();
        let second =
            handle_command::<Counter>(&mut log, req_id("cmd-two", r#"{"by":3}"#, Some(1))).unwrap();
        assert_eq!(first[0].version, 1);
        assert_eq!(second[0].previous, Some(first[0].cid));
        assert_eq!(second[0].meta.causation_id.as_deref(), Some("cmd-two"));
        assert_eq!(second[0].meta.id, "cmd-two-1");
        let (state, version) = rehydrate::<Counter>(&mut log, &entity("a")).unwrap();
        assert_eq!((state.0, version), (5, 2));
    }

    #[test]
    fn events_of_a_reaction_are_caused_by_the_event_reacted_to() {
        let mut log = MemoryLog::new();
        let first =
            handle_command::<Counter>(&mut log, req("a", "Add", r#"{"by":2}"#, None)).unwrap();
        let mut reaction = req("a", "Add", r#"{"by":1}"#, None);
        reaction.meta = Envelope {
            id: "system-7".into(),
            correlation_id: "c1".into(),
            causation_id: Some(first[0].cid.to_string()),
            occurred_at_ms: 2,
        };
        let second = handle_command::<Counter>(&mut log, reaction).unwrap();
        assert_eq!(second[0].meta.causation_id, Some(first[0].cid.to_string()));
        assert_eq!(second[0].meta.id, "system-7-1");
    }

    /// A log where another writer appends `interleaved` events right before each of our
    /// first appends, as concurrent commands on one entity do.
    struct Contended {
        log: MemoryLog,
        interleaved: u32,
    }

    impl EventLog for Contended {
        fn read(
            &mut self,
            entity: &EntityRef,
            from: u64,
            max: u32,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.read(entity, from, max)
        }

        fn append(
            &mut self,
            entity: &EntityRef,
            expected_version: u64,
            events: Vec<NewEvent>,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            if self.interleaved > 0 {
                self.interleaved -= 1;
                let other = req("a", "Add", r#"{"by":100}"#, None);
                handle_command::<Counter>(&mut self.log, other)?;
            }
            self.log.append(entity, expected_version, events)
        }
    }

    #[test]
    fn without_an_expected_version_a_concurrent_append_means_deciding_again_not_a_conflict() {
        let mut log = Contended {
            log: MemoryLog::new(),
            interleaved: 3,
        };
        let added = handle_command::<Counter>(&mut log, req("a", "Add", r#"{"by":1}"#, None))
            .expect("decided again on the newer state");
        assert_eq!(added[0].version, 4, "after the three interleaved appends");
        let (state, _) = rehydrate::<Counter>(&mut log.log, &entity("a")).unwrap();
        assert_eq!(state.0, 301);
    }

    #[test]
    fn deciding_again_sees_the_newer_state_and_may_refuse() {
        let mut log = Contended {
            log: MemoryLog::new(),
            interleaved: 10,
        };
        // 10 × 100 interleaved: at 1000 the limit refuses the Add it would have accepted.
        let refused = handle_command::<Counter>(&mut log, req("a", "Add", r#"{"by":1}"#, None));
        assert!(matches!(refused, Err(EcsError::Rejected(_))), "{refused:?}");
    }

    #[test]
    fn an_explicit_expected_version_still_conflicts() {
        let mut log = Contended {
            log: MemoryLog::new(),
            interleaved: 1,
        };
        let err = handle_command::<Counter>(&mut log, req("a", "Add", r#"{"by":1}"#, Some(0)))
            .unwrap_err();
        assert!(
            matches!(err, EcsError::Conflict { expected: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_command_sent_again_is_answered_with_its_events_and_appends_nothing() {
        let mut log = MemoryLog::new();
        let first =
            handle_command::<Counter>(&mut log, req_id("once", r#"{"by":2}"#, Some(0))).unwrap();
        // The same command (same id), again: after a lost answer, or with its stale version.
        for expected in [Some(0), None, Some(7)] {
            let again =
                handle_command::<Counter>(&mut log, req_id("once", r#"{"by":2}"#, expected))
                    .unwrap();
            assert_eq!(
                again.iter().map(|e| e.cid).collect::<Vec<_>>(),
                first.iter().map(|e| e.cid).collect::<Vec<_>>()
            );
        }
        let (state, version) = rehydrate::<Counter>(&mut log, &entity("a")).unwrap();
        assert_eq!((state.0, version), (2, 1), "appended once");
    }

    #[test]
    fn a_command_id_is_matched_exactly() {
        let mut log = MemoryLog::new();
        handle_command::<Counter>(&mut log, req_id("x-1", r#"{"by":1}"#, None)).unwrap();
        let mine = handle_command::<Counter>(&mut log, req_id("x", r#"{"by":2}"#, None)).unwrap();
        assert_eq!(mine[0].version, 2, "x-1-1 is not an event of command x");
    }

    #[test]
    fn refusals_and_bad_input_store_nothing() {
        let mut log = MemoryLog::new();
        let cases = [
            (req("a", "Add", r#"{"by":2000}"#, None), "rejected"),
            (req("a", "Add", r#"{"by":1}"#, Some(3)), "conflict"),
            (req("a", "Add", "{", None), "invalid"),
            (req("a", "Sub", "{}", None), "invalid"),
            (req("a.b", "Add", r#"{"by":1}"#, None), "invalid"),
            (req("a", "Add.x", r#"{"by":1}"#, None), "invalid"),
            (
                CommandRequest {
                    kind: "document".into(),
                    ..req("a", "Add", r#"{"by":1}"#, None)
                },
                "invalid",
            ),
            (
                req(
                    "a",
                    "Add",
                    &format!(r#"{{"by":1,"pad":"{}"}}"#, "x".repeat(MAX_COMMAND_PAYLOAD)),
                    None,
                ),
                "invalid",
            ),
        ];
        for (request, kind) in cases {
            let err = handle_command::<Counter>(&mut log, request).unwrap_err();
            let matches = match kind {
                "rejected" => matches!(err, EcsError::Rejected(_)),
                "conflict" => matches!(
                    err,
                    EcsError::Conflict {
                        expected: 3,
                        actual: 0
                    }
                ),
                _ => matches!(err, EcsError::Invalid(_)),
            };
            assert!(matches, "expected {kind}, got {err:?}");
        }
        assert!(log.is_empty());
        assert!(
            handle_command::<Counter>(&mut log, req("a", "Noop", "", None))
                .unwrap()
                .is_empty()
        );
        assert!(log.is_empty());
    }

    #[test]
    fn rehydration_pages_through_long_streams() {
        let mut log = MemoryLog::new();
        let n = READ_PAGE as u64 * 2 + 7;
        for _ in 0..n {
            handle_command::<Counter>(&mut log, req("long", "Add", r#"{"by":0}"#, None)).unwrap();
        }
        let (_, version) = rehydrate::<Counter>(&mut log, &entity("long")).unwrap();
        assert_eq!(version, n);
    }

    #[test]
    fn a_corrupt_chain_is_never_extended() {
        let mut log = MemoryLog::new();
        handle_command::<Counter>(&mut log, req("c", "Add", r#"{"by":1}"#, None)).unwrap();
        handle_command::<Counter>(&mut log, req("c", "Add", r#"{"by":1}"#, None)).unwrap();
        log.events_mut(&entity("c")).swap(0, 1);
        let err =
            handle_command::<Counter>(&mut log, req("c", "Add", r#"{"by":1}"#, None)).unwrap_err();
        assert!(matches!(err, EcsError::Unavailable(_)), "{err:?}");
        assert_eq!(log.events(&entity("c")).len(), 2);
    }
}
