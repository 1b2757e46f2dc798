//! `cim new entity <name>`: a new entity type from a template, so that it builds, deploys with
//! `cim up` and answers a typed `cim call` before any rule is written (issue 16).
//!
//! It writes the entity's WIT package (`wit/entities/<name>/`: its language in `types.wit`, its
//! typed `commands` and worlds in `<name>.wit`), its rules (`crates/cim-model/src/<name>.rs`,
//! with a given/when/then test, registered in `crates/cim-model/src/lib.rs`), its component
//! crate (`components/<name>/`) and its entries in both wadm manifests. The template entity
//! has one command, `open --title`, and one event, `<name>-opened`. Nothing is written when
//! anything would be overwritten or the name is unusable.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why `cim new entity` wrote nothing.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// The name cannot name an entity.
    #[error(
        "`{0}` cannot name an entity: use one word of 1 to 32 characters of a-z and 0-9, \
         starting with a letter (it becomes a WIT package, a Rust module, a Cargo package and a \
         NATS subject token)"
    )]
    BadName(String),
    /// The name is a WIT or Rust keyword.
    #[error("`{0}` is a WIT or Rust keyword; choose another name")]
    Keyword(String),
    /// The current directory is not the CIM repository.
    #[error("run `cim new entity` from the CIM repository's top directory (no {0} here)")]
    NotTheRepository(String),
    /// Something of that name exists already.
    #[error("an entity `{name}` exists already: {path} (nothing was written)")]
    Exists {
        /// The name.
        name: String,
        /// What exists.
        path: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The marker line in both manifests above which new entity components go.
pub const MANIFEST_MARKER: &str =
    "    # Entity components that `cim new entity` adds go above this line.\n";

/// The files `cim new entity <name>` writes or changes, relative to the repository: new files
/// with their text, and changed files with their new text.
#[derive(Debug)]
pub struct Scaffold {
    /// New directories (none exists before).
    pub dirs: Vec<PathBuf>,
    /// New files.
    pub created: Vec<(PathBuf, String)>,
    /// Existing files with their new contents.
    pub changed: Vec<(PathBuf, String)>,
}

const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "bool",
    "borrow",
    "break",
    "char",
    "const",
    "constructor",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "export",
    "extern",
    "f32",
    "f64",
    "false",
    "flags",
    "fn",
    "for",
    "func",
    "future",
    "if",
    "impl",
    "import",
    "in",
    "include",
    "interface",
    "let",
    "list",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "option",
    "own",
    "package",
    "pub",
    "record",
    "ref",
    "resource",
    "result",
    "return",
    "s16",
    "s32",
    "s64",
    "s8",
    "self",
    "static",
    "stream",
    "string",
    "struct",
    "super",
    "trait",
    "true",
    "tuple",
    "type",
    "u16",
    "u32",
    "u64",
    "u8",
    "unsafe",
    "use",
    "variant",
    "where",
    "while",
    "with",
    "world",
    "yield",
];

