//! Small validation helpers shared by the entity types.

use cim_domain::event::parse_cid;

/// Fails with `msg` unless `ok`.
pub(crate) fn ensure(ok: bool, msg: impl Into<String>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg.into())
    }
}

/// A non-blank text of at most `max` characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), String> {
    ensure(
        !value.trim().is_empty(),
        format!("{field} must not be empty"),
    )?;
    ensure(
        value.chars().count() <= max,
        format!("{field} is longer than {max} characters"),
    )
}

/// A label: 1 to 64 characters of `a-z 0-9 -`, starting with a letter or digit.
pub(crate) fn label(field: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ensure(
        ok,
        format!("{field} {value:?} must be 1-64 characters of a-z, 0-9 and '-'"),
    )
}

/// A CID in string form.
pub(crate) fn cid(field: &str, value: &str) -> Result<(), String> {
    parse_cid(value)
        .map(|_| ())
        .map_err(|e| format!("{field}: {e}"))
}
