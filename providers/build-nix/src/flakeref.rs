//! What may be built: validated flake references and attribute paths, and the allow-list.
//!
//! Nix is started without a shell and with the installable as one argument after `--`, so a
//! request cannot add options or commands; on top of that only a narrow grammar is accepted,
//! so nothing that reaches Nix needs quoting, can name a parent directory (`..`) or carry
//! query parameters that change what is fetched beyond `rev`, `ref` and `dir`.

use std::fmt;

/// Longest flake reference accepted, in bytes.
pub const MAX_REF: usize = 1000;
/// Longest attribute path accepted, in bytes.
pub const MAX_ATTRIBUTE: usize = 200;

/// Why a flake reference, an attribute or an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Empty or longer than allowed.
    #[error("{what} must be 1 to {max} bytes long")]
    Length {
        /// What was measured.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A character outside the grammar.
    #[error("{what} {value:?} contains {ch:?}; allowed are ASCII letters, digits and {allowed}")]
    Character {
        /// What was checked.
        what: &'static str,
        /// The value.
        value: String,
        /// The offending character.
        ch: char,
        /// The punctuation allowed.
        allowed: &'static str,
    },
    /// A structural rule.
    #[error("flake ref {value:?}: {reason}")]
    Shape {
        /// The value.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An attribute path that is not `name(.name)*`.
    #[error("attribute {0:?} is not a dotted path of names (A-Z a-z 0-9 _ -)")]
    Attribute(String),
}

const REF_PUNCTUATION: &str = ":/._-~+=?&%@";

/// A flake reference that passed validation: `<scheme>:<location>[?key=value&…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef {
    text: String,
    location_len: usize,
}

impl FlakeRef {
    /// Validates `text`.
    pub fn parse(text: &str) -> Result<Self, RefError> {
        if text.is_empty() || text.len() > MAX_REF {
            return Err(RefError::Length {
                what: "a flake ref",
                max: MAX_REF,
            });
        }
        if let Some(ch) = text
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !REF_PUNCTUATION.contains(*c))
        {
            return Err(RefError::Character {
                what: "flake ref",
                value: text.into(),
                ch,
                allowed: REF_PUNCTUATION,
            });
        }
        let shape = |reason| RefError::Shape {
            value: text.into(),
            reason,
        };
        let (location, query) = match text.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (text, None),
        };
        let Some((scheme, path)) = location.split_once(':') else {
            return Err(shape("needs a scheme (`git+file:`, `path:`, …)"));
        };
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_lowercase())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '+')
        {
            return Err(shape(
                "the scheme must be lower-case letters, digits and '+'",
            ));
        }
        if path.is_empty() {
            return Err(shape("names no location"));
        }
        if path.split('/').any(|segment| segment == "..") {
            return Err(shape("must not contain `..` segments"));
        }
        if let Some(query) = query {
            for pair in query.split('&') {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(shape("query parameters must be key=value"));
                };
                match key {
                    "rev" if value.len() == 40 || value.len() == 64 => {
                        if !value
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                        {
                            return Err(shape("rev must be a lower-case hex commit hash"));
                        }
                    }
                    "rev" => return Err(shape("rev must be a full commit hash")),
                    "ref" if !value.is_empty() && !value.starts_with('-') => {}
                    "dir" if !value.is_empty() && !value.starts_with('/') => {
                        if value.split('/').any(|s| s == "..") {
                            return Err(shape("dir must not contain `..` segments"));
                        }
                    }
                    _ => {
                        return Err(shape(
                            "only the query parameters rev, ref and dir are allowed",
                        ))
                    }
                }
            }
        }
        Ok(Self {
            text: text.into(),
            location_len: location.len(),
        })
    }

    /// The reference without its query (`git+file:///src/hello`).
    pub fn location(&self) -> &str {
        &self.text[..self.location_len]
    }

    /// The whole reference.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for FlakeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A validated flake output attribute path (`packages.x86_64-linux.default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute(String);

impl Attribute {
    /// Validates `text`.
    pub fn parse(text: &str) -> Result<Self, RefError> {
        if text.is_empty() || text.len() > MAX_ATTRIBUTE {
            return Err(RefError::Length {
                what: "an attribute path",
                max: MAX_ATTRIBUTE,
            });
        }
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !text.split('.').all(name_ok) {
            return Err(RefError::Attribute(text.into()));
        }
        Ok(Self(text.into()))
    }