/// Checks `name` and plans the files of a new entity in the repository at `root`.
pub fn plan(root: &Path, name: &str) -> Result<Scaffold, ScaffoldError> {
    // One word: it names a WIT package, a Rust module, a Cargo package and its `.wasm` file
    // (Cargo writes `a_b.wasm` for a package `a-b`), and a NATS subject token, all alike.
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());

    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    if KEYWORDS.contains(&name) {
        return Err(ScaffoldError::Keyword(name.to_owned()));
    }
    let read = |rel: &str| -> Result<String, ScaffoldError> {
        std::fs::read_to_string(root.join(rel))
            .map_err(|_| ScaffoldError::NotTheRepository(rel.to_owned()))
    };
    let lib = read("crates/cim-model/src/lib.rs")?;
    let manifests = [
        (
            "wadm/local/cim.wadm.yaml",
            format!("file:///CIM_ARTIFACTS/{name}.wasm"),
        ),
        (
            "wadm/cim.wadm.yaml",
            format!("ghcr.io/cim-lattice/{name}:0.1.0"),
        ),
    ];
    let snake = name.replace('-', "_");
    let camel = crate::describe::upper_camel(name);
    let t = Template {
        kind: name,
        snake: &snake,
        camel: &camel,
    };
    let created = vec![
        (
            PathBuf::from(format!("wit/entities/{name}/types.wit")),
            t.types_wit(),
        ),
        (
            PathBuf::from(format!("wit/entities/{name}/{name}.wit")),
            t.commands_wit(),
        ),
        (
            PathBuf::from(format!("crates/cim-model/src/{snake}.rs")),
            t.rules(),
        ),
        (
            PathBuf::from(format!("components/{name}/Cargo.toml")),
            t.cargo_toml(),
        ),
        (
            PathBuf::from(format!("components/{name}/build.rs")),
            t.build_rs(),
        ),
        (
            PathBuf::from(format!("components/{name}/src/lib.rs")),
            t.component(),
        ),
    ];
    for dir in [format!("wit/entities/{name}"), format!("components/{name}")] {
        if root.join(&dir).exists() {
            return Err(ScaffoldError::Exists {
                name: name.to_owned(),
                path: dir,
            });
        }
    }
    for (path, _) in &created {
        if root.join(path).exists() {
            return Err(ScaffoldError::Exists {
                name: name.to_owned(),
                path: path.display().to_string(),
            });
        }
    }
    let module = format!("pub mod {snake};\n");
    if lib.contains(&module) {
        return Err(ScaffoldError::Exists {
            name: name.to_owned(),
            path: "crates/cim-model/src/lib.rs".into(),
        });
    }
    let mut changed = vec![(
        PathBuf::from("crates/cim-model/src/lib.rs"),
        with_module(&lib, &module),
    )];
    for (rel, image) in manifests {
        let text = read(rel)?;
        if !text.contains(MANIFEST_MARKER) {
            return Err(ScaffoldError::NotTheRepository(format!(
                "{rel} with the line {:?}",
                MANIFEST_MARKER.trim()
            )));
        }
        if text.contains(&format!("\n    - name: {name}\n")) {
            return Err(ScaffoldError::Exists {
                name: name.to_owned(),
                path: rel.to_owned(),
            });
        }
        changed.push((
            PathBuf::from(rel),
            text.replacen(
                MANIFEST_MARKER,
                &(t.manifest_entry(&image) + MANIFEST_MARKER),
                1,
            ),
        ));
    }
    Ok(Scaffold {
        dirs: vec![
            PathBuf::from(format!("wit/entities/{name}")),
            PathBuf::from(format!("components/{name}")),
        ],
        created,
        changed,
    })
}

/// Writes `scaffold` under `root`; on a failure, removes what it created and restores what
/// it changed, so nothing is half-written.
pub fn write(root: &Path, scaffold: &Scaffold) -> Result<(), ScaffoldError> {
    let mut created: Vec<PathBuf> = Vec::new();
    let mut restored: Vec<(PathBuf, String)> = Vec::new();
    let result = (|| {
        for (rel, text) in &scaffold.created {
            let path = root.join(rel);
            let io = |source| ScaffoldError::Io {
                path: rel.display().to_string(),
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            created.push(path.clone());
            std::fs::write(&path, text).map_err(io)?;
        }
        for (rel, text) in &scaffold.changed {
            let path = root.join(rel);
            let io = |source| ScaffoldError::Io {
                path: rel.display().to_string(),
                source,
            };
            let before = std::fs::read_to_string(&path).map_err(io)?;
            restored.push((path.clone(), before));
            std::fs::write(&path, text).map_err(io)?;
        }
        Ok(())
    })();
    if result.is_err() {
        for path in created {
            let _ = std::fs::remove_file(path);
        }
        for (path, before) in restored {
            let _ = std::fs::write(path, before);
        }
        for dir in &scaffold.dirs {
            let _ = std::fs::remove_dir_all(root.join(dir));
        }
    }
    result
}

/// `lib` with `module` among its `pub mod` lines, in alphabetical order.
fn with_module(lib: &str, module: &str) -> String {
    let mut out = String::with_capacity(lib.len() + module.len());
    let mut placed = false;
    for line in lib.split_inclusive('\n') {
        let is_mod = line.starts_with("pub mod ") || line.starts_with("mod ");
        if !placed && is_mod && line.trim_start_matches("pub ") > module.trim_start_matches("pub ")
        {
            out.push_str(module);
            placed = true;
        }
        out.push_str(line);
    }
    if !placed {
        out.push_str(module);
    }
    out
}

struct Template<'a> {
    kind: &'a str,
    snake: &'a str,
    camel: &'a str,
}

