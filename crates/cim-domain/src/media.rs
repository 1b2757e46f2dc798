//! Media types (RFC 6838 names, RFC 9110 parameters), checked the same way wherever one is
//! stored: the object store and the entities that name their content's type.

use thiserror::Error;

/// Why a media type was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("media type {value:?} is not of the form type/subtype[; name=value]…: {reason}")]
pub struct MediaTypeError {
    /// The refused text (cut to 80 characters).
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// An RFC 6838 restricted name: 1–127 characters, a letter or digit first, then letters,
/// digits and `! # $ & - ^ _ . +`.
fn restricted_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

/// An RFC 9110 token (a parameter value that needs no quoting).
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Checks that `text` is a media type such as `application/pdf` or
/// `text/plain; charset=utf-8`: a type and a subtype of RFC 6838 restricted names, then
/// optional `; name=value` parameters with token values. At most 255 bytes.
pub fn check_media_type(text: &str) -> Result<(), MediaTypeError> {
    let refuse = |reason| MediaTypeError {
        value: text.chars().take(80).collect(),
        reason,
    };
    if text.len() > 255 {
        return Err(refuse("longer than 255 bytes"));
    }
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return Err(refuse("no `/` between type and subtype"));
    };
    if !restricted_name(kind) || !restricted_name(subtype) {
        return Err(refuse(
            "type and subtype are letters, digits and !#$&-^_.+, starting with a letter or digit",
        ));
    }
    for parameter in parts {
        let Some((name, value)) = parameter.trim_start_matches(' ').split_once('=') else {
            return Err(refuse("a parameter is not name=value"));
        };
        if !restricted_name(name) || !token(value) {
            return Err(refuse(
                "a parameter's name or value has characters it may not have",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_media_types_are_accepted() {
        for ok in [
            "application/pdf",
            "text/plain; charset=utf-8",
            "application/vnd.oasis.opendocument.text",
            "image/svg+xml",
            "application/octet-stream",
            "multipart/form-data;boundary=x1",
        ] {
            assert_eq!(check_media_type(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "",
            "pdf",
            "/pdf",
            "application/",
            "application/pdf/x",
            "text plain/x",
            "text/plain; charset",
            "text/plain; charset=\"a b\"",
            "<script>/x",
            "application/pdf\n",
            "ä/b",
        ] {
            assert!(check_media_type(bad).is_err(), "{bad:?}");
        }
        assert!(check_media_type(&format!("a/{}", "b".repeat(300))).is_err());
    }
}
