//! The document entity (seed 004, intelligent document processing).
//!
//! A document is created with a reference (CID) to its content in the object store and the
//! categories it may be classified into. Text extracted from the content is attached, an agent
//! (or a person) classifies it, it is tagged, and finally archived.
//!
//! Rules: nothing happens to a document before `Create` or after `Archive`; classification
//! needs attached text and one of the document's allowed categories. Repeating a tag or the
//! current classification is accepted and records nothing, so at-least-once senders (agents)
//! can retry safely.

use std::collections::BTreeSet;

use cim_domain::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rules::{cid, ensure, label, text};

/// Longest attached text accepted inline, in characters; longer text goes to the object store.
pub const MAX_TEXT_CHARS: usize = 64 * 1024;

/// The types of `cim:document/types`, generated from `wit/entities/document/document.wit`:
/// [`DocumentCommand`] and [`DocumentEvent`] (ADR 0012).
mod language {
    include!(concat!(env!("OUT_DIR"), "/document.rs"));
}
pub use language::*;

/// Why a document refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// The document has not been created.
    #[error("document does not exist yet; send Create first")]
    NotCreated,
    /// The document exists already.
    #[error("document already exists")]
    AlreadyCreated,
    /// The document is archived.
    #[error("document is archived")]
    Archived,
    /// A rule about the command's content.
    #[error("{0}")]
    Rule(String),
}

impl From<String> for DocumentError {
    fn from(s: String) -> Self {
        DocumentError::Rule(s)
    }
}

/// The state of a document, folded from its events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    created: bool,
    archived: bool,
    categories: BTreeSet<String>,
    has_text: bool,
    category: Option<String>,
    tags: BTreeSet<String>,
}

impl Document {
    /// The current classification, if any.
    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    /// The document's tags.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    /// Whether the document is archived.
    pub fn is_archived(&self) -> bool {
        self.archived
    }

    fn live(&self) -> Result<(), DocumentError> {
        if !self.created {
            Err(DocumentError::NotCreated)
        } else if self.archived {
            Err(DocumentError::Archived)
        } else {
            Ok(())
        }
    }
}

impl Aggregate for Document {
    const KIND: &'static str = "document";
    type Command = DocumentCommand;
    type Event = DocumentEvent;
    type Error = DocumentError;

