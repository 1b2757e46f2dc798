//! Test helpers: given/when/then for aggregates and an in-memory [`EventLog`].
//!
//! ```
//! # use cim_domain::testing::given;
//! # use cim_domain::Aggregate;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Default, Serialize, Deserialize)] struct Counter(u32);
//! # #[derive(Deserialize)] enum Cmd { Add }
//! # #[derive(Debug, PartialEq, Serialize, Deserialize)] enum Ev { Added }
//! # impl Aggregate for Counter {
//! #     const KIND: &'static str = "counter";
//! #     type Command = Cmd; type Event = Ev; type Error = String;
//! #     fn decide(&self, _: &Cmd) -> Result<Vec<Ev>, String> {
//! #         if self.0 >= 1 { Err("full".into()) } else { Ok(vec![Ev::Added]) } }
//! #     fn apply(&mut self, _: &Ev) { self.0 += 1 }
//! # }
//! given::<Counter>([]).when(Cmd::Add).then([Ev::Added]);
//! given::<Counter>([Ev::Added]).when(Cmd::Add).then_err("full");
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::aggregate::Aggregate;
use crate::error::EcsError;
use crate::event::{NewEvent, RecordedEvent};
use crate::handler::{EventLog, Loaded};
use crate::ident::EntityRef;
use crate::snapshot::Snapshot;

/// The state built from a history, waiting for a command.
pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts a scenario from a history of events.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let history: Vec<A::Event> = history.into_iter().collect();
    Given {
        state: A::fold(&history),
    }
}

impl<A: Aggregate> Given<A> {
    /// Decides a command against the given history.
    pub fn when(self, cmd: A::Command) -> Outcome<A> {
        let result = self.state.decide(&cmd);
        Outcome { result }
    }
}

/// The result of a decision, to be asserted.
pub struct Outcome<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: PartialEq + Debug,
{
    /// Asserts the command produced exactly `expected`.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected, "unexpected events"),
            Err(e) => panic!("expected events {expected:?}, command was refused: {e}"),
        }
    }

    /// Asserts the command was refused with a message containing `needle`.
    #[track_caller]
    pub fn then_err(self, needle: &str) {
        match self.result {
            Ok(events) => panic!("expected a refusal containing {needle:?}, got events {events:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(needle),
                    "refusal {msg:?} does not contain {needle:?}"
                );
            }
        }
    }
}

/// An in-memory event log with the same contract as the real event store: per-entity
/// optimistic concurrency and CID chaining.
#[derive(Debug, Default, Clone)]
pub struct MemoryLog {
    streams: BTreeMap<EntityRef, Vec<RecordedEvent>>,
    snapshots: BTreeMap<EntityRef, Snapshot>,
    events_read: u64,
    calls: u64,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// All events of `entity`, in order.
    pub fn events(&self, entity: &EntityRef) -> &[RecordedEvent] {
        self.streams.get(entity).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Mutable access to an entity's stored events, for fault injection in tests (tampering,
    /// reordering). Production stores have no such door.
    pub fn events_mut(&mut self, entity: &EntityRef) -> &mut Vec<RecordedEvent> {
        self.streams.entry(entity.clone()).or_default()
    }

    /// Total number of stored events.
    pub fn len(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events all reads so far returned.
    pub fn events_read(&self) -> u64 {
        self.events_read
    }

    /// How many calls were made to the log so far (each would be one round trip to a remote
    /// store): reads, appends, snapshot loads and saves, and loads.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The saved snapshot of `entity`.
    pub fn snapshot(&self, entity: &EntityRef) -> Option<&Snapshot> {
        self.snapshots.get(entity)
    }

    /// At most `max` events of `entity` from version `from`, counted in [`Self::events_read`].
    fn page(&mut self, entity: &EntityRef, from: u64, max: u32) -> Vec<RecordedEvent> {
        let start = from.max(1) - 1;
        let page: Vec<RecordedEvent> = self
            .events(entity)
            .iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(max as usize)
            .cloned()
            .collect();
        self.events_read += page.len() as u64;
        page
    }

    /// Replaces the snapshot of an entity without the store's check, for fault injection in
    /// tests (a stale, foreign or forged snapshot).
    pub fn put_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshots.insert(snapshot.entity.clone(), snapshot);
    }
}

impl EventLog for MemoryLog {
    fn read(
        &mut self,
        entity: &EntityRef,
        from: u64,
        max: u32,
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        self.calls += 1;
        Ok(self.page(entity, from, max))
    }

    fn load(&mut self, entity: &EntityRef, max: u32) -> Result<Loaded, EcsError> {
        self.calls += 1;
        let snapshot = self.snapshots.get(entity).cloned();
        let from = snapshot.as_ref().map_or(1, |s| s.version.max(1));
        let events = self.page(entity, from, max);
        Ok(Loaded { snapshot, events })
    }

    fn load_snapshot(&mut self, entity: &EntityRef) -> Result<Option<Snapshot>, EcsError> {
        self.calls += 1;
        Ok(self.snapshots.get(entity).cloned())
    }

    /// Saves a snapshot after the check the event store makes: it names an event of the
    /// entity's chain.
    fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<(), EcsError> {
        self.calls += 1;
        let named = usize::try_from(snapshot.version)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .and_then(|i| self.events(&snapshot.entity).get(i));
        if named.map(|e| e.cid) != Some(snapshot.last_cid) {
            return Err(EcsError::NotFound(format!(
                "{} has no event {} at version {}",
                snapshot.entity, snapshot.last_cid, snapshot.version
            )));
        }
        self.put_snapshot(snapshot);
        Ok(())
    }

    fn append(
        &mut self,
        entity: &EntityRef,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, EcsError> {
        self.calls += 1;
        let stream = self.streams.entry(entity.clone()).or_default();
        let actual = stream.len() as u64;
        if actual != expected_version {
            return Err(EcsError::Conflict {
                expected: expected_version,
                actual,
            });
        }
        let mut previous = stream.last().map(|e| e.cid);
        let mut sealed = Vec::with_capacity(events.len());
        for (i, ev) in events.into_iter().enumerate() {
            let rec = RecordedEvent::seal(entity, actual + i as u64 + 1, previous, ev)
                .map_err(|e| EcsError::Invalid(e.to_string()))?;
            previous = Some(rec.cid);
            sealed.push(rec);
        }
        stream.extend(sealed.iter().cloned());
        Ok(sealed)
    }
}

/// Runs `steps` (command name, JSON payload) against entity `kind/id` through the full
/// [`crate::handle_command`] pipeline on `log`; returns every stored event. Command `i` gets
/// the envelope id `cmd-<id>-<i>` and the timestamp `1000 + i`. Panics on a refused command
/// (this is for building realistic histories in tests and benchmarks).
pub fn run_commands<A: Aggregate>(
    log: &mut impl EventLog,
    kind: &str,
    id: &str,
    steps: &[(&str, &str)],
) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    for (i, (name, json)) in steps.iter().enumerate() {
        let req = crate::CommandRequest {
            kind: kind.into(),
            id: id.into(),
            name: (*name).into(),
            payload: json.as_bytes().to_vec(),
            expected_version: None,
            meta: crate::Envelope::originating(format!("cmd-{id}-{i}"), 1_000 + i as u64),
        };
        match crate::handle_command::<A>(log, req) {
            Ok(events) => out.extend(events),
            Err(e) => panic!("{kind}/{id} {name}: {e}"),
        }
    }
    out
}
