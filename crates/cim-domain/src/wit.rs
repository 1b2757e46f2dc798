//! Conversions between [`crate`] types and the records WIT bindings generate for
//! `cim:ecs/types`.
//!
//! Every binding generator (wit-bindgen in components, wasmtime's `bindgen!` in the test host,
//! wit-bindgen-wrpc in providers and the CLI) emits its own copy of the same records, so the
//! conversions are written once here, as a macro expanded next to each set of bindings.

/// Defines `entity_out`, `entity_in`, `envelope_out`, `envelope_in`, `error_out`, `error_in`,
/// `event_out`, `event_in`, `new_event_out` and `new_event_in` for the WIT records in scope.
///
/// Expects `EcsError`, `VersionConflict`, `EntityRef`, `Envelope`, `Event` and `NewEvent` (the
/// generated `cim:ecs/types` records) to be in scope. Payloads may be `Vec<u8>` or `bytes::Bytes`.
#[macro_export]
macro_rules! wit_conversions {
    () => {
        /// Converts a domain entity reference to its WIT record.
        pub fn entity_out(e: &$crate::EntityRef) -> EntityRef {
            EntityRef {
                kind: e.kind.to_string(),
                id: e.id.to_string(),
            }
        }

        /// Validates a WIT entity reference.
        pub fn entity_in(e: &EntityRef) -> Result<$crate::EntityRef, $crate::EcsError> {
            $crate::EntityRef::new(&e.kind, &e.id)
                .map_err(|x| $crate::EcsError::Invalid(x.to_string()))
        }

        /// Converts a domain envelope to its WIT record.
        pub fn envelope_out(e: $crate::Envelope) -> Envelope {
            Envelope {
                id: e.id,
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                occurred_at_ms: e.occurred_at_ms,
            }
        }

        /// Converts a WIT envelope to its domain form.
        pub fn envelope_in(e: Envelope) -> $crate::Envelope {
            $crate::Envelope {
                id: e.id,
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                occurred_at_ms: e.occurred_at_ms,
            }
        }

        /// Converts a domain error to its WIT variant.
        pub fn error_out(e: $crate::EcsError) -> EcsError {
            match e {
                $crate::EcsError::Rejected(m) => EcsError::Rejected(m),
                $crate::EcsError::Conflict { expected, actual } => {
                    EcsError::Conflict(VersionConflict { expected, actual })
                }
                $crate::EcsError::Invalid(m) => EcsError::Invalid(m),
                $crate::EcsError::NotFound(m) => EcsError::NotFound(m),
                $crate::EcsError::Unavailable(m) => EcsError::Unavailable(m),
            }
        }

        /// Converts a WIT error to its domain form.
        pub fn error_in(e: EcsError) -> $crate::EcsError {
            match e {
                EcsError::Rejected(m) => $crate::EcsError::Rejected(m),
                EcsError::Conflict(c) => $crate::EcsError::Conflict {
                    expected: c.expected,
                    actual: c.actual,
                },
                EcsError::Invalid(m) => $crate::EcsError::Invalid(m),
                EcsError::NotFound(m) => $crate::EcsError::NotFound(m),
                EcsError::Unavailable(m) => $crate::EcsError::Unavailable(m),
            }
        }

        /// Converts a stored event to its WIT record.
        pub fn event_out(e: $crate::RecordedEvent) -> Event {
            Event {
                cid: e.cid.to_string(),
                previous: e.previous.map(|c| c.to_string()),
                entity: entity_out(&e.entity),
                version: e.version,
                name: e.name.to_string(),
                schema_version: e.schema_version,
                payload: e.payload.into(),
                meta: envelope_out(e.meta),
            }
        }

        /// Validates a WIT event; the error says which field is malformed. (Its CID is checked
        /// by chain verification, not here.)
        pub fn event_in(e: Event) -> Result<$crate::RecordedEvent, String> {
            Ok($crate::RecordedEvent {
                cid: $crate::parse_cid(&e.cid).map_err(|x| x.to_string())?,
                previous: e
                    .previous
                    .as_deref()
                    .map($crate::parse_cid)
                    .transpose()
                    .map_err(|x| x.to_string())?,
                entity: $crate::EntityRef::new(&e.entity.kind, &e.entity.id)
                    .map_err(|x| x.to_string())?,
                version: e.version,
                name: $crate::Token::parse("event name", &e.name).map_err(|x| x.to_string())?,
                schema_version: e.schema_version,
                payload: Vec::from(e.payload),
                meta: envelope_in(e.meta),
            })
        }

        /// Converts a domain new event to its WIT record.
        pub fn new_event_out(e: $crate::NewEvent) -> NewEvent {
            NewEvent {
                name: e.name.to_string(),
                schema_version: e.schema_version,
                payload: e.payload.into(),
                meta: envelope_out(e.meta),
            }
        }

        /// Validates a WIT new event.
        pub fn new_event_in(e: NewEvent) -> Result<$crate::NewEvent, $crate::EcsError> {
            Ok($crate::NewEvent {
                name: $crate::Token::parse("event name", &e.name)
                    .map_err(|x| $crate::EcsError::Invalid(x.to_string()))?,
                schema_version: e.schema_version,
                payload: Vec::from(e.payload),
                meta: envelope_in(e.meta),
            })
        }
    };
}