    /// The attribute path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The installable Nix is asked to build: `<flake ref>#<attribute>`.
pub fn installable(flake: &FlakeRef, attribute: &Attribute) -> String {
    format!("{}#{}", flake.as_str(), attribute.as_str())
}

/// Flake locations a caller may build.
///
/// An entry allows itself and everything below it: `git+file:///srv/repos` allows
/// `git+file:///srv/repos/hello?rev=…` but not `git+file:///srv/repos-old/x`. An empty list
/// allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<String>);

impl AllowList {
    /// Parses a comma-separated list of flake locations (no query parameters).
    pub fn parse(text: &str) -> Result<Self, RefError> {
        let mut entries = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = FlakeRef::parse(entry)?;
            if parsed.location() != entry {
                return Err(RefError::Shape {
                    value: entry.into(),
                    reason: "allow-list entries are locations without query parameters",
                });
            }
            entries.push(entry.trim_end_matches('/').to_string());
        }
        Ok(Self(entries))
    }

    /// Whether `flake` lies within an entry.
    pub fn allows(&self, flake: &FlakeRef) -> bool {
        let location = flake.location();
        self.0
            .iter()
            .any(|entry| match location.strip_prefix(entry.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            })
    }

    /// The entries.
    pub fn entries(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn ordinary_refs_and_attributes_pass() {
        for ok in [
            format!("git+file:///tmp/hello?rev={REV}"),
            "path:/src/hello".to_string(),
            "github:owner/repo".to_string(),
            format!("git+file:///srv/r?ref=main&rev={REV}&dir=sub/flake"),
        ] {
            FlakeRef::parse(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for ok in [
            "default",
            "packages.x86_64-linux.default",
            "checks.x86_64-linux.my_check",
        ] {
            Attribute::parse(ok).unwrap();
        }
        let f = FlakeRef::parse(&format!("git+file:///tmp/hello?rev={REV}")).unwrap();
        assert_eq!(f.location(), "git+file:///tmp/hello");
        let a = Attribute::parse("packages.x86_64-linux.default").unwrap();
        assert_eq!(
            installable(&f, &a),
            format!("git+file:///tmp/hello?rev={REV}#packages.x86_64-linux.default")
        );
    }

    #[test]
    fn injection_attempts_are_refused() {
        for bad in [
            "",
            "--option sandbox false",
            "-path:/x",
            "path:/x --impure",
            "path:/x;rm -rf /",
            "path:/x$(id)",
            "path:/x`id`",
            "path:/x#packages.evil",
            "path:/x\n--option",
            "path:\"/x\"",
            "path:/srv/repos/../../etc",
            "/src/hello",
            "PATH:/x",
            "path:",
            "path:/x?narHash=sha256-x",
            "path:/x?rev=HEAD",
            "path:/x?rev=0123",
            "path:/x?dir=../up",
            "path:/x?dir=/abs",
            "path:/x?ref=--x",
            "path:/x?novalue",
        ] {
            assert!(FlakeRef::parse(bad).is_err(), "{bad:?} passed");
        }
        assert!(FlakeRef::parse(&"a".repeat(MAX_REF + 1)).is_err());
        for bad in ["", ".", "a..b", "a.", "a b", "a#b", "a\"b", "${x}", "a/b"] {
            assert!(Attribute::parse(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn the_allow_list_covers_entries_and_what_lies_below_them() {
        let list = AllowList::parse(" git+file:///srv/repos/ , path:/src/hello ").unwrap();
        assert_eq!(list.entries(), ["git+file:///srv/repos", "path:/src/hello"]);
        let allowed = |r: &str| list.allows(&FlakeRef::parse(r).unwrap());
        assert!(allowed(&format!("git+file:///srv/repos/hello?rev={REV}")));
        assert!(allowed("git+file:///srv/repos"));
        assert!(allowed("path:/src/hello"));
        assert!(!allowed("git+file:///srv/repos-old/hello"));
        assert!(!allowed("path:/src/hello2"));
        assert!(!allowed("git+https://srv/repos/hello"));
        assert!(!AllowList::default().allows(&FlakeRef::parse("path:/x").unwrap()));
        assert!(AllowList::parse("path:/x?rev=abc").is_err());
        assert!(AllowList::parse("path:/x/../y").is_err());
        assert_eq!(AllowList::parse("").unwrap(), AllowList::default());
    }
}
