//! Reads an entity type's WIT package (`wit/entities/<kind>/`) and writes the Rust types its
//! rules use, so the WIT is the one place an entity's language is written down.
//!
//! The mapping is the JSON encoding of ADR 0012, expressed as serde attributes:
//!
//! - a `variant` becomes an externally tagged enum whose cases are named in upper camel case
//!   (`attach-text` is `AttachText`); a case carrying a `record` of the same interface becomes
//!   a struct variant with the record's fields, so a payload is the record's JSON object;
//! - a `record` field is named in snake case (`content-cid` is `content_cid`);
//! - an `option` that is `none` is left out when written and read from a missing key or `null`;
//! - an `enum` case is its upper camel case name as a JSON string;
//! - integers and floats are JSON numbers, `list` an array, `tuple` an array of its elements.
//!
//! Every type, field and case must carry a `///` comment: the generated items carry them, and
//! an undocumented item is an error, not a silently undocumented type. Types that have no
//! JSON meaning here (resources, handles, `result`, flags, streams) are refused by name.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;
use wit_parser::{Docs, InterfaceId, PackageId, Resolve, Type, TypeDefKind, TypeId, TypeOwner};

/// Why an entity's WIT could not be turned into Rust.
#[derive(Debug, Error)]
pub enum WitgenError {
    /// The WIT did not parse or resolve.
    #[error("{0}")]
    Wit(String),
    /// The package has no interface of that name.
    #[error("package {package} has no interface `{interface}`")]
    NoInterface {
        /// The package.
        package: String,
        /// The interface asked for.
        interface: String,
    },
    /// An item has no `///` comment.
    #[error("{item} has no `///` doc comment; every item of an entity's language is documented")]
    Undocumented {
        /// Which item.
        item: String,
    },
    /// A type that has no meaning in an entity's JSON payloads.
    #[error("{item}: {kind} is not supported in an entity's language")]
    Unsupported {
        /// Which item.
        item: String,
        /// What kind of type it is.
        kind: String,
    },
}

/// An entity's WIT package, resolved against `cim:ecs`.
pub struct Language {
    resolve: Resolve,
    package: PackageId,
    files: Vec<PathBuf>,
}

impl Language {
    /// Loads the package in `dir`, after the `cim:ecs` package in `ecs_dir` that it may `use`.
    pub fn load(ecs_dir: &Path, dir: &Path) -> Result<Self, WitgenError> {
        let mut resolve = Resolve::default();
        // wit-parser reports `anyhow` errors; their whole chain is kept as text.
        let wit = |e: anyhow::Error| WitgenError::Wit(format!("{e:#}"));
        let (_, ecs_sources) = resolve.push_dir(ecs_dir).map_err(wit)?;
        let (package, sources) = resolve.push_dir(dir).map_err(wit)?;
        let files = ecs_sources
            .paths()
            .chain(sources.paths())
            .map(Path::to_path_buf)
            .collect();
        Ok(Self {
            resolve,
            package,
            files,
        })
    }

    /// Every file read, for a build script's `rerun-if-changed`.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The package's name, `cim:document@0.1.0`.
    pub fn package_name(&self) -> String {
        self.resolve.packages[self.package].name.to_string()
    }

    fn interface(&self, name: &str) -> Result<InterfaceId, WitgenError> {
        self.resolve.packages[self.package]
            .interfaces
            .get(name)
            .copied()
            .ok_or_else(|| WitgenError::NoInterface {
                package: self.package_name(),
                interface: name.to_owned(),
            })
    }

    /// Rust source declaring every type of `interface`. Records and variants named in
    /// `strict` refuse JSON with fields they do not declare (commands: a misspelt field is an
    /// error, not a default).
    pub fn rust(&self, interface: &str, strict: &[&str]) -> Result<String, WitgenError> {
        let id = self.interface(interface)?;
        let gen = Gen {
            resolve: &self.resolve,
            interface: id,
            strict: strict.iter().copied().collect(),
        };
        gen.all()
    }
}

struct Gen<'a> {
    resolve: &'a Resolve,
    interface: InterfaceId,
    strict: HashSet<&'a str>,
}