/// Defines `ImportedLog`, the guest's `cim:ecs/eventstore` import seen as an
/// [`EventLog`](crate::EventLog), for components built with wit-bindgen.
///
/// Expects the generated `eventstore` import module, the `cim:ecs/types` records and the
/// functions of [`wit_conversions!`] to be in scope. A malformed event coming back from the
/// store is reported as the store's failure (`unavailable`), never as the caller's.
#[macro_export]
macro_rules! imported_event_log {
    () => {
        /// The `eventstore` import as an [`EventLog`](cim_domain::EventLog).
        pub struct ImportedLog;

        fn stored_event_in(e: Event) -> Result<$crate::RecordedEvent, $crate::EcsError> {
            event_in(e).map_err(|m| {
                $crate::EcsError::Unavailable(format!(
                    "event store returned a malformed event: {m}"
                ))
            })
        }

        fn stored_snapshot_in(
            s: eventstore::Snapshot,
        ) -> Result<$crate::Snapshot, $crate::EcsError> {
            let malformed = |m: String| {
                $crate::EcsError::Unavailable(format!(
                    "event store returned a malformed snapshot: {m}"
                ))
            };
            Ok($crate::Snapshot {
                entity: $crate::EntityRef::new(&s.entity.kind, &s.entity.id)
                    .map_err(|x| malformed(x.to_string()))?,
                version: s.version,
                last_cid: $crate::parse_cid(&s.last_cid).map_err(|x| malformed(x.to_string()))?,
                state: s.state.into_bytes(),
            })
        }

        impl $crate::EventLog for ImportedLog {
            fn read(
                &mut self,
                entity: &$crate::EntityRef,
                from: u64,
                max: u32,
            ) -> Result<Vec<$crate::RecordedEvent>, $crate::EcsError> {
                eventstore::read(&entity_out(entity), from, max)
                    .map_err(error_in)?
                    .into_iter()
                    .map(stored_event_in)
                    .collect()
            }

            fn append(
                &mut self,
                entity: &$crate::EntityRef,
                expected_version: u64,
                events: Vec<$crate::NewEvent>,
            ) -> Result<Vec<$crate::RecordedEvent>, $crate::EcsError> {
                let events: Vec<NewEvent> = events.into_iter().map(new_event_out).collect();
                eventstore::append(&entity_out(entity), expected_version, &events)
                    .map_err(error_in)?
                    .into_iter()
                    .map(stored_event_in)
                    .collect()
            }

            fn load_snapshot(
                &mut self,
                entity: &$crate::EntityRef,
            ) -> Result<Option<$crate::Snapshot>, $crate::EcsError> {
                eventstore::load_snapshot(&entity_out(entity))
                    .map_err(error_in)?
                    .map(stored_snapshot_in)
                    .transpose()
            }

            fn load(
                &mut self,
                entity: &$crate::EntityRef,
                max: u32,
            ) -> Result<$crate::Loaded, $crate::EcsError> {
                let loaded = eventstore::load(&entity_out(entity), max).map_err(error_in)?;
                Ok($crate::Loaded {
                    snapshot: loaded.snapshot.map(stored_snapshot_in).transpose()?,
                    events: loaded
                        .events
                        .into_iter()
                        .map(stored_event_in)
                        .collect::<Result<_, _>>()?,
                })
            }

            fn save_snapshot(
                &mut self,
                snapshot: $crate::Snapshot,
            ) -> Result<(), $crate::EcsError> {
                let state = String::from_utf8(snapshot.state).map_err(|_| {
                    $crate::EcsError::Invalid("a snapshot's state must be UTF-8 text (JSON)".into())
                })?;
                eventstore::save_snapshot(&eventstore::Snapshot {
                    entity: entity_out(&snapshot.entity),
                    version: snapshot.version,
                    last_cid: snapshot.last_cid.to_string(),
                    state,
                })
                .map_err(error_in)
            }
        }
    };
}

/// Defines `send_command`: a typed command to an entity through the component's
/// `cim:ecs/entity` import (for systems that issue commands: the pipeline, the agent).
///
/// Expects the generated `entity` import module and the records of [`wit_conversions!`] and
/// [`imported_event_log!`] (`Command`, `entity_out`, `envelope_out`, `error_in`,
/// `stored_event_in`) in scope.
#[macro_export]
macro_rules! imported_entity_client {
    () => {
        /// Sends `command` (encoded by [`EventCodec`]($crate::EventCodec)) to `target` with
        /// envelope `meta` through the `cim:ecs/entity` import; returns the events it stored.
        pub fn send_command<C: $crate::__serde::Serialize>(
            target: &$crate::EntityRef,
            command: &C,
            meta: $crate::Envelope,
        ) -> Result<Vec<$crate::RecordedEvent>, $crate::EcsError> {
            let (name, payload) = $crate::EventCodec::encode(command)
                .map_err(|e| $crate::EcsError::Invalid(e.to_string()))?;
            let cmd = Command {
                entity: entity_out(target),
                name: name.to_string(),
                payload,
                expected_version: None,
                meta: envelope_out(meta),
            };
            entity::handle(&cmd)
                .map_err(error_in)?
                .into_iter()
                .map(stored_event_in)
                .collect()
        }
    };
}
