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
use crate::snapshot::{decode_body, encode_body, RecentCommands, Snapshot, SnapshotError};

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

    /// The latest snapshot of `entity`, if the log keeps snapshots and one was saved.
    fn load_snapshot(&mut self, _entity: &EntityRef) -> Result<Option<Snapshot>, EcsError> {
        Ok(None)
    }

    /// Saves a snapshot (a log that keeps none ignores it).
    fn save_snapshot(&mut self, _snapshot: Snapshot) -> Result<(), EcsError> {
        Ok(())
    }

    /// The latest snapshot of `entity` and at most `max` events from it on: from the
    /// snapshot's own version (so its CID can be checked) when there is one, from version 1
    /// otherwise. What a command reads first; a log backed by a remote store answers it in one
    /// round trip. By default, [`EventLog::load_snapshot`] then [`EventLog::read`].
    fn load(&mut self, entity: &EntityRef, max: u32) -> Result<Loaded, EcsError> {
        let snapshot = self.load_snapshot(entity)?;
        let from = snapshot.as_ref().map_or(1, |s| s.version.max(1));
        let events = self.read(entity, from, max)?;
        Ok(Loaded { snapshot, events })
    }
}

/// What [`EventLog::load`] returns: the latest snapshot and the events from it on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// The latest snapshot, if one was saved.
    pub snapshot: Option<Snapshot>,
    /// Events in order from the snapshot's version (from version 1 without a snapshot).
    pub events: Vec<RecordedEvent>,
}

/// How often an entity component saves a snapshot, by default: every this many events.
///
/// A command then reads at most this many events besides the snapshot, whatever the
/// entity's history (see `docs/benchmarks.md` for the measured cost per event read).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 64;