impl Template<'_> {
    fn fill(&self, text: &str) -> String {
        text.replace("{kind}", self.kind)
            .replace("{snake}", self.snake)
            .replace("{Kind}", self.camel)
    }

    fn types_wit(&self) -> String {
        self.fill(
            r#"package cim:{kind}@0.1.0;

/// The language of a {kind}: what it can be asked to do (the `{kind}-command` cases) and what
/// it records (the `{kind}-event` cases). Each case carries a record of the same name.
///
/// Payloads travel as JSON (`docs/adr/0012-wit-is-the-language.md`): a command or event is
/// named by its case in upper camel case (`open` is `Open`) and its fields by their names in
/// snake case. Every item needs a `///` comment: the build fails naming an undocumented one.
interface types {
    /// Opens the {kind}.
    record open {
        /// What it is about.
        title: string,
    }

    /// Every command a {kind} accepts.
    variant {kind}-command {
        /// See `open`.
        open(open),
    }

    /// The {kind} was opened.
    record {kind}-opened {
        /// What it is about.
        title: string,
    }

    /// Every fact a {kind} records.
    variant {kind}-event {
        /// See `{kind}-opened`.
        {kind}-opened({kind}-opened),
    }
}
"#,
        )
    }

    fn commands_wit(&self) -> String {
        self.fill(
            r#"package cim:{kind}@0.1.0;

/// A {kind}'s commands as typed functions, one per case of `{kind}-command`, named after it and
/// carrying its record: what callers generated from this WIT invoke over wRPC. Each is handled
/// exactly as `cim:ecs/entity.handle` handles the same command as JSON.
interface commands {
    use cim:ecs/types@0.1.0.{envelope, event, ecs-error};
    use types.{
        open as open-command,
    };

    /// Opens {kind} `id`.
    open: func(id: string, cmd: open-command, meta: envelope, expected-version: option<u64>) -> result<list<event>, ecs-error>;
}

/// The {kind} entity component: the uniform `cim:ecs/entity` entry and the typed `commands`.
world {kind}-component {
    include cim:ecs/entity-component@0.1.0;
    export commands;
}

/// A client of {kind}s: what a caller imports to invoke the typed commands.
world {kind}-client {
    import commands;
}
"#,
        )
    }

    fn rules(&self) -> String {
        self.fill(
            r#"//! The {kind} entity: its rules, over the types generated from
//! `wit/entities/{kind}/types.wit` ([`{Kind}Command`], [`{Kind}Event`]).

use cim_domain::Aggregate;
use serde::{Deserialize, Serialize};

/// The types of `cim:{kind}/types`, generated from its WIT (ADR 0012).
mod language {
    include!(concat!(env!("OUT_DIR"), "/{snake}.rs"));
}
pub use language::*;

/// The state a decision needs, folded from the {kind}'s events. Bump `STATE_SCHEMA` in the
/// `impl Aggregate` when its fields or `apply` change meaning (snapshots of another schema
/// are then ignored).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct {Kind} {
    opened: bool,
}

impl Aggregate for {Kind} {
    const KIND: &'static str = "{kind}";
    type Command = {Kind}Command;
    type Event = {Kind}Event;
    type Error = String;

    fn decide(&self, cmd: &{Kind}Command) -> Result<Vec<{Kind}Event>, String> {
        match cmd {
            {Kind}Command::Open { .. } if self.opened => Err("the {kind} is already open".into()),
            {Kind}Command::Open { title } => Ok(vec![{Kind}Event::{Kind}Opened {
                title: title.clone(),
            }]),
        }
    }

    fn apply(&mut self, ev: &{Kind}Event) {
        match ev {
            {Kind}Event::{Kind}Opened { .. } => self.opened = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::testing::given;

    fn opened() -> {Kind}Event {
        {Kind}Event::{Kind}Opened {
            title: "first".into(),
        }
    }

    #[test]
    fn a_new_{snake}_is_opened() {
        given::<{Kind}>([])
            .when({Kind}Command::Open {
                title: "first".into(),
            })
            .then([opened()]);
    }

    #[test]
    fn an_open_{snake}_cannot_be_opened_again() {
        given::<{Kind}>([opened()])
            .when({Kind}Command::Open {
                title: "again".into(),
            })
            .then_err("already open");
    }
}
"#,
        )
    }

    fn cargo_toml(&self) -> String {
        self.fill(
            r#"[package]
name = "{kind}"
description = "The {kind} entity as a wasm32-wasip2 component exporting cim:ecs/entity and its typed cim:{kind}/commands."
version.workspace = true
edition.workspace = true
license.workspace = true
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
cim-guest = { path = "../../crates/cim-guest" }
cim-model.workspace = true
serde.workspace = true
wit-bindgen.workspace = true

[build-dependencies]
cim-witgen.workspace = true

[lints]
workspace = true
"#,
        )
    }

    fn build_rs(&self) -> String {
        self.fill(
            r#"//! Generates the typed `cim:{kind}/commands` export from `wit/entities/{kind}/`: one function
//! per command, each handed to the entity's rules under its command's name.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let language = cim_witgen::Language::load(&wit, &wit.join("entities/{kind}"))
        .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
    let mut rust = language
        .guest_commands("commands", "{kind}-command", "bindings", "cim_model::{snake}::{Kind}")
        .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
    rust += &cim_witgen::types_section(&wit.join("entities/{kind}/types.wit"))
        .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
    for file in language.files() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("commands.rs"), rust).expect("writing the typed commands");
}
"#,
        )
    }

    fn component(&self) -> String {
        self.fill(
            r#"//! The {kind} entity: [`cim_model::{snake}::{Kind}`] behind `cim:ecs/entity` and behind its
//! typed `cim:{kind}/commands`, whose functions `build.rs` generates from the WIT.

/// Generated bindings of the `cim:{kind}/{kind}-component` world; the shared `cim:ecs` types
/// and the event-store import are `cim_guest`'s.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "cim:{kind}/{kind}-component",
        path: ["../../wit", "../../wit/entities/{kind}"],
        with: {
            "cim:ecs/types@0.1.0": cim_guest::bindings::cim::ecs::types,
            "cim:ecs/eventstore@0.1.0": cim_guest::bindings::cim::ecs::eventstore,
        },
        additional_derives: [serde::Serialize],
        generate_all,
    });
}

