//! Names of the JetStream resources and message headers the CIM uses.

/// The stream holding every domain event (`cim.evt.>`), file storage, no max age.
pub const EVENTS_STREAM: &str = "CIM_EVENTS";
/// Subjects captured by [`EVENTS_STREAM`].
pub const EVENTS_SUBJECTS: &str = "cim.evt.>";
/// The key-value bucket holding entity snapshots, keyed `<kind>.<id>`.
pub const SNAPSHOTS_BUCKET: &str = "CIM_SNAPSHOTS";

/// The object store bucket holding content-addressed objects (named by CID).
pub const OBJECTS_BUCKET: &str = "CIM_OBJECTS";

/// Whether `name` can name a JetStream bucket (object store, key-value): `A-Z a-z 0-9 _ -`.
pub fn is_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Event headers. The message body is the event's JSON payload, verbatim; everything else
/// about the event travels in these headers (the entity is the subject).
pub mod header {
    /// The event's CID.
    pub const CID: &str = "Cim-Cid";
    /// The previous event's CID (absent on version 1).
    pub const PREVIOUS: &str = "Cim-Previous";
    /// The event's version in its entity stream.
    pub const VERSION: &str = "Cim-Version";
    /// The event name.
    pub const EVENT: &str = "Cim-Event";
    /// The payload schema version.
    pub const SCHEMA: &str = "Cim-Schema";
    /// The envelope's message id.
    pub const MESSAGE_ID: &str = "Cim-Message-Id";
    /// The envelope's correlation id.
    pub const CORRELATION_ID: &str = "Cim-Correlation-Id";
    /// The envelope's causation id.
    pub const CAUSATION_ID: &str = "Cim-Causation-Id";
    /// When the causing command was issued (ms since the Unix epoch).
    pub const OCCURRED_AT: &str = "Cim-Occurred-At";
    /// Present when the payload was offloaded to the object store: the payload's object CID.
    /// The message body is then empty; the event's own CID still covers the full payload.
    pub const PAYLOAD_CID: &str = "Cim-Payload-Cid";
    /// Present on a commit message (several events of one append in one message, see
    /// [`crate::commit`]): the number of events. [`VERSION`] and [`CID`] are then the last
    /// event's, and the body is the commit.
    pub const EVENTS: &str = "Cim-Events";
}
