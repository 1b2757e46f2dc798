//! `docs/wit.md` is the WIT reference: every interface, world, type and function declared in
//! `wit/*.wit` must be listed there (in backticks), so the reference cannot silently fall
//! behind the package.

use std::collections::BTreeSet;

/// The `.wit` files of `cim:ecs` (`wit/`), of the systems' worlds (`wit/systems/`) and of every
/// entity package (`wit/entities/*/`).
fn wit_files() -> Vec<std::path::PathBuf> {
    let root = cim_testkit::workspace_root();
    let mut dirs = vec![root.join("wit"), root.join("wit/systems")];
    for entry in std::fs::read_dir(root.join("wit/entities")).unwrap() {
        dirs.push(entry.unwrap().path());
    }
    let mut files = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wit") {
                files.push(path);
            }
        }
    }
    files
}

/// The names the WIT files declare: interfaces, worlds, types and functions.
fn declared() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for path in wit_files() {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [kind, name, "{", ..]
                    if [
                        "interface",
                        "world",
                        "record",
                        "variant",
                        "enum",
                        "flags",
                        "resource",
                    ]
                    .contains(kind) =>
                {
                    names.insert(name.to_string());
                }
                ["type", name, "=", ..] => {
                    names.insert(name.to_string());
                }
                [first, ..] if first.ends_with(':') && line.contains(": func(") => {
                    names.insert(first.trim_end_matches(':').to_string());
                }
                _ => {}
            }
        }
    }
    names
}

#[test]
fn the_wit_reference_lists_everything_the_package_declares() {
    let names = declared();
    for expected in [
        "entity",
        "handle",
        "append",
        "ecs-error",
        "entity-component",
        "document-command",
        "document-created",
        "submit-commit",
        "phase",
        "document-component",
    ] {
        assert!(
            names.contains(expected),
            "parsing wit/ found {expected}: {names:?}"
        );
    }
    let reference =
        std::fs::read_to_string(cim_testkit::workspace_root().join("docs/wit.md")).unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !reference.contains(&format!("`{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/wit.md does not describe {missing:?}"
    );
}
