//! Generates the Rust types of each entity's language from its WIT package
//! (`wit/entities/<kind>/`), so the rules follow the WIT and are never written twice.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for (kind, strict) in [
        ("document", "document-command"),
        ("package", "package-command"),
    ] {
        let language = cim_witgen::Language::load(&root, &root.join("entities").join(kind))
            .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
        let rust = language
            .rust("types", &[strict])
            .unwrap_or_else(|e| panic!("the WIT of {kind}: {e}"));
        for file in language.files() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
        std::fs::write(out.join(format!("{kind}.rs")), rust).expect("writing generated types");
    }
}
