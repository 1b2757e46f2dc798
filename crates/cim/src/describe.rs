//! What an entity type speaks, read from the WIT its component embeds (`cim describe`, and the
//! typed flags of `cim call`): the deployed `.wasm` is the source, so the description is of
//! what actually runs, not of a copy of the WIT that may have moved on.
//!
//! An entity component exports `cim:<kind>/commands` (one function per command, ADR 0012); the
//! commands are its functions, each carrying a record of `cim:<kind>/types`, and the events are
//! the cases of the variant `<kind>-event` of that interface.

use std::fmt;
use std::path::Path;

use thiserror::Error;
use wit_parser::{Docs, InterfaceId, Resolve, Type, TypeDefKind, TypeId, WorldItem, WorldKey};

/// Why a component's language could not be read.
#[derive(Debug, Error)]
pub enum DescribeError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a component with embedded WIT.
    #[error("{0} is not a Wasm component whose WIT can be read: {1}")]
    NotAComponent(String, String),
    /// The component exports no typed interface for the kind.
    #[error(
        "the `{kind}` component exports no `cim:{kind}/commands` interface (it speaks only \
         `cim:ecs/entity`); its commands cannot be described"
    )]
    NoCommands {
        /// The entity kind.
        kind: String,
    },
    /// The typed interface does not have the shape of ADR 0012.
    #[error("`cim:{kind}/commands.{function}`: {why}")]
    Shape {
        /// The entity kind.
        kind: String,
        /// The function.
        function: String,
        /// What is wrong.
        why: String,
    },
}

/// An entity type's language: its commands and events with their fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Language {
    /// The entity kind (`document`).
    pub kind: String,
    /// The WIT package, `cim:document@0.1.0`.
    pub package: String,
    /// The `types` interface's documentation.
    pub docs: String,
    /// The commands, in WIT order.
    pub commands: Vec<Message>,
    /// The events, in WIT order (empty if the component does not declare them).
    pub events: Vec<Message>,
}

/// One command or event.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its WIT name (`attach-text`).
    pub name: String,
    /// Its documentation.
    pub docs: String,
    /// Its fields, in WIT order.
    pub fields: Vec<Field>,
}

impl Message {
    /// The name it travels under (`AttachText`), ADR 0012.
    pub fn wire_name(&self) -> String {
        upper_camel(&self.name)
    }
}

/// One field of a command or event.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its WIT name (`content-cid`).
    pub name: String,
    /// Its type.
    pub ty: ValueType,
    /// Its documentation.
    pub docs: String,
}

impl Field {
    /// The JSON key it travels under (`content_cid`), ADR 0012.
    pub fn wire_name(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// The type of a field, as far as a command line can give it.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    /// `bool`.
    Bool,
    /// An integer type (`u64`, `s32`, …).
    Integer {
        /// Whether negative values are allowed.
        signed: bool,
        /// Its width in bits.
        bits: u8,
    },
    /// `f32` or `f64`.
    Float {
        /// Its width in bits.
        bits: u8,
    },
    /// `char`.
    Char,
    /// `string`.
    String,
    /// `option<T>`: the field may be left out.
    Option(Box<ValueType>),
    /// `list<T>`: the field may be given any number of times.
    List(Box<ValueType>),
    /// A WIT `enum`: one of its cases.
    Enum {
        /// The enum's WIT name.
        name: String,
        /// Its cases' WIT names.
        cases: Vec<String>,
    },
    /// Anything else (a record, a tuple, a variant): only `--json` can give it.
    Other(String),
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Bool => f.write_str("bool"),
            ValueType::Integer { signed, bits } => {
                write!(f, "{}{bits}", if *signed { "s" } else { "u" })
            }
            ValueType::Float { bits } => write!(f, "f{bits}"),
            ValueType::Char => f.write_str("char"),
            ValueType::String => f.write_str("string"),
            ValueType::Option(t) => write!(f, "option<{t}>"),
            ValueType::List(t) => write!(f, "list<{t}>"),
            ValueType::Enum { name, cases } => write!(f, "{name} ({})", cases.join(" | ")),
            ValueType::Other(name) => f.write_str(name),
        }
    }
}

/// Reads the language of entity `kind` from the component file at `path`.
pub fn language_of_file(path: &Path, kind: &str) -> Result<Language, DescribeError> {
    let bytes = std::fs::read(path).map_err(|source| DescribeError::Read {
        path: path.display().to_string(),
        source,
    })?;
    language(&bytes, kind, &path.display().to_string())
}