use cim_guest::{Command, EcsError, Event};
use cim_model::{snake}::{Kind};

/// The exported component.
struct Component;

impl bindings::exports::cim::ecs::entity::Guest for Component {
    fn handle(cmd: Command) -> Result<Vec<Event>, EcsError> {
        cim_guest::handle::<{Kind}>(cmd)
    }
}

include!(concat!(env!("OUT_DIR"), "/commands.rs"));

bindings::export!(Component with_types_in bindings);
"#,
        )
    }

    fn manifest_entry(&self, image: &str) -> String {
        self.fill(
            r#"    # The {kind} entity (`cim new entity {kind}`).
    - name: {kind}
      type: component
      properties:
        image: IMAGE
        # `cim call {kind} …` addresses it as <lattice>.cim-{kind} over wRPC.
        id: cim-{kind}
      traits:
        - type: spreadscaler
          properties:
            # Concurrent commands on a host (see the document entity's entry).
            instances: 64
        # {kind} imports cim:ecs/eventstore; the event-store provider serves it.
        - type: link
          properties:
            namespace: cim
            package: ecs
            interfaces: [eventstore]
            target:
              name: eventstore

"#,
        )
        .replace("IMAGE", image)
    }
}

/// `cim new entity <name>` in the current directory: plans, writes, and says what it did.
pub fn new_entity(name: &str) -> Result<String, ScaffoldError> {
    let root = std::env::current_dir().map_err(|source| ScaffoldError::Io {
        path: ".".into(),
        source,
    })?;
    let scaffold = plan(&root, name)?;
    write(&root, &scaffold)?;
    let mut out = format!("entity `{name}` created:\n");
    for (path, _) in &scaffold.created {
        out.push_str(&format!("  new      {}\n", path.display()));
    }
    for (path, _) in &scaffold.changed {
        out.push_str(&format!("  changed  {}\n", path.display()));
    }
    out.push_str(&format!(
        "\nNext: edit wit/entities/{name}/types.wit (its commands and events) and \
         wit/entities/{name}/{name}.wit (one function per command), write decide/apply in \
         crates/cim-model/src/{}.rs, then `cim up` and `cim call {name} open --id <id> --title <title>`.\n",
        name.replace('-', "_")
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = cim_testkit::workspace_root();
        for rel in [
            "crates/cim-model/src/lib.rs",
            "wadm/local/cim.wadm.yaml",
            "wadm/cim.wadm.yaml",
        ] {
            let to = dir.path().join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(rel), to).unwrap();
        }
        dir
    }

    #[test]
    fn a_new_entity_writes_its_wit_rules_component_and_manifest_entries() {
        let dir = repo();
        let scaffold = plan(dir.path(), "workorder").unwrap();
        write(dir.path(), &scaffold).unwrap();
        let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap();
        assert!(read("wit/entities/workorder/types.wit").contains("variant workorder-command {"));
        assert!(read("crates/cim-model/src/workorder.rs").contains("impl Aggregate for Workorder"));
        assert!(
            read("components/workorder/src/lib.rs").contains("cim:workorder/workorder-component")
        );
        let lib = read("crates/cim-model/src/lib.rs");
        assert!(lib.find("pub mod workorder;").unwrap() > lib.find("pub mod pipeline;").unwrap());
        for manifest in ["wadm/local/cim.wadm.yaml", "wadm/cim.wadm.yaml"] {
            let text = read(manifest);
            assert!(text.contains("\n    - name: workorder\n"), "{manifest}");
            assert!(text.find("name: workorder").unwrap() < text.find(MANIFEST_MARKER).unwrap());
        }
    }

    #[test]
    fn an_existing_entity_or_a_bad_name_is_refused_and_nothing_is_written() {
        let dir = repo();
        let before = std::fs::read_to_string(dir.path().join("wadm/cim.wadm.yaml")).unwrap();
        std::fs::create_dir_all(dir.path().join("components/ticket")).unwrap();
        assert!(matches!(
            plan(dir.path(), "ticket"),
            Err(ScaffoldError::Exists { .. })
        ));
        for bad in [
            "Ticket",
            "2fa",
            "a--b",
            "a.b",
            "ticket-",
            "",
            "x".repeat(33).as_str(),
        ] {
            assert!(
                matches!(plan(dir.path(), bad), Err(ScaffoldError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            plan(dir.path(), "record"),
            Err(ScaffoldError::Keyword(_))
        ));
        assert!(!dir.path().join("wit").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wadm/cim.wadm.yaml")).unwrap(),
            before
        );
    }

    #[test]
    fn outside_the_repository_it_says_where_to_run_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = plan(dir.path(), "ticket").unwrap_err();
        assert!(matches!(err, ScaffoldError::NotTheRepository(_)), "{err}");
    }
}