    fn decide(&self, cmd: &DocumentCommand) -> Result<Vec<DocumentEvent>, DocumentError> {
        use DocumentCommand as C;
        use DocumentEvent as E;
        match cmd {
            C::Create {
                title,
                content_cid,
                media_type,
                categories,
            } => {
                if self.created {
                    return Err(DocumentError::AlreadyCreated);
                }
                text("title", title, 200)?;
                cid("content_cid", content_cid)?;
                if let Err(e) = cim_domain::check_media_type(media_type) {
                    ensure(false, format!("media_type: {e}"))?;
                }
                ensure(!categories.is_empty(), "categories must not be empty")?;
                for c in categories {
                    label("category", c)?;
                }
                let unique: BTreeSet<&String> = categories.iter().collect();
                ensure(
                    unique.len() == categories.len(),
                    "categories must be unique",
                )?;
                Ok(vec![E::DocumentCreated {
                    title: title.clone(),
                    content_cid: content_cid.clone(),
                    media_type: media_type.clone(),
                    categories: categories.clone(),
                }])
            }
            C::AttachText { text: body } => {
                self.live()?;
                ensure(!self.has_text, "text is already attached")?;
                text("text", body, MAX_TEXT_CHARS)?;
                Ok(vec![E::TextAttached { text: body.clone() }])
            }
            C::Classify {
                category,
                confidence,
                classified_by,
                model,
                prompt_cid,
            } => {
                self.live()?;
                ensure(
                    self.has_text,
                    "classification needs extracted text; send AttachText first",
                )?;
                ensure(
                    self.categories.contains(category),
                    format!(
                        "category {category:?} is not one of {:?}",
                        self.categories.iter().collect::<Vec<_>>()
                    ),
                )?;
                ensure(
                    (0.0..=1.0).contains(confidence),
                    format!("confidence {confidence} is outside [0, 1]"),
                )?;
                text("classified_by", classified_by, 200)?;
                if let Some(m) = model {
                    text("model", m, 200)?;
                }
                if let Some(c) = prompt_cid {
                    cid("prompt_cid", c)?;
                }
                if self.category.as_ref() == Some(category) {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentClassified {
                    category: category.clone(),
                    confidence: *confidence,
                    classified_by: classified_by.clone(),
                    model: model.clone(),
                    prompt_cid: prompt_cid.clone(),
                }])
            }
            C::RecordClassificationFailure {
                reason,
                model,
                prompt_cid,
                answer,
            } => {
                self.live()?;
                ensure(
                    self.has_text,
                    "a classification needs extracted text; send AttachText first",
                )?;
                text("reason", reason, 2000)?;
                text("model", model, 200)?;
                if let Some(c) = prompt_cid {
                    cid("prompt_cid", c)?;
                }
                if let Some(a) = answer {
                    ensure(
                        a.chars().count() <= 4000,
                        "answer must be at most 4000 characters",
                    )?;
                }
                Ok(vec![E::ClassificationFailed {
                    reason: reason.clone(),
                    model: model.clone(),
                    prompt_cid: prompt_cid.clone(),
                    answer: answer.clone(),
                }])
            }
            C::Tag { tag } => {
                self.live()?;
                label("tag", tag)?;
                if self.tags.contains(tag) {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentTagged { tag: tag.clone() }])
            }
            C::Archive { reason } => {
                self.live()?;
                text("reason", reason, 500)?;
                Ok(vec![E::DocumentArchived {
                    reason: reason.clone(),
                }])
            }
        }
    }

    fn apply(&mut self, ev: &DocumentEvent) {
        use DocumentEvent as E;
        match ev {
            E::DocumentCreated { categories, .. } => {
                self.created = true;
                self.categories = categories.iter().cloned().collect();
            }
            E::TextAttached { .. } => self.has_text = true,
            E::DocumentClassified { category, .. } => self.category = Some(category.clone()),
            E::ClassificationFailed { .. } => {}
            E::DocumentTagged { tag } => {
                self.tags.insert(tag.clone());
            }
            E::DocumentArchived { .. } => self.archived = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::event::object_cid;
    use cim_domain::testing::given;
    use DocumentCommand as C;
    use DocumentEvent as E;

    fn created() -> E {
        E::DocumentCreated {
            title: "Invoice 42".into(),
            content_cid: object_cid(b"%PDF").to_string(),
            media_type: "application/pdf".into(),
            categories: vec!["invoice".into(), "contract".into()],
        }
    }

    fn create_cmd() -> C {
        match created() {
            E::DocumentCreated {
                title,
                content_cid,
                media_type,
                categories,
            } => C::Create {
                title,
                content_cid,
                media_type,
                categories,
            },
            _ => unreachable!(),
        }
    }

    fn text_attached() -> E {
        E::TextAttached {
            text: "Pay 42 EUR".into(),
        }
    }

    fn classify(category: &str) -> C {
        C::Classify {
            category: category.into(),
            confidence: 0.9,
            classified_by: "llama3".into(),
            model: None,
            prompt_cid: None,
        }
    }

    #[test]
    fn create_then_full_lifecycle() {
        given::<Document>([]).when(create_cmd()).then([created()]);
        given::<Document>([created()])
            .when(C::AttachText {
                text: "Pay 42 EUR".into(),
            })
            .then([text_attached()]);
        given::<Document>([created(), text_attached()])
            .when(classify("invoice"))
            .then([E::DocumentClassified {
                category: "invoice".into(),
                confidence: 0.9,
                classified_by: "llama3".into(),
                model: None,
                prompt_cid: None,
            }]);
        given::<Document>([created()])
            .when(C::Tag {
                tag: "finance".into(),
            })
            .then([E::DocumentTagged {
                tag: "finance".into(),
            }]);
        given::<Document>([created()])
            .when(C::Archive {
                reason: "paid".into(),
            })
            .then([E::DocumentArchived {
                reason: "paid".into(),
            }]);
    }

    #[test]
    fn nothing_before_create_or_after_archive() {
        given::<Document>([])
            .when(C::Tag { tag: "x".into() })
            .then_err("does not exist");
        given::<Document>([created()])
            .when(create_cmd())
            .then_err("already exists");
        let archived = E::DocumentArchived {
            reason: "done".into(),
        };
        given::<Document>([created(), archived.clone()])
            .when(C::Tag { tag: "x".into() })
            .then_err("archived");
        given::<Document>([created(), archived])
            .when(C::Archive {
                reason: "again".into(),
            })
            .then_err("archived");
    }

    #[test]
    fn classification_rules() {
        given::<Document>([created()])
            .when(classify("invoice"))
            .then_err("AttachText first");
        given::<Document>([created(), text_attached()])
            .when(classify("recipe"))
            .then_err("not one of");
        given::<Document>([created(), text_attached()])
            .when(C::Classify {
                category: "invoice".into(),
                confidence: 1.5,
                classified_by: "m".into(),
                model: None,
                prompt_cid: None,
            })
            .then_err("outside [0, 1]");
        let classified = E::DocumentClassified {
            category: "invoice".into(),
            confidence: 0.9,
            classified_by: "llama3".into(),
            model: None,
            prompt_cid: None,
        };
        given::<Document>([created(), text_attached(), classified])
            .when(classify("invoice"))
            .then([]);
    }

    #[test]
    fn a_model_classification_names_its_model_and_prompt_and_failures_are_facts() {
        let prompt = object_cid(b"the prompt").to_string();
        given::<Document>([created(), text_attached()])
            .when(C::Classify {
                category: "invoice".into(),
                confidence: 0.6,
                classified_by: "agent".into(),
                model: Some("llama3.2".into()),
                prompt_cid: Some(prompt.clone()),
            })
            .then([E::DocumentClassified {
                category: "invoice".into(),
                confidence: 0.6,
                classified_by: "agent".into(),
                model: Some("llama3.2".into()),
                prompt_cid: Some(prompt.clone()),
            }]);
        given::<Document>([created(), text_attached()])
            .when(C::Classify {
                category: "invoice".into(),
                confidence: 0.6,
                classified_by: "agent".into(),
                model: None,
                prompt_cid: Some("not a cid".into()),
            })
            .then_err("prompt_cid");
        let failure = C::RecordClassificationFailure {
            reason: "no JSON".into(),
            model: "llama3.2".into(),
            prompt_cid: Some(prompt.clone()),
            answer: Some("I am not sure".into()),
        };
        given::<Document>([created()])
            .when(failure.clone())
            .then_err("AttachText first");
        given::<Document>([created(), text_attached()])
            .when(failure)
            .then([E::ClassificationFailed {
                reason: "no JSON".into(),
                model: "llama3.2".into(),
                prompt_cid: Some(prompt),
                answer: Some("I am not sure".into()),
            }]);
    }

    #[test]
    fn an_operator_classification_keeps_its_old_payload() {
        // Events written before model and prompt_cid existed decode, and a person's
        // classification is encoded exactly as before (its CID does not change).
        let (_, payload) = cim_domain::EventCodec::encode(&E::DocumentClassified {
            category: "invoice".into(),
            confidence: 0.9,
            classified_by: "operator".into(),
            model: None,
            prompt_cid: None,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"category":"invoice","confidence":0.9,"classified_by":"operator"}"#
        );
    }

    #[test]
    fn create_validates_its_fields() {
        let mut cmd = create_cmd();
        if let C::Create { content_cid, .. } = &mut cmd {
            *content_cid = "not-a-cid".into();
        }
        given::<Document>([]).when(cmd).then_err("content_cid");
        let mut cmd = create_cmd();
        if let C::Create { categories, .. } = &mut cmd {
            categories.push("invoice".into());
        }
        given::<Document>([]).when(cmd).then_err("unique");
        let mut cmd = create_cmd();
        if let C::Create { media_type, .. } = &mut cmd {
            *media_type = "pdf".into();
        }
        given::<Document>([]).when(cmd).then_err("type/subtype");
        let mut cmd = create_cmd();
        if let C::Create { media_type, .. } = &mut cmd {
            *media_type = "text/<b>".into();
        }
        given::<Document>([]).when(cmd).then_err("type/subtype");
    }

    #[test]
    fn tags_are_labels_and_idempotent() {
        given::<Document>([created()])
            .when(C::Tag {
                tag: "Bad Tag".into(),
            })
            .then_err("a-z");
        given::<Document>([created(), E::DocumentTagged { tag: "x".into() }])
            .when(C::Tag { tag: "x".into() })
            .then([]);
        given::<Document>([created(), text_attached()])
            .when(C::AttachText {
                text: "again".into(),
            })
            .then_err("already attached");
    }

    #[test]
    fn unknown_fields_are_rejected_at_decoding() {
        let err = cim_domain::EventCodec::decode::<C>("Tag", br#"{"tag":"a","color":"red"}"#);
        assert!(err.is_err());
    }
}
