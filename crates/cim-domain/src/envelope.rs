//! Correlation and causation carried by every command and event.

use serde::{Deserialize, Serialize};

/// Who asked for a change and why.
///
/// `correlation_id` is shared by every message of one business conversation;
/// `causation_id` names the message (command id or event CID) that directly caused this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this message.
    pub id: String,
    /// Id shared by every message of one conversation.
    pub correlation_id: String,
    /// The message that caused this one, if any.
    pub causation_id: Option<String>,
    /// When the message was issued, in milliseconds since the Unix epoch.
    pub occurred_at_ms: u64,
}

impl Envelope {
    /// The envelope of a conversation's first message: it correlates with itself.
    pub fn originating(id: impl Into<String>, occurred_at_ms: u64) -> Self {
        let id = id.into();
        Self {
            correlation_id: id.clone(),
            id,
            causation_id: None,
            occurred_at_ms,
        }
    }

    /// The envelope of a message caused by `self`: same correlation, causation = `self.id`.
    pub fn caused(&self, id: impl Into<String>, occurred_at_ms: u64) -> Self {
        Self {
            id: id.into(),
            correlation_id: self.correlation_id.clone(),
            causation_id: Some(self.id.clone()),
            occurred_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causation_threads_a_conversation() {
        let first = Envelope::originating("cmd-1", 10);
        assert_eq!(first.correlation_id, "cmd-1");
        let next = first.caused("evt-1", 11);
        assert_eq!(next.correlation_id, "cmd-1");
        assert_eq!(next.causation_id.as_deref(), Some("cmd-1"));
    }
}
