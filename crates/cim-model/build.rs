//! Generates the Rust types of each entity's language from its WIT package
//! (`wit/entities/<kind>/`, every directory there), so the rules follow the WIT and are never
//! written twice. The types of `<kind>` land in `$OUT_DIR/<kind in snake case>.rs`.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let entities = root.join("entities");
    println!("cargo:rerun-if-changed={}", entities.display());
    let mut kinds: Vec<String> = std::fs::read_dir(&entities)
        .expect("wit/entities")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    kinds.sort();
    for kind in kinds {
        let language = cim_witgen::Language::load(&root, &entities.join(&kind))
            .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
        let rust = language
            .rust("types", &[&format!("{kind}-command")])
            .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
        for file in language.files() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        let file = format!("{}.rs", kind.replace('-', "_"));
        std::fs::write(out.join(file), rust).expect("writing generated types");
    }
}
