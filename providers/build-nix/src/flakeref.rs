//! What may be built: validated flake references and attribute paths, and the allow-list.
//!
//! Nix is started without a shell and with the installable as one argument after `--`, so a
//! request cannot add options or commands; on top of that only a narrow grammar is accepted,
//! so nothing that reaches Nix needs quoting, can name a parent directory (`..`) or carry
//! query parameters that change what is fetched beyond `rev`, `ref` and `dir`.
//!
//! The allow-list compares what Nix will fetch, not what the caller wrote: percent-escapes are
//! decoded first (Nix decodes them), the decoded location must be in normal form (no `.`, `..`
//! or empty segments, nothing that would need escaping again) or it is refused, and Nix is
//! given the normalised reference. For local flakes the provider also resolves symbolic links
//! ([`AllowList::allows_resolved`]), so a link inside an allowed directory cannot point out.

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

/// Characters a location or query value may hold once percent-escapes are decoded: nothing
/// that needs escaping again, so the normalised reference is exactly what Nix fetches.
const DECODED_PUNCTUATION: &str = ":/._-~+=@";

/// The flake-ref schemes the provider builds. Others (`flake:` registry names that a registry
/// redirects anywhere, `file:`/`tarball:` URLs) are refused.
pub const SCHEMES: &[&str] = &[
    "path",
    "git+file",
    "git+https",
    "git+ssh",
    "github",
    "gitlab",
    "sourcehut",
];

/// The schemes whose location is a path on the machine that builds.
const LOCAL_SCHEMES: &[&str] = &["path", "git+file"];

/// A flake reference that passed validation, in normal form:
/// `<scheme>:<location>[?key=value&…]` with every percent-escape decoded (as Nix decodes it),
/// no `.`, `..` or empty path segments, and only the query parameters `rev`, `ref` and `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef {
    text: String,
    location_len: usize,
    scheme_len: usize,
    dir: Option<String>,
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or decodes to a byte outside
/// [`DECODED_PUNCTUATION`] and ASCII alphanumerics (including a second `%`).
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()?
        .into_owned();
    decoded
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || DECODED_PUNCTUATION.contains(c))
        .then_some(decoded)
}

/// Whether a decoded path has a `.`, `..` or empty segment (a trailing `/` aside).
fn unnormalised(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    path.split('/')
        .enumerate()
        .any(|(i, s)| s == "." || s == ".." || (s.is_empty() && i > 0))
}

