//! The arguments of `cim call <kind> <command> …`, read against the entity's language (its WIT,
//! [`crate::describe`]): `--<field> <value>` for each field of the command's record, checked
//! before anything is sent, or `--json` for scripts.
//!
//! Values follow the field's WIT type: `string` as given, integers within their type's range,
//! floats finite, `bool` `true`/`false`, an `enum` one of its case names, `option<T>` may be
//! left out, `list<T>` is given once per element (`--categories invoice --categories
//! contract`). The command is named in WIT (`attach-text`); its wire name (`AttachText`) is
//! accepted too.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::describe::{Language, Message, ValueType};

/// Why `cim call`'s arguments were refused; nothing was sent.
#[derive(Debug, Error, PartialEq)]
pub enum CallArgError {
    /// No command was named.
    #[error("name a command of `{kind}` (`cim call {kind} --help` lists them)")]
    NoCommand {
        /// The entity kind.
        kind: String,
    },
    /// The command is not in the entity's language.
    #[error("`{kind}` has no command `{command}`; its commands: {known}")]
    UnknownCommand {
        /// The entity kind.
        kind: String,
        /// What was given.
        command: String,
        /// The commands it has.
        known: String,
    },
    /// A flag names no field of the command.
    #[error("`{command}` has no field `--{field}`; its fields: {known}")]
    UnknownField {
        /// The command.
        command: String,
        /// What was given.
        field: String,
        /// The fields it has.
        known: String,
    },
    /// A required field was not given.
    #[error("`{command}` needs `--{field}` ({ty})")]
    MissingField {
        /// The command.
        command: String,
        /// The field.
        field: String,
        /// Its WIT type.
        ty: String,
    },
    /// A value does not fit the field's type.
    #[error("`--{field} {value}`: expected {ty}")]
    WrongType {
        /// The field.
        field: String,
        /// What was given.
        value: String,
        /// The expected WIT type.
        ty: String,
    },
    /// A field that takes one value was given twice.
    #[error("`--{field}` given twice; it takes one value ({ty})")]
    Twice {
        /// The field.
        field: String,
        /// Its WIT type.
        ty: String,
    },
    /// A flag without its value.
    #[error("`--{flag}` needs a value (write `--{flag}=<value>` for one that starts with `--`)")]
    NoValue {
        /// The flag.
        flag: String,
    },
    /// A field whose type has no command-line form.
    #[error("`--{field}` is a {ty}; give the command with --json")]
    NeedsJson {
        /// The field.
        field: String,
        /// Its WIT type.
        ty: String,
    },
    /// `--json` and field flags together.
    #[error("give the command's fields as flags or as --json, not both")]
    JsonAndFields,
    /// The kind, the id or the command id is not a subject token.
    #[error("{0}")]
    Token(String),
    /// `--id` was not given.
    #[error("give the entity's id with --id")]
    NoId,
    /// An argument that is neither a flag nor the command.
    #[error("unexpected argument `{0}`")]
    Unexpected(String),
    /// A value of one of `cim call`'s own flags is not a whole number.
    #[error("`--{flag} {value}`: expected a whole number")]
    NotANumber {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
    },
    /// Field flags need the entity's language, which could not be read.
    #[error("typed fields need the `{kind}` component's WIT: {why}")]
    NoLanguage {
        /// The entity kind.
        kind: String,
        /// Why it could not be read.
        why: String,
    },
}

/// A parsed `cim call`.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `--help`: print this and send nothing.
    Help(String),
    /// A command to send.
    Call(TypedCall),
}

/// A command ready to send, its payload built (or given) and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedCall {
    /// The command's wire name (`AttachText`).
    pub name: String,
    /// The entity id.
    pub id: String,
    /// The payload argument: JSON built from the flags, or `--json` as given (JSON, `@file`
    /// or `-`).
    pub json: String,
    /// `--expected-version`.
    pub expected_version: Option<u64>,
    /// `--command-id`.
    pub command_id: Option<String>,
    /// `--deadline-ms`.
    pub deadline_ms: u64,
}

/// `cim call`'s own flags, which no field may shadow.
const OWN: &[(&str, &str)] = &[
    ("id", "the entity's id (required)"),
    (
        "json",
        "the payload as JSON, `@<file>` or `-` (stdin), instead of field flags",
    ),
    (
        "expected-version",
        "only apply if the entity is at this version",
    ),
    (
        "command-id",
        "the command's id (default: a fresh ULID); a resend with the same id applies once",
    ),
    (
        "deadline-ms",
        "wait this long for an answer before sending again (default 2000)",
    ),
];

