//! The error every entity operation reports, mirroring WIT `cim:ecs/types.ecs-error`.

use thiserror::Error;

/// Why a command or store operation did not happen. In every case nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EcsError {
    /// The command is well-formed but the entity's rules refuse it in its current state.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Another writer changed the entity first.
    #[error("version conflict: expected version {expected}, entity is at {actual}")]
    Conflict {
        /// The version the writer expected.
        expected: u64,
        /// The entity's actual version.
        actual: u64,
    },
    /// The input is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The addressed thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A backend failed or could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