impl Gen<'_> {
    fn all(&self) -> Result<String, WitgenError> {
        let iface = &self.resolve.interfaces[self.interface];
        let inlined = self.inlined();
        let mut out = String::new();
        for (name, &ty) in &iface.types {
            let def = &self.resolve.types[ty];
            let item = format!("type `{name}`");
            let type_docs = docs(&def.docs, &item, "")?;
            match &def.kind {
                TypeDefKind::Record(record) => {
                    if inlined.contains(&ty) {
                        continue;
                    }
                    out.push_str(&type_docs);
                    out.push_str(&self.derives(ty));
                    if self.strict.contains(name.as_str()) {
                        out.push_str("#[serde(deny_unknown_fields)]\n");
                    }
                    let _ = writeln!(out, "pub struct {} {{", camel(name));
                    out.push_str(&self.fields(name, &record.fields, "    ", true)?);
                    out.push_str("}\n\n");
                }
                TypeDefKind::Variant(variant) => {
                    out.push_str(&type_docs);
                    out.push_str(&self.derives(ty));
                    if self.strict.contains(name.as_str()) {
                        out.push_str("#[serde(deny_unknown_fields)]\n");
                    }
                    let _ = writeln!(out, "pub enum {} {{", camel(name));
                    for case in &variant.cases {
                        let item = format!("case `{name}.{}`", case.name);
                        let case_docs = docs(&case.docs, &item, "    ")?;
                        match case.ty {
                            None => {
                                out.push_str(&case_docs);
                                let _ = writeln!(out, "    {},", camel(&case.name));
                            }
                            Some(Type::Id(payload)) if inlined.contains(&payload) => {
                                let record = &self.resolve.types[payload];
                                let TypeDefKind::Record(fields) = &record.kind else {
                                    unreachable!("only records are inlined")
                                };
                                let record_name = record.name.as_deref().unwrap_or_default();
                                out.push_str(&docs_or(&record.docs, &case.docs, &item, "    ")?);
                                let _ = writeln!(out, "    {} {{", camel(&case.name));
                                out.push_str(&self.fields(
                                    record_name,
                                    &fields.fields,
                                    "        ",
                                    false,
                                )?);
                                out.push_str("    },\n");
                            }
                            Some(payload) => {
                                out.push_str(&case_docs);
                                let _ = writeln!(
                                    out,
                                    "    {}({}),",
                                    camel(&case.name),
                                    self.rust_type(&payload, &item)?
                                );
                            }
                        }
                    }
                    out.push_str("}\n\n");
                }
                TypeDefKind::Enum(cases) => {
                    out.push_str(&type_docs);
                    out.push_str(
                        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, \
                         serde::Serialize, serde::Deserialize)]\n",
                    );
                    let _ = writeln!(out, "pub enum {} {{", camel(name));
                    for case in &cases.cases {
                        let item = format!("case `{name}.{}`", case.name);
                        out.push_str(&docs(&case.docs, &item, "    ")?);
                        let _ = writeln!(out, "    {},", camel(&case.name));
                    }
                    out.push_str("}\n\n");
                }
                TypeDefKind::Type(aliased) => {
                    out.push_str(&type_docs);
                    let _ = writeln!(
                        out,
                        "pub type {} = {};\n",
                        camel(name),
                        self.rust_type(aliased, &item)?
                    );
                }
                other => {
                    return Err(WitgenError::Unsupported {
                        item,
                        kind: other.as_str().to_owned(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Records of this interface used only as the payload of variant cases: they become
    /// struct variants instead of types of their own.
    fn inlined(&self) -> HashSet<TypeId> {
        let iface = &self.resolve.interfaces[self.interface];
        let mut payloads = HashSet::new();
        let mut elsewhere = HashSet::new();
        for &ty in iface.types.values() {
            match &self.resolve.types[ty].kind {
                TypeDefKind::Variant(v) => {
                    for case in &v.cases {
                        if let Some(Type::Id(p)) = case.ty {
                            if payloads.contains(&p) {
                                elsewhere.insert(p);
                            }
                            payloads.insert(p);
                        }
                    }
                }
                TypeDefKind::Record(r) => {
                    for f in &r.fields {
                        self.mentioned(&f.ty, &mut elsewhere);
                    }
                }
                TypeDefKind::Type(t) | TypeDefKind::Option(t) | TypeDefKind::List(t) => {
                    self.mentioned(t, &mut elsewhere)
                }
                _ => {}
            }
        }
        payloads
            .into_iter()
            .filter(|p| {
                !elsewhere.contains(p)
                    && matches!(self.resolve.types[*p].kind, TypeDefKind::Record(_))
                    && self.resolve.types[*p].owner == TypeOwner::Interface(self.interface)
            })
            .collect()
    }

    fn mentioned(&self, ty: &Type, into: &mut HashSet<TypeId>) {
        if let Type::Id(id) = ty {
            into.insert(*id);
            match &self.resolve.types[*id].kind {
                TypeDefKind::Option(t) | TypeDefKind::List(t) | TypeDefKind::Type(t)
                    if self.resolve.types[*id].name.is_none() =>
                {
                    self.mentioned(t, into)
                }
                TypeDefKind::Tuple(t) => t.types.iter().for_each(|t| self.mentioned(t, into)),
                _ => {}
            }
        }
    }

    fn derives(&self, ty: TypeId) -> String {
        let eq = if self.has_float(&Type::Id(ty)) {
            ""
        } else {
            "Eq, "
        };
        format!("#[derive(Debug, Clone, PartialEq, {eq}serde::Serialize, serde::Deserialize)]\n")
    }

    fn has_float(&self, ty: &Type) -> bool {
        match ty {
            Type::F32 | Type::F64 => true,
            Type::Id(id) => match &self.resolve.types[*id].kind {
                TypeDefKind::Record(r) => r.fields.iter().any(|f| self.has_float(&f.ty)),
                TypeDefKind::Variant(v) => v
                    .cases
                    .iter()
                    .any(|c| c.ty.as_ref().is_some_and(|t| self.has_float(t))),
                TypeDefKind::Tuple(t) => t.types.iter().any(|t| self.has_float(t)),
                TypeDefKind::Option(t) | TypeDefKind::List(t) | TypeDefKind::Type(t) => {
                    self.has_float(t)
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn fields(
        &self,
        owner: &str,
        fields: &[wit_parser::Field],
        indent: &str,
        public: bool,
    ) -> Result<String, WitgenError> {
        let mut out = String::new();
        for field in fields {
            let item = format!("field `{owner}.{}`", field.name);
            out.push_str(&docs(&field.docs, &item, indent)?);
            if self.is_option(&field.ty) {
                let _ = writeln!(
                    out,
                    "{indent}#[serde(default, skip_serializing_if = \"Option::is_none\")]"
                );
            }
            let _ = writeln!(
                out,
                "{indent}{}{}: {},",
                if public { "pub " } else { "" },
                snake(&field.name, &item)?,
                self.rust_type(&field.ty, &item)?
            );
        }
        Ok(out)
    }

    fn is_option(&self, ty: &Type) -> bool {
        matches!(ty, Type::Id(id) if matches!(self.resolve.types[*id].kind, TypeDefKind::Option(_)))
    }

    fn rust_type(&self, ty: &Type, item: &str) -> Result<String, WitgenError> {
        Ok(match ty {
            Type::Bool => "bool".into(),
            Type::U8 => "u8".into(),
            Type::U16 => "u16".into(),
            Type::U32 => "u32".into(),
            Type::U64 => "u64".into(),
            Type::S8 => "i8".into(),
            Type::S16 => "i16".into(),
            Type::S32 => "i32".into(),
            Type::S64 => "i64".into(),
            Type::F32 => "f32".into(),
            Type::F64 => "f64".into(),
            Type::Char => "char".into(),
            Type::String => "String".into(),
            Type::ErrorContext => {
                return Err(WitgenError::Unsupported {
                    item: item.to_owned(),
                    kind: "error-context".into(),
                })
            }
            Type::Id(id) => {
                let def = &self.resolve.types[*id];
                if let Some(name) = &def.name {
                    if def.owner != TypeOwner::Interface(self.interface) {
                        return Err(WitgenError::Unsupported {
                            item: item.to_owned(),
                            kind: format!("`{name}` from another interface"),
                        });
                    }
                    return Ok(camel(name));
                }
                match &def.kind {
                    TypeDefKind::Option(t) => format!("Option<{}>", self.rust_type(t, item)?),
                    TypeDefKind::List(t) => format!("Vec<{}>", self.rust_type(t, item)?),
                    TypeDefKind::Tuple(t) => {
                        let parts = t
                            .types
                            .iter()
                            .map(|t| self.rust_type(t, item))
                            .collect::<Result<Vec<_>, _>>()?;
                        format!("({},)", parts.join(", "))
                    }
                    other => {
                        return Err(WitgenError::Unsupported {
                            item: item.to_owned(),
                            kind: other.as_str().to_owned(),
                        })
                    }
                }
            }
        })
    }
}

/// `///` lines for `docs`, or [`WitgenError::Undocumented`].
fn docs(docs: &Docs, item: &str, indent: &str) -> Result<String, WitgenError> {
    let text = docs
        .contents
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| WitgenError::Undocumented {
            item: item.to_owned(),
        })?;
    let mut out = String::new();
    for line in text.trim_end().lines() {
        let line = line.strip_prefix(' ').unwrap_or(line);
        if line.is_empty() {
            let _ = writeln!(out, "{indent}///");
        } else {
            let _ = writeln!(out, "{indent}/// {line}");
        }
    }
    Ok(out)
}

/// The first documented of `first` and `second` (a record's own comment, else its case's).
fn docs_or(first: &Docs, second: &Docs, item: &str, indent: &str) -> Result<String, WitgenError> {
    docs(first, item, indent).or_else(|_| docs(second, item, indent))
}

/// `attach-text` → `AttachText`.
pub fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `content-cid` → `content_cid`; a Rust keyword becomes a raw identifier (`r#type`), which
/// serde still names `type`.
fn snake(name: &str, item: &str) -> Result<String, WitgenError> {
    let snake = name.replace('-', "_");
    const RAW: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
        "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe", "use",
        "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override",
        "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    if ["self", "super", "crate"].contains(&snake.as_str()) {
        return Err(WitgenError::Unsupported {
            item: item.to_owned(),
            kind: format!("the name `{name}`"),
        });
    }
    Ok(if RAW.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else {
        snake
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn language(wit: &str) -> Result<String, WitgenError> {
        let dir =
            std::env::temp_dir().join(format!("cim-witgen-{}-{}", std::process::id(), wit.len()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.wit"), wit).unwrap();
        let ecs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let out = Language::load(&ecs, &dir).and_then(|l| l.rust("types", &["cmd"]));
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn a_variant_of_records_becomes_an_enum_of_struct_variants_with_snake_case_fields() {
        let rust = language(
            "package t:t@0.1.0;\n/// I.\ninterface types {\n/// Opens.\nrecord open-it { /// The title.\n main-title: string, /// A note.\n note: option<string> }\n/// Commands.\nvariant cmd { /// See.\n open-it(open-it) }\n}\n",
        )
        .unwrap();
        assert!(rust.contains("pub enum Cmd {"), "{rust}");
        assert!(rust.contains("    OpenIt {"), "{rust}");
        assert!(rust.contains("main_title: String,"), "{rust}");
        assert!(rust.contains("note: Option<String>,"), "{rust}");
        assert!(rust.contains("skip_serializing_if"), "{rust}");
        assert!(rust.contains("#[serde(deny_unknown_fields)]"), "{rust}");
        assert!(!rust.contains("pub struct OpenIt"), "inlined: {rust}");
    }

    #[test]
    fn an_undocumented_field_is_an_error_naming_it() {
        let err = language(
            "package t:t@0.1.0;\n/// I.\ninterface types {\n/// R.\nrecord r { title: string }\n}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("field `r.title`"), "{err}");
    }

    #[test]
    fn a_result_in_a_payload_is_refused_by_name() {
        let err = language(
            "package t:t@0.1.0;\n/// I.\ninterface types {\n/// R.\nrecord r { /// F.\n f: result<string> }\n}\n",
        )
        .unwrap_err();
        assert!(matches!(err, WitgenError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("r.f"), "{err}");
    }

    #[test]
    fn a_float_keeps_a_type_from_deriving_eq_and_an_enum_is_copy() {
        let rust = language(
            "package t:t@0.1.0;\n/// I.\ninterface types {\n/// R.\nrecord r { /// F.\n f: f64 }\n/// E.\nenum stage { /// A.\n in-review }\n}\n",
        )
        .unwrap();
        assert!(
            rust.contains("#[derive(Debug, Clone, PartialEq, serde::Serialize"),
            "{rust}"
        );
        assert!(rust.contains("Copy"), "{rust}");
        assert!(rust.contains("    InReview,"), "{rust}");
    }
}