/// Reads `cim call <kind> <args…>`. `language` is the entity's, or why it could not be read:
/// without it field flags are refused, and the command is sent as given (a kebab-case name in
/// upper camel case) with `--json`, or with `{}` when no payload is given; the component judges.
pub fn parse(
    kind: &str,
    language: Result<&Language, String>,
    args: &[String],
) -> Result<Parsed, CallArgError> {
    let mut command: Option<&str> = None;
    let mut own: Map<String, Value> = Map::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut help = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            help = true;
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            if command.is_none() {
                command = Some(arg);
                continue;
            }
            return Err(CallArgError::Unexpected(arg.clone()));
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (flag, None),
        };
        let value = match inline {
            Some(v) => v,
            // A separate value may not look like a flag: `--model --prompt-cid x` is a
            // forgotten value, not the model `--prompt-cid` (write `--model=--x` for that).
            None => match it.next() {
                Some(v) if !v.starts_with("--") => v.clone(),
                _ => {
                    return Err(CallArgError::NoValue {
                        flag: flag.to_owned(),
                    })
                }
            },
        };
        if OWN.iter().any(|(f, _)| *f == flag) {
            if own.insert(flag.to_owned(), Value::String(value)).is_some() {
                return Err(CallArgError::Twice {
                    field: flag.to_owned(),
                    ty: "one value".into(),
                });
            }
        } else {
            fields.push((flag.to_owned(), value));
        }
    }
    let language_or = |why: &String| CallArgError::NoLanguage {
        kind: kind.to_owned(),
        why: why.clone(),
    };
    if help {
        return Ok(Parsed::Help(match (command, language) {
            (None, Ok(l)) => commands_help(l),
            (Some(c), Ok(l)) => command_help(l, find(l, kind, c)?),
            (_, Err(why)) => format!(
                "cim call {kind} <command> --id <id> --json <payload>\n\n\
                 The `{kind}` component's WIT could not be read ({why}), so its commands cannot \
                 be listed; `cim up` builds and deploys it.\n"
            ),
        }));
    }
    let command = command.ok_or_else(|| CallArgError::NoCommand {
        kind: kind.to_owned(),
    })?;
    let text = |k: &str| own.get(k).and_then(Value::as_str).map(str::to_owned);
    let number = |k: &str| -> Result<Option<u64>, CallArgError> {
        text(k)
            .map(|v| {
                v.parse().map_err(|_| CallArgError::NotANumber {
                    flag: k.to_owned(),
                    value: v.clone(),
                })
            })
            .transpose()
    };
    let id = text("id").ok_or(CallArgError::NoId)?;
    // Kind, id and command id are subject tokens: refused before anything else is judged.
    cim_domain::EntityRef::new(kind, &id).map_err(|e| CallArgError::Token(e.to_string()))?;
    if let Some(c) = text("command-id") {
        cim_domain::Token::parse("command id", &c)
            .map_err(|e| CallArgError::Token(e.to_string()))?;
    }
    let json = match (text("json"), &language) {
        // Without the WIT and without fields the payload is `{}`, sent as before: the
        // component (or its absence) answers.
        (None, Err(_)) if fields.is_empty() => Some("{}".to_owned()),
        (json, _) => json,
    };
    let (name, json) = match json {
        Some(json) => {
            if !fields.is_empty() {
                return Err(CallArgError::JsonAndFields);
            }
            let name = match &language {
                Ok(l) => find(l, kind, command)?.wire_name(),
                // Without the WIT the name is sent as given: the component judges it.
                Err(_) if command.contains('-') => crate::describe::upper_camel(command),
                Err(_) => command.to_owned(),
            };
            (name, json)
        }
        None => {
            let language = language.map_err(|why| language_or(&why))?;
            let message = find(language, kind, command)?;
            (message.wire_name(), payload(message, &fields)?)
        }
    };
    Ok(Parsed::Call(TypedCall {
        name,
        id,
        json,
        expected_version: number("expected-version")?,
        command_id: text("command-id"),
        deadline_ms: number("deadline-ms")?.unwrap_or(2000),
    }))
}

