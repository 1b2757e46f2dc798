//! Generates the typed `cim:document/commands` export from `wit/entities/document/`: one function
//! per command, each handed to the entity's rules under its command's name.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let language = cim_witgen::Language::load(&wit, &wit.join("entities/document"))
        .unwrap_or_else(|e| panic!("the WIT of document: {e}"));
    let mut rust = language
        .guest_commands(
            "commands",
            "document-command",
            "bindings",
            "cim_model::document::Document",
        )
        .unwrap_or_else(|e| panic!("the WIT of document: {e}"));
    rust += &cim_witgen::types_section(&wit.join("entities/document/types.wit"))
        .unwrap_or_else(|e| panic!("the WIT of document: {e}"));
    for file in language.files() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("commands.rs"), rust).expect("writing the typed commands");
}