/// How [`handle_command_with`] uses snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Save a snapshot once this many events were appended after the one a command started
    /// from; 0 saves none (snapshots already saved are still used).
    pub snapshot_every: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
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
                A::decode_event(ev.name.as_str(), ev.schema_version, &ev.payload).map_err(|e| {
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

/// Handles one command for aggregate `A` with the default [`Settings`]: the complete
/// behaviour of an entity component. See [`handle_command_with`].
pub fn handle_command<A: Aggregate>(
    log: &mut impl EventLog,
    req: CommandRequest,
) -> Result<Vec<RecordedEvent>, EcsError> {
    handle_command_with::<A>(log, req, Settings::default(), |_| {})
}

/// Handles one command for aggregate `A`: validate, load the latest snapshot, read and verify
/// the events after it, decide, append, and save a snapshot every
/// [`Settings::snapshot_every`] events.
///
/// Nothing is appended unless the command is valid, the entity accepts it and the log's
/// optimistic-concurrency check passes. A snapshot that cannot be used (unreadable, another
/// state schema, naming an event the stream does not hold) and a snapshot that cannot be
/// saved are told to `notice` and cost a full replay, never a wrong decision or a failed
/// command.
///
/// A command is answered once: when the entity's recent commands
/// ([`RECENT_COMMANDS`](crate::snapshot::RECENT_COMMANDS) of them, kept across snapshots)
/// include this command id (a retry after a lost answer, or the same command sent twice),
/// its stored events are the answer — the same CIDs, nothing appended, whatever the expected
/// version says. A command that was refused stored nothing and is decided again.
pub fn handle_command_with<A: Aggregate>(
    log: &mut impl EventLog,
    req: CommandRequest,
    settings: Settings,
    mut notice: impl FnMut(&str),
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

    let mut fold = Fold::<A>::start(log, &entity, &mut notice)?;
    // A caller who named no expected version asked for no version check: when another
    // command appended meanwhile, read the newer events and decide again (the rules see the
    // newer state), a bounded number of times. Only an explicit expected version yields
    // `conflict`.
    let mut attempt = 1;
    loop {
        fold.catch_up(log, &entity)?;
        if let Some(earlier) = fold.recent.find(&req.meta.id).cloned() {
            return answer_again(log, &entity, &req.meta.id, earlier.from, earlier.count);
        }
        let version = fold.verifier.version();
        if let Some(expected) = req.expected_version {
            if expected != version {
                return Err(EcsError::Conflict {
                    expected,
                    actual: version,
                });
            }
        }
        let decided = fold
            .state
            .decide(&command)
            .map_err(|e| EcsError::Rejected(e.to_string()))?;
        if decided.is_empty() {
            return Ok(Vec::new());
        }
        match log.append(&entity, version, new_events::<A>(&req, &decided)?) {
            Ok(stored) => {
                fold.folded_own(&stored, decided)?;
                fold.save_if_due(log, &entity, settings, &mut notice);
                return Ok(stored);
            }
            Err(EcsError::Conflict { .. })
                if req.expected_version.is_none() && attempt < MAX_DECISIONS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many times a command without an expected version is decided before a conflict is
/// given up on. A decision only loses to another command's append, so every lost decision
/// is progress for the entity; 16 was exhausted once by 8 writers of 5 commands each on one
/// entity (a slow decision can lose to every other append), 64 bounds the work well above
/// that.
pub const MAX_DECISIONS: u32 = 64;

/// An entity's state folded so far, with the verified position of its chain.
struct Fold<A> {
    state: A,
    verifier: ChainVerifier,
    recent: RecentCommands,
    /// The version of the snapshot the fold started from (0: from the first event).
    snapshot_version: u64,
    /// Set when the events after the position are known to be read already.
    caught_up: bool,
}

impl<A: Aggregate> Fold<A> {
    fn empty() -> Self {
        Self {
            state: A::default(),
            verifier: ChainVerifier::new(),
            recent: RecentCommands::default(),
            snapshot_version: 0,
            caught_up: false,
        }
    }

    /// Starts from the latest usable snapshot, or from nothing, with the events after it
    /// that one [`EventLog::load`] returned.
    fn start(
        log: &mut impl EventLog,
        entity: &EntityRef,
        notice: &mut impl FnMut(&str),
    ) -> Result<Self, EcsError> {
        let loaded = match log.load(entity, READ_PAGE) {
            Ok(loaded) => loaded,
            // The two calls `load` stands for, one by one (a store without `load`, or a
            // failure of either part): each failure is then treated as it always was.
            Err(_) => return Self::start_apart(log, entity, notice),
        };
        let Some(snapshot) = loaded.snapshot else {
            // Without a snapshot the events start at version 1; a store that says otherwise
            // is asked the old way.
            if loaded.events.first().is_some_and(|e| e.version != 1) {
                return Self::start_apart(log, entity, notice);
            }
            let mut fold = Self::empty();
            fold.fold_all(&loaded.events)?;
            fold.caught_up = loaded.events.len() < READ_PAGE as usize;
            return Ok(fold);
        };
        match Self::resume(entity, snapshot, &loaded.events)? {
            Ok(fold) => Ok(fold),
            Err(why) => {
                notice(&format!(
                    "snapshot of {entity} ignored ({why}); replaying its events"
                ));
                Ok(Self::empty())
            }
        }
    }

    /// [`Fold::start`] by `load_snapshot`, then `read` from the snapshot's version: a snapshot
    /// that cannot be loaded is reported and costs a full replay; a failed read fails the
    /// command.
    fn start_apart(
        log: &mut impl EventLog,
        entity: &EntityRef,
        notice: &mut impl FnMut(&str),
    ) -> Result<Self, EcsError> {
        let snapshot = match log.load_snapshot(entity) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Ok(Self::empty()),
            Err(e) => {
                notice(&format!(
                    "snapshot of {entity} could not be loaded ({e}); replaying its events"
                ));
                return Ok(Self::empty());
            }
        };
        // A snapshot that is ignored whatever the stream holds costs no read.
        let ignored = snapshot.version == 0
            || snapshot.entity != *entity
            || decode_body::<A>(entity, &snapshot.state).is_err();
        let page = if ignored {
            Vec::new()
        } else {
            log.read(entity, snapshot.version, READ_PAGE)?
        };
        match Self::resume(entity, snapshot, &page)? {
            Ok(fold) => Ok(fold),
            Err(why) => {
                notice(&format!(
                    "snapshot of {entity} ignored ({why}); replaying its events"
                ));
                Ok(Self::empty())
            }
        }
    }

    /// Resumes from `snapshot` after checking it names an event of the stream: `page` starts
    /// at the snapshot's own version, whose event must carry the snapshot's CID. The outer
    /// error is a corrupt chain after the snapshot, the inner one why the snapshot is not used.
    fn resume(
        entity: &EntityRef,
        snapshot: Snapshot,
        page: &[RecordedEvent],
    ) -> Result<Result<Self, SnapshotError>, EcsError> {
        if snapshot.entity != *entity {
            return Ok(Err(SnapshotError::Foreign {
                expected: entity.to_string(),
                found: snapshot.entity.to_string(),
            }));
        }
        let (state, recent) = match decode_body::<A>(entity, &snapshot.state) {
            Ok(body) => body,
            Err(why) => return Ok(Err(why)),
        };
        let not_in_stream = || SnapshotError::NotInStream {
            version: snapshot.version,
            cid: snapshot.last_cid.to_string(),
        };
        if snapshot.version == 0 {
            return Ok(Err(not_in_stream()));
        }
        match page.first() {
            Some(at) if at.version == snapshot.version && at.cid == snapshot.last_cid => {}
            _ => return Ok(Err(not_in_stream())),
        }
        let mut fold = Self {
            state,
            verifier: ChainVerifier::after(entity.clone(), snapshot.version, snapshot.last_cid),
            recent,
            snapshot_version: snapshot.version,
            caught_up: false,
        };
        fold.fold_all(&page[1..])?;
        fold.caught_up = page.len() < READ_PAGE as usize;
        Ok(Ok(fold))
    }

    /// Reads, verifies and folds every event after the current position.
    fn catch_up(&mut self, log: &mut impl EventLog, entity: &EntityRef) -> Result<(), EcsError> {
        if std::mem::take(&mut self.caught_up) {
            return Ok(());
        }
        loop {
            let page = log.read(entity, self.verifier.version() + 1, READ_PAGE)?;
            self.fold_all(&page)?;
            if page.len() < READ_PAGE as usize {
                return Ok(());
            }
        }
    }

    fn fold_all(&mut self, events: &[RecordedEvent]) -> Result<(), EcsError> {
        for ev in events {
            self.verify(ev)?;
            let domain: A::Event =
                A::decode_event(ev.name.as_str(), ev.schema_version, &ev.payload).map_err(|e| {
                    EcsError::Unavailable(format!("stored event cannot be decoded: {e}"))
                })?;
            self.state.apply(&domain);
        }
        Ok(())
    }

    fn verify(&mut self, ev: &RecordedEvent) -> Result<(), EcsError> {
        self.verifier
            .push(ev)
            .map_err(|e| EcsError::Unavailable(format!("event chain is corrupt: {e}")))?;
        self.recent.record(ev);
        Ok(())
    }

    /// Folds the events this command just appended (`stored`, decided as `decided`).
    fn folded_own(
        &mut self,
        stored: &[RecordedEvent],
        decided: Vec<A::Event>,
    ) -> Result<(), EcsError> {
        for ev in stored {
            self.verify(ev)?;
        }
        decided.iter().for_each(|ev| self.state.apply(ev));
        Ok(())
    }

    /// Saves a snapshot when `settings` say one is due; a failure is only noticed.
    fn save_if_due(
        &self,
        log: &mut impl EventLog,
        entity: &EntityRef,
        settings: Settings,
        notice: &mut impl FnMut(&str),
    ) {
        let version = self.verifier.version();
        if settings.snapshot_every == 0 || version - self.snapshot_version < settings.snapshot_every
        {
            return;
        }
        let Some(last_cid) = self.verifier.last_cid() else {
            return;
        };
        let saved = encode_body(entity, &self.state, &self.recent)
            .map_err(|e| EcsError::Unavailable(format!("encoding the state: {e}")))
            .and_then(|state| {
                log.save_snapshot(Snapshot {
                    entity: entity.clone(),
                    version,
                    last_cid,
                    state,
                })
            });
        if let Err(e) = saved {
            notice(&format!(
                "snapshot of {entity} at version {version} not saved: {e}"
            ));
        }
    }
}

/// The stored events of the command `command_id`, `count` of them from version `from`: the
/// answer to a command sent again.
fn answer_again(
    log: &mut impl EventLog,
    entity: &EntityRef,
    command_id: &str,
    from: u64,
    count: u32,
) -> Result<Vec<RecordedEvent>, EcsError> {
    let events = log.read(entity, from, count)?;
    let complete = events.len() == count as usize
        && events
            .iter()
            .zip(from..)
            .all(|(ev, version)| ev.version == version && caused_by(ev, command_id));
    if !complete {
        return Err(EcsError::Unavailable(format!(
            "the events of command {command_id} at version {from} of {entity} could not be read back"
        )));
    }
    Ok(events)
}

/// The events `decided` for `req`, ready to append.
fn new_events<A: Aggregate>(
    req: &CommandRequest,
    decided: &[A::Event],
) -> Result<Vec<NewEvent>, EcsError> {
    decided
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
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use crate::testing::MemoryLog;
    use serde::{Deserialize, Serialize};

    /// A counter that refuses to go above its limit.
    #[derive(Default, Serialize, Deserialize)]
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

    /// Handles `request` saving a snapshot every `every` events; returns the outcome and
    /// what was noticed.
    fn handle_every(
        log: &mut MemoryLog,
        request: CommandRequest,
        every: u64,
    ) -> (Result<Vec<RecordedEvent>, EcsError>, Vec<String>) {
        let mut notices = Vec::new();
        let outcome = handle_command_with::<Counter>(
            log,
            request,
            Settings {
                snapshot_every: every,
            },
            |n| notices.push(n.to_owned()),
        );
        (outcome, notices)
    }

    /// `n` commands adding 1 each to counter `a`, a snapshot every `every` events.
    fn history(log: &mut MemoryLog, n: u64, every: u64) {
        for _ in 0..n {
            let (outcome, notices) = handle_every(log, req("a", "Add", r#"{"by":1}"#, None), every);
            outcome.unwrap();
            assert!(notices.is_empty(), "{notices:?}");
        }
    }

    #[test]
    fn a_snapshot_is_saved_every_n_events() {
        let mut log = MemoryLog::new();
        history(&mut log, 70, 32);
        assert_eq!(log.snapshot(&entity("a")).map(|s| s.version), Some(64));
        let mut none = MemoryLog::new();
        history(&mut none, 70, 0);
        assert!(none.snapshot(&entity("a")).is_none(), "0 saves none");
    }

    #[test]
    fn after_a_snapshot_a_command_reads_only_the_events_after_it() {
        let mut log = MemoryLog::new();
        history(&mut log, 100, 32);
        let before = log.events_read();
        let (outcome, _) = handle_every(&mut log, req("a", "Add", r#"{"by":1}"#, None), 32);
        assert_eq!(outcome.unwrap()[0].version, 101);
        // The snapshot is at 96: its own event (checked against the snapshot's CID) and 97–100.
        assert_eq!(log.events_read() - before, 5);
        let (state, _) = rehydrate::<Counter>(&mut log, &entity("a")).unwrap();
        assert_eq!(state.0, 101);
    }

    #[test]
    fn a_command_makes_one_load_and_one_append_with_or_without_a_snapshot() {
        for (events, every) in [(3, 0), (100, 32)] {
            let mut log = MemoryLog::new();
            history(&mut log, events, every);
            let before = log.calls();
            let (outcome, _) = handle_every(&mut log, req("a", "Add", r#"{"by":1}"#, None), 0);
            assert_eq!(outcome.unwrap()[0].version, events + 1);
            assert_eq!(log.calls() - before, 2, "after {events} events");
        }
    }

    /// What a [`Faulty`] log gets wrong.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        /// `load` does not exist (an older provider).
        NoLoad,
        /// No `load`, and every read fails.
        NoLoadNoReads,
        /// `load` drops the snapshot but answers the events from this version on.
        LoadSkewedFrom(u64),
        /// Every snapshot save is refused.
        NoSaves,
    }

    /// A [`MemoryLog`] with one [`Fault`].
    struct Faulty {
        log: MemoryLog,
        fault: Fault,
    }

    impl EventLog for Faulty {
        fn read(
            &mut self,
            e: &EntityRef,
            from: u64,
            max: u32,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            if self.fault == Fault::NoLoadNoReads {
                return Err(EcsError::Unavailable("the store is down".into()));
            }
            self.log.read(e, from, max)
        }
        fn append(
            &mut self,
            e: &EntityRef,
            expected: u64,
            events: Vec<NewEvent>,
        ) -> Result<Vec<RecordedEvent>, EcsError> {
            self.log.append(e, expected, events)
        }
        fn load_snapshot(&mut self, e: &EntityRef) -> Result<Option<Snapshot>, EcsError> {
            match self.fault {
                Fault::LoadSkewedFrom(_) => Ok(None),
                _ => self.log.load_snapshot(e),
            }
        }
        fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<(), EcsError> {
            match self.fault {
                Fault::NoSaves => Err(EcsError::Unavailable("bucket is read-only".into())),
                _ => self.log.save_snapshot(snapshot),
            }
        }
        fn load(&mut self, e: &EntityRef, max: u32) -> Result<Loaded, EcsError> {
            match self.fault {
                Fault::NoLoad | Fault::NoLoadNoReads => {
                    Err(EcsError::Unavailable("no such function: load".into()))
                }
                Fault::LoadSkewedFrom(from) => Ok(Loaded {
                    snapshot: None,
                    events: self.log.read(e, from, max)?,
                }),
                Fault::NoSaves => self.log.load(e, max),
            }
        }
    }

    #[test]
    fn a_store_without_load_is_read_snapshot_first_and_only_after_it() {
        let mut log = MemoryLog::new();
        history(&mut log, 100, 32);
        let mut apart = Faulty {
            log,
            fault: Fault::NoLoad,
        };
        let before = apart.log.events_read();
        let mut notices = Vec::new();
        let stored = handle_command_with::<Counter>(
            &mut apart,
            req("a", "Add", r#"{"by":1}"#, None),
            Settings { snapshot_every: 32 },
            |n| notices.push(n.to_owned()),
        )
        .unwrap();
        assert_eq!(stored[0].version, 101);
        assert_eq!(
            apart.log.events_read() - before,
            5,
            "the snapshot at 96 and 97-100"
        );
        assert!(notices.is_empty(), "{notices:?}");
    }

    #[test]
    fn a_load_without_a_snapshot_whose_events_do_not_start_at_one_is_read_again_from_one() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        let mut skewed = Faulty {
            log,
            fault: Fault::LoadSkewedFrom(33),
        };
        let stored = handle_command_with::<Counter>(
            &mut skewed,
            req("a", "Add", r#"{"by":1}"#, None),
            Settings::default(),
            |_| {},
        )
        .unwrap();
        assert_eq!(stored[0].version, 41);
        let (state, _) = rehydrate::<Counter>(&mut skewed.log, &entity("a")).unwrap();
        assert_eq!(state.0, 41);
    }

    #[test]
    fn a_read_that_fails_after_a_snapshot_fails_the_command_instead_of_replaying() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        let mut apart = Faulty {
            log,
            fault: Fault::NoLoadNoReads,
        };
        let outcome = handle_command_with::<Counter>(
            &mut apart,
            req("a", "Add", r#"{"by":1}"#, None),
            Settings::default(),
            |_| {},
        );
        assert!(
            matches!(outcome, Err(EcsError::Unavailable(_))),
            "{outcome:?}"
        );
        assert_eq!(apart.log.events(&entity("a")).len(), 40, "nothing appended");
    }

    #[test]
    fn a_decision_from_a_snapshot_equals_one_from_the_whole_history() {
        let mut with = MemoryLog::new();
        let mut without = MemoryLog::new();
        for (log, every) in [(&mut with, 32), (&mut without, 0)] {
            for _ in 0..199 {
                handle_every(log, req("a", "Add", r#"{"by":5}"#, None), every)
                    .0
                    .unwrap();
            }
        }
        // 199 × 5 + 5 = 1000 is the limit: both accept the fifth Add and refuse the sixth.
        for log in [&mut with, &mut without] {
            let (ok, _) = handle_every(log, req("a", "Add", r#"{"by":5}"#, None), 32);
            assert!(ok.is_ok());
            let (refused, _) = handle_every(log, req("a", "Add", r#"{"by":1}"#, None), 32);
            assert!(matches!(refused, Err(EcsError::Rejected(_))), "{refused:?}");
        }
    }

    /// Replaces the snapshot of counter `a` by `edit` of it.
    fn tamper(log: &mut MemoryLog, edit: impl FnOnce(&mut Snapshot)) {
        let mut snapshot = log.snapshot(&entity("a")).cloned().expect("a snapshot");
        edit(&mut snapshot);
        log.put_snapshot(snapshot);
    }

    /// One command on a tampered snapshot: it must be decided on the full history (all 40
    /// events read), give the right state and report why the snapshot was ignored.
    fn decided_on_full_replay(log: &mut MemoryLog, why: &str) {
        let before = log.events_read();
        let (outcome, notices) = handle_every(log, req("a", "Add", r#"{"by":1}"#, None), 0);
        assert_eq!(outcome.unwrap()[0].version, 41);
        // Every event from the first (after the events the snapshot's check read).
        assert!(log.events_read() - before >= 40, "a full replay");
        assert!(
            notices.len() == 1 && notices[0].contains("ignored") && notices[0].contains(why),
            "{notices:?}"
        );
        let (state, _) = rehydrate::<Counter>(log, &entity("a")).unwrap();
        assert_eq!(state.0, 41);
    }

    #[test]
    fn a_snapshot_of_another_state_schema_is_ignored_and_reported() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        tamper(&mut log, |s| {
            let body = String::from_utf8(s.state.clone()).unwrap();
            s.state = body
                .replace("\"state-schema\":1", "\"state-schema\":2")
                .replace("\"state\":32", "\"state\":999")
                .into_bytes();
        });
        decided_on_full_replay(&mut log, "schema 2");
    }

    #[test]
    fn a_snapshot_naming_an_event_not_in_the_stream_is_ignored_and_reported() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        let other = log.events(&entity("a"))[20].cid;
        tamper(&mut log, |s| s.last_cid = other);
        decided_on_full_replay(&mut log, "does not hold");
    }

    #[test]
    fn a_snapshot_beyond_the_end_of_the_stream_is_ignored_and_reported() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        tamper(&mut log, |s| s.version = 41);
        decided_on_full_replay(&mut log, "does not hold");
    }

    #[test]
    fn an_unreadable_snapshot_is_ignored_and_reported() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        tamper(&mut log, |s| s.state = b"{not json".to_vec());
        decided_on_full_replay(&mut log, "cannot be read");
    }

    #[test]
    fn a_snapshot_of_another_entity_is_ignored_and_reported() {
        let mut log = MemoryLog::new();
        history(&mut log, 40, 32);
        tamper(&mut log, |s| {
            let body = String::from_utf8(s.state.clone()).unwrap();
            s.state = body.replace("counter/a", "counter/b").into_bytes();
        });
        decided_on_full_replay(&mut log, "counter/b");
    }

    #[test]
    fn a_command_sent_again_after_a_snapshot_is_still_answered_once() {
        let mut log = MemoryLog::new();
        history(&mut log, 31, 32);
        // The 32nd event is this command's, and its append saves the snapshot at 32.
        let (first, _) = handle_every(&mut log, req_id("lost-reply", r#"{"by":2}"#, None), 32);
        let first = first.unwrap();
        assert_eq!(log.snapshot(&entity("a")).map(|s| s.version), Some(32));
        history(&mut log, 5, 32);
        let (again, notices) =
            handle_every(&mut log, req_id("lost-reply", r#"{"by":2}"#, None), 32);
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(again.unwrap(), first, "the same events, the same CIDs");
        assert_eq!(log.events(&entity("a")).len(), 37, "nothing appended");
    }

    #[test]
    fn a_snapshot_that_cannot_be_saved_fails_no_command() {
        let mut log = Faulty {
            log: MemoryLog::new(),
            fault: Fault::NoSaves,
        };
        let mut notices = Vec::new();
        for _ in 0..2 {
            handle_command_with::<Counter>(
                &mut log,
                req("a", "Add", r#"{"by":1}"#, None),
                Settings { snapshot_every: 1 },
                |n| notices.push(n.to_owned()),
            )
            .expect("appended although the snapshot was not saved");
        }
        assert_eq!(log.log.events(&entity("a")).len(), 2);
        assert!(
            notices.len() == 2 && notices[0].contains("read-only"),
            "{notices:?}"
        );
    }
}