/// The command named `command`, by its WIT name or its wire name.
fn find<'a>(
    language: &'a Language,
    kind: &str,
    command: &str,
) -> Result<&'a Message, CallArgError> {
    language
        .commands
        .iter()
        .find(|m| m.name == command || m.wire_name() == command)
        .ok_or_else(|| CallArgError::UnknownCommand {
            kind: kind.to_owned(),
            command: command.to_owned(),
            known: language
                .commands
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The JSON payload of `message` from its field flags, in WIT order (ADR 0012).
fn payload(message: &Message, given: &[(String, String)]) -> Result<String, CallArgError> {
    if let Some(f) = message
        .fields
        .iter()
        .find(|f| OWN.iter().any(|(o, _)| *o == f.name))
    {
        return Err(CallArgError::NeedsJson {
            field: f.name.clone(),
            ty: format!("{} named like one of `cim call`'s own flags", f.ty),
        });
    }
    for (flag, _) in given {
        if !message.fields.iter().any(|f| &f.name == flag) {
            return Err(CallArgError::UnknownField {
                command: message.name.clone(),
                field: flag.clone(),
                known: message
                    .fields
                    .iter()
                    .map(|f| format!("--{}", f.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let mut out: Vec<(String, Value)> = Vec::new();
    for field in &message.fields {
        let values: Vec<&str> = given
            .iter()
            .filter(|(f, _)| *f == field.name)
            .map(|(_, v)| v.as_str())
            .collect();
        let ty = field.ty.to_string();
        let value = match &field.ty {
            ValueType::Option(inner) => match values.as_slice() {
                [] => None,
                [one] => Some(scalar(&field.name, inner, one)?),
                _ => {
                    return Err(CallArgError::Twice {
                        field: field.name.clone(),
                        ty,
                    })
                }
            },
            ValueType::List(inner) => Some(Value::Array(
                values
                    .iter()
                    .map(|v| scalar(&field.name, inner, v))
                    .collect::<Result<_, _>>()?,
            )),
            other => match values.as_slice() {
                [] => {
                    return Err(CallArgError::MissingField {
                        command: message.name.clone(),
                        field: field.name.clone(),
                        ty,
                    })
                }
                [one] => Some(scalar(&field.name, other, one)?),
                _ => {
                    return Err(CallArgError::Twice {
                        field: field.name.clone(),
                        ty,
                    })
                }
            },
        };
        if let Some(value) = value {
            out.push((field.wire_name(), value));
        }
    }
    // Written by hand to keep WIT order (a `serde_json::Map` sorts its keys).
    let members: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
        .collect();
    Ok(format!("{{{}}}", members.join(",")))
}

/// One value of a field, as JSON.
fn scalar(field: &str, ty: &ValueType, value: &str) -> Result<Value, CallArgError> {
    let wrong = || CallArgError::WrongType {
        field: field.to_owned(),
        value: value.to_owned(),
        ty: ty.to_string(),
    };
    Ok(match ty {
        ValueType::String => Value::String(value.to_owned()),
        ValueType::Char => {
            let mut chars = value.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Value::String(c.to_string()),
                _ => return Err(wrong()),
            }
        }
        ValueType::Bool => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong()),
        },
        ValueType::Integer { signed, bits } => {
            let n: i128 = value.parse().map_err(|_| wrong())?;
            let (min, max) = if *signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if n < min || n > max {
                return Err(wrong());
            }
            if *signed {
                Value::from(n as i64)
            } else {
                Value::from(n as u64)
            }
        }
        ValueType::Float { .. } => {
            let f: f64 = value.parse().map_err(|_| wrong())?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(wrong)?
        }
        ValueType::Enum { cases, .. } => {
            if !cases.iter().any(|c| c == value) {
                return Err(wrong());
            }
            Value::String(crate::describe::upper_camel(value))
        }
        ValueType::Option(_) | ValueType::List(_) | ValueType::Other(_) => {
            return Err(CallArgError::NeedsJson {
                field: field.to_owned(),
                ty: ty.to_string(),
            })
        }
    })
}

/// Where `cim up` put the component it deployed for `kind`.
pub fn deployed_component(ctx: &crate::Cli, kind: &str) -> std::path::PathBuf {
    ctx.state_dir()
        .join("artifacts")
        .join(format!("{kind}.wasm"))
}

/// `cim call <kind> <args…>`: reads the deployed component's language, then prints help or
/// sends the command and prints its events (or its typed error, exiting non-zero).
pub async fn run(ctx: &crate::Cli, kind: &str, args: &[String]) -> anyhow::Result<()> {
    if kind == "--help" || kind == "-h" {
        print!(
            "cim call <kind> <command> --id <id> [--<field> <value>]…\n\n\
             Sends a command to an entity over wRPC and prints the events it appended. The\n\
             command and its fields are read from the deployed component's WIT:\n\
             `cim call <kind> --help` lists the commands, `cim call <kind> <command> --help`\n\
             a command's fields; `cim describe <kind>` prints the whole language. `--json\n\
             <payload>` gives the fields as JSON instead (for scripts).\n"
        );
        return Ok(());
    }
    // A kind is a subject token before it is part of a file name.
    cim_domain::Token::parse("entity kind", kind)?;
    let language = crate::describe::language_of_file(&deployed_component(ctx, kind), kind)
        .map_err(|e| e.to_string());
    match parse(kind, language.as_ref().map_err(Clone::clone), args)? {
        Parsed::Help(text) => print!("{text}"),
        Parsed::Call(c) => {
            crate::call_and_print(
                ctx,
                &crate::CallArgs {
                    kind,
                    name: &c.name,
                    id: &c.id,
                    json: &c.json,
                    expected_version: c.expected_version,
                    command_id: c.command_id.as_deref(),
                    first_deadline: std::time::Duration::from_millis(c.deadline_ms),
                },
            )
            .await?
        }
    }
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// `cim call <kind> --help`: the commands.
pub fn commands_help(language: &Language) -> String {
    let mut out = format!(
        "cim call {kind} <command> --id <id> [--<field> <value>]…\n\nCommands of `{kind}` ({}):\n",
        language.package,
        kind = language.kind
    );
    let width = language
        .commands
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0);
    for m in &language.commands {
        let _ = writeln!(out, "  {:width$}  {}", m.name, first_line(&m.docs));
    }
    let _ = write!(
        out,
        "\n`cim call {} <command> --help` lists a command's fields.\n",
        language.kind
    );
    out
}

/// `cim call <kind> <command> --help`: the command's fields.
pub fn command_help(language: &Language, message: &Message) -> String {
    let mut out = format!(
        "cim call {} {} --id <id>{}\n\n{}\n\nFields:\n",
        language.kind,
        message.name,
        message
            .fields
            .iter()
            .map(|f| match f.ty {
                ValueType::Option(_) => format!(" [--{} <{}>]", f.name, f.ty),
                ValueType::List(_) => format!(" [--{} <{}>]…", f.name, f.ty),
                _ => format!(" --{} <{}>", f.name, f.ty),
            })
            .collect::<String>(),
        message.docs
    );
    for f in &message.fields {
        let _ = writeln!(out, "  --{} <{}>", f.name, f.ty);
        for line in f.docs.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
    out.push_str("\nOptions:\n");
    for (flag, what) in OWN {
        let _ = writeln!(out, "  --{flag}  {what}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe::Field;

    fn field(name: &str, ty: ValueType) -> Field {
        Field {
            name: name.into(),
            ty,
            docs: format!("The {name}."),
        }
    }

    fn language() -> Language {
        Language {
            kind: "document".into(),
            package: "cim:document@0.1.0".into(),
            docs: String::new(),
            commands: vec![
                Message {
                    name: "create".into(),
                    docs: "Creates the document.".into(),
                    fields: vec![
                        field("title", ValueType::String),
                        field("categories", ValueType::List(Box::new(ValueType::String))),
                    ],
                },
                Message {
                    name: "classify".into(),
                    docs: "Classifies.".into(),
                    fields: vec![
                        field("category", ValueType::String),
                        field("confidence", ValueType::Float { bits: 64 }),
                        field("model", ValueType::Option(Box::new(ValueType::String))),
                        field(
                            "number",
                            ValueType::Integer {
                                signed: false,
                                bits: 8,
                            },
                        ),
                        field(
                            "stage",
                            ValueType::Enum {
                                name: "stage".into(),
                                cases: vec!["in-review".into()],
                            },
                        ),
                    ],
                },
            ],
            events: Vec::new(),
        }
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn call(v: &[&str]) -> Result<Parsed, CallArgError> {
        parse("document", Ok(&language()), &args(v))
    }

    #[test]
    fn field_flags_become_the_commands_json_in_wit_order_with_wire_names() {
        let Parsed::Call(c) = call(&[
            "classify",
            "--id",
            "d-1",
            "--confidence",
            "0.5",
            "--category",
            "invoice",
            "--number=7",
            "--stage",
            "in-review",
        ])
        .unwrap() else {
            panic!("a call")
        };
        assert_eq!(c.name, "Classify");
        assert_eq!(c.id, "d-1");
        assert_eq!(
            c.json,
            r#"{"category":"invoice","confidence":0.5,"number":7,"stage":"InReview"}"#
        );
    }

    #[test]
    fn a_list_is_given_once_per_element() {
        let Parsed::Call(c) = call(&[
            "create",
            "--id",
            "d",
            "--title",
            "T",
            "--categories",
            "a",
            "--categories",
            "b",
        ])
        .unwrap() else {
            panic!("a call")
        };
        assert_eq!(c.json, r#"{"title":"T","categories":["a","b"]}"#);
    }

    #[test]
    fn an_unknown_field_is_refused_naming_it_and_the_known_ones() {
        let err = call(&["create", "--id", "d", "--title", "T", "--colour", "red"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`create` has no field `--colour`; its fields: --title, --categories"
        );
    }

    #[test]
    fn a_missing_required_field_is_refused_naming_its_type() {
        let err = call(&["classify", "--id", "d", "--category", "x"]).unwrap_err();
        assert_eq!(err.to_string(), "`classify` needs `--confidence` (f64)");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_naming_the_expected_type() {
        for (flag, value, ty) in [
            ("--confidence", "high", "f64"),
            ("--number", "256", "u8"),
            ("--number", "-1", "u8"),
            ("--stage", "done", "stage (in-review)"),
        ] {
            let mut v = vec![
                "classify",
                "--id",
                "d",
                "--category",
                "x",
                "--confidence",
                "1",
                "--number",
                "1",
                "--stage",
                "in-review",
            ];
            let at = v.iter().position(|a| *a == flag).unwrap();
            v[at + 1] = value;
            let err = call(&v).unwrap_err();
            assert_eq!(
                err,
                CallArgError::WrongType {
                    field: flag.trim_start_matches("--").into(),
                    value: value.into(),
                    ty: ty.into()
                },
                "{v:?}"
            );
        }
    }

    #[test]
    fn an_unknown_command_is_refused_listing_the_commands() {
        let err = call(&["launch", "--id", "d"]).unwrap_err();
        assert!(
            err.to_string().contains("its commands: create, classify"),
            "{err}"
        );
    }

    #[test]
    fn json_with_a_wire_name_is_sent_as_given_even_without_the_wit() {
        let Parsed::Call(c) = parse(
            "document",
            Err("no artifact".into()),
            &args(&["Tag", "--id", "d", "--json", r#"{"tag":"x"}"#]),
        )
        .unwrap() else {
            panic!("a call")
        };
        assert_eq!(
            (c.name.as_str(), c.json.as_str()),
            ("Tag", r#"{"tag":"x"}"#)
        );
        let err = parse(
            "document",
            Err("no artifact".into()),
            &args(&["tag", "--id", "d", "--tag", "x"]),
        )
        .unwrap_err();
        assert!(matches!(err, CallArgError::NoLanguage { .. }), "{err}");
    }

    #[test]
    fn a_flag_without_its_value_is_refused_not_given_the_next_flag() {
        let err = call(&["classify", "--id", "d", "--model", "--category", "x"]).unwrap_err();
        assert_eq!(
            err,
            CallArgError::NoValue {
                flag: "model".into()
            }
        );
    }

    #[test]
    fn json_and_field_flags_together_are_refused() {
        let err = call(&["create", "--id", "d", "--json", "{}", "--title", "T"]).unwrap_err();
        assert_eq!(err, CallArgError::JsonAndFields);
    }

    #[test]
    fn help_lists_the_commands_or_one_commands_fields_and_sends_nothing() {
        let Parsed::Help(all) = call(&["--help"]).unwrap() else {
            panic!()
        };
        assert!(
            all.contains("create") && all.contains("Classifies."),
            "{all}"
        );
        let Parsed::Help(one) = call(&["classify", "--help"]).unwrap() else {
            panic!()
        };
        assert!(
            one.contains("--confidence <f64>") && one.contains("The confidence."),
            "{one}"
        );
        assert!(one.contains("[--model <option<string>>]"), "{one}");
    }
}
