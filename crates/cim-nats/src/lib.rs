//! The CIM's single NATS layer.
//!
//! - [`config`]: how every CIM process connects (URL plus credentials), in one place.
//! - [`auth`]: operator/account/user credentials for a local lattice (decentralized JWT auth,
//!   the only mode the wasmCloud host and its providers support).
//! - [`names`]: stream, bucket and header names.
//! - [`store`]: the JetStream event store: per-entity CID chains with optimistic concurrency.
//! - [`commit`]: the message format of multi-event appends (one message per commit).
//! - [`objects`]: the content-addressed object store (NATS Object Store, names are CIDs).

pub mod auth;
pub mod commit;
pub mod config;
pub mod deadletter;
pub mod names;
pub mod objects;
pub mod store;

pub use config::{NatsConfig, NatsError};
pub use objects::ObjectStore;
pub use store::EventStore;
