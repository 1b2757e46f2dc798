//! The CIM's entity types, as pure [`cim_domain::Aggregate`]s, and its pure projections.
//!
//! Each module is one entity type: its commands (imperative), its events (past tense), its
//! state and its rules. Entity components in `components/` wrap these in WIT exports; the
//! rules are tested here natively with given/when/then.
#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod document;
pub mod graph;
pub mod package;
pub mod pipeline;
mod rules;