/// Reads the language of entity `kind` from a component's bytes (`what` names them in errors):
/// the component must export `cim:<kind>/commands`, and the language is the `types.wit` it
/// carries (section [`cim_witgen_section`]), with the commands being the cases of its variant
/// `<kind>-command` and the events those of `<kind>-event`.
pub fn language(wasm: &[u8], kind: &str, what: &str) -> Result<Language, DescribeError> {
    let not = |why: String| DescribeError::NotAComponent(what.to_owned(), why);
    let decoded = wit_parser::decoding::decode(wasm).map_err(|e| not(format!("{e:#}")))?;
    let wit_parser::decoding::DecodedWasm::Component(resolve, world) = &decoded else {
        return Err(not("it is a WIT package, not a component".into()));
    };
    let commands = resolve.worlds[*world]
        .exports
        .iter()
        .find_map(|(key, item)| match (key, item) {
            (WorldKey::Interface(id), WorldItem::Interface { .. })
                if is_commands_of(resolve, *id, kind) =>
            {
                Some(*id)
            }
            _ => None,
        })
        .ok_or_else(|| DescribeError::NoCommands {
            kind: kind.to_owned(),
        })?;
    let functions: Vec<String> = resolve.interfaces[commands]
        .functions
        .keys()
        .cloned()
        .collect();
    let source = embedded_types(wasm)
        .ok_or_else(|| not(format!("it carries no `{}` section", cim_witgen_section())))?;
    let mut types = Resolve::default();
    let package = types
        .push_str(format!("{kind}/types.wit"), &source)
        .map_err(|e| not(format!("its embedded types.wit: {e:#}")))?;
    let interface = types.packages[package]
        .interfaces
        .get("types")
        .copied()
        .ok_or_else(|| not("its embedded types.wit has no interface `types`".into()))?;
    let language = describe(&types, interface, kind)?;
    // The typed functions and the commands are one list (ADR 0012).
    let cases: Vec<String> = language.commands.iter().map(|c| c.name.clone()).collect();
    if let Some(missing) = functions.iter().find(|f| !cases.contains(f)) {
        return Err(DescribeError::Shape {
            kind: kind.to_owned(),
            function: missing.clone(),
            why: format!("not a case of `{kind}-command`"),
        });
    }
    Ok(language)
}

/// The name of the custom section an entity component carries its `types.wit` in (written by
/// `cim_witgen::types_section`).
pub fn cim_witgen_section() -> &'static str {
    "cim-entity-types-wit"
}

/// The `types.wit` a component carries, from the custom section of its core module.
fn embedded_types(wasm: &[u8]) -> Option<String> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .find_map(|payload| match payload {
            Ok(wasmparser::Payload::CustomSection(section))
                if section.name() == cim_witgen_section() =>
            {
                String::from_utf8(section.data().to_vec()).ok()
            }
            _ => None,
        })
}

fn is_commands_of(resolve: &Resolve, id: InterfaceId, kind: &str) -> bool {
    let iface = &resolve.interfaces[id];
    iface.name.as_deref() == Some("commands")
        && iface.package.is_some_and(|p| {
            let name = &resolve.packages[p].name;
            name.namespace == "cim" && name.name == kind
        })
}

fn messages(resolve: &Resolve, types: InterfaceId, variant: &str) -> Vec<Message> {
    let Some(TypeDefKind::Variant(variant)) = resolve.interfaces[types]
        .types
        .get(variant)
        .map(|&t| &resolve.types[t].kind)
    else {
        return Vec::new();
    };
    variant
        .cases
        .iter()
        .map(|case| {
            let record = case.ty.and_then(|t| match t {
                Type::Id(t) => Some(dealias(resolve, t)),
                _ => None,
            });
            let (docs, fields) = match record.map(|t| (t, &resolve.types[t].kind)) {
                Some((t, TypeDefKind::Record(r))) => (
                    first_docs(&[&resolve.types[t].docs, &case.docs]),
                    r.fields
                        .iter()
                        .map(|f| Field {
                            name: f.name.clone(),
                            ty: value_type(resolve, &f.ty),
                            docs: text(&f.docs),
                        })
                        .collect(),
                ),
                _ => (text(&case.docs), Vec::new()),
            };
            Message {
                name: case.name.clone(),
                docs,
                fields,
            }
        })
        .collect()
}

fn describe(resolve: &Resolve, types: InterfaceId, kind: &str) -> Result<Language, DescribeError> {
    let iface = &resolve.interfaces[types];
    Ok(Language {
        kind: kind.to_owned(),
        package: iface
            .package
            .map(|p| resolve.packages[p].name.to_string())
            .unwrap_or_default(),
        docs: text(&iface.docs),
        commands: messages(resolve, types, &format!("{kind}-command")),
        events: messages(resolve, types, &format!("{kind}-event")),
    })
}

fn dealias(resolve: &Resolve, mut ty: TypeId) -> TypeId {
    while let TypeDefKind::Type(Type::Id(next)) = resolve.types[ty].kind {
        ty = next;
    }
    ty
}

