//! `docs/wit.md` is the WIT reference: every interface, world, type and function declared in
//! `wit/*.wit` must be listed there (in backticks), so the reference cannot silently fall
//! behind the package.

use std::collections::BTreeSet;

/// The names `wit/*.wit` declares: interfaces, worlds, types and functions.
fn declared() -> BTreeSet<String> {
    let root = cim_testkit::workspace_root();
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("wit")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wit") {
            continue;
        }
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
