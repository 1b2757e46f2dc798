//! `cim:ecs/eventstore`, served over wRPC: adapts WIT records to [`cim_nats::EventStore`].

use cim_domain::EcsError as DomainError;
use cim_nats::store::Snapshot as StoredSnapshot;
use cim_wrpc::{
    entity_in, entity_out, error_out, event_out, new_event_in, EcsError, EntityRef, Event, NewEvent,
};
use wasmcloud_provider_sdk::Context;

use crate::bindings::exports::cim::ecs::eventstore::{Handler, Loaded, Snapshot};
use crate::provider::EventStoreProvider;

/// Longest page a single `read` returns; callers page with `from`.
const MAX_READ: u32 = 4096;

fn caller(cx: &Option<Context>) -> &str {
    cx.as_ref()
        .and_then(|c| c.component.as_deref())
        .unwrap_or("unknown")
}

/// A stored snapshot as WIT; one whose state is not UTF-8 text (no component wrote it) is no
/// snapshot: the command replays the entity instead.
fn snapshot_out(s: StoredSnapshot) -> Option<Snapshot> {
    let state = match String::from_utf8(s.state) {
        Ok(state) => state,
        Err(_) => {
            tracing::warn!(entity = %s.entity, version = s.version, "a stored snapshot's state is not UTF-8 text; ignoring it");
            return None;
        }
    };
    Some(Snapshot {
        entity: entity_out(&s.entity),
        version: s.version,
        last_cid: s.last_cid,
        state,
    })
}

impl Handler<Option<Context>> for EventStoreProvider {
    async fn append(
        &self,
        cx: Option<Context>,
        entity: EntityRef,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> anyhow::Result<Result<Vec<Event>, EcsError>> {
        let result: Result<Vec<Event>, DomainError> = async {
            let entity = entity_in(&entity)?;
            let events = events
                .into_iter()
                .map(new_event_in)
                .collect::<Result<Vec<_>, _>>()?;
            let stored = self
                .store()
                .await?
                .append(&entity, expected_version, events)
                .await?;
            tracing::debug!(caller = caller(&cx), %entity, n = stored.len(), "appended");
            Ok(stored.into_iter().map(event_out).collect())
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn read(
        &self,
        _cx: Option<Context>,
        entity: EntityRef,
        from: u64,
        max: u32,
    ) -> anyhow::Result<Result<Vec<Event>, EcsError>> {
        let result: Result<Vec<Event>, DomainError> = async {
            let entity = entity_in(&entity)?;
            let events = self
                .store()
                .await?
                .read(&entity, from, max.min(MAX_READ))
                .await?;
            Ok(events.into_iter().map(event_out).collect())
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn load_snapshot(
        &self,
        _cx: Option<Context>,
        entity: EntityRef,
    ) -> anyhow::Result<Result<Option<Snapshot>, EcsError>> {
        let result: Result<Option<Snapshot>, DomainError> = async {
            let entity = entity_in(&entity)?;
            Ok(self
                .store()
                .await?
                .load_snapshot(&entity)
                .await?
                .and_then(snapshot_out))
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn load(
        &self,
        _cx: Option<Context>,
        entity: EntityRef,
        max: u32,
    ) -> anyhow::Result<Result<Loaded, EcsError>> {
        let result: Result<Loaded, DomainError> = async {
            let entity = entity_in(&entity)?;
            // The store answers only snapshots whose state is text, so none is dropped here.
            let (snapshot, events) = self.store().await?.load(&entity, max.min(MAX_READ)).await?;
            Ok(Loaded {
                snapshot: snapshot.and_then(snapshot_out),
                events: events.into_iter().map(event_out).collect(),
            })
        }
        .await;
        Ok(result.map_err(error_out))
    }

    async fn save_snapshot(
        &self,
        _cx: Option<Context>,
        snap: Snapshot,
    ) -> anyhow::Result<Result<(), EcsError>> {
        let result: Result<(), DomainError> = async {
            let entity = entity_in(&snap.entity)?;
            self.store()
                .await?
                .save_snapshot(StoredSnapshot {
                    entity,
                    version: snap.version,
                    last_cid: snap.last_cid,
                    state: snap.state.into_bytes(),
                })
                .await
        }
        .await;
        Ok(result.map_err(error_out))
    }
}