impl FlakeRef {
    /// Validates `text` and brings it to normal form.
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
        if !SCHEMES.contains(&scheme) {
            return Err(shape(
                "the scheme must be one of path, git+file, git+https, git+ssh, github, gitlab, sourcehut",
            ));
        }
        let path = decode(path).ok_or_else(|| {
            shape("has a malformed percent-escape or one that decodes to a character outside the grammar")
        })?;
        if path.is_empty() {
            return Err(shape("names no location"));
        }
        if LOCAL_SCHEMES.contains(&scheme)
            && !(path.starts_with('/') && (!path.starts_with("//") || path.starts_with("///")))
        {
            return Err(shape(
                "a local flake names an absolute path (`path:/x`, `git+file:///x`), no host",
            ));
        }
        // `scheme://authority/path`: the authority is the first segment after `//`.
        let segments = path.strip_prefix("//").map_or(path.as_str(), |rest| {
            rest.find('/').map_or("", |slash| &rest[slash..])
        });
        if unnormalised(segments) {
            return Err(shape(
                "must not contain `.`, `..` or empty path segments (after percent-decoding)",
            ));
        }
        let mut normal = format!("{scheme}:{}", path.trim_end_matches('/'));
        if normal.len() == scheme.len() + 1 {
            return Err(shape("names no location"));
        }
        let location_len = normal.len();
        let mut dir = None;
        if let Some(query) = query {
            let mut seen = Vec::new();
            for pair in query.split('&') {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(shape("query parameters must be key=value"));
                };
                if seen.contains(&key) {
                    return Err(shape("a query parameter is given twice"));
                }
                seen.push(key);
                let value = decode(value)
                    .ok_or_else(|| shape("a query value has a malformed percent-escape"))?;
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
                        if unnormalised(&value) {
                            return Err(shape(
                                "dir must not contain `.`, `..` or empty segments (after percent-decoding)",
                            ));
                        }
                        dir = Some(value.trim_end_matches('/').to_string());
                    }
                    _ => {
                        return Err(shape(
                            "only the query parameters rev, ref and dir are allowed",
                        ))
                    }
                }
                normal.push(if normal.len() == location_len {
                    '?'
                } else {
                    '&'
                });
                normal.push_str(key);
                normal.push('=');
                normal.push_str(&value);
            }
        }
        Ok(Self {
            text: normal,
            location_len,
            scheme_len: scheme.len(),
            dir,
        })
    }

    /// The normalised reference without its query (`git+file:///src/hello`).
    pub fn location(&self) -> &str {
        &self.text[..self.location_len]
    }

    /// The scheme (`git+file`).
    pub fn scheme(&self) -> &str {
        &self.text[..self.scheme_len]
    }

    /// The directory on this machine the flake is read from, for the local schemes (`path:`,
    /// `git+file:`): the location's path joined with `dir`. `None` for remote schemes.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        if !LOCAL_SCHEMES.contains(&self.scheme()) {
            return None;
        }
        let path = &self.location()[self.scheme_len + 1..];
        // `git+file:///x` names `/x` (parse refused any other authority).
        let path = path.strip_prefix("//").unwrap_or(path);
        let mut dir = std::path::PathBuf::from(path);
        if let Some(sub) = &self.dir {
            dir.push(sub);
        }
        Some(dir)
    }

    /// The whole normalised reference, as Nix is given it.
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
            if parsed.location() != parsed.as_str() {
                return Err(RefError::Shape {
                    value: entry.into(),
                    reason: "allow-list entries are locations without query parameters",
                });
            }
            entries.push(parsed.location().to_string());
        }
        Ok(Self(entries))
    }

    /// Whether `flake` lies within an entry, comparing normalised (decoded) locations.
    pub fn allows(&self, flake: &FlakeRef) -> bool {
        let location = flake.location();
        self.0
            .iter()
            .any(|entry| match location.strip_prefix(entry.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            })
    }

    /// Whether the directory a local `flake` is read from, with every symbolic link resolved
    /// as Nix resolves it, still lies within the resolved directory of an entry of the same
    /// scheme. Remote flakes have nothing to resolve and pass when [`AllowList::allows`] does.
    /// A local flake whose directory does not exist is an error (nothing to build).
    pub fn allows_resolved(&self, flake: &FlakeRef) -> std::io::Result<bool> {
        if !self.allows(flake) {
            return Ok(false);
        }
        let Some(dir) = flake.local_dir() else {
            return Ok(true);
        };
        let real = std::fs::canonicalize(&dir)?;
        for entry in &self.0 {
            let Ok(entry) = FlakeRef::parse(entry) else {
                continue;
            };
            if entry.scheme() != flake.scheme() {
                continue;
            }
            let Some(root) = entry.local_dir() else {
                continue;
            };
            if std::fs::canonicalize(root).is_ok_and(|root| real.starts_with(root)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The entries (normalised locations).
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
    fn percent_encoded_parent_segments_are_refused_after_decoding() {
        for bad in [
            format!("git+file:///srv/repos/%2e%2e/%2e%2e/etc?rev={REV}"),
            "git+file:///srv/repos/%2E%2E/x".to_string(),
            "path:/srv/repos/.%2e/x".to_string(),
            "path:/srv/repos%2f..%2fx".to_string(),
            "path:/srv/repos/%2e/x".to_string(),
            "path:/srv/repos/./x".to_string(),
            "path:/srv//repos".to_string(),
            "path:/x?dir=%2e%2e".to_string(),
            "path:/x?dir=a%2f..%2f..".to_string(),
        ] {
            assert!(FlakeRef::parse(&bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn escapes_that_are_malformed_or_decode_outside_the_grammar_are_refused() {
        for bad in [
            "path:/x%zz",
            "path:/x%2",
            "path:/x%",
            "path:/x%00",
            "path:/x%20y",
            "path:/x%25",
            "path:/x%3fnarHash=y",
            "path:/x%23attr",
            "path:/x?ref=%2d%2dx%20y",
        ] {
            assert!(FlakeRef::parse(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn a_reference_is_given_to_nix_in_its_decoded_normal_form() {
        let f = FlakeRef::parse(&format!("path:/src/%68ello/?dir=s%75b&rev={REV}")).unwrap();
        assert_eq!(f.location(), "path:/src/hello");
        assert_eq!(f.as_str(), format!("path:/src/hello?dir=sub&rev={REV}"));
        assert_eq!(
            f.local_dir(),
            Some(std::path::PathBuf::from("/src/hello/sub"))
        );
        let list = AllowList::parse("path:/src/hello").unwrap();
        assert!(list.allows(&f));
        assert!(!list.allows(&FlakeRef::parse("path:/src/hell%6f2").unwrap()));
    }

    #[test]
    fn schemes_outside_the_known_set_and_local_refs_with_a_host_are_refused() {
        for bad in [
            "flake:nixpkgs",
            "file:///x",
            "tarball+https://example.org/x.tar.gz",
            "git+file://evil.example/x",
            "git+file:relative/x",
            "path:relative",
        ] {
            assert!(FlakeRef::parse(bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(
            FlakeRef::parse("git+file:///srv/x").unwrap().local_dir(),
            Some(std::path::PathBuf::from("/srv/x"))
        );
        assert_eq!(FlakeRef::parse("github:o/r").unwrap().local_dir(), None);
    }

    #[test]
    fn a_symbolic_link_out_of_an_allowed_directory_is_refused_once_resolved() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(allowed.join("inside")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("link")).unwrap();
        let list = AllowList::parse(&format!("git+file://{}", allowed.display())).unwrap();
        let inside = FlakeRef::parse(&format!("git+file://{}/inside", allowed.display())).unwrap();
        let link = FlakeRef::parse(&format!("git+file://{}/link", allowed.display())).unwrap();
        assert!(list.allows(&link), "lexically inside");
        assert!(!list.allows_resolved(&link).unwrap());
        assert!(list.allows_resolved(&inside).unwrap());
        let missing =
            FlakeRef::parse(&format!("git+file://{}/missing", allowed.display())).unwrap();
        assert!(list.allows_resolved(&missing).is_err());
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
