//! The pure domain core of the Composable Information Machine.
//!
//! Everything here is synchronous and free of native dependencies, so the same code runs in
//! entity components (`wasm32-wasip2`), in capability providers and in native tests:
//!
//! - [`ident`]: validated entity kinds and ids ([`EntityRef`]).
//! - [`subject`]: the subject language (`cim.evt.<kind>.<id>`, `cim.cmd.<kind>.<action>`).
//! - [`envelope`]: correlation and causation of every message.
//! - [`event`]: new and recorded events and their content identifiers.
//! - [`chain`]: verification of an entity's CID chain.
//! - [`aggregate`]: the `decide`/`apply` contract of an entity type.
//! - [`handler`]: the command pipeline an entity component runs (load a snapshot, read, fold,
//!   decide, append).
//! - [`snapshot`]: snapshots of an entity's state and its recent command ids.
//! - [`testing`]: given/when/then helpers for aggregates.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod chain;
pub mod envelope;
pub mod error;
pub mod event;
pub mod handler;
pub mod ident;
pub mod media;
pub mod snapshot;
pub mod subject;
pub mod testing;
pub mod wit;

pub use aggregate::{Aggregate, EventCodec};
pub use chain::{verify_chain, ChainError, ChainVerifier};
pub use envelope::Envelope;
pub use error::EcsError;
pub use event::{event_cid, object_cid, parse_cid, CidError, NewEvent, RecordedEvent};
pub use handler::{
    handle_command, handle_command_with, CommandRequest, EventLog, Loaded, Settings,
};
pub use ident::{EntityRef, IdentError, Token};
pub use media::{check_media_type, MediaTypeError};
pub use snapshot::Snapshot;
pub use subject::{Subject, SubjectError};

/// serde, for the macros of [`wit`] expanded in other crates.
#[doc(hidden)]
pub use serde as __serde;