fn value_type(resolve: &Resolve, ty: &Type) -> ValueType {
    match ty {
        Type::Bool => ValueType::Bool,
        Type::U8 => ValueType::Integer {
            signed: false,
            bits: 8,
        },
        Type::U16 => ValueType::Integer {
            signed: false,
            bits: 16,
        },
        Type::U32 => ValueType::Integer {
            signed: false,
            bits: 32,
        },
        Type::U64 => ValueType::Integer {
            signed: false,
            bits: 64,
        },
        Type::S8 => ValueType::Integer {
            signed: true,
            bits: 8,
        },
        Type::S16 => ValueType::Integer {
            signed: true,
            bits: 16,
        },
        Type::S32 => ValueType::Integer {
            signed: true,
            bits: 32,
        },
        Type::S64 => ValueType::Integer {
            signed: true,
            bits: 64,
        },
        Type::F32 => ValueType::Float { bits: 32 },
        Type::F64 => ValueType::Float { bits: 64 },
        Type::Char => ValueType::Char,
        Type::String => ValueType::String,
        Type::ErrorContext => ValueType::Other("error-context".into()),
        Type::Id(id) => {
            let def = &resolve.types[dealias(resolve, *id)];
            match &def.kind {
                TypeDefKind::Option(t) => ValueType::Option(Box::new(value_type(resolve, t))),
                TypeDefKind::List(t) => ValueType::List(Box::new(value_type(resolve, t))),
                TypeDefKind::Enum(e) => ValueType::Enum {
                    name: def.name.clone().unwrap_or_default(),
                    cases: e.cases.iter().map(|c| c.name.clone()).collect(),
                },
                TypeDefKind::Type(t) => value_type(resolve, t),
                other => ValueType::Other(
                    def.name
                        .clone()
                        .unwrap_or_else(|| other.as_str().to_owned()),
                ),
            }
        }
    }
}

fn text(docs: &Docs) -> String {
    docs.contents
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn first_docs(docs: &[&Docs]) -> String {
    docs.iter()
        .map(|d| text(d))
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}

/// `attach-text` → `AttachText`.
pub fn upper_camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The human description `cim describe` prints.
pub fn render(language: &Language) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", language.kind, language.package);
    if !language.docs.is_empty() {
        let _ = writeln!(out, "{}", indent(&language.docs, "  "));
    }
    for (title, messages) in [
        ("commands", &language.commands),
        ("events", &language.events),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for m in messages.iter() {
            let _ = writeln!(out, "\n  {} ({})", m.name, m.wire_name());
            if !m.docs.is_empty() {
                let _ = writeln!(out, "{}", indent(&m.docs, "    "));
            }
            for f in &m.fields {
                let _ = writeln!(out, "    --{}: {}", f.name, f.ty);
                if !f.docs.is_empty() {
                    let _ = writeln!(out, "{}", indent(&f.docs, "        "));
                }
            }
        }
    }
    out
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(kind: &str) -> Language {
        let dir = cim_testkit::build_components().expect("components build");
        language_of_file(&dir.join(format!("{kind}.wasm")), kind).expect("a language")
    }

    #[test]
    fn the_document_component_describes_every_command_and_event_with_fields_and_docs() {
        let doc = built("document");
        assert_eq!(doc.package, "cim:document@0.1.0");
        let names: Vec<&str> = doc.commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "create",
                "attach-text",
                "classify",
                "record-classification-failure",
                "tag",
                "archive"
            ]
        );
        let classify = &doc.commands[2];
        assert_eq!(classify.wire_name(), "Classify");
        assert!(
            classify.docs.contains("Classifies the document"),
            "{classify:?}"
        );
        let confidence = classify
            .fields
            .iter()
            .find(|f| f.name == "confidence")
            .unwrap();
        assert_eq!(confidence.ty, ValueType::Float { bits: 64 });
        assert!(confidence.docs.contains("[0, 1]"), "{confidence:?}");
        let model = classify.fields.iter().find(|f| f.name == "model").unwrap();
        assert_eq!(model.ty, ValueType::Option(Box::new(ValueType::String)));
        assert_eq!(doc.events.len(), 6);
        assert_eq!(doc.events[0].wire_name(), "DocumentCreated");
        assert!(render(&doc).contains("--content-cid: string"));
    }

    #[test]
    fn the_package_component_describes_its_eleven_commands_and_events_and_integer_fields() {
        let package = built("package");
        assert_eq!(package.package, "cim:package@0.1.0");
        assert_eq!(package.commands.len(), 11);
        assert_eq!(package.events.len(), 11);
        let open = package
            .commands
            .iter()
            .find(|c| c.name == "open-pull-request")
            .unwrap();
        assert_eq!(
            open.fields[0].ty,
            ValueType::Integer {
                signed: false,
                bits: 64
            }
        );
    }

    #[test]
    fn a_component_without_a_typed_interface_is_a_typed_error_naming_it() {
        let dir = cim_testkit::build_components().expect("components build");
        let err = language_of_file(&dir.join("audit.wasm"), "audit").unwrap_err();
        assert!(matches!(err, DescribeError::NoCommands { .. }), "{err}");
        let err = language(b"not wasm", "document", "junk.wasm").unwrap_err();
        assert!(matches!(err, DescribeError::NotAComponent(..)), "{err}");
    }
}
